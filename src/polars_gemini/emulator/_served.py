"""`Served`: the base of every emulator that serves from the background (the Gemini API, Cloud Storage, S3,
BigQuery): `start()` and `stop()` of its own, and `with X() as x:` starting and stopping it."""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar

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


class ServedInThread(Served):
    """A third-party server object (`_server`, with its own `stop()`) serving from a thread of this process: the
    storage emulators. `_running()` is that object, or a RuntimeError saying how to start it."""

    _NAME = "The server"

    def __init__(self) -> None:
        self._server: Any = None

    def stop(self) -> None:
        """Stops serving; every bucket and object is forgotten."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _running(self) -> Any:
        if self._server is None:
            raise RuntimeError(f"{self._NAME} is not running: call start(), or use it as a context.")
        return self._server
