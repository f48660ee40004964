"""A Vertex AI `BatchPredictionJob`: its rows, its lifecycle on the emulator's clock, and its proto JSON.

States follow the time since creation, as Developer API jobs do (`_jobs`): PENDING for `pending_s`, QUEUED for
`queued_s`, RUNNING for `running_s`, then the ending (SUCCEEDED, PARTIALLY_SUCCEEDED, FAILED, CANCELLED, EXPIRED).
A cancel makes the job CANCELLING for `cancelling_s`, then CANCELLED. Documented limits (Vertex AI, "Batch prediction
for Gemini", quotas and limits): a job waits in the queue at most 72 hours before it expires (EXPIRED here, no output),
and a job still running 24 hours after it started is stopped, completed requests billed and exported (EXPIRED here at
that mark, with the rows done by then; the state the real service reports then is not documented).

Rows done by a job stopped while RUNNING (cancelled or stopped at 24 hours) are the share of its rows its running time
covered, in input order; their predictions are written, as the real service exports completed rows of a terminated
job ("Any files already outputted by the job are not deleted", `batchPredictionJobs.cancel`).

JSON is proto JSON: camelCase, int64 counts as strings with zero counts left out, timestamps with microseconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from polars_gemini.emulator._clock import Clock
from polars_gemini.emulator._jobs import Entry
from polars_gemini.emulator._status import EmulatedError

QUEUE_EXPIRY_SECONDS = 72 * 3600.0
"""A job queued longer than this expires ("Jobs wait in the queue for up to 72 hours before expiring")."""
RUNNING_LIMIT_SECONDS = 24 * 3600.0
"""A job running longer than this is stopped ("after 24 hours, incomplete jobs are cancelled")."""
TERMINAL = frozenset({"SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})
_NS = 1_000_000_000


@dataclass(frozen=True)
class Row:
    """One input line: its entry (camelCase request, key, the other top-level fields as `metadata`), the request as
    written, and the row's own failure (a request the model cannot take) if any."""

    entry: Entry
    verbatim: dict[str, Any]
    error: EmulatedError | None = None


@dataclass(frozen=True)
class VertexEnding:
    """How a job ends after its running time; PARTIALLY_SUCCEEDED fails its first `failed_rows` rows."""

    state: str = "SUCCEEDED"
    error: dict[str, Any] | None = None
    failed_rows: int = 0
    row_message: str = ""


@dataclass
class VertexJob:
    id: str
    parent: str  # projects/<number>/locations/<location>
    location: str
    model: str
    body: dict[str, Any]  # the create request (camelCase), echoed
    rows: list[Row]
    pending_s: float
    queued_s: float
    running_s: float
    cancelling_s: float
    ending: VertexEnding = VertexEnding()
    clock: Clock = field(default_factory=Clock, repr=False)
    created_ns: int = field(init=False)
    created_mono: float = field(init=False)
    never_runs: bool = False  # its input could not be read: FAILED after PENDING, never started
    cancelled_at: float | None = None  # seconds after creation
    output: dict[str, Any] | None = None  # outputInfo, once the predictions are written
    done_rows: int | None = None
    succeeded: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.created_ns = self.clock.now_ns()
        self.created_mono = self.clock.monotonic()

    @property
    def name(self) -> str:
        return f"{self.parent}/batchPredictionJobs/{self.id}"

    @property
    def queue_s(self) -> float:
        return self.pending_s + self.queued_s

    def elapsed(self) -> float:
        return self.clock.monotonic() - self.created_mono

    def state(self) -> str:
        return self.state_at(self.elapsed())

    def state_at(self, t: float) -> str:
        if self.cancelled_at is not None and t >= self.cancelled_at:
            return "CANCELLING" if t < self.cancelled_at + self.cancelling_s else "CANCELLED"
        natural = self._natural_end()
        if natural is not None and t >= natural[0]:
            return natural[1]
        if t < self.pending_s:
            return "PENDING"
        if t < self.queue_s:
            return "QUEUED"
        return "RUNNING"

    def _natural_end(self) -> tuple[float, str] | None:
        """When and how the job ends on its own (`None`: never, a job stuck forever is caught by the limits)."""
        if self.queue_s > QUEUE_EXPIRY_SECONDS:
            return QUEUE_EXPIRY_SECONDS, "EXPIRED"
        if self.running_s > RUNNING_LIMIT_SECONDS:
            return self.queue_s + RUNNING_LIMIT_SECONDS, "EXPIRED"
        return self.queue_s + self.running_s, self.ending.state

    def end_s(self, state: str) -> float:
        if state in ("CANCELLING", "CANCELLED") and self.cancelled_at is not None:
            return self.cancelled_at + (self.cancelling_s if state == "CANCELLED" else 0.0)
        natural = self._natural_end()
        return natural[0] if natural is not None else self.elapsed()

    def rows_done(self, state: str) -> int:
        """How many rows (from the first, in input order) a job in terminal `state` answered."""
        if state in ("SUCCEEDED", "PARTIALLY_SUCCEEDED"):
            return len(self.rows)
        if state == "FAILED":
            return 0
        stopped = self.cancelled_at if state == "CANCELLED" else self.end_s(state)
        ran = (stopped or 0.0) - self.queue_s
        if ran <= 0 or self.running_s <= 0:
            return 0
        return min(len(self.rows), int(len(self.rows) * min(1.0, ran / self.running_s)))

    def has_output(self, state: str) -> bool:
        return state in TERMINAL and self.rows_done(state) > 0


def _ns(seconds: float) -> int:
    return int(seconds * _NS)


def timestamp(ns: int) -> str:
    """`2024-10-16T19:33:59.153782Z`: UTC with microseconds, as Vertex AI job JSON has them."""
    seconds, nanos = divmod(ns, _NS)
    return f"{datetime.fromtimestamp(seconds, tz=timezone.utc):%Y-%m-%dT%H:%M:%S}.{nanos // 1000:06d}Z"


def processed_time(ns: int) -> str:
    """`2025-09-19T21:29:47.352+00:00`: the `processed_time` of a prediction line (milliseconds, +00:00)."""
    seconds, nanos = divmod(ns, _NS)
    return f"{datetime.fromtimestamp(seconds, tz=timezone.utc):%Y-%m-%dT%H:%M:%S}.{nanos // 1_000_000:03d}+00:00"


def job_json(job: VertexJob, state: str) -> dict[str, Any]:
    """The job as `GET .../batchPredictionJobs/{id}` returns it, in `state`."""
    out: dict[str, Any] = {"name": job.name}
    out |= {k: job.body[k] for k in ("displayName", "model", "inputConfig", "outputConfig") if k in job.body}
    if "labels" in job.body:
        out["labels"] = job.body["labels"]
    out["state"] = f"JOB_STATE_{state}"
    error = _error(job, state)
    if error is not None:
        out["error"] = error
    if job.output is not None:
        out["outputInfo"] = job.output
    started = not job.never_runs and state not in ("PENDING", "QUEUED") and _reached_s(job, state) >= job.queue_s
    if started:
        out["completionStats"] = completion_stats(job, state)
    out["createTime"] = timestamp(job.created_ns)
    if started:
        out["startTime"] = timestamp(job.created_ns + _ns(job.queue_s))
    if state in TERMINAL:
        out["endTime"] = timestamp(job.created_ns + _ns(job.end_s(state)))
    out["updateTime"] = timestamp(job.created_ns + _ns(_updated_s(job, state)))
    return out


def _reached_s(job: VertexJob, state: str) -> float:
    """How far into its life the job got: its end for ended (and cancelling) jobs, else now."""
    return job.end_s(state) if state in TERMINAL or state == "CANCELLING" else job.elapsed()


def _updated_s(job: VertexJob, state: str) -> float:
    if state in TERMINAL or state == "CANCELLING":
        return job.end_s(state)
    return {"PENDING": 0.0, "QUEUED": job.pending_s}.get(state, job.queue_s)


def _error(job: VertexJob, state: str) -> dict[str, Any] | None:
    if state == "CANCELLED":
        return {"code": 1, "message": "CANCELED"}
    if state in ("FAILED", "PARTIALLY_SUCCEEDED"):
        return job.ending.error
    return None


def completion_stats(job: VertexJob, state: str) -> dict[str, str]:
    """Counts as int64 strings, zero counts left out (proto JSON); rows not done yet are `incompleteCount`."""
    done = job.done_rows if job.done_rows is not None else 0
    counts = {
        "successfulCount": job.succeeded if job.done_rows is not None else 0,
        "failedCount": job.failed if job.done_rows is not None else 0,
        "incompleteCount": len(job.rows) - done,
    }
    return {name: str(count) for name, count in counts.items() if count}
