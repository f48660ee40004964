"""The emulator's clock: real time plus an offset that tests move forward (`Emulator.advance_time`).

Everything that ages reads it: files (their 48-hour lifetime, PROCESSING until ready) and batch jobs
(their pending and running time), so one `advance_time(49 * 3600)` expires every file and finishes
every job without a test sleeping.
"""

from __future__ import annotations

import threading
import time

_NS = 1_000_000_000


class Clock:
    """Wall-clock nanoseconds and monotonic seconds, both shifted by the same offset. Thread-safe.

    >>> clock = Clock()
    >>> before = clock.now_ns()
    >>> clock.advance(3600)
    >>> clock.now_ns() - before >= 3600 * 10**9
    True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset_ns = 0

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"The emulator's clock only moves forward; got {seconds} seconds.")
        with self._lock:
            self._offset_ns += int(seconds * _NS)

    def now_ns(self) -> int:
        return time.time_ns() + self._offset_ns

    def monotonic(self) -> float:
        return time.monotonic() + self._offset_ns / _NS
