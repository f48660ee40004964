"""Templates over every dtype and over nulls, end to end through the real SDK against the emulator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from polars_gemini import TemplateError
from polars_gemini.emulator import Emulator
from testing_support import FAST


def sent_prompts(emu: Emulator) -> list[str]:
    """Every prompt text the emulator received in batches.create (inline requests)."""
    bodies = [r.body_json for r in emu.requests if r.endpoint == "batches.create"]
    lines = [line for b in bodies for line in b["batch"]["inputConfig"]["requests"]["requests"]]
    return [part["text"] for line in lines for c in line["request"]["contents"] for part in c["parts"]]


def batch(emu: Emulator, df: pl.DataFrame, template: Any) -> pl.DataFrame:
    return df.gemini.batch(template, model="gemini-2.0-flash", client=emu.client(), **FAST)


def test_duration_renders_as_iso_8601(emu: Emulator) -> None:
    df = pl.DataFrame({"d": [dt.timedelta(days=1, hours=2, minutes=3)], "l": [[dt.timedelta(seconds=90)]]})
    out = batch(emu, df, "took {d}, laps {l}")
    assert sent_prompts(emu) == ['took P1DT2H3M, laps ["PT1M30S"]']
    assert out.get_column("response").to_list() == ['echo: took P1DT2H3M, laps ["PT1M30S"]']


@pytest.mark.parametrize(
    ("column", "template", "needle"),
    [
        (pl.Series([b"bytes"]), "{x}", r"Binary.*pl\.col\('x'\)\.cast\(pl\.String\)"),
        (pl.Series([object()], dtype=pl.Object), "{x}", r"Object.*map_elements"),
        (pl.Series([[b"a"]]), "{x}", r"List\(Binary\), which contains Binary.*cast\(pl\.List\(pl\.String\)\)"),
        (pl.Series([{"k": b"a"}]), "{x}", r"Struct\(\{'k': Binary\}\), which contains Binary"),
        (pl.Series([1]), pl.col("id").cast(pl.String).cast(pl.Binary), r"expression.*has dtype Binary"),
        (pl.Series([1]), "", r"is empty"),
        (pl.Series([1]), " \n ", r"is empty"),
        (pl.Series([1]), 5, r"got int"),
        (pl.Series([1]), None, r"got NoneType"),
        (pl.Series([1]), pl.col("y"), r'unable to find column "y"'),
    ],
    ids=["binary", "object", "list-binary", "struct-binary", "expr-binary", "empty", "blank", "int", "none", "expr"],
)
def test_bad_templates_fail_before_any_request(emu: Emulator, column: pl.Series, template: Any, needle: str) -> None:
    df = pl.DataFrame({"id": [1], "x": column})
    with pytest.raises(TemplateError, match=needle):
        batch(emu, df, template)
    assert emu.calls("batches.create") == 0
    assert emu.requests == []


@pytest.mark.parametrize(
    "column",
    [
        pl.Series([["t"], None]),
        pl.Series([{"k": 1}, None]),
        pl.Series([[1], None], dtype=pl.Array(pl.Int64, 1)),
        pl.Series([dt.timedelta(1), None]),
    ],
    ids=lambda s: str(s.dtype),
)
def test_a_null_nested_cell_is_not_sent_and_only_gets_the_error(emu: Emulator, column: pl.Series) -> None:
    df = pl.DataFrame({"a": ["x", "y"], "tags": column})
    out = batch(emu, df, "{a} {tags}")
    assert len(sent_prompts(emu)) == 1 and not sent_prompts(emu)[0].endswith("null")
    assert out.get_column("response")[1] is None
    assert out.get_column("response_error").to_list() == [None, "not sent: column 'tags' is null in this row"]


def test_a_null_expression_value_is_not_sent(emu: Emulator) -> None:
    df = pl.DataFrame({"a": ["x", "y", "z"], "tags": [["t"], None, ["u"]]})
    out = batch(emu, df, pl.when(pl.col("a") != "z").then(pl.col("tags")))
    assert sent_prompts(emu) == ['["t"]']
    assert out.get_column("response").to_list() == ['echo: ["t"]', None, None]
    skipped = "not sent: column '<prompt expression>' is null in this row"
    assert out.get_column("response_error").to_list() == [None, skipped, skipped]
