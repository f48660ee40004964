"""Key spelling: the real API parses proto JSON, which accepts `thinking_budget` and `thinkingBudget` alike.

The emulator turns every key into camelCase once, on input, so the rest of the code reads one spelling.
User data is left alone: the names in a schema's `properties`, `enum` values, request `metadata`,
function-call `args` and the like are values to echo, not field names.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# Whose value is user data, copied verbatim.
_OPAQUE = frozenset({
    "metadata", "enum", "default", "example", "examples", "const", "args", "response", "labels", "userMetadata",
})  # fmt: skip
# Whose keys are user-chosen names but whose values are schemas to normalize.
_NAMED_SCHEMAS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


@lru_cache(maxsize=4096)
def camel(key: str) -> str:
    """`thinking_budget` -> `thinkingBudget`; keys without an underscore inside come back unchanged."""
    if "_" not in key.strip("_") or key[0] in "$@_":
        return key
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def normalize(value: Any) -> Any:
    """A copy of a JSON value with every field name in camelCase, user data untouched.

    >>> normalize({"response_schema": {"properties": {"first_name": {"type": "STRING"}}}})
    {'responseSchema': {'properties': {'first_name': {'type': 'STRING'}}}}
    """
    if isinstance(value, dict):
        return _object(value)
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def _object(value: dict[str, Any]) -> dict[str, Any]:
    # A loop rather than a comprehension: this runs for every object of 100k-line input files.
    out = {}
    for key, item in value.items():
        name = camel(key)
        if isinstance(item, dict) and name in _NAMED_SCHEMAS:
            item = {k: normalize(v) for k, v in item.items()}
        elif isinstance(item, (dict, list)) and name not in _OPAQUE:
            item = normalize(item)
        out[name] = item
    return out
