"""Schema-conforming fake values for structured output.

One walker serves both dialects the API accepts: `responseSchema` (OpenAPI subset, upper-case types,
`nullable`, `propertyOrdering`) and `responseJsonSchema` (JSON Schema subset, lower-case types,
`["string", "null"]`, `$ref`/`$defs`). Where the dialects disagree on output order, it follows Gemini:
OpenAPI objects come out in `propertyOrdering` or else alphabetical order, JSON Schema objects in
declaration order.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

_MAX_DEPTH = 6
_WORDS = (
    "amber", "bright", "calm", "delta", "ember", "fable", "granite", "harbor", "ivory", "juniper",
    "kestrel", "lumen", "meadow", "nimbus", "orchid", "prairie", "quartz", "river", "summit", "timber",
)  # fmt: skip
_EPOCH = date(2000, 1, 1)


_Generator = Callable[[dict[str, Any], "_Ctx", int], Any]


@dataclass(frozen=True)
class _Ctx:
    rng: random.Random
    openapi: bool
    root: dict[str, Any]
    words: tuple[str, ...]
    prefix: str = ""


def fake_value(
    schema: dict[str, Any], rng: random.Random, *, openapi: bool, words: tuple[str, ...] = (), prefix: str = ""
) -> Any:
    """A JSON value conforming to `schema`, drawn from `rng` (so the same seed gives the same value).

    `prefix` starts every free-text string (no `format`, before `minLength`/`maxLength` apply).

    >>> fake_value({"enum": ["pos", "neg"]}, random.Random(7), openapi=True) in {"pos", "neg"}
    True
    """
    return _value(schema, _Ctx(rng, openapi, schema, words or _WORDS, prefix), 0)


def _value(schema: dict[str, Any], ctx: _Ctx, depth: int) -> Any:
    schema = _resolve(schema, ctx)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return _value(ctx.rng.choice(branches), ctx, depth + 1)
    if "const" in schema:
        return schema["const"]
    kinds = _kinds(schema)
    if "null" in kinds and (kinds == ["null"] or ctx.rng.random() < 0.1 or depth > _MAX_DEPTH):
        return None
    if schema.get("enum"):
        return ctx.rng.choice(schema["enum"])
    kind = next((k for k in kinds if k != "null"), _implied_kind(schema))
    generate: _Generator = _GENERATORS.get(kind, _string)
    return generate(schema, ctx, depth)


def _resolve(schema: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = ctx.root
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else {}


def _kinds(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    kinds = [str(k).lower() for k in (declared if isinstance(declared, list) else [declared] if declared else [])]
    if schema.get("nullable") is True:
        kinds.append("null")
    return kinds


def _implied_kind(schema: dict[str, Any]) -> str:
    if "properties" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _object(schema: dict[str, Any], ctx: _Ctx, depth: int) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    out = {}
    for name in _property_order(schema, ctx):
        if name in required or (depth < _MAX_DEPTH and ctx.rng.random() < 0.9):
            out[name] = _value(properties[name], ctx, depth + 1)
    return out


def _property_order(schema: dict[str, Any], ctx: _Ctx) -> list[str]:
    properties: dict[str, Any] = schema.get("properties") or {}
    ordering = [name for name in schema.get("propertyOrdering") or () if name in properties]
    rest = [name for name in properties if name not in ordering]
    return ordering + (sorted(rest) if ctx.openapi else rest)


def _array(schema: dict[str, Any], ctx: _Ctx, depth: int) -> list[Any]:
    low = int(schema.get("minItems", 0))
    high = int(schema.get("maxItems", max(low, 3)))
    wanted = ctx.rng.randint(max(low, min(1, high)), max(low, high)) if depth < _MAX_DEPTH else low
    items = schema.get("items") or {"type": "string"}
    return [_value(items, ctx, depth + 1) for _ in range(wanted)]


def _bounds(schema: dict[str, Any], default_span: float) -> tuple[float, float]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    low = float(low) if low is not None else (float(high) - default_span if high is not None else 0.0)
    high = float(high) if high is not None else low + default_span
    return low, max(low, high)


def _integer(schema: dict[str, Any], ctx: _Ctx, depth: int) -> int:
    low, high = _bounds(schema, 100)
    first, last = math.ceil(low), math.floor(high)
    first += 1 if "minimum" not in schema and "exclusiveMinimum" in schema and first == low else 0
    last -= 1 if "maximum" not in schema and "exclusiveMaximum" in schema and last == high else 0
    return ctx.rng.randint(first, max(first, last))


def _number(schema: dict[str, Any], ctx: _Ctx, depth: int) -> float:
    low, high = _bounds(schema, 100.0)
    value = min(max(round(ctx.rng.uniform(low, high), 2), low), high)  # rounding must stay inside
    return (low + high) / 2 if value in (low, high) and low != high else value


def _boolean(schema: dict[str, Any], ctx: _Ctx, depth: int) -> bool:
    return ctx.rng.random() < 0.5


def _string(schema: dict[str, Any], ctx: _Ctx, depth: int) -> str:
    fmt = schema.get("format")
    if fmt in _FORMATS:
        text = _FORMATS[fmt](ctx.rng)
    else:
        text = ctx.prefix + " ".join(ctx.rng.choices(ctx.words, k=ctx.rng.randint(1, 3)))
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    text = text.ljust(low, "x")
    return text[: int(high)] if high is not None else text


def _date(rng: random.Random) -> str:
    return (_EPOCH + timedelta(days=rng.randrange(11_000))).isoformat()


def _date_time(rng: random.Random) -> str:
    moment = datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(950_000_000))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date": _date,
    "date-time": _date_time,
    "time": lambda rng: f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
    "email": lambda rng: f"{rng.choice(_WORDS)}{rng.randrange(100)}@example.com",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
}
_GENERATORS: dict[str, _Generator] = {
    "object": _object,
    "array": _array,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "string": _string,
}
