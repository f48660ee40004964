"""A batch job's data, its lifecycle clock, and its JSON (a long-running `Operation`).

State is never stored: it is computed from the time elapsed since creation on every read, so a job
with `pending_seconds=1` is PENDING for one second whoever asks. Key order and value types follow
the real samples (`batchStats` counts as strings with zeros omitted; nanosecond timestamps).

A job whose pending plus running time exceeds `JOB_EXPIRY_SECONDS` (48 hours: "a job pending or running for more
than 48 h becomes EXPIRED with no results", Gemini Batch API docs, Limits) is EXPIRED from its 48-hour mark on, with
`endTime` and `updateTime` at that mark, whatever ending it was meant to have.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from polars_gemini.emulator._clock import Clock
from polars_gemini.emulator._ids import rfc3339

_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."
BATCH_TYPES = {"generate": f"{_TYPES}GenerateContentBatch", "embed": f"{_TYPES}EmbedContentBatch"}
"""The `@type` of a job's `metadata` by kind: `batchGenerateContent` jobs (real samples) and `asyncBatchEmbedContent`
jobs (same package; the message names are those of Google's discovery document)."""
OUTPUT_TYPES = {"generate": f"{_TYPES}GenerateContentBatchOutput", "embed": f"{_TYPES}EmbedContentBatchOutput"}
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})
ACTIVE = frozenset({"PENDING", "RUNNING"})
JOB_EXPIRY_SECONDS = 48 * 3600.0
"""How long a job may stay PENDING or RUNNING before the service expires it."""
_NS = 1_000_000_000


@dataclass(frozen=True)
class Entry:
    """One request of a job: the camelCase request, its key, and (inline jobs) the metadata to echo."""

    request: dict[str, Any]
    key: str | None
    metadata: Any = None


class Entries(Protocol):
    """A job's requests: a list (inline jobs), or `_validate.FileEntries`, parsed again from the input file's bytes
    chunk by chunk (file jobs)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Entry]: ...


CHUNK = 10_000
"""Requests answered at a time: about 30 MB of parsed requests, whatever the job's size."""


def chunked(entries: Iterable[Entry], size: int | None = None) -> Iterator[list[Entry]]:
    """`entries` as lists of at most `size` (default: `CHUNK`), in order."""
    size = size or CHUNK
    iterator = iter(entries)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


@dataclass(frozen=True)
class Ending:
    """How a job ends after its running time: SUCCEEDED, FAILED (with `error`), CANCELLED or EXPIRED."""

    state: str = "SUCCEEDED"
    error: dict[str, Any] | None = None


@dataclass
class Job:
    """A batch job: `kind` "generate" (`batchGenerateContent`) or "embed" (`asyncBatchEmbedContent`); both live in
    the same `batches/` namespace with the same states, clock, quotas and endings."""

    id: str
    model: str
    display_name: str | None
    input_file: str | None
    entries: Entries
    pending_s: float
    running_s: float
    ending: Ending = Ending()
    kind: str = "generate"
    clock: Clock = field(default_factory=Clock, repr=False)
    created_ns: int = field(init=False)  # both read from `clock` on creation
    created_mono: float = field(init=False)
    cancelled_ns: int | None = None
    output: dict[str, Any] | None = None
    succeeded: int = 0
    failed: int = 0
    hidden_polls: int = 0
    input_tokens: int | None = None  # counted when a quota needs it (`enqueued_token_limit`)
    webhook_config: dict[str, Any] | None = None  # `batch.webhookConfig` as given (`_webhooks.parse_config`), echoed
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.created_ns = self.clock.now_ns()
        self.created_mono = self.clock.monotonic()

    @property
    def name(self) -> str:
        return f"batches/{self.id}"

    def state(self) -> str:
        if self.cancelled_ns is not None:
            return "CANCELLED"
        elapsed = self.clock.monotonic() - self.created_mono
        if self.expires() and elapsed >= JOB_EXPIRY_SECONDS:
            return "EXPIRED"
        if elapsed < self.pending_s:
            return "PENDING"
        if elapsed < self.pending_s + self.running_s:
            return "RUNNING"
        return self.ending.state

    def expires(self) -> bool:
        """Whether the job outlives the service's 48 hours (`pending_s` may be `math.inf`: stuck for good)."""
        return self.pending_s + self.running_s > JOB_EXPIRY_SECONDS

    def end_ns(self) -> int:
        if self.cancelled_ns is not None:
            return self.cancelled_ns
        return self.created_ns + _ns(min(self.pending_s + self.running_s, JOB_EXPIRY_SECONDS))

    def update_ns(self, state: str) -> int:
        if state in TERMINAL:
            return self.end_ns()
        return self.created_ns + (_ns(self.pending_s) if state == "RUNNING" else 0)


def _ns(seconds: float) -> int:
    return int(seconds * _NS)


def operation(job: Job, state: str, *, show_output: bool = True) -> dict[str, Any]:
    """The job as `GET batches/{id}` returns it, in `state`."""
    output = job.output if state == "SUCCEEDED" and show_output else None
    op: dict[str, Any] = {"name": job.name, "metadata": _metadata(job, state, output)}
    if state in TERMINAL:
        op["done"] = True
    if output is not None:
        op["response"] = {"@type": OUTPUT_TYPES[job.kind], **output}
    if state == "FAILED" and job.ending.error:
        op["error"] = job.ending.error
    return op


def _metadata(job: Job, state: str, output: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"@type": BATCH_TYPES[job.kind], "model": f"models/{job.model}"}
    if job.display_name is not None:
        meta["displayName"] = job.display_name
    if job.input_file is not None:
        meta["inputConfig"] = {"fileName": job.input_file}
    if job.webhook_config is not None:
        meta["webhookConfig"] = job.webhook_config
    if output is not None:
        meta["output"] = output
    meta["createTime"] = rfc3339(job.created_ns)
    if state in TERMINAL:
        meta["endTime"] = rfc3339(job.end_ns())
    meta["updateTime"] = rfc3339(job.update_ns(state))
    meta["batchStats"] = batch_stats(job, state)
    meta["state"] = f"BATCH_STATE_{state}"
    meta["name"] = job.name
    return meta


def batch_stats(job: Job, state: str) -> dict[str, str]:
    """Counts as strings, zero counts left out, as the real service does."""
    total = len(job.entries)
    done = state == "SUCCEEDED"
    counts = {
        "requestCount": total,
        "successfulRequestCount": job.succeeded if done else 0,
        "failedRequestCount": job.failed if done else 0,
        "pendingRequestCount": 0 if done else total,
    }
    return {name: str(count) for name, count in counts.items() if count}
