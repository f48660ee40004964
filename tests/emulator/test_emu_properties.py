"""Property tests for the emulator's pure parts: schema-conforming values, key normalization, paging."""

from __future__ import annotations

import random
from typing import Any

from emulator_support import conforms
from hypothesis import given, settings
from hypothesis import strategies as st

from polars_gemini.emulator._normalize import camel, normalize
from polars_gemini.emulator._paging import page
from polars_gemini.emulator._schema import fake_value

_NAMES = st.text("abcdefghij_", min_size=1, max_size=8)


def _leaf(openapi: bool) -> st.SearchStrategy[dict[str, Any]]:
    def kind(name: str) -> str:
        return name.upper() if openapi else name

    bounds = st.tuples(st.integers(-50, 50), st.integers(0, 50)).map(lambda t: (t[0], t[0] + t[1]))
    return st.one_of(
        st.just({"type": kind("string")}),
        st.sampled_from(["date", "date-time"]).map(lambda f: {"type": kind("string"), "format": f}),
        st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True).map(
            lambda e: {"type": kind("string"), "enum": e}
        ),
        bounds.map(lambda b: {"type": kind("integer"), "minimum": b[0], "maximum": b[1]}),
        bounds.map(lambda b: {"type": kind("number"), "minimum": b[0], "maximum": b[1]}),
        st.just({"type": kind("boolean")}),
    )


def _schemas(openapi: bool) -> st.SearchStrategy[dict[str, Any]]:
    def extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        objects = st.dictionaries(_NAMES, children, min_size=1, max_size=4).flatmap(
            lambda props: st.lists(st.sampled_from(sorted(props)), unique=True).map(
                lambda required: {"type": "OBJECT" if openapi else "object", "properties": props, "required": required}
            )
        )
        arrays = st.tuples(children, st.integers(0, 2), st.integers(0, 3)).map(
            lambda t: {
                "type": "ARRAY" if openapi else "array",
                "items": t[0],
                "minItems": t[1],
                "maxItems": t[1] + t[2],
            }
        )
        nullable = children.map(lambda s: {**s, "nullable": True} if openapi else _json_nullable(s))
        return st.one_of(
            objects, arrays, nullable, st.lists(children, min_size=1, max_size=3).map(lambda b: {"anyOf": b})
        )

    return st.recursive(_leaf(openapi), extend, max_leaves=12)


def _json_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


@settings(max_examples=200, deadline=None)
@given(schema=_schemas(openapi=True), seed=st.integers(0, 2**32))
def test_openapi_values_conform(schema: dict[str, Any], seed: int) -> None:
    assert conforms(fake_value(schema, random.Random(seed), openapi=True), schema)


@settings(max_examples=200, deadline=None)
@given(schema=_schemas(openapi=False), seed=st.integers(0, 2**32))
def test_json_schema_values_conform(schema: dict[str, Any], seed: int) -> None:
    assert conforms(fake_value(schema, random.Random(seed), openapi=False), schema)


@given(schema=_schemas(openapi=True), seed=st.integers(0, 2**32))
def test_values_are_deterministic(schema: dict[str, Any], seed: int) -> None:
    assert fake_value(schema, random.Random(seed), openapi=True) == fake_value(
        schema, random.Random(seed), openapi=True
    )


@given(names=st.lists(_NAMES, max_size=5), values=st.lists(st.text(max_size=5), max_size=3))
def test_normalize_keeps_user_data(names: list[str], values: list[str]) -> None:
    schema = {"properties": {name: {"type": "STRING", "enum": values} for name in names}, "property_ordering": names}
    body = {"generation_config": {"response_schema": schema}, "metadata": {name: name for name in names}}
    out = normalize(body)
    assert list(out["generationConfig"]["responseSchema"]["properties"]) == list(dict.fromkeys(names))
    assert out["generationConfig"]["responseSchema"]["propertyOrdering"] == names
    assert out["metadata"] == body["metadata"]


def test_camel_case_spellings() -> None:
    assert [camel(k) for k in ("thinking_budget", "thinkingBudget", "file_name", "@type", "_x", "a")] == [
        "thinkingBudget",
        "thinkingBudget",
        "fileName",
        "@type",
        "_x",
        "a",
    ]


@given(count=st.integers(0, 40), size=st.integers(1, 12))
def test_paging_visits_everything_once(count: int, size: int) -> None:
    items, seen, token = list(range(count)), [], None
    while True:
        chosen, token = page(items, size, token, default=10, maximum=100)
        seen += chosen
        if token is None:
            break
    assert seen == items
