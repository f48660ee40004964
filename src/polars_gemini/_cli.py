"""The `polars-gemini` command: `emulator`, `demo`, `status`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polars-gemini", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    emu = sub.add_parser("emulator", help="serve the local Gemini API emulator until interrupted")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    emu.add_argument("--job-seconds", type=float, default=0.0, help="simulated queue+run time of each batch job")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "emulator":
        from polars_gemini.emulator._cli import serve

        return serve(host=args.host, port=args.port, job_seconds=args.job_seconds)
    return 2


if __name__ == "__main__":
    sys.exit(main())
