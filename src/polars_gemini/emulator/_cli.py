"""`polars-gemini emulator`: serve the emulator in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from polars_gemini.emulator._emulator import Emulator

_MAX_PORT = 65_535


def serve(host: str = "127.0.0.1", port: int = 0, job_seconds: float = 0.0, webhook_secret: str | None = None) -> int:
    """Serves until interrupted and returns the exit status: 0, or 2 if it cannot listen on host:port.

    Prints one line with the URL first, so scripts can start it with `--port 0` and read the port.
    `job_seconds` is how long each batch job runs before it succeeds. A port out of range, in use, or
    a host that does not resolve gets one error line on stderr. `webhook_secret` signs webhook deliveries (default: a
    generated one, shown nowhere).
    """
    try:
        emulator = Emulator(host=host, port=port, running_seconds=job_seconds, webhook_secret=webhook_secret)
    except ValueError as exc:  # a webhook secret that is no whsec_ secret (the message does not quote it)
        print(f"polars-gemini emulator: error: {exc}", file=sys.stderr, flush=True)
        return 2
    problem = _listen(emulator, host, port)
    if problem is not None:
        print(f"polars-gemini emulator: error: {problem}", file=sys.stderr, flush=True)
        return 2
    try:
        print(f"Gemini API emulator listening on {emulator.url} (API key: any)", flush=True)
        _wait_for_signal()
    finally:
        emulator.stop()
    return 0


def _listen(emulator: Emulator, host: str, port: int) -> str | None:
    """Starts `emulator`; the reason it cannot listen, or `None` once it does."""
    if not 0 <= port <= _MAX_PORT:
        return f"port {port} is out of range: use 0 (a free port) to {_MAX_PORT}."
    try:
        emulator.start()
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return f"cannot listen on {host}:{port}: {reason}. Hint: pass --port 0 to pick a free port."
    return None


def _wait_for_signal() -> None:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.2):  # a timed wait lets the signal handler run promptly everywhere
            pass
    finally:
        _restore(previous)


def _restore(previous: dict[signal.Signals, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
