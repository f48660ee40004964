"""Corrupted batch results, for testing result decoders: `emu.corrupt_results(kind, lines=, jobs=)`.

What each kind does to the first `lines` results of a job (in the order they are served):

- `truncated`: a results-file line cut in the middle (invalid JSON; the `key`, written last, is lost).
- `garbage`: a results-file line replaced by text that is not JSON at all.
- `wrong_shape`: valid JSON, wrong structure. Results-file lines keep their `key` and get, in turn,
  `"response": {"candidates": "oops"}`, a `response` that is a list, `parts` that is an object, and an
  `error` that is a string. Inline responses (`dest.inlined_responses`) keep their `metadata` and get, in
  turn, an empty `response` (no candidates), a candidate with no content, and neither `response` nor
  `error`: shapes the SDK still parses (anything less regular makes `batches.get` itself fail).
- `blank`: an empty line after each of those results-file lines (blank lines mid-file; nothing lost).
- `dropped`: those results are missing (results files and inline responses alike; python-genai #1886 reports
  results that never came back).
- `duplicated`: each of those results appears twice in a row (both kinds of output).
- `shuffled`: all results in a seeded order different from the input's (both kinds; `lines` is not used; python-genai
  #1909, googleapis/js-genai #1207 report out-of-order results).

`truncated`, `garbage` and `blank` only apply to results files: they wait for the next job with one. Embedding jobs
get embedding-shaped wrong shapes: lines `{"response": {"embedding": "oops"}}`, a list `response`, `values` that is
a string, an `error` that is a string; inline responses an empty `response`, one with only `tokenCount`, one whose
`embedding` has no `values`, and neither `response` nor `error`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, TypeVar

KINDS = ("truncated", "garbage", "wrong_shape", "blank", "dropped", "duplicated", "shuffled")
_REORDERING = frozenset({"dropped", "duplicated", "shuffled"})
T = TypeVar("T")
GARBAGE = b"#!<garbage> this results line is not JSON at all"
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class Corruption:
    kind: str
    lines: int

    @property
    def applies_inline(self) -> bool:
        return self.kind == "wrong_shape" or self.kind in _REORDERING


def corruption(kind: str, lines: int) -> Corruption:
    """A validated corruption; unknown kinds and `lines < 1` are refused."""
    if kind not in KINDS:
        raise ValueError(f"Unknown corruption kind {kind!r}; expected one of {', '.join(KINDS)}.")
    if lines < 1:
        raise ValueError(f"lines must be at least 1, got {lines}.")
    return Corruption(kind, lines)


def reorder(items: list[T], kind: str, lines: int) -> list[T]:
    """`items` with the first `lines` dropped or doubled, or all of them shuffled (seeded, never the input order)."""
    if kind == "dropped":
        return items[lines:]
    if kind == "duplicated":
        return [copy for i, item in enumerate(items) for copy in ([item, item] if i < lines else [item])]
    order = list(range(len(items)))
    random.Random(len(items)).shuffle(order)
    if order == sorted(order):
        order.reverse()
    return [items[i] for i in order]


def corrupt_file(data: bytes, corruption: Corruption, job_kind: str = "generate") -> bytes:
    """The JSONL results file with its first `corruption.lines` lines corrupted."""
    lines = data.split(b"\n")
    ending = lines.pop() if lines and lines[-1] == b"" else None
    if corruption.kind in _REORDERING:
        out = reorder(lines, corruption.kind, corruption.lines)
    else:
        out = [_corrupt_line(line, corruption.kind, i, job_kind) if i < corruption.lines else line
               for i, line in enumerate(lines)]  # fmt: skip
    return b"\n".join(out) + (b"\n" if ending is not None else b"")


def _corrupt_line(line: bytes, kind: str, index: int, job_kind: str) -> bytes:
    if kind == "truncated":
        return line[: max(1, len(line) // 2)]
    if kind == "garbage":
        return GARBAGE
    if kind == "blank":
        return line + b"\n"
    return _encode(_wrong_line(_key_of(line), index, job_kind)).encode()


def _key_of(line: bytes) -> Any:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed.get("key") if isinstance(parsed, dict) else None


_WRONG_LINES: dict[str, list[dict[str, Any]]] = {
    "generate": [
        {"response": {"candidates": "oops"}},
        {"response": ["not", "an", "object"]},
        {"response": {"candidates": [{"content": {"role": "model", "parts": {"text": "oops"}}}]}},
        {"error": "oops"},
    ],
    "embed": [
        {"response": {"embedding": "oops"}},
        {"response": ["not", "an", "object"]},
        {"response": {"tokenCount": "1", "embedding": {"values": "oops"}}},
        {"error": "oops"},
    ],
}
_WRONG_ITEMS: dict[str, list[dict[str, Any]]] = {
    "generate": [{"response": {}}, {"response": {"candidates": [{"index": 0}]}}, {}],
    "embed": [{"response": {}}, {"response": {"tokenCount": "1"}}, {"response": {"embedding": {}}}, {}],
}


def _wrong_line(key: Any, index: int, job_kind: str) -> dict[str, Any]:
    shapes = _WRONG_LINES[job_kind]
    shape = shapes[index % len(shapes)]
    return shape if key is None else {**shape, "key": key}


def corrupt_inline(output: dict[str, Any], corruption: Corruption, job_kind: str = "generate") -> dict[str, Any]:
    """An `inlinedResponses` output whose first `corruption.lines` responses have a wrong shape (or are dropped,
    doubled, or all shuffled)."""
    items = output["inlinedResponses"]["inlinedResponses"]
    if corruption.kind in _REORDERING:
        changed = reorder(items, corruption.kind, corruption.lines)
    else:
        changed = [_wrong_item(item, i, job_kind) if i < corruption.lines else item for i, item in enumerate(items)]
    return {"inlinedResponses": {"inlinedResponses": changed}}


def _wrong_item(item: dict[str, Any], index: int, job_kind: str) -> dict[str, Any]:
    shapes = _WRONG_ITEMS[job_kind]
    shape = dict(shapes[index % len(shapes)])
    if "metadata" in item:
        shape["metadata"] = item["metadata"]
    return shape
