"""Flawed answers: a share of a responder's answers made off-schema, invalid JSON or truncated (`responses.flawed`).

What a model answers now and then, even with structured output, and what a result decoder has to turn into one row's
error without losing the others:

- `off_schema`: valid JSON that breaks the request's response schema: one value of the wrong kind (a word where a
  number, a boolean, an enum member or a date belongs), else a required property left out, else the answer wrapped
  in a list.
- `invalid_json`: the answer in a Markdown code fence (```json ... ```), as models write when nothing constrains
  them: not JSON.
- `truncated`: the answer cut in the middle, `finishReason` MAX_TOKENS, as when the output token limit is reached.

A plain-text answer (no JSON object) can only be truncated. Attempt n of a request (its model, texts and media: the
default responder's seed) is flawed when a hash of (seed, request, n) falls under the rate, and the hash also picks the
kind and the value broken: runs repeat, and a request sent again gets a fresh draw, as resampling a real model does.
Usage metadata follows the changed answer (`candidatesTokenCount`, `totalTokenCount`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import threading
from collections.abc import Sequence
from typing import Any

from polars_gemini.emulator import _generate as g
from polars_gemini.emulator._status import EmulatedError
from polars_gemini.emulator._types import BatchResponder, ManyAtOnce, Outcome, Responder, ResponderRequest

FLAWS = ("off_schema", "invalid_json", "truncated")
"""The kinds of flawed answer `responses.flawed` makes."""
_NOT_A_NUMBER = {"integer": "n/a", "number": "n/a", "boolean": "maybe"}


class Flawed(ManyAtOnce):
    """A responder whose answers are those of `answer`, with about `rate` of them flawed (see the module docstring).

    Thread-safe; counts attempts per request, so one instance serves one emulator.
    """

    def __init__(self, answer: Responder, rate: float, kinds: Sequence[str], seed: int) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate is a share between 0 and 1, got {rate!r}.")
        unknown = [kind for kind in kinds if kind not in FLAWS]
        if unknown or not kinds or isinstance(kinds, str):
            raise ValueError(f"kinds must be some of {', '.join(FLAWS)}; got {kinds!r}.")
        self._answer, self._rate, self._kinds, self._seed = answer, float(rate), tuple(kinds), seed
        self._lock = threading.Lock()
        self._attempts: dict[int, int] = {}

    def respond_many(self, requests: Sequence[ResponderRequest]) -> list[Outcome]:
        outcomes = _answers(self._answer, requests)
        flawed = [self._flaw(request, outcome) for request, outcome in zip(requests, outcomes, strict=True)]
        counts = g.token_counts(text for _, text in filter(None, flawed))
        return [_with_answer(outcome, *change, counts) if change is not None and isinstance(outcome, dict) else outcome
                for outcome, change in zip(outcomes, flawed, strict=True)]  # fmt: skip

    def _flaw(self, request: ResponderRequest, outcome: Outcome) -> tuple[str, str] | None:
        """(finish reason, answer text) of this attempt's flawed answer, or None to keep `outcome` as it is."""
        text = _answer_text(outcome) if isinstance(outcome, dict) else None
        if text is None:
            return None
        draw = self._draw(request)
        if draw is None:
            return None
        value = _json_value(text, request)
        kinds = self._kinds if value is not None else tuple(k for k in self._kinds if k == "truncated")
        if not kinds:
            return None
        rng = random.Random(draw)
        kind = rng.choice(kinds)
        if kind == "truncated":
            return "MAX_TOKENS", text[: max(1, len(text) // 2)]
        if kind == "invalid_json":
            return "STOP", f"```json\n{text}\n```"
        return "STOP", g.compact_json(off_schema(value, g.schema_of(request.request) or {}, rng))

    def _draw(self, request: ResponderRequest) -> int | None:
        """A seed for this attempt's flaw, or None when this attempt is answered as it is."""
        identity = g.RequestTexts.of(request.request).seed(request.model, [part.digest for part in request.media])
        with self._lock:
            attempt = self._attempts.get(identity, 0)
            self._attempts[identity] = attempt + 1
        digest = hashlib.blake2b(f"{self._seed}:{identity}:{attempt}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "big")
        return draw if draw / 2**64 < self._rate else None


def _answers(answer: Responder, requests: Sequence[ResponderRequest]) -> list[Outcome]:
    if isinstance(answer, BatchResponder):
        return list(answer.respond_many(requests))
    outcomes: list[Outcome] = []
    for request in requests:
        try:
            outcomes.append(answer(request))
        except EmulatedError as error:
            outcomes.append(error)
    return outcomes


def _answer_part(response: dict[str, Any]) -> dict[str, Any] | None:
    """The last non-thought text part of the first candidate: the answer."""
    candidates = response.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        return None
    parts = (candidates[0].get("content") or {}).get("parts") or []
    texts = [p for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")]
    return texts[-1] if texts else None


def _answer_text(response: dict[str, Any]) -> str | None:
    part = _answer_part(response)
    return part["text"] if part is not None and part["text"] else None


def _json_value(text: str, request: ResponderRequest) -> Any:
    """The answer's JSON value when the request asked for JSON and got an object or a list, else None."""
    if g.generation_config(request.request).get("responseMimeType") != "application/json":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


def _with_answer(response: dict[str, Any], reason: str, text: str, counts: dict[str, int]) -> dict[str, Any]:
    out = copy.deepcopy(response)
    part = _answer_part(out)
    assert part is not None  # `_flaw` found it in the same response
    part["text"] = text
    out["candidates"][0]["finishReason"] = reason
    usage = out.get("usageMetadata")
    if isinstance(usage, dict):
        before = int(usage.get("candidatesTokenCount", 0))
        usage["candidatesTokenCount"] = counts[text]
        usage["totalTokenCount"] = int(usage.get("totalTokenCount", 0)) - before + counts[text]
    return out


def off_schema(value: Any, schema: dict[str, Any], rng: random.Random) -> Any:
    """`value` (conforming to `schema`) made to break it: one leaf of the wrong kind, else one required property
    left out, else the value wrapped in a list.

    >>> schema = {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}, "required": ["n"]}
    >>> off_schema({"n": 3}, schema, random.Random(0))
    {'n': 'n/a'}
    """
    value = copy.deepcopy(value)
    leaves = list(_leaves(value, schema, schema, 0))
    if leaves:
        holder, at, bad = rng.choice(leaves)
        holder[at] = bad
        return value
    required = [name for name in (schema.get("required") or ()) if isinstance(value, dict) and name in value]
    if required:
        del value[rng.choice(required)]
        return value
    return [value]


def _leaves(value: Any, schema: dict[str, Any], root: dict[str, Any], depth: int) -> Any:
    """(container, key or index, a wrong value) for each leaf of `value` whose schema a word breaks."""
    schema = _resolve(schema, root)
    if depth > 8:
        return
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name, item in value.items():
            sub = _resolve(properties.get(name) or {}, root)
            bad = _wrong(sub)
            if bad is not None and item is not None:
                yield value, name, bad
            yield from _leaves(item, sub, root, depth + 1)
    elif isinstance(value, list):
        items = schema.get("items") or {}
        sub = _resolve(items, root)
        for i, item in enumerate(value):
            bad = _wrong(sub)
            if bad is not None and item is not None:
                yield value, i, bad
            yield from _leaves(item, sub, root, depth + 1)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else {}


def _wrong(schema: dict[str, Any]) -> str | None:
    """A string this leaf's schema refuses, or None when it is no such leaf (an object, a list, free text)."""
    if schema.get("anyOf") or schema.get("oneOf"):
        return None
    if schema.get("enum"):
        return "unknown" if "unknown" not in schema["enum"] else "not one of them"
    declared = schema.get("type")
    kinds = {str(k).lower() for k in (declared if isinstance(declared, list) else [declared])} - {"null"}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    if kind in _NOT_A_NUMBER:
        return _NOT_A_NUMBER[kind]
    if kind == "string" and schema.get("format") in ("date", "date-time"):
        return "next Tuesday"
    return None
