from __future__ import annotations

import datetime as dt
import enum
from typing import Literal

import polars as pl
import pytest
from pydantic import BaseModel

from polars_gemini import SchemaError
from polars_gemini._decode import decode_answers
from polars_gemini._schema import response_schema, to_field


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
