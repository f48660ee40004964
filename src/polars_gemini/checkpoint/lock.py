"""Exclusive use of a checkpoint, between processes (and machines) and between threads of one process.

* Between processes: a local directory has an fcntl advisory lock on `<dir>/.lock`, held by the process that uses
  it; a checkpoint in object storage has a lease (`location.Lease`), renewed while its run lives and lost once it
  expires. The second process gets `CheckpointLockedError` naming the holder.
* Inside one process: one owner (a `Store`) at a time. While the owner is busy (submitting, polling, collecting),
  another thread that opens the checkpoint gets `CheckpointLockedError`, so two threads can never both create jobs.
  An idle owner is taken over by a new run (notebooks re-run cells); the old owner then refuses to work on
  (`CheckpointLockedError`, "superseded") instead of creating jobs the new one does not know about.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from polars_gemini.checkpoint.location import Hold, Location
from polars_gemini.core.errors import CheckpointLockedError


@dataclass
class _Slot:
    hold: Hold
    owner: object
    busy: int = 0  # operations in progress by the owner
    thread: str = ""  # the thread that started the first of them


_SLOTS: dict[str, _Slot] = {}  # location key (resolved directory, or URL) -> this process's hold on it
_GUARD = threading.Lock()


def claim(location: Location, owner: object) -> None:
    """Make `owner` the user of `location`, busy at once (its first operation, opening, ends with `end`)."""
    key = location.key
    with _GUARD:
        slot = _SLOTS.get(key)
        if slot is None:
            _SLOTS[key] = _Slot(location.acquire(), owner, 1, threading.current_thread().name)
            return
        if slot.busy and slot.owner is not owner:
            raise CheckpointLockedError(
                f"Checkpoint {location} is in use by another thread of this process ({slot.thread}), which is "
                "submitting or collecting jobs. Wait for it to finish, or use another checkpoint."
            )
        slot.owner, slot.busy, slot.thread = owner, 1, threading.current_thread().name
        location.adopt(slot.hold)


@contextmanager
def operation(location: Location, owner: object) -> Iterator[None]:
    """Mark `owner` busy on `location` for the duration; refuse if a newer run took it over."""
    begin(location, owner)
    try:
        yield
    finally:
        end(location, owner)


def begin(location: Location, owner: object) -> None:
    with _GUARD:
        slot = _SLOTS.get(location.key)
        if slot is None or slot.owner is not owner:
            raise CheckpointLockedError(
                f"This run no longer owns checkpoint {location}: a newer run on it was started in this process "
                "(or this run was closed). Use the newer run, or polars_gemini.resume(dir) to pick the work up."
            )
        if not slot.busy:
            slot.thread = threading.current_thread().name
        slot.busy += 1
    slot.hold.check()


def end(location: Location, owner: object) -> None:
    with _GUARD:
        slot = _SLOTS.get(location.key)
        if slot is not None and slot.owner is owner and slot.busy:
            slot.busy -= 1


def check(location: Location, owner: object, margin: float) -> None:
    """Refuse (CheckpointLockedError) unless `owner` holds `location` with at least `margin` seconds of its lease
    left (renewing it first if needed): asked before each job creation, the one call that is never repeated."""
    with _GUARD:
        slot = _SLOTS.get(location.key)
    if slot is None or slot.owner is not owner:
        raise CheckpointLockedError(f"This run no longer owns checkpoint {location}.")
    slot.hold.check(margin)


def release(location: Location, owner: object) -> None:
    """Give the checkpoint up (the file lock or the lease too), if `owner` still holds it."""
    with _GUARD:
        slot = _SLOTS.get(location.key)
        if slot is None or slot.owner is not owner:
            return
        del _SLOTS[location.key]
    slot.hold.release()
