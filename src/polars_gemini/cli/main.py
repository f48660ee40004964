"""The `polars-gemini` command: ETL runs over files (`run`, `estimate`, `submit`, `status`, `resume`, `cancel`,
`list`; see `cli.etl`), `webhook serve` (see `cli.webhook`), and `emulator`, `demo`, `prices`.

A library error (`GeminiBatchError`) is the command's answer, not a crash: it is printed as one error line on stderr
and the exit status is 2, like a usage error (the ETL commands' exit codes are in `cli.etl`).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from polars_gemini.core.errors import GeminiBatchError


def _number(kind: Callable[[str], float], low: float) -> Callable[[str], float]:
    """An argparse `type=` that parses with `kind` and accepts values of at least `low`."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not value >= low:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value

    return parse


def _build_parser() -> argparse.ArgumentParser:
    from polars_gemini.cli.etl import EXIT_CODES

    parser = argparse.ArgumentParser(
        prog="polars-gemini", description=(__doc__ or "").split("\n\n")[0],
        epilog="exit codes:\n" + EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    emu = sub.add_parser("emulator", help="serve the local Gemini API emulator until interrupted")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    emu.add_argument(
        "--job-seconds", type=_number(float, 0), default=0.0, help="simulated queue+run time of each batch job"
    )
    emu.epilog = "Webhook deliveries are signed with $POLARS_GEMINI_WEBHOOK_SECRET when it is set."
    demo = sub.add_parser("demo", help="run a typed batch job over synthetic reviews (emulator unless --live)")
    demo.add_argument("--rows", type=_number(int, 1), default=2_000, help="how many reviews (at least 1)")
    demo.add_argument("--live", action="store_true", help="use the real Gemini API with GEMINI_API_KEY")
    demo.add_argument("--photos", type=_number(int, 0), default=200, help="how many generated photos to caption")
    status = sub.add_parser("status", help="report a checkpointed run from its directory (no API call by default)")
    status.add_argument("checkpoint", help="the checkpoint directory or object-storage URL (s3://, gs://, az://)")
    status.add_argument("--refresh", action="store_true", help="refresh job states from the API (GEMINI_API_KEY)")
    prices = sub.add_parser("prices", help="print the shipped price table (USD per 1M tokens) with dates and sources")
    prices.add_argument("--model", help="only this model ('models/' prefix allowed)")
    from polars_gemini.cli.etl import add_commands
    from polars_gemini.cli.webhook import add_commands as add_webhook_commands

    add_commands(sub)
    add_webhook_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line(args.command)  # the library's warnings as log lines, not source lines
        try:
            return _run(args)
        except GeminiBatchError as exc:
            print(f"polars-gemini {args.command}: error: {exc}", file=sys.stderr)
            return 2


def _warning_line(command: str) -> Callable[..., None]:
    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        print(f"polars-gemini {command}: warning: {message}", file=sys.stderr)

    return show


def _run(args: argparse.Namespace) -> int:
    if args.command == "emulator":
        from polars_gemini.cli.webhook import SECRET_ENV
        from polars_gemini.emulator._cli import serve

        secret = os.environ.get(SECRET_ENV) or None  # signs the emulator's webhook deliveries, as the receiver expects
        return serve(host=args.host, port=args.port, job_seconds=args.job_seconds, webhook_secret=secret)
    if args.command == "demo":
        from polars_gemini.cli.demo import run

        run(rows=int(args.rows), live=args.live, photos=int(args.photos))
        return 0
    if args.command in ("run", "estimate", "submit", "resume", "cancel", "list") or (
        args.command == "status" and args.json
    ):
        from polars_gemini.cli.etl import run_command

        return run_command(args)
    if args.command == "webhook":
        from polars_gemini.cli.webhook import run_command as run_webhook

        return run_webhook(args)
    if args.command == "status":
        from polars_gemini.checkpoint.status import checkpoint_status
        from polars_gemini.service.gemini import client_from_env

        print(checkpoint_status(args.checkpoint, client=client_from_env() if args.refresh else None))
        return 0
    if args.command == "prices":
        print(_price_table(args.model))
        return 0
    return 2


# (row key, column title) of the `prices` table
_PRICE_COLUMNS = (
    ("model", "model"), ("tier", "tier"), ("prompt", "prompt"), ("input", "input"), ("output", "output"),
    ("cached_input", "cached"), ("audio_input", "audio"), ("cached_audio_input", "cached audio"),
    ("cache_storage", "storage/h"), ("as_of", "as of"), ("source", "source"),
)  # fmt: skip


def _price_table(model: str | None) -> str:
    """The shipped price table as aligned text: a row per model, service tier and prompt size; then its sources."""
    from polars_gemini.cost.prices import load_prices

    table = load_prices()
    rows = table.rows(model)  # an unknown model raises ModelError, reported as the command's error
    cells = [[title for _, title in _PRICE_COLUMNS]]
    cells += [[_price_cell(row[key]) for key, _ in _PRICE_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_PRICE_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    cites = [row["source"] for row in rows] + list(table.notes)
    cited = [f"  {key}: {text}" for key, text in table.sources.items() if any(key in cite for cite in cites)]
    head = (
        f"Gemini API prices in USD per 1M tokens (storage/h: per 1M tokens per hour), table as of {table.as_of}; "
        "'-': no separate rate (audio is priced as input) or not published."
    )
    return "\n".join([head, "", *lines, "", "sources:", *cited, "", "notes:", *(f"  - {n}" for n in table.notes)])


def _price_cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
