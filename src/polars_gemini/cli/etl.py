"""The ETL subcommands of `polars-gemini`: `run`, `estimate`, `submit`, `resume`, `cancel`, `list`, and `status --json`.

Files in and out by extension (Parquet, CSV, NDJSON/JSONL, IPC/Arrow/Feather; local paths, globs, or any URL Polars
reads), reports as text or `--json` on stdout, logs and progress on stderr (the progress bar only on a terminal).

Exit codes (also in `polars-gemini --help`):

    0  done (every row answered, or failed rows within --max-failed)
    1  the service failed (an API error that retries did not fix)
    2  usage error or bad input (nothing was sent)
    3  refused by --max-cost (nothing was sent)
    4  more rows failed than --max-failed allows (the output is written all the same)
    5  still pending (--no-wait, --timeout reached, or the checkpoint busy in another process): `resume DIR` later
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

DONE, SERVICE_FAILED, USAGE, OVER_BUDGET, TOO_MANY_FAILED, PENDING = 0, 1, 2, 3, 4, 5
EXIT_CODES = __doc__.split("Exit codes")[1].split("\n\n", 1)[1].rstrip() if __doc__ else ""

_READERS: dict[str, Callable[..., pl.LazyFrame]] = {
    ".parquet": pl.scan_parquet, ".pq": pl.scan_parquet, ".csv": pl.scan_csv, ".tsv": pl.scan_csv,
    ".ndjson": pl.scan_ndjson, ".jsonl": pl.scan_ndjson, ".ipc": pl.scan_ipc, ".arrow": pl.scan_ipc,
    ".feather": pl.scan_ipc,
}  # fmt: skip
_DTYPE_NAMES = (
    "String", "Boolean", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32",
    "Float64", "Date", "Datetime", "Time", "Duration", "Categorical", "Decimal",
)  # fmt: skip
_DTYPES = {name: getattr(pl, name) for name in _DTYPE_NAMES}


class CliError(Exception):
    """A problem with the command line's own inputs (a file's format, a schema file): exit code 2."""


def add_commands(sub: Any) -> None:
    """The ETL subcommands, on the `polars-gemini` parser's subparsers."""
    run = sub.add_parser("run", help="run a template over a file's rows at batch price and write the result file",
                         description="Submit, wait and write OUT. " + _codes())  # fmt: skip
    _inputs(run)
    run.add_argument("--output", "-o", required=True, help="the result file (.parquet, .csv, .ndjson, .ipc)")
    _waiting(run)
    _unsticking(run)
    est = sub.add_parser("estimate", help="tokens and USD of a run, before anything is sent")
    _inputs(est, budget=False)
    submit = sub.add_parser("submit", help="submit the jobs and exit; prints the checkpoint directory")
    _inputs(submit, checkpoint_required=True)
    _unsticking(submit)
    submit.add_argument("--webhook", action="append", metavar="URL",
                        help="POST a signed event to URL when each job ends (repeatable; 'registered': the "
                             "project's registered webhooks); `polars-gemini webhook serve` there finishes the "
                             "run")  # fmt: skip
    submit.add_argument("--output", "-o", help="the result file that `resume` and the webhook receiver write when "
                                               "the run is done (kept in the checkpoint)")  # fmt: skip
    status = sub.choices["status"]
    status.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    resume = sub.add_parser("resume", help="pick up a checkpointed run: wait for it and write its result file",
                            description=_codes())  # fmt: skip
    resume.add_argument("checkpoint", help="the checkpoint directory or object-storage URL")
    resume.add_argument("--output", "-o", help="the result file (.parquet, .csv, .ndjson, .ipc)")
    _waiting(resume)
    _unsticking(resume, saved=True)
    resume.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    cancel = sub.add_parser("cancel", help="cancel a checkpointed run's unfinished jobs (nothing more is billed)")
    cancel.add_argument("checkpoint", help="the checkpoint directory or object-storage URL")
    cancel.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    jobs = sub.add_parser("list", help="this library's batch jobs on the service, newest first")
    jobs.add_argument("--json", action="store_true", help="the jobs as JSON on stdout")


def _codes() -> str:
    return "Exit codes: " + "; ".join(" ".join(line.split()) for line in EXIT_CODES.splitlines()) + "."


def _inputs(parser: argparse.ArgumentParser, *, budget: bool = True, checkpoint_required: bool = False) -> None:
    parser.add_argument("input", help="the input file(s): a path, a glob or a URL (.parquet, .csv, .ndjson, .ipc)")
    parser.add_argument("--template", "-t", required=True, help="the prompt, e.g. 'Classify: {review}'")
    parser.add_argument("--model", "-m", required=True, help="e.g. gemini-2.5-flash")
    parser.add_argument("--schema", help="typed answers: FILE.json ({column: dtype}) or module:PydanticModel")
    parser.add_argument("--system-instruction", help="a system instruction for every request")
    parser.add_argument("--media", nargs="+", metavar="COL", help="columns whose cells are media (paths, bytes, URLs)")
    parser.add_argument("--checkpoint", required=checkpoint_required,
                        help="the directory, or object-storage URL (s3://bucket/prefix, gs://..., az://...; "
                             "credentials from the environment), that keeps the run's state")  # fmt: skip
    if budget:
        parser.add_argument("--max-cost", type=float, help="refuse to submit when the estimate could exceed this USD")
    parser.add_argument("--json", action="store_true", help="the report as JSON on stdout")


def _waiting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                        help="wait for the jobs (default); --no-wait exits with 5 if they are not done")  # fmt: skip
    parser.add_argument("--timeout", type=float, help="seconds to wait at most (then exit 5; resume later)")
    parser.add_argument("--max-failed", default="0",
                        help="failed rows allowed before exit code 4: a count (10) or a fraction (0.01)")  # fmt: skip
    parser.add_argument("--poll-interval", type=float, default=5.0, help="seconds between polls at first")


def _unsticking(parser: argparse.ArgumentParser, *, saved: bool = False) -> None:
    kept = " (default: as submitted)" if saved else ""
    parser.add_argument("--stuck-after", type=float, metavar="HOURS",
                        help="cancel a job still pending or running after HOURS and send its requests again by "
                             f"--fallback{kept}")  # fmt: skip
    parser.add_argument("--fallback", choices=("batch", "flex"), default=None if saved else "batch",
                        help="how a stuck or expired job's requests go again: a new batch job, or synchronous calls "
                             f"at the Flex tier (same price, minutes){kept or ' (default: batch)'}")  # fmt: skip


def run_command(args: argparse.Namespace) -> int:
    """Run one ETL subcommand; the exit code."""
    from polars_gemini.core.errors import APIError, BudgetExceededError, CheckpointLockedError, GeminiBatchError

    try:
        if args.command == "status":
            return status_json(args.checkpoint, args.refresh)
        return _COMMANDS[args.command](args)
    except BudgetExceededError as exc:
        _fail(args, exc, "over_budget")
        return OVER_BUDGET
    except CheckpointLockedError as exc:  # another process is on the run (a receiver, an earlier tick): try later
        _fail(args, exc, "pending")
        return PENDING
    except APIError as exc:
        _fail(args, exc, "service_failed")
        return SERVICE_FAILED
    except (GeminiBatchError, CliError) as exc:
        _fail(args, exc, "usage")
        return USAGE


def _fail(args: argparse.Namespace, exc: Exception, kind: str) -> None:
    print(f"polars-gemini {args.command}: error: {exc}", file=sys.stderr)
    if getattr(args, "json", False):
        _emit({"status": kind, "error": str(exc)})


def _emit(report: Mapping[str, Any]) -> None:
    print(json.dumps(report, indent=2, default=str))


def _log(message: str) -> None:
    print(message, file=sys.stderr)


# -- inputs and outputs -------------------------------------------------------------------------------------------


def scan(source: str) -> pl.LazyFrame:
    """The input, lazily, by its extension (a glob takes its pattern's)."""
    suffix = Path(source.split("?")[0]).suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise CliError(f"{source}: unknown file type {suffix or '(none)'}; use one of {', '.join(sorted(_READERS))}.")
    kwargs = {"separator": "\t"} if suffix == ".tsv" else {}
    try:
        frame = reader(source, **kwargs)
        frame.collect_schema()
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise CliError(f"cannot read {source}: {exc}") from None
    return frame


CLI_FILE = "cli.json"
"""In a checkpoint directory: what the command line adds to the run (`submit --output`), read by `resume` and by the
webhook receiver."""
_OUTPUTS = (".parquet", ".pq", ".ndjson", ".jsonl", ".ipc", ".arrow", ".feather", ".csv")


def check_output(target: str) -> None:
    """Refuses a result file of a type `write` cannot write, before anything is sent."""
    suffix = Path(target).suffix.lower()
    if suffix not in _OUTPUTS:
        raise CliError(f"{target}: unknown file type {suffix or '(none)'}; use one of {', '.join(sorted(_OUTPUTS))}.")
    if Path(target).is_dir():
        raise CliError(f"{target} is a directory; name the result file, e.g. {Path(target) / 'out'!s}{suffix}.")


def record_output(checkpoint: str | Path, target: str) -> None:
    """Keeps the result file in the checkpoint (`cli.json`, written atomically): a local directory keeps its absolute
    path (the webhook receiver resumes from another working directory); a checkpoint in object storage keeps it as
    given, since whoever resumes it may be another machine (a relative path is then taken in its working
    directory)."""
    from polars_gemini.checkpoint.files import write_json
    from polars_gemini.checkpoint.location import open_location

    root = open_location(checkpoint)
    root.prepare()
    if not root.remote:
        write_json(root / CLI_FILE, {"format": 1, "output": str(Path(target).resolve())})
        return
    hold = root.acquire()  # only a lease holder writes to a remote checkpoint (busy: CheckpointLockedError)
    try:
        write_json(root / CLI_FILE, {"format": 1, "output": target})
    finally:
        hold.release()


def recorded_output(checkpoint: str | Path) -> str | None:
    """The result file `submit --output` recorded in the checkpoint, if any."""
    from polars_gemini.checkpoint.location import open_location

    entry = open_location(checkpoint) / CLI_FILE
    if not entry.exists():
        return None
    try:
        output = json.loads(entry.local().read_text()).get("output")
    except (OSError, ValueError, AttributeError) as exc:
        raise CliError(f"{entry} is unreadable ({exc}); give --output, or submit again with --output.") from None
    return output if isinstance(output, str) else None


def write(frame: pl.DataFrame, target: str) -> None:
    """The result file, by its extension; nested columns (structs, lists, arrays) as JSON text in a CSV."""
    suffix = Path(target).suffix.lower()
    writers: dict[str, Callable[[str], None]] = {
        ".parquet": frame.write_parquet, ".pq": frame.write_parquet, ".ndjson": frame.write_ndjson,
        ".jsonl": frame.write_ndjson, ".ipc": frame.write_ipc, ".arrow": frame.write_ipc, ".feather": frame.write_ipc,
        ".csv": lambda path: _flat(frame).write_csv(path),
    }  # fmt: skip
    if suffix not in writers:
        raise CliError(f"{target}: unknown file type {suffix or '(none)'}; use one of {', '.join(sorted(writers))}.")
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    writers[suffix](target)


def _flat(frame: pl.DataFrame) -> pl.DataFrame:
    """CSV has no nested values: each nested cell as its JSON text (encoded inside a one-field struct, unwrapped)."""
    nested = [n for n, t in frame.schema.items() if isinstance(t, (pl.Struct, pl.List, pl.Array))]
    return frame.with_columns(pl.struct(pl.col(n).alias("v")).struct.json_encode().str.slice(5).str.head(-1).alias(n)
                              for n in nested)  # fmt: skip


def load_schema(spec: str | None) -> Any:
    """`--schema`: a JSON file of column -> dtype, or `module:Model` (a pydantic model class)."""
    if spec is None:
        return None
    if spec.endswith(".json") or Path(spec).is_file():
        try:
            data = json.loads(Path(spec).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"--schema {spec}: not a readable JSON file ({exc}).") from None
        if not isinstance(data, dict) or not data:
            raise CliError(f"--schema {spec}: expected an object of column -> dtype, e.g. "
                           '{"label": {"enum": ["pos", "neg"]}, "score": "Float64", "tags": ["String"]}.')  # fmt: skip
        return {str(name): _dtype(value, f"{spec}: {name}") for name, value in data.items()}
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise CliError(f"--schema {spec!r}: give FILE.json or module:Model (a pydantic model class).")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise CliError(f"--schema {spec}: cannot import it ({exc}); is the module on PYTHONPATH?") from None


def _dtype(value: Any, where: str) -> Any:
    """A dtype from JSON: a name ("Float64"), ["inner"] for a list, {"enum": [...]}, or {field: dtype} for a
    struct."""
    if isinstance(value, str) and value in _DTYPES:
        return _DTYPES[value]
    if isinstance(value, list) and len(value) == 1:
        return pl.List(_dtype(value[0], f"{where}[]"))
    if isinstance(value, dict) and set(value) == {"enum"} and isinstance(value["enum"], list):
        return pl.Enum([str(v) for v in value["enum"]])
    if isinstance(value, dict) and value:
        return pl.Struct({str(k): _dtype(v, f"{where}.{k}") for k, v in value.items()})
    raise CliError(f"--schema {where}: {value!r} is no dtype; use one of {', '.join(_DTYPES)}, [inner], "
                   '{"enum": [...]} or {field: dtype}.')  # fmt: skip


def _client() -> Any:
    from polars_gemini.service.gemini import client_from_env

    return client_from_env()  # GEMINI_API_KEY; GOOGLE_GEMINI_BASE_URL points the SDK elsewhere (an emulator)


def _progress() -> bool:
    return sys.stderr.isatty()


# -- the commands -------------------------------------------------------------------------------------------------


def _call_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "model": args.model, "schema": load_schema(args.schema), "system_instruction": args.system_instruction,
        "media": args.media,
    }  # fmt: skip
    return options


def _estimate(args: argparse.Namespace) -> int:
    import polars_gemini

    frame = scan(args.input)
    est = polars_gemini.estimate(frame, args.template, **_call_options(args))
    if args.json:
        _emit({"status": "estimated", "estimate": est.to_dict()})
    else:
        print(repr(est))
    return DONE


def _submit(args: argparse.Namespace) -> int:
    import polars_gemini

    frame = scan(args.input)
    if args.output:
        check_output(args.output)
        record_output(args.checkpoint, args.output)  # before any job exists: its event may come at once
    run = polars_gemini.submit(frame, args.template, **_call_options(args), client=_client(),
                               checkpoint=args.checkpoint, max_cost=args.max_cost, progress=_progress(),
                               webhook=args.webhook, stuck_after=args.stuck_after, fallback=args.fallback)  # fmt: skip
    try:
        status = run.status()
    finally:
        run.close()
    _log(f"submitted: {status!r}")
    if args.json:
        _emit({"status": "submitted", "checkpoint": str(args.checkpoint), **_status_json(status)})
    else:
        print(args.checkpoint)
    return DONE


def _run(args: argparse.Namespace) -> int:
    import polars_gemini

    check_output(args.output)  # before anything is sent: a file type or path that cannot be written
    frame = scan(args.input)
    run = polars_gemini.submit(frame, args.template, **_call_options(args), client=_client(),
                               checkpoint=args.checkpoint, max_cost=args.max_cost, progress=_progress(),
                               poll_interval=args.poll_interval, stuck_after=args.stuck_after,
                               fallback=args.fallback, memory_budget=_budget(args))  # fmt: skip
    return _finish(args, run, args.output)


def _streams(output: str | None) -> bool:
    """A Parquet result file is written chunk by chunk (`Run.sink_parquet`); other formats from the whole frame."""
    return output is not None and Path(output).suffix.lower() in (".parquet", ".pq")


def _budget(args: argparse.Namespace) -> int | None:
    """`run` into Parquet plans in bounded memory too (media rows are planned in memory: none then)."""
    from polars_gemini.run.sink import DEFAULT_SINK_BUDGET

    return DEFAULT_SINK_BUDGET if _streams(args.output) and not args.media else None


def _resume(args: argparse.Namespace) -> int:
    import polars_gemini

    output = args.output or recorded_output(args.checkpoint)
    if output:
        check_output(output)
    run = polars_gemini.resume(args.checkpoint, client=_client(), progress=_progress(),
                               poll_interval=args.poll_interval, stuck_after=args.stuck_after,
                               fallback=args.fallback, stream=_streams(output))  # fmt: skip
    return _finish(args, run, output)


def _finish(args: argparse.Namespace, run: Any, output: str | None) -> int:
    """Wait (unless --no-wait), write the output, and say how it went: the exit code."""
    from polars_gemini.core.errors import RunTimeoutError

    try:
        if not args.wait:
            run.advance()  # one polling step: collects what finished, and sends a retry round that is due
            if not run.done:
                return _pending(args, run)
        try:
            if _streams(output):  # written chunk by chunk, never whole in memory
                sunk = run.sink_parquet(output, timeout=args.timeout)
                rows, failed = sunk.rows, sunk.failed
            else:
                result = run.result(timeout=args.timeout)
                rows, failed = result.height, _failed(result, f"{run.options.output}_error")
        except RunTimeoutError:
            return _pending(args, run)
        status = run.status()
    finally:
        run.close()
    if output and not _streams(output):
        write(result, output)
    if output:
        _log(f"wrote {rows:,} rows to {output}")
    allowed = _allowed(args.max_failed, rows)
    code = TOO_MANY_FAILED if failed > allowed else DONE
    report = {"status": "too_many_failed" if code else "done", "rows": rows, "failed": failed,
              "max_failed": allowed, "output": output, "cost": _cost_json(run), **_status_json(status)}  # fmt: skip
    if args.json:
        _emit(report)
    else:
        print(f"{'done' if not code else 'too many failed rows'}: {rows:,} rows, {failed:,} failed "
              f"(allowed {allowed:,}); {run.cost()!r}")  # fmt: skip
    return code


def _failed(result: pl.DataFrame, error_col: str) -> int:
    return int(result.get_column(error_col).is_not_null().sum()) if error_col in result.columns else 0


def _pending(args: argparse.Namespace, run: Any) -> int:
    status = run.status()
    where = run.store.root
    hint = f"polars-gemini resume {where}" if where else "pass --checkpoint to be able to resume"
    _log(f"still running: {status!r}; pick it up with: {hint}")
    if args.json:
        _emit({"status": "pending", "checkpoint": str(where) if where else None, **_status_json(status)})
    return PENDING


def _allowed(text: str, rows: int) -> int:
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"--max-failed {text!r}: give a count (10) or a fraction of the rows (0.01).") from None
    if value < 0 or value != value:
        raise CliError(f"--max-failed must be >= 0, got {text}.")
    return int(value * rows) if 0 < value < 1 or "." in text else int(value)


def _status_json(status: Any) -> dict[str, Any]:
    return {"requests": status.requests, "done": status.done, "failed_requests": status.failed,
            "pending": status.pending, "jobs": [{"name": n, "state": s} for n, s in status.jobs]}  # fmt: skip


def _cost_json(run: Any) -> dict[str, Any]:
    cost = run.cost()
    est = cost.estimate
    return {"estimated": est.cost if est else None, "estimated_max": est.cost_max if est else None,
            "actual": cost.actual, "tokens": cost.tokens}  # fmt: skip


def _cancel(args: argparse.Namespace) -> int:
    import polars_gemini

    run = polars_gemini.resume(args.checkpoint, client=_client(), progress=False, submit=False)
    try:
        run.cancel()
        status = run.status()
    finally:
        run.close()
    if args.json:
        _emit({"status": "cancelled", **_status_json(status)})
    else:
        print(f"cancelled: {status!r}")
    return DONE


def _list(args: argparse.Namespace) -> int:
    from polars_gemini.service.gemini import find_jobs

    jobs = find_jobs(_client(), "polars-gemini-")
    rows = [{"name": j.name, "display_name": j.display_name, "state": j.state, "created": j.created} for j in jobs]
    if args.json:
        _emit({"status": "listed", "jobs": rows})
    elif rows:
        with pl.Config(tbl_rows=200, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
            print(pl.DataFrame(rows))
    else:
        print("no polars-gemini jobs on the service")
    return DONE


def status_json(checkpoint: str, refresh: bool) -> int:
    """`status --json`."""
    import polars_gemini

    status = polars_gemini.checkpoint_status(checkpoint, client=_client() if refresh else None)
    _emit({
        "checkpoint": status.directory, "model": status.model, "template": status.template, "rows": status.rows,
        "done": status.done, "failed": status.failed, "pending": status.pending,
        "estimated_cost": status.estimated_cost, "actual_cost": status.actual_cost,
        "jobs": status.jobs.to_dicts(),
    })  # fmt: skip
    return PENDING if status.pending else DONE


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run, "estimate": _estimate, "submit": _submit, "resume": _resume, "cancel": _cancel, "list": _list,
}  # fmt: skip
