"""`Served`: the base of every emulator that serves from the background (the Gemini API, Cloud Storage, S3,
BigQuery): `start()` and `stop()` of its own, and `with X() as x:` starting and stopping it."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_S = TypeVar("_S", bound="Served")


class Served:
    """Starts on `start()` (returning itself), stops on `stop()`; a context manager doing both."""

    def start(self: _S) -> _S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
