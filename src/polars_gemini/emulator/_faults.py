"""Failure injection: HTTP errors on the Nth call of an endpoint, per-key request errors, job endings."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from polars_gemini.emulator._jobs import Ending
from polars_gemini.emulator._status import DEFAULT_MESSAGES, EmulatedError

KeyFailure = EmulatedError | tuple[int, str] | tuple[int, str, str]
"""What `fail_keys` accepts per key: an `EmulatedError` or the arguments to build one."""


@dataclass(frozen=True)
class _HttpFault:
    endpoint: str
    first_call: int
    last_call: int
    error: EmulatedError


class Faults:
    """Thread-safe registry of configured failures, consulted by the request handlers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: list[_HttpFault] = []
        self._keys: dict[str, EmulatedError] = {}
        self._endings: deque[Ending] = deque()

    def add_http(self, endpoint: str, status: int, first_call: int, times: int, message: str | None) -> None:
        error = EmulatedError(status, message or DEFAULT_MESSAGES.get(status, "Injected failure."))
        with self._lock:
            self._http.append(_HttpFault(endpoint, first_call, first_call + times - 1, error))

    def http_error(self, endpoint: str, call_no: int) -> EmulatedError | None:
        with self._lock:
            faults = list(self._http)
        hits = (f for f in faults if f.endpoint == endpoint and f.first_call <= call_no <= f.last_call)
        return next((f.error for f in hits), None)

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
