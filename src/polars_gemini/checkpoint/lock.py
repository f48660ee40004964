"""Exclusive use of a checkpoint directory, between processes and between threads of one process.

* Between processes: an fcntl advisory lock on `<dir>/.lock`, held by the process that uses the directory; the second
  process gets `CheckpointLockedError` naming the holder's pid.
* Inside one process: one owner (a `Store`) at a time. While the owner is busy (submitting, polling, collecting),
  another thread that opens the directory gets `CheckpointLockedError`, so two threads can never both create jobs.
  An idle owner is taken over by a new run (notebooks re-run cells); the old owner then refuses to work on
  (`CheckpointLockedError`, "superseded") instead of creating jobs the new one does not know about.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from polars_gemini.core.errors import CheckpointLockedError


@dataclass
class _Slot:
    fd: int
    owner: object
    busy: int = 0  # operations in progress by the owner
    thread: str = ""  # the thread that started the first of them


_SLOTS: dict[Path, _Slot] = {}  # resolved directory -> this process's hold on it
_GUARD = threading.Lock()


def claim(directory: Path, owner: object) -> None:
    """Make `owner` the user of `directory`, busy at once (its first operation, opening, ends with `end`)."""
    key = directory.resolve()
    with _GUARD:
        slot = _SLOTS.get(key)
        if slot is None:
            _SLOTS[key] = _Slot(_flock(directory, key), owner, 1, threading.current_thread().name)
            return
        if slot.busy and slot.owner is not owner:
            raise CheckpointLockedError(
                f"Checkpoint {directory} is in use by another thread of this process ({slot.thread}), which is "
                "submitting or collecting jobs. Wait for it to finish, or use another checkpoint directory."
            )
        slot.owner, slot.busy, slot.thread = owner, 1, threading.current_thread().name


def _flock(directory: Path, key: Path) -> int:
    import fcntl

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
    return fd


@contextmanager
def operation(directory: Path, owner: object) -> Iterator[None]:
    """Mark `owner` busy on `directory` for the duration; refuse if a newer run took the directory over."""
    begin(directory, owner)
    try:
        yield
    finally:
        end(directory, owner)


def begin(directory: Path, owner: object) -> None:
    key = directory.resolve()
    with _GUARD:
        slot = _SLOTS.get(key)
        if slot is None or slot.owner is not owner:
            raise CheckpointLockedError(
                f"This run no longer owns checkpoint {directory}: a newer run on it was started in this process "
                "(or this run was closed). Use the newer run, or polars_gemini.resume(dir) to pick the work up."
            )
        if not slot.busy:
            slot.thread = threading.current_thread().name
        slot.busy += 1


def end(directory: Path, owner: object) -> None:
    with _GUARD:
        slot = _SLOTS.get(directory.resolve())
        if slot is not None and slot.owner is owner and slot.busy:
            slot.busy -= 1


def release(directory: Path, owner: object) -> None:
    """Give the directory up (the file lock too), if `owner` still holds it."""
    key = directory.resolve()
    with _GUARD:
        slot = _SLOTS.get(key)
        if slot is None or slot.owner is not owner:
            return
        del _SLOTS[key]
    os.close(slot.fd)  # closing the descriptor drops the flock
