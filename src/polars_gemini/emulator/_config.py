"""The emulator's settings: one mutable object, read by the handlers on every request.

Tests may change a setting while the server runs (`emu.settings.latency = 0.5`); the next request
sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from polars_gemini.core.models import MODELS, ModelInfo
from polars_gemini.emulator._responder import default_responder
from polars_gemini.emulator._types import Responder

INLINE_LIMIT_BYTES = 20 * 1024 * 1024
"""Inline batch requests: the whole create request must stay under 20 MB (Gemini Batch API docs)."""
FILE_LIMIT_BYTES = 2 * 1024 * 1024 * 1024
"""Files API: at most 2 GB per file."""

JobOutcome = Callable[[dict[str, Any]], "str | None"]
"""Given a new job's JSON, the state it should end in (`None`: SUCCEEDED)."""


@dataclass
class Settings:
    responder: Responder = default_responder
    pending_seconds: float = 0.0
    running_seconds: float = 0.0
    latency: float = 0.0
    shuffle_results: bool = False
    results_file_delay_polls: int = 0
    api_key: str | None = None
    inline_limit_bytes: int = INLINE_LIMIT_BYTES
    file_limit_bytes: int = FILE_LIMIT_BYTES
    job_outcome: JobOutcome | None = None
    max_active_jobs: int | None = None
    enqueued_token_limit: int | None = None
    video_processing_seconds: float = 0.0
    models: dict[str, ModelInfo] = field(default_factory=lambda: dict(MODELS))

    def add_models(self, names: Iterable[str]) -> None:
        """Makes extra model names known to the routes (the default responder treats them as non-thinking)."""
        for name in names:
            bare = name.removeprefix("models/")
            self.models.setdefault(bare, ModelInfo(bare, False, 0, 0))
