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

Only `wrong_shape` applies to inline jobs: the others wait for the next job with a results file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

KINDS = ("truncated", "garbage", "wrong_shape", "blank")
GARBAGE = b"#!<garbage> this results line is not JSON at all"
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class Corruption:
    kind: str
    lines: int

    @property
    def applies_inline(self) -> bool:
        return self.kind == "wrong_shape"


def corruption(kind: str, lines: int) -> Corruption:
    """A validated corruption; unknown kinds and `lines < 1` are refused."""
    if kind not in KINDS:
        raise ValueError(f"Unknown corruption kind {kind!r}; expected one of {', '.join(KINDS)}.")
    if lines < 1:
        raise ValueError(f"lines must be at least 1, got {lines}.")
    return Corruption(kind, lines)


def corrupt_file(data: bytes, corruption: Corruption) -> bytes:
    """The JSONL results file with its first `corruption.lines` lines corrupted."""
    lines = data.split(b"\n")
    ending = lines.pop() if lines and lines[-1] == b"" else None
    out = [_corrupt_line(line, corruption.kind, i) if i < corruption.lines else line for i, line in enumerate(lines)]
    return b"\n".join(out) + (b"\n" if ending is not None else b"")


def _corrupt_line(line: bytes, kind: str, index: int) -> bytes:
    if kind == "truncated":
        return line[: max(1, len(line) // 2)]
    if kind == "garbage":
        return GARBAGE
    if kind == "blank":
        return line + b"\n"
    return _encode(_wrong_line(_key_of(line), index)).encode()


def _key_of(line: bytes) -> Any:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed.get("key") if isinstance(parsed, dict) else None


def _wrong_line(key: Any, index: int) -> dict[str, Any]:
    shapes: list[dict[str, Any]] = [
        {"response": {"candidates": "oops"}},
        {"response": ["not", "an", "object"]},
        {"response": {"candidates": [{"content": {"role": "model", "parts": {"text": "oops"}}}]}},
        {"error": "oops"},
    ]
    shape = shapes[index % len(shapes)]
    return shape if key is None else {**shape, "key": key}


def corrupt_inline(output: dict[str, Any], corruption: Corruption) -> dict[str, Any]:
    """An `inlinedResponses` output whose first `corruption.lines` responses have a wrong shape."""
    items = output["inlinedResponses"]["inlinedResponses"]
    changed = [_wrong_item(item, i) if i < corruption.lines else item for i, item in enumerate(items)]
    return {"inlinedResponses": {"inlinedResponses": changed}}


def _wrong_item(item: dict[str, Any], index: int) -> dict[str, Any]:
    shapes: list[dict[str, Any]] = [{"response": {}}, {"response": {"candidates": [{"index": 0}]}}, {}]
    shape = dict(shapes[index % len(shapes)])
    if "metadata" in item:
        shape["metadata"] = item["metadata"]
    return shape
