"""An exclusive, process-level lock on a checkpoint directory (fcntl advisory lock on `<dir>/.lock`).

Inside one process a new run on the same directory takes the lock over from the previous one (notebooks re-run
cells); across processes the second one gets `CheckpointLockedError` naming the holder.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from polars_gemini._errors import CheckpointLockedError

_HELD: dict[Path, int] = {}  # resolved directory -> file descriptor holding its lock in this process
_GUARD = threading.Lock()


def acquire(directory: Path) -> None:
    """Lock `directory` for this process (idempotent within the process)."""
    import fcntl

    key = directory.resolve()
    with _GUARD:
        if key in _HELD:
            return
        fd = os.open(key / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CheckpointLockedError(
                f"Checkpoint {directory} is in use by another process (pid {holder}). Wait for it to finish, "
                "stop it, or use another checkpoint directory."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _HELD[key] = fd


def release(directory: Path) -> None:
    key = directory.resolve()
    with _GUARD:
        fd = _HELD.pop(key, None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock
