"""The answered log: every generation request the emulator answered (and the real service would bill), in order.

Synchronous `generateContent` calls are logged when they are answered (a call shed with 503, refused, or failed by its
responder is not); a batch job's requests when its results are computed, which happens the first time the job is seen
SUCCEEDED (`emu.answered()` looks at every job first). Requests of a job that expired, failed or was cancelled are
never answered, nor are a job's failed requests. Embedding calls and jobs are not logged.

A batch job's records are built on reading, so a 100k-request job costs one small entry until a test asks.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from polars_gemini.emulator._generate import prompt_text
from polars_gemini.emulator._jobs import Entry
from polars_gemini.emulator._types import AnsweredRequest, Outcome


@dataclass(frozen=True)
class _JobAnswers:
    job: str
    model: str
    entries: Sequence[Entry]
    answered: Sequence[int]  # indexes of the entries that got a response

    def records(self) -> list[AnsweredRequest]:
        entries = [self.entries[i] for i in self.answered]
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

    def add_job(self, job: str, model: str, entries: Sequence[Entry], outcomes: Sequence[Outcome]) -> None:
        answered = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, dict)]
        with self._lock:
            self._items.append(_JobAnswers(job, model, entries, answered))

    def records(self) -> list[AnsweredRequest]:
        with self._lock:
            items = list(self._items)
        return [record for item in items for record in (item.records() if isinstance(item, _JobAnswers) else [item])]
