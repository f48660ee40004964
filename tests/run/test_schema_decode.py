from __future__ import annotations

import datetime as dt
import enum
import json
from typing import Annotated, Literal

import polars as pl
import pytest
from pydantic import BaseModel, Field

from polars_gemini import SchemaError
from polars_gemini.prepare.schema import check_names, response_schema, to_field
from polars_gemini.run.decode import decode_answers


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Item(BaseModel):
    name: str
    qty: int


class Order(BaseModel):
    label: Literal["ok", "bad"]
    color: Color
    score: float | None = None
    when: dt.date
    at: dt.datetime
    items: list[Item]
    flags: list[bool]


def test_pydantic_model_maps_to_dtypes_and_response_schema() -> None:
    field = to_field(Order)
    assert field.dtype == pl.Struct(
        {
            "label": pl.Enum(["ok", "bad"]),
            "color": pl.Enum(["red", "blue"]),
            "score": pl.Float64,
            "when": pl.Date,
            "at": pl.Datetime("us"),
            "items": pl.List(pl.Struct({"name": pl.String, "qty": pl.Int64})),
            "flags": pl.List(pl.Boolean),
        }
    )
    rs = response_schema(field)
    assert rs["type"] == "OBJECT"
    assert rs["required"] == ["label", "color", "when", "at", "items", "flags"]
    assert rs["properties"]["score"] == {"type": "NUMBER", "nullable": True}
    assert rs["properties"]["label"]["enum"] == ["ok", "bad"]
    assert rs["properties"]["items"]["items"]["properties"]["qty"] == {"type": "INTEGER"}
    assert rs["property_ordering"][0] == "label"


@pytest.mark.parametrize("bad", [{"x": pl.Decimal(10, 2)}, {"x": pl.List}, {}, {"x": "int"}, int])
def test_unsupported_schemas_raise(bad: object) -> None:
    with pytest.raises(SchemaError):
        to_field(bad)  # type: ignore[arg-type]


GOOD = (
    '{"label":"ok","color":"red","score":0.5,"when":"2024-02-29","at":"2024-02-29T10:11:12Z",'
    '"items":[{"name":"a","qty":2}],"flags":[true,false]}'
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOOD, None),
        (GOOD.replace('"score":0.5', '"score":null'), None),
        (GOOD.replace('"ok"', '"meh"'), "field 'label': expected one of"),
        (GOOD.replace('"qty":2', '"qty":2.5'), "field 'items[].qty': expected an integer"),
        (GOOD.replace('"qty":2', '"qty":"two"'), "field 'items[].qty'"),
        (GOOD.replace('"2024-02-29"', '"2024-02-30"'), "field 'when': expected a date"),
        (GOOD.replace('"label":"ok",', ""), "missing value for field 'label'"),
        (GOOD.replace("true", '"yes"'), "field 'flags[]': expected true or false"),
        (GOOD[:50], "not a valid JSON object"),
        ("[1,2]", "not a valid JSON object"),
        ("Sure! Here is the JSON", "not a valid JSON object"),
        (GOOD.replace('"label":"ok"', '"label":{"x":1}'), "does not match the schema"),
    ],
)
def test_decode_one_row_at_a_time(text: str, problem: str | None) -> None:
    out = decode_answers(pl.Series([text]), to_field(Order))
    got = out.get_column("problem")[0]
    if problem is None:
        assert got is None
        row = out.get_column("value")[0]
        assert row["when"] == dt.date(2024, 2, 29)
        assert row["at"] == dt.datetime(2024, 2, 29, 10, 11, 12)
        assert row["items"] == [{"name": "a", "qty": 2}]
    else:
        assert got is not None and problem in got


def test_bad_rows_do_not_affect_good_ones() -> None:
    texts = [GOOD] * 100
    texts[17] = GOOD.replace('"label":"ok"', '"label":[1]')  # structurally wrong: forces bisection
    texts[63] = "nope"
    out = decode_answers(pl.Series(texts), to_field(Order))
    problems = out.get_column("problem")
    assert problems.is_not_null().arg_true().to_list() == [17, 63]
    assert out.get_column("value").struct.field("label").drop_nulls().len() == 98


def test_null_text_has_no_problem_of_its_own() -> None:
    out = decode_answers(pl.Series([None], dtype=pl.String), to_field({"a": pl.Int64}))
    assert out.get_column("problem")[0] is None and out.get_column("value")[0] is None


def test_integer_bounds_of_narrow_types() -> None:
    out = decode_answers(pl.Series(['{"a":300}', '{"a":-1}', '{"a":7}']), to_field({"a": pl.UInt8}))
    assert out.get_column("problem").is_not_null().to_list() == [True, True, False]


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        ({"a": pl.Struct({})}, r"'a': pl.Struct\(\{\}\) has no fields"),
        ({"a": pl.List(pl.Struct({"b": pl.Struct({})}))}, r"'a\[\]\.b': pl.Struct"),
        ({"a": pl.Enum([])}, r"'a': pl.Enum\(\[\]\) has no categories"),
        ({"a": pl.Struct({"b": pl.Enum([])})}, r"'a.b': pl.Enum"),
        ({"": pl.String}, "empty name"),
        ({"a": pl.Struct([pl.Field("b", pl.Int64), pl.Field("b", pl.String)])}, "two fields named 'b'"),
    ],
)
def test_empty_or_ambiguous_schemas_are_schema_errors(schema: dict[str, pl.DataType], match: str) -> None:
    with pytest.raises(SchemaError, match=match) as info:
        to_field(schema)
    assert "Hint" in str(info.value)


def test_an_empty_model_is_a_schema_error() -> None:
    class Empty(BaseModel):
        pass

    class Holder(BaseModel):
        inner: Empty

    for model in (Empty, Holder):
        with pytest.raises(SchemaError, match="Empty has no fields"):
            to_field(model)


def test_check_names_guards_the_error_and_usage_columns() -> None:
    field = to_field({"response_error": pl.String, "response_input_tokens": pl.Int64})
    with pytest.raises(SchemaError, match=r"'response_error'.*error column.*prefix="):
        check_names(field, "response", "")
    check_names(field, "response", "llm_")
    check_names(field, "out", "")
    with pytest.raises(SchemaError, match="usage column"):
        check_names(to_field({"x_input_tokens": pl.Int64}), "x", "", usage=True)


class Limits(BaseModel):
    score: float = Field(ge=0, le=1)
    ratio: float = Field(gt=0, lt=1)
    stars: int = Field(gt=0, lt=6)
    code: str = Field(min_length=2, max_length=4, pattern=r"^[A-Z]+$")
    tags: list[Annotated[str, Field(max_length=3)]] = Field(min_length=1, max_length=2)
    note: str | None = Field(None, min_length=2)


OK_LIMITS = '{"score":0.5,"ratio":0.5,"stars":3,"code":"AB","tags":["x"],"note":null}'


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({}, None),
        ({"score": 1.0, "stars": 5, "code": "ABCD", "tags": ["abc", "d"], "note": "ok"}, None),
        ({"score": 1.5}, "field 'score' breaks a constraint: expected a value <= 1 (le), got 1.5"),
        ({"score": -0.1}, "field 'score' breaks a constraint: expected a value >= 0 (ge), got -0.1"),
        ({"ratio": 0}, "expected a value > 0 (gt), got 0.0"),
        ({"ratio": 1}, "expected a value < 1 (lt)"),
        ({"stars": 6}, "field 'stars' breaks a constraint: expected a value < 6 (lt), got 6"),
        ({"code": "A"}, "field 'code' breaks a constraint: expected at least 2 characters (min_length), got 'A'"),
        ({"code": "ABCDE"}, "at most 4 characters (max_length)"),
        ({"code": "ab"}, "expected a string matching '^[A-Z]+$' (pattern), got 'ab'"),
        ({"tags": []}, "field 'tags' breaks a constraint: expected at least 1 items (min_length), got 0 items"),
        ({"tags": ["a", "b", "c"]}, "at most 2 items (max_length), got 3 items"),
        ({"tags": ["a", "long"]}, "field 'tags[]' breaks a constraint: expected at most 3 characters"),
        ({"note": "x"}, "field 'note' breaks a constraint"),
    ],
)
def test_constraints_are_enforced_on_decode(change: dict[str, object], problem: str | None) -> None:
    text = json.dumps(json.loads(OK_LIMITS) | change)
    out = decode_answers(pl.Series([text, OK_LIMITS]), to_field(Limits))
    got = out.get_column("problem").to_list()
    assert got[1] is None and out.get_column("value")[1] is not None  # the other row is unaffected
    if problem is None:
        assert got[0] is None and out.get_column("value")[0] is not None
    else:
        assert got[0] is not None and problem in got[0], got[0]
        assert out.get_column("value")[0] is None  # the violating row's value is null, not half kept


def test_any_field_name_decodes() -> None:
    odd = {"*": pl.Int64, "^a.*$": pl.String, "a": pl.String, "{}": pl.Boolean, "key": pl.Int64, "x.y": pl.Int64}
    text = json.dumps({"*": 1, "^a.*$": "r", "a": "s", "{}": True, "key": 2, "x.y": 3})
    field = to_field(odd | {"n": pl.Struct({"*": pl.Enum(["{}"])})})
    out = decode_answers(pl.Series([text[:-1] + ',"n":{"*":"{}"}}', text[:-1] + ',"n":{"*":"no"}}']), field)
    assert out.get_column("problem")[0] is None
    assert out.get_column("value")[0] == {
        "*": 1,
        "^a.*$": "r",
        "a": "s",
        "{}": True,
        "key": 2,
        "x.y": 3,
        "n": {"*": "{}"},
    }
    assert "field 'n.*': expected one of ['{}'], got no" in out.get_column("problem")[1]
