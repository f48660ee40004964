"""Pydantic models as schemas: local and postponed annotations, recursion, tuples, constraints on the wire.

This module uses `from __future__ import annotations` on purpose: every annotation below is a string that only
pydantic (which saw the defining scope) can resolve, as in user code that defines its models inside a function.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Optional

import annotated_types as at
import polars as pl
import pytest
from pydantic import BaseModel, Field, StringConstraints, conint, conlist, constr

from polars_gemini import SchemaError
from polars_gemini.prepare.schema import Constraints, field_from_json, field_to_json, response_schema, to_field


def _local_models() -> type[BaseModel]:
    """Nested models defined in a function (the helper the issue asks for): `Inner` is in no module's globals."""

    class Leaf(BaseModel):
        tag: Literal["a", "b"]

    class Inner(BaseModel):
        size: int
        leaves: list[Leaf]
        when: dt.date | None = None

    class Outer(BaseModel):
        name: str
        inner: Inner
        many: list[Inner]

    return Outer


def test_models_defined_in_a_function_resolve() -> None:
    field = to_field(_local_models())
    inner = pl.Struct({"size": pl.Int64, "leaves": pl.List(pl.Struct({"tag": pl.Enum(["a", "b"])})), "when": pl.Date})
    assert field.dtype == pl.Struct({"name": pl.String, "inner": inner, "many": pl.List(inner)})
    assert dict(dict(field.children)["inner"].children)["when"].nullable


def test_models_defined_in_the_test_itself_resolve() -> None:
    class Point(BaseModel):
        x: float
        y: float

    class Shape(BaseModel):
        points: list[Point]
        center: Point | None = None

    field = to_field(Shape)
    point = pl.Struct({"x": pl.Float64, "y": pl.Float64})
    assert field.dtype == pl.Struct({"points": pl.List(point), "center": point})


def test_a_model_not_fully_defined_names_the_missing_class() -> None:
    class Early(BaseModel):
        late: Late  # noqa: F821  # defined below, after this model: pydantic cannot resolve it yet

    with pytest.raises(SchemaError, match=r"cannot resolve 'Late'.*model_rebuild"):
        to_field(Early)


class Node(BaseModel):
    value: int
    children: list[Node]


class Pair(BaseModel):
    left: Tree | None = None


class Tree(BaseModel):
    pair: Pair


def test_self_referencing_models_are_a_schema_error_with_a_hint() -> None:
    with pytest.raises(SchemaError, match=r"Node -> Node.*unroll it to a fixed depth"):
        to_field(Node)
    with pytest.raises(SchemaError, match=r"Tree -> Pair -> Tree"):
        to_field(Tree)


def test_local_self_referencing_model() -> None:
    class Comment(BaseModel):
        text: str
        replies: list[Comment] = []

    with pytest.raises(SchemaError, match="contains itself"):
        to_field(Comment)


def test_tuples() -> None:
    class T(BaseModel):
        many: tuple[int, ...]
        two: tuple[str, str]

    field = to_field(T)
    assert field.dtype == pl.Struct({"many": pl.List(pl.Int64), "two": pl.List(pl.String)})
    two = dict(field.children)["two"]
    assert two.constraints == Constraints(min_length=2, max_length=2)
    assert response_schema(two) == {"type": "ARRAY", "items": {"type": "STRING"}, "min_items": 2, "max_items": 2}

    class Mixed(BaseModel):
        pair: tuple[int, str]

    with pytest.raises(SchemaError, match=r"'pair'.*nested model"):
        to_field(Mixed)


class Constrained(BaseModel):
    score: float = Field(ge=0, le=1)
    stars: int = Field(gt=0, lt=6)
    ratio: float = Field(gt=0, lt=1)
    code: str = Field(min_length=2, max_length=4, pattern=r"^[A-Z]+$")
    tags: list[Annotated[str, Field(max_length=10)]] = Field(min_length=1, max_length=3)
    small: conint(ge=-5, le=5)  # type: ignore[valid-type]
    word: constr(min_length=1, pattern=r"\w")  # type: ignore[valid-type]
    trimmed: Annotated[str, StringConstraints(max_length=8)]
    ranged: Annotated[int, at.Interval(ge=10, le=20)]
    few: conlist(int, min_length=2)  # type: ignore[valid-type]
    maybe: int | None = Field(None, ge=1)
    positive: Optional[Annotated[int, at.Gt(0)]] = None  # noqa: UP045  # typing.Union, not X | None


def test_constraints_reach_the_response_schema() -> None:
    props = response_schema(to_field(Constrained))["properties"]
    assert props["score"] == {"type": "NUMBER", "minimum": 0.0, "maximum": 1.0}
    assert props["stars"] == {"type": "INTEGER", "minimum": 1.0, "maximum": 5.0}  # exclusive int bounds: exact
    assert props["ratio"] == {"type": "NUMBER", "minimum": 0.0, "maximum": 1.0}  # exclusive: enforced on decode
    assert props["code"] == {"type": "STRING", "min_length": 2, "max_length": 4, "pattern": "^[A-Z]+$"}
    assert props["tags"] == {
        "type": "ARRAY",
        "items": {"type": "STRING", "max_length": 10},
        "min_items": 1,
        "max_items": 3,
    }
    assert props["small"] == {"type": "INTEGER", "minimum": -5.0, "maximum": 5.0}
    assert props["word"] == {"type": "STRING", "min_length": 1, "pattern": r"\w"}
    assert props["trimmed"] == {"type": "STRING", "max_length": 8}
    assert props["ranged"] == {"type": "INTEGER", "minimum": 10.0, "maximum": 20.0}
    assert props["few"] == {"type": "ARRAY", "items": {"type": "INTEGER"}, "min_items": 2}
    assert props["maybe"] == {"type": "INTEGER", "minimum": 1.0, "nullable": True}
    assert props["positive"] == {"type": "INTEGER", "minimum": 1.0, "nullable": True}


def test_constraints_validate_against_the_sdk_schema() -> None:
    from google.genai import types

    schema = types.Schema.model_validate(response_schema(to_field(Constrained)))
    assert schema.properties is not None and schema.properties["code"].pattern == "^[A-Z]+$"
    assert schema.properties["tags"].min_items == 1


def test_unsigned_floor_and_constraints_combine() -> None:
    class U(BaseModel):
        n: int = Field(ge=-3)

    assert response_schema(dict(to_field(U).children)["n"])["minimum"] == -3.0
    field = to_field({"n": pl.UInt8})
    assert response_schema(dict(field.children)["n"]) == {"type": "INTEGER", "minimum": 0}


@pytest.mark.parametrize(
    ("annotation", "match"),
    [
        (Annotated[float, Field(multiple_of=2)], "multiple_of"),
        (Annotated[str, StringConstraints(to_lower=True)], "to_lower"),
        (Annotated[str, at.Predicate(str.isdigit)], "Predicate"),
        (Annotated[bool, at.Ge(1)], "applies to numbers"),
        (Annotated[int, at.MinLen(1)], "applies to strings and lists"),
        (Annotated[list[int], Field(pattern="x")], "pattern applies to strings"),
        (Annotated[int, Field(ge=5, le=1)], "no value can satisfy"),
        (Annotated[int, Field(gt=1, lt=2)], "no value can satisfy"),  # no integer between them
        (Annotated[float, Field(gt=1, le=1)], "no value can satisfy"),
        (Annotated[str, Field(min_length=3, max_length=2)], "no value can satisfy"),
        (Annotated[str, at.MinLen(1), Field(pattern="a"), Field(pattern="b")], "two patterns"),
    ],
)
def test_constraints_that_would_be_dropped_are_schema_errors(annotation: Any, match: str) -> None:
    from pydantic import create_model

    model = create_model("Bad", x=(annotation, ...))
    with pytest.raises(SchemaError, match=match) as info:
        to_field(model)
    assert "'x'" in str(info.value) and "Hint" in str(info.value)


def test_a_pattern_polars_cannot_check_is_a_schema_error() -> None:
    from pydantic import ConfigDict, create_model

    model = create_model(
        "Look", __config__=ConfigDict(regex_engine="python-re"), x=(Annotated[str, Field(pattern=r"(?=a)a")], ...)
    )
    with pytest.raises(SchemaError, match="look-around"):
        to_field(model)


def test_harmless_metadata_is_ignored() -> None:
    from pydantic import AfterValidator, Strict

    class H(BaseModel):
        a: Annotated[int, Strict(), "a doc string", AfterValidator(lambda v: v)] = Field(description="d")

    assert dict(to_field(H).children)["a"].constraints == Constraints()


def test_field_json_round_trip_keeps_constraints_and_nullability() -> None:
    import json

    field = to_field(Constrained)
    saved = json.loads(json.dumps(field_to_json(field)))
    assert field_from_json(saved, field.dtype) == field
    outer = to_field(_local_models())
    assert field_from_json(field_to_json(outer), outer.dtype) == outer


@pytest.mark.parametrize(
    "saved",
    [
        {"children": [["b", {}]]},
        {"children": [["a", {"constraints": {"bogus": 1}}]]},
        {"children": [["a", {"constraints": {"pattern": "x"}}]]},
    ],
)
def test_field_from_json_rejects_a_tree_that_does_not_fit(saved: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        field_from_json(saved, pl.Struct({"a": pl.Int64}))
