"""Shared helpers for the reliability tests: fast polling and retries, frames, and what the emulator saw."""

from __future__ import annotations

from typing import Any

import polars as pl
from google.genai import types

from polars_gemini.emulator import Emulator, responses

RETRY = types.HttpRetryOptions(attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0.0)
FAST: dict[str, Any] = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False, "retry": RETRY}
FILES = {"inline_limit_bytes": 0}  # every job through an uploaded JSONL file


echo = responses.reply(lambda request: "echo: " + request.text)


def frame(n: int = 6) -> pl.DataFrame:
    return pl.DataFrame({"id": list(range(n)), "text": [f"item {i}" for i in range(n)]})


def assert_complete(out: pl.DataFrame, n: int) -> None:
    """Every row once, in order, answered."""
    assert out.get_column("id").to_list() == list(range(n))
    assert out.get_column("response_error").null_count() == n, out.get_column("response_error").to_list()
    assert out.get_column("response").to_list() == [f"echo: item {k}" for k in range(n)]


def created(emu: Emulator) -> int:
    """Jobs the service holds (each one billed): what 'nothing paid twice' is checked against."""
    return len(emu.jobs)
