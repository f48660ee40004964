"""Resource ids and timestamps in the shapes the real service uses."""

from __future__ import annotations

import secrets
import string
import time
from datetime import datetime, timezone

_ALPHABET = string.ascii_lowercase + string.digits


def new_id(length: int) -> str:
    """A random lowercase alphanumeric id: 36 characters for batches, 12 for files, as Google's."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now_ns() -> int:
    return time.time_ns()


def rfc3339(ns: int) -> str:
    """`2025-12-03T17:23:06.004734302Z`: UTC with nanoseconds, as in real job JSON."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"
