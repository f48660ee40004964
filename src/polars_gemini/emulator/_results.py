"""Running a job's requests through the responder and laying out the results like the real service."""

from __future__ import annotations

import gc
import json
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from polars_gemini.emulator._faults import Faults
from polars_gemini.emulator._jobs import Entry
from polars_gemini.emulator._status import EmulatedError
from polars_gemini.emulator._types import BatchResponder, MediaPart, Outcome, Responder, ResponderRequest

R = TypeVar("R")
T = TypeVar("T")

OnError = Callable[[BaseException], None]
MediaOf = Callable[[str, dict[str, Any]], tuple[MediaPart, ...]]
"""(model, request) -> the request's checked media parts, or raises the request's `EmulatedError`."""
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


_GC_LOCK = threading.Lock()
_gc_pauses = [0, False]  # [threads inside `gc_paused`, whether the GC was enabled when the first one came in]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Bulk work on 100k requests allocates millions of small containers; pausing the cyclic GC,
    which would otherwise rescan them over and over, makes it about three times faster.

    Counted across threads: the first to come in disables the GC, the last to leave restores it. (Each thread saving
    and restoring `gc.isenabled()` on its own could leave it disabled for good when two polls overlap, and a
    long-running emulator would then never collect a reference cycle again.)
    """
    with _GC_LOCK:
        if _gc_pauses[0] == 0:
            _gc_pauses[1] = gc.isenabled()
            gc.disable()
        _gc_pauses[0] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _gc_pauses[0] -= 1
            if _gc_pauses[0] == 0 and _gc_pauses[1]:
                gc.enable()


def answer_all(
    model: str,
    entries: Sequence[Entry],
    responder: Responder,
    faults: Faults,
    on_error: OnError,
    media_of: MediaOf | None = None,
) -> list[Outcome]:
    """One outcome per entry: an injected key failure, the request's media error, or whatever the responder
    answers."""
    outcomes: list[Outcome | None] = [faults.key_error(entry.key) for entry in entries]
    media = {i: _media(media_of, model, entry) for i, entry in enumerate(entries) if outcomes[i] is None}
    outcomes = [part if isinstance(part := media.get(i), EmulatedError) else o for i, o in enumerate(outcomes)]
    todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
    requests = [ResponderRequest(model, entries[i].request, entries[i].key, "batch", _parts(media[i])) for i in todo]
    for i, outcome in zip(todo, _respond(responder, requests, on_error), strict=False):
        outcomes[i] = outcome
    missing = EmulatedError(13, "The responder returned fewer answers than requests.", "INTERNAL")
    return [missing if outcome is None else outcome for outcome in outcomes]


def _media(media_of: MediaOf | None, model: str, entry: Entry) -> tuple[MediaPart, ...] | EmulatedError:
    try:
        return media_of(model, entry.request) if media_of is not None else ()
    except EmulatedError as error:
        return error


def _parts(media: tuple[MediaPart, ...] | EmulatedError) -> tuple[MediaPart, ...]:
    return media if isinstance(media, tuple) else ()


def _respond(responder: Responder, requests: list[ResponderRequest], on_error: OnError) -> list[Outcome]:
    if not isinstance(responder, BatchResponder):
        return [_respond_one(responder, request, on_error) for request in requests]
    try:
        return list(responder.respond_many(requests))
    except Exception as exc:  # a broken responder must not take the server down; tests see `emu.errors`
        on_error(exc)
        return [internal(exc)] * len(requests)


def _respond_one(responder: Responder, request: ResponderRequest, on_error: OnError) -> Outcome:
    return guarded(responder, request, on_error)


def guarded(fn: Callable[[R], T], request: R, on_error: OnError, what: str = "responder") -> T | EmulatedError:
    """`fn(request)` (a user's responder or embedder): its `EmulatedError` is that request's error; any other
    exception is reported through `emu.errors` and becomes a 13 INTERNAL for that request."""
    try:
        return fn(request)
    except EmulatedError as exc:
        return exc
    except Exception as exc:  # as above: reported through `emu.errors`, and as this request's error
        on_error(exc)
        return internal(exc, what)


def internal(exc: Exception, what: str = "responder") -> EmulatedError:
    return EmulatedError(13, f"Emulator {what} raised {exc!r}.", "INTERNAL")


def result_order(count: int, shuffle: bool, seed: str) -> list[int]:
    """Input order, or a shuffle seeded by the job id (reproducible, and never the global RNG)."""
    order = list(range(count))
    if shuffle:
        random.Random(seed).shuffle(order)
    return order


def inline_output(entries: Sequence[Entry], outcomes: Sequence[Outcome], order: list[int]) -> dict[str, Any]:
    items = [_inline_item(entries[i], outcomes[i]) for i in order]
    return {"inlinedResponses": {"inlinedResponses": items}}


def _inline_item(entry: Entry, outcome: Outcome) -> dict[str, Any]:
    item: dict[str, Any] = (
        {"error": outcome.rpc_status()} if isinstance(outcome, EmulatedError) else {"response": outcome}
    )
    if entry.metadata is not None:
        item["metadata"] = entry.metadata
    return item


def encoded_lines(entries: Sequence[Entry], outcomes: Sequence[Outcome]) -> list[str]:
    """Lines of the JSONL results file: `{"response": ..., "key": ...}` or `{"error": ..., "key": ...}` per request."""
    return [_encode(_line(entry, outcome)) for entry, outcome in zip(entries, outcomes, strict=True)]


def _line(entry: Entry, outcome: Outcome) -> dict[str, Any]:
    line: dict[str, Any] = (
        {"error": outcome.rpc_status()} if isinstance(outcome, EmulatedError) else {"response": outcome}
    )
    if entry.key is not None:
        line["key"] = entry.key
    return line
