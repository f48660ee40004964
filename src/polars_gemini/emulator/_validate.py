"""Request validation with the real API's verdicts: 400 INVALID_ARGUMENT, message naming the field.

A `serviceTier` must name a tier (see `_tiers`), in generateContent and batch requests alike.
Input files follow the file-line rules observed on the real service: a `config` key inside a
request is silently ignored (python-genai #1608), while `thinking_config` outside
`generation_config` is rejected.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

from polars_gemini.emulator._jobs import Entry
from polars_gemini.emulator._normalize import normalize
from polars_gemini.emulator._status import invalid_argument
from polars_gemini.emulator._tiers import requested_tier


def parse_json(body: bytes) -> Any:
    """The camelCase-normalized JSON body, or 400 like Google's front end for anything unparsable."""
    if not body.strip():
        return {}
    try:
        return normalize(json.loads(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_argument(f"Invalid JSON payload received. {exc}.") from None


def require_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_argument(f"Invalid value at '{where}': expected a JSON object, got {type(value).__name__}.")
    return value


def check_request(value: Any, where: str) -> dict[str, Any]:
    """A `GenerateContentRequest` the model can answer; `where` names it in error messages."""
    request = require_object(value, where)
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid_argument(f"* GenerateContentRequest.contents: contents is not specified (at '{where}').")
    if "thinkingConfig" in request:
        raise invalid_argument(
            f"Invalid JSON payload received. Unknown name \"thinking_config\" at '{where}': "
            "Cannot find field. Put thinking_config inside generation_config."
        )
    requested_tier(request, where)  # batch lines may carry one too (the SDK writes it there); it is not used
    config = request.get("generationConfig") or {}
    if isinstance(config, dict) and "responseSchema" in config and "responseJsonSchema" in config:
        raise invalid_argument(
            f"* GenerateContentRequest.generation_config: response_schema and response_json_schema "
            f"cannot both be set (at '{where}'). Use one of them."
        )
    return request


def inline_entries(input_config: dict[str, Any]) -> list[Entry]:
    """The requests of `inputConfig.requests.requests`, each checked; metadata echoed as sent."""
    items = require_object(input_config.get("requests"), "batch.input_config.requests").get("requests")
    if not isinstance(items, list) or not items:
        raise invalid_argument("* BatchGenerateContentRequest.batch.input_config.requests.requests: no requests given.")
    return [_inline_entry(item, i) for i, item in enumerate(items)]


def _inline_entry(item: Any, index: int) -> Entry:
    where = f"batch.input_config.requests.requests[{index}]"
    item = require_object(item, where)
    request = check_request(item.get("request"), f"{where}.request")
    metadata = item.get("metadata")
    key = metadata.get("key") if isinstance(metadata, dict) else None
    return Entry(request, None if key is None else str(key), metadata)


Check = Callable[[Any, str], dict[str, Any]]
"""Checks one request (`where` names it in messages) and returns it: `check_request`, or `_embed.check` for a model."""


class FileEntries:
    """The requests of an uploaded JSONL input file, each `{"key": ..., "request": {...}}`, checked by `check` once,
    line by line, when the job is created, and parsed again from the file's bytes whenever they are read
    (`_jobs.chunked` reads them 10,000 at a time).

    Parsed, a request is ~3 KB of Python objects against ~120 bytes of JSONL: a job kept as parsed entries made a
    1M-request job cost the emulator 3 GB for as long as it ran (issue 17). This keeps a reference to the file's
    bytes (the file store's own object, not a copy) and its count.

        >>> entries = FileEntries(b'{"key": "a", "request": {"contents": [{"parts": [{"text": "Hi"}]}]}}\n', "files/x")
        >>> len(entries), [entry.key for entry in entries]
        (1, ['a'])
    """

    def __init__(self, data: bytes, file_name: str, check: Check = check_request) -> None:
        self._data, self._file_name, self._check = data, file_name, check
        self._count = sum(1 for _ in self)
        if not self._count:
            raise invalid_argument(f"Input file {file_name} contains no requests.")

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Entry]:
        # Lines one at a time from a view of the bytes (`BytesIO` shares them): no list of a million lines.
        lines = io.BytesIO(self._data)
        return (_file_entry(line, self._file_name, n, self._check) for n, line in enumerate(lines, 1) if line.strip())


def _file_entry(line: bytes, file_name: str, number: int, check: Check) -> Entry:
    where = f"{file_name} line {number}"
    try:
        parsed = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_argument(f"Invalid JSON in {where}: {exc}.") from None
    parsed = require_object(parsed, where)
    raw = require_object(parsed.get("request"), f"{where} request")
    # The service drops `config` unread: its response schema, thinking settings etc. have no effect.
    request = {k: v for k, v in raw.items() if k != "config"}
    if b"_" in line:  # else no key is snake_case: normalizing would copy every object unchanged
        request = normalize(request)
    key = parsed.get("key")
    return Entry(check(request, f"{where} request"), None if key is None else str(key))
