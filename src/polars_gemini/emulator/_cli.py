"""`polars-gemini emulator`: serve the emulator in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import threading
from typing import Any

from polars_gemini.emulator._emulator import Emulator


def serve(host: str = "127.0.0.1", port: int = 0, job_seconds: float = 0.0) -> int:
    """Serves until interrupted and returns the exit status (0).

    Prints one line with the URL first, so scripts can start it with `--port 0` and read the port.
    `job_seconds` is how long each batch job runs before it succeeds.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Emulator(host=host, port=port, running_seconds=job_seconds) as emulator:
            print(f"Gemini API emulator listening on {emulator.url} (API key: any)", flush=True)
            while not stop.wait(0.2):  # a timed wait lets the signal handler run promptly everywhere
                pass
    finally:
        _restore(previous)
    return 0


def _restore(previous: dict[signal.Signals, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
