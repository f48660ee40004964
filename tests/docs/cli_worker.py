"""A process that runs `polars-gemini` commands for the docs' tests, one after another, each through the command's
own entry point (`polars_gemini.cli.main.main`, what `python -m polars_gemini.cli` calls), with the environment and
working directory it is given.

The docs' shell examples run here rather than one fresh interpreter each: the imports (Polars, google-genai,
pandas) are paid once per page instead of once per command, and the commands still run in a process of their own,
apart from the page's Python (its runs, its checkpoint locks). Each command closes its run before it returns, as a
process that exits would. The interpreter's warning filters are the defaults, as in a shell.

Protocol: one JSON object per line on stdin, `{"argv": [...], "env": {...}, "cwd": "..."}`; one JSON object per
line on the original stdout, `{"code": int, "stdout": str, "stderr": str}`. Anything else written to file
descriptor 1 is discarded.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback


def main() -> None:
    from polars_gemini.cli.main import main as polars_gemini

    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    print(json.dumps({"ready": True}), file=replies, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = polars_gemini(request["argv"])
            except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception:  # a crash: what the interpreter would print, and its exit status
                traceback.print_exc()
                code = 1
        print(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}), file=replies, flush=True)


if __name__ == "__main__":
    main()
