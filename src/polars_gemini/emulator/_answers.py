"""The answered log: every generation request the emulator answered (and the real service would bill), in order.

Synchronous `generateContent` calls are logged when they are answered (a call shed with 503, refused, or failed by its
responder is not); a batch job's requests when its results are computed, which happens the first time the job is seen
SUCCEEDED (`emu.answered()` looks at every job first). Requests of a job that expired, failed or was cancelled are
never answered, nor are a job's failed requests. Embedding calls and jobs are not logged.

A batch job's records are built on reading, so a 100k-request job costs one small entry until a test asks: its entries
(a file job's are `FileEntries`, parsed again from the input file's bytes) and the indexes of its failed requests.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from polars_gemini.emulator._generate import prompt_text
from polars_gemini.emulator._jobs import Entries
from polars_gemini.emulator._types import AnsweredRequest, Outcome


@dataclass(frozen=True)
class _JobAnswers:
    job: str
    model: str
    entries: Entries
    failed: frozenset[int]  # indexes of the entries that got an error, not a response (usually none)

    def records(self) -> list[AnsweredRequest]:
        entries = (entry for i, entry in enumerate(self.entries) if i not in self.failed)
        return [AnsweredRequest("batch", "batch", self.model, prompt_text(e.request), e.key, self.job) for e in entries]


class AnswerLog:
    """Thread-safe, append-only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[AnsweredRequest | _JobAnswers] = []

    def add_generate(self, model: str, tier: str, request: dict[str, object]) -> None:
        record = AnsweredRequest("generate", tier, model, prompt_text(request))
        with self._lock:
            self._items.append(record)

    def add_job(self, job: str, model: str, entries: Entries, outcomes: Sequence[Outcome]) -> None:
        self.add_job_failed(
            job, model, entries, [i for i, outcome in enumerate(outcomes) if not isinstance(outcome, dict)]
        )

    def add_job_failed(self, job: str, model: str, entries: Entries, failed: Collection[int]) -> None:
        """A job whose requests were answered but those at the indexes `failed`."""
        with self._lock:
            self._items.append(_JobAnswers(job, model, entries, frozenset(failed)))

    def records(self) -> list[AnsweredRequest]:
        with self._lock:
            items = list(self._items)
        return [record for item in items for record in (item.records() if isinstance(item, _JobAnswers) else [item])]
