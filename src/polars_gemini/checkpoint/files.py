"""Run state, in memory and optionally persisted to a checkpoint of plain Parquet and JSON files, in a directory or in
object storage (`location`).

    <checkpoint>/
      manifest.json          what the current run is: model, template, config, schema, library version, fingerprints
      schema.parquet         an empty frame carrying the output dtype (Enum categories and time units intact)
      input.parquet          the input frame, so `polars_gemini.resume(dir)` needs nothing but the directory
      rows.parquet           per input row: the request key, or why the row was not sent
      requests.parquet       per distinct request: key, prompt, size, estimated tokens
      jobs.parquet           every batch job ever created from this directory: name, display name, state, files, times
      jobkeys/<job>.parquet  the keys each job carries, written before the job is created
      results/<job>.parquet  each finished job's results: key, raw line (not kept by streamed runs), answer, error,
                             usage, attempt
      flex/<record>.jsonl    Flex-tier answers of a record under way, one line per call as it returns (then stored)
      .lock                  held by the process using the directory (object storage: lease.json, and index.json
                             mapping each name above to its current write-once object; see `location`)

Every write is atomic (a directory: temporary file, flush, fsync, rename; object storage: a new object, then a
conditional write of the index). No pickle; the API key is never written.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

import polars as pl

from polars_gemini.checkpoint.location import Entry, LocalLocation
from polars_gemini.core.errors import CheckpointCorruptedError, CheckpointError

FORMAT_VERSION = 1
# Test-only crash injection: `POLARS_GEMINI_CRASH_AT=<file or folder name>` kills the process right before a write
# there lands (`location.crash_point`), which is how the crash-resume tests reach "before submission" and "while
# writing results" exactly, in a directory and in object storage alike.


@dataclass
class JobRecord:
    """One batch job. `state` is the API's (PENDING, RUNNING, SUCCEEDED, ...) or one of ours before it exists:
    PREPARED (keys saved), QUEUED (waiting for room under the service's limits), CREATING (the create call may have
    reached the service: find it before creating again); or GONE (the service no longer has it or its results).
    `input_path` is relative to the checkpoint directory. `unreadable_lines`: result lines that could not be read.
    `transport` is "inline" or "file" (batch jobs), "sync" (sync mode) or "flex" (requests sent synchronously at the
    Flex tier: a record with no service name, finished when its results are stored)."""

    display_name: str
    run_id: str
    attempt: int
    shard: int
    transport: str
    requests: int
    state: str = "PREPARED"
    name: str | None = None
    error: str | None = None
    input_file: str | None = None
    input_path: str | None = None
    result_file: str | None = None
    created_at: float | None = None
    updated_at: float | None = None
    collected: bool = False
    error_code: int | None = None
    unreadable_lines: int = 0
    adopted: bool = False  # an earlier call's job of the same work, found on the service: its keys are unknown
    stuck: bool = False  # cancelled by the run for staying PENDING/RUNNING past `stuck_after`: its requests go again


_JOB_SCHEMA = {
    "display_name": pl.String, "run_id": pl.String, "attempt": pl.Int32, "shard": pl.Int32, "transport": pl.String,
    "requests": pl.Int64, "state": pl.String, "name": pl.String, "error": pl.String, "input_file": pl.String,
    "input_path": pl.String, "result_file": pl.String, "created_at": pl.Float64, "updated_at": pl.Float64,
    "collected": pl.Boolean, "error_code": pl.Int64, "unreadable_lines": pl.Int64,
    "adopted": pl.Boolean, "stuck": pl.Boolean,
}  # fmt: skip


def _entry(target: Path | Entry) -> Entry:
    return target if isinstance(target, Entry) else Entry(LocalLocation(target.parent), target.name)


def write_parquet(target: Path | Entry, frame: pl.DataFrame) -> None:
    """Write `frame` to a checkpoint file atomically (a local path or an `Entry` of any location)."""
    entry = _entry(target)
    entry.location.write(entry.relative, frame.write_parquet)


def sink_parquet(target: Path | Entry, frame: pl.LazyFrame) -> None:
    """Stream a LazyFrame into a checkpoint file atomically, without collecting it."""
    entry = _entry(target)
    staging = entry.location.staging_dir()
    tmp = Path(tempfile.mkstemp(dir=staging, prefix=f".{entry.name}.", suffix=".tmp")[1])
    try:
        frame.sink_parquet(tmp)
        entry.location.publish(entry.relative, tmp)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(target: Path | Entry, data: Any) -> None:
    entry = _entry(target)
    body = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False).encode()
    entry.location.write(entry.relative, lambda handle: _put(handle, body))


def _put(handle: IO[bytes], body: bytes) -> None:
    handle.write(body)


def _read(target: Path | Entry, reader: Callable[[Path], Any]) -> Any:
    entry = _entry(target)
    try:
        return reader(entry.local())
    except FileNotFoundError:
        raise CheckpointCorruptedError(
            f"Checkpoint file {entry} is missing (every run writes it). Restore it from a backup, or run the same "
            "batch(...) call again, with the frame: its jobs are found on the service by name, nothing is paid twice."
        ) from None
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointCorruptedError(
            f"Checkpoint file {entry} is truncated or corrupted ({type(exc).__name__}: {str(exc)[:200]}). "
            "Nothing was reset: restore it from a backup, or delete it (jobs: re-attach by display name; "
            "results: downloaded again) if you understand what is lost."
        ) from None


def read_parquet(target: Path | Entry) -> pl.DataFrame:
    frame: pl.DataFrame = _read(target, pl.read_parquet)
    return frame


def read_json(target: Path | Entry) -> Any:
    return _read(target, lambda p: json.loads(p.read_text(encoding="utf-8")))


def jobs_frame(jobs: list[JobRecord]) -> pl.DataFrame:
    return pl.DataFrame([asdict(j) for j in jobs], schema=_JOB_SCHEMA)


def jobs_from_frame(frame: pl.DataFrame) -> list[JobRecord]:
    names = {f.name for f in fields(JobRecord)}
    # One row per job (tens at most), not per request. Columns added by later versions are absent from older files.
    return [
        JobRecord(**{k: v for k, v in row.items() if (k in names and v is not None) or k in _REQUIRED})
        for row in frame.iter_rows(named=True)
    ]


_REQUIRED = ("display_name", "run_id", "attempt", "shard", "transport", "requests")
