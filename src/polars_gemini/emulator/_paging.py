"""List paging with opaque tokens, as `pageSize` / `pageToken` / `nextPageToken` work on Google's APIs."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, TypeVar

from polars_gemini.emulator._status import invalid_argument

T = TypeVar("T")


def page(items: Sequence[T], page_size: Any, token: Any, *, default: int, maximum: int) -> tuple[list[T], str | None]:
    """One page of `items` and the token of the next page (`None` on the last page)."""
    size = _page_size(page_size, default, maximum)
    start = _decode(token) if token else 0
    end = start + size
    return list(items[start:end]), (_encode(end) if end < len(items) else None)


def _page_size(value: Any, default: int, maximum: int) -> int:
    try:
        size = int(value) if value not in (None, "") else default
    except ValueError:
        raise invalid_argument(f"Invalid value for pageSize: {value!r}.") from None
    return min(size, maximum) if size > 0 else default


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        return int(text.removeprefix("offset:"))
    except ValueError:
        raise invalid_argument(f"Invalid page token {token!r}.") from None
