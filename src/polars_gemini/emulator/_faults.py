"""Failure injection: HTTP errors and delayed replies on the Nth call of an endpoint, per-key request
errors, job endings, slow jobs, and corrupted results."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from polars_gemini.emulator._corrupt import Corruption
from polars_gemini.emulator._jobs import Ending
from polars_gemini.emulator._status import DEFAULT_MESSAGES, EmulatedError

FAULTS = ("429", "500", "503", "timeout")
"""The transport faults `Emulator.inject` knows: three HTTP errors and a reply held back past the client's timeout."""
TIMEOUT_SECONDS = 1.0
"""How long `inject(..., "timeout")` holds a reply back by default: pair it with a client timeout of ~300 ms."""

KeyFailure = EmulatedError | tuple[int, str] | tuple[int, str, str]
"""What `fail_keys` accepts per key: an `EmulatedError` or the arguments to build one."""


@dataclass(frozen=True)
class Timing:
    """A job's pending and running seconds (`slow_next_jobs`), instead of the emulator's settings."""

    pending_seconds: float
    running_seconds: float


@dataclass(frozen=True)
class _CallRange:
    """Calls `first_call` to `last_call` (1-based, inclusive) of `endpoint`."""

    endpoint: str
    first_call: int
    last_call: int

    def covers(self, endpoint: str, call_no: int) -> bool:
        return self.endpoint == endpoint and self.first_call <= call_no <= self.last_call


@dataclass(frozen=True)
class _HttpFault(_CallRange):
    error: EmulatedError


@dataclass(frozen=True)
class _Delay(_CallRange):
    seconds: float


class Faults:
    """Thread-safe registry of configured failures, consulted by the request handlers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: list[_HttpFault] = []
        self._delays: list[_Delay] = []
        self._keys: dict[str, EmulatedError] = {}
        self._endings: deque[Ending] = deque()
        self._timings: deque[Timing] = deque()
        self._corruptions: list[Corruption] = []

    def add_http(self, endpoint: str, status: int, first_call: int, times: int, message: str | None) -> None:
        error = EmulatedError(status, message or DEFAULT_MESSAGES.get(status, "Injected failure."))
        with self._lock:
            self._http.append(_HttpFault(endpoint, first_call, first_call + times - 1, error))

    def http_error(self, endpoint: str, call_no: int) -> EmulatedError | None:
        with self._lock:
            faults = list(self._http)
        return next((f.error for f in faults if f.covers(endpoint, call_no)), None)

    def add_delay(self, endpoint: str, seconds: float, first_call: int, times: int) -> None:
        with self._lock:
            self._delays.append(_Delay(endpoint, first_call, first_call + times - 1, seconds))

    def reply_delay(self, endpoint: str, call_no: int) -> float:
        """Seconds to hold the reply of this call back (several delays on one call add up)."""
        with self._lock:
            delays = list(self._delays)
        return sum(d.seconds for d in delays if d.covers(endpoint, call_no))

    def add_keys(self, failures: Mapping[str, KeyFailure]) -> None:
        errors = {key: f if isinstance(f, EmulatedError) else EmulatedError(*f) for key, f in failures.items()}
        with self._lock:
            self._keys.update(errors)

    def key_error(self, key: str | None) -> EmulatedError | None:
        if key is None:
            return None
        with self._lock:
            return self._keys.get(key)

    def push_endings(self, ending: Ending, count: int) -> None:
        with self._lock:
            self._endings.extend([ending] * count)

    def pop_ending(self) -> Ending | None:
        with self._lock:
            return self._endings.popleft() if self._endings else None

    def unpop_ending(self, ending: Ending) -> None:
        """Puts back an ending taken for a job that was then not created."""
        with self._lock:
            self._endings.appendleft(ending)

    def push_timings(self, timing: Timing, count: int) -> None:
        with self._lock:
            self._timings.extend([timing] * count)

    def pop_timing(self) -> Timing | None:
        with self._lock:
            return self._timings.popleft() if self._timings else None

    def unpop_timing(self, timing: Timing) -> None:
        """Puts back a timing taken for a job that was then not created."""
        with self._lock:
            self._timings.appendleft(timing)

    def push_corruptions(self, corruption: Corruption, jobs: int) -> None:
        with self._lock:
            self._corruptions.extend([corruption] * jobs)

    def pop_corruption(self, *, inline: bool) -> Corruption | None:
        """The oldest queued corruption this job's output can take (inline jobs: wrong_shape and the reorderings)."""
        with self._lock:
            usable = (i for i, c in enumerate(self._corruptions) if not inline or c.applies_inline)
            index = next(usable, None)
            return None if index is None else self._corruptions.pop(index)
