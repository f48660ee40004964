"""The three steps a scheduled pipeline calls: submit a run, poll it on later ticks, finish it.

Plain Python on top of `polars_gemini` (no Airflow or Prefect import), so the same functions serve the Airflow DAG
(`airflow_dag.py`), the Prefect flow (`prefect_flow.py`) or any other scheduler, and are tested against the emulator
(`tests/cli/test_scheduling.py`). Copy this file next to your DAG or flow and adapt the arguments.

No step waits for the jobs: each opens the run from its checkpoint directory, does one short thing and returns, so
no worker is held while the service works (up to 24 hours). Each step may be retried or run again:

* `submit_step` on a checkpoint that already holds this run re-attaches to its jobs; nothing is paid twice.
* `poll_step` asks the service once; it also submits what a crash left unsent and the retry rounds.
* `finish_step` writes the result file atomically (it appears complete or not at all), so the file's existence
  means "done".

The API key comes from `GEMINI_API_KEY` (`GOOGLE_GEMINI_BASE_URL` points the SDK at another endpoint, such as
`polars-gemini emulator`).

>>> summary = submit_step("reviews.parquet", "runs/reviews-2026-11-25",  # doctest: +SKIP
...                       template="Classify: {review}", model="gemini-2.5-flash", max_cost=20.0)
>>> poll_step("runs/reviews-2026-11-25")  # on each later tick, until True  # doctest: +SKIP
False
>>> finish_step("runs/reviews-2026-11-25", "out/reviews-2026-11-25.parquet", max_failed=0.01)  # doctest: +SKIP
{'output': 'out/reviews-2026-11-25.parquet', 'rows': 1000, 'failed': 0, 'cost_usd': 0.41, ...}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import polars as pl

import polars_gemini
from polars_gemini import BudgetExceededError, CheckpointLockedError, RunTimeoutError

__all__ = ["BudgetExceededError", "RunTimeoutError", "TooManyFailedRows", "finish_step", "poll_step", "submit_step",
           "submitted"]  # fmt: skip
MANIFEST = "manifest.json"  # written before any job is created: a checkpoint without it holds no run


class TooManyFailedRows(RuntimeError):
    """More rows failed than `max_failed` allows. The result file is written all the same (`report` says where);
    running the step again does not help: look at the `response_error` column."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def submitted(checkpoint: str | os.PathLike[str]) -> bool:
    """Whether `checkpoint` already holds a run (from the files alone, no call to the service).

    >>> submitted("runs/reviews-2026-11-25")  # doctest: +SKIP
    True
    """
    return (Path(checkpoint) / MANIFEST).is_file()


def submit_step(
    source: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    *,
    template: str,
    model: str,
    max_cost: float | None = None,
    stuck_after: float | None = None,
    fallback: Literal["batch", "flex"] = "batch",
) -> dict[str, Any]:
    """Submit a template over the rows of the Parquet file(s) `source` and return at once; the jobs' state.

    Refused before anything is sent (`BudgetExceededError`) when the estimate could exceed `max_cost` USD. With
    `stuck_after` (hours), a job still pending or running that long is cancelled and its requests go again by
    `fallback` (a new batch job, or the Flex tier), on a later `poll_step`.

    >>> submit_step("reviews.parquet", "runs/reviews", template="Classify: {review}",  # doctest: +SKIP
    ...             model="gemini-2.5-flash", max_cost=20.0)
    {'checkpoint': 'runs/reviews', 'requests': 1000, 'done': 0, 'failed': 0, 'pending': 1000, 'jobs': [...]}
    """
    frame = pl.scan_parquet(os.fspath(source))
    run = polars_gemini.submit(frame, template, model=model, checkpoint=checkpoint, max_cost=max_cost,
                               stuck_after=stuck_after, fallback=fallback, progress=False)  # fmt: skip
    try:
        return {"checkpoint": str(checkpoint), **_status(run)}
    finally:
        run.close()


def poll_step(checkpoint: str | os.PathLike[str]) -> bool:
    """One look at the run's jobs (collecting what finished, sending retry rounds): True once every row has its
    answer or its final error. Never waits.

    A checkpoint busy in another process (an overlapping tick, or the webhook receiver) counts as "not yet".

    >>> poll_step("runs/reviews")  # doctest: +SKIP
    False
    """
    try:
        run = polars_gemini.resume(checkpoint, progress=False)
    except CheckpointLockedError:
        return False
    try:
        return run.advance()
    finally:
        run.close()


def finish_step(
    checkpoint: str | os.PathLike[str], output: str | os.PathLike[str], *, max_failed: float = 0
) -> dict[str, Any]:
    """Write the finished run's rows (input columns, answers, `response_error`) to the Parquet file `output`,
    atomically, and report what it cost. Raises `RunTimeoutError` if the run is not finished (call `poll_step`
    first) and `TooManyFailedRows`, after writing, when more rows failed than `max_failed` (a count, or a fraction
    of the rows when below 1).

    >>> finish_step("runs/reviews", "out/reviews.parquet", max_failed=0.01)  # doctest: +SKIP
    {'output': 'out/reviews.parquet', 'rows': 1000, 'failed': 0, 'allowed': 10, 'cost_usd': 0.41, ...}
    """
    run = polars_gemini.resume(checkpoint, progress=False)
    try:
        result = run.result(timeout=0)  # one poll; raises RunTimeoutError rather than wait
        error_column, cost = f"{run.options.output}_error", run.cost()
    finally:
        run.close()
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    result.write_parquet(partial)
    partial.replace(target)  # atomic on one file system: readers see the old file or the whole new one
    failed = int(result.get_column(error_column).is_not_null().sum())
    allowed = int(max_failed * result.height) if 0 < max_failed < 1 else int(max_failed)
    report = {"output": str(target), "rows": result.height, "failed": failed, "allowed": allowed,
              "cost_usd": cost.actual, "estimated_usd": cost.estimate.cost if cost.estimate else None}  # fmt: skip
    if failed > allowed:
        raise TooManyFailedRows(f"{failed:,} of {result.height:,} rows failed (allowed {allowed:,}); "
                                f"see the {error_column} column of {target}", report)  # fmt: skip
    return report


def _status(run: Any) -> dict[str, Any]:
    status = run.status()
    return {"requests": status.requests, "done": status.done, "failed": status.failed, "pending": status.pending,
            "jobs": [{"name": name, "state": state} for name, state in status.jobs]}  # fmt: skip
