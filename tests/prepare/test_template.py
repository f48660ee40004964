from __future__ import annotations

import datetime as dt
import decimal

import polars as pl
import pytest

from polars_gemini import TemplateError
from polars_gemini.prepare.template import NULL_COLUMN, PROMPT, parse_template, prompt_exprs


def render(df: pl.DataFrame, template: str | pl.Expr) -> pl.DataFrame:
    return df.select(*prompt_exprs(template, df.schema))


def test_placeholders_escapes_and_casts() -> None:
    df = pl.DataFrame({"a": ["x"], "n": [3], "f": [1.5], "l": [[1, 2]], "s": [{"k": "v"}]})
    out = render(df, "{{lit}} {a}/{n}/{f} {l} {s} {a}")
    assert out.get_column(PROMPT).to_list() == ['{lit} x/3/1.5 [1,2] {"k":"v"} x']


def test_expression_template() -> None:
    df = pl.DataFrame({"a": ["x", None]})
    out = render(df, pl.lit("Q: ") + pl.col("a"))
    assert out.get_column(PROMPT).to_list() == ["Q: x", None]
    assert out.get_column(NULL_COLUMN).to_list() == [None, "<prompt expression>"]


def test_null_names_the_first_null_column() -> None:
    df = pl.DataFrame({"a": ["x", None, "z"], "b": [1, None, None]})
    out = render(df, "{a} {b}")
    assert out.get_column(PROMPT).to_list() == ["x 1", None, None]
    assert out.get_column(NULL_COLUMN).to_list() == [None, "a", "b"]


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{a.real}", "'.'"),
        ("{a[0]}", r"'\['"),
        ("{a!r}", "conversion"),
        ("{a:>10}", "format spec"),
        ("{}", "empty field"),
        ("oops {", "literal braces"),
    ],
)
def test_unsafe_or_broken_fields_are_rejected(template: str, needle: str) -> None:
    with pytest.raises(TemplateError, match=needle):
        parse_template(template)


def test_missing_column_lists_available_columns() -> None:
    df = pl.DataFrame({"review": ["x"], "stars": [1]})
    with pytest.raises(TemplateError, match=r"'revew'.*Available columns: 'review', 'stars'"):
        render(df, "{revew}")


def test_template_without_fields() -> None:
    assert render(pl.DataFrame({"a": [1, 2]}), "same").get_column(PROMPT).to_list() == ["same", "same"]


TD = dt.timedelta(days=1, hours=2, minutes=3, microseconds=5)


@pytest.mark.parametrize(
    ("series", "text"),
    [
        (pl.Series([TD]), "P1DT2H3M0.000005S"),
        (pl.Series([TD], dtype=pl.Duration("ms")), "P1DT2H3M"),
        (pl.Series([[TD, None]]), '["P1DT2H3M0.000005S",null]'),
        (pl.Series([{"d": TD, "l": [TD]}]), '{"d":"P1DT2H3M0.000005S","l":["P1DT2H3M0.000005S"]}'),
        (pl.Series([[{"d": TD}]]), '[{"d":"P1DT2H3M0.000005S"}]'),
        (pl.Series([[TD]], dtype=pl.Array(pl.Duration("us"), 1)), '["P1DT2H3M0.000005S"]'),
        (pl.Series([decimal.Decimal("1.50")]), "1.50"),
        (pl.Series([dt.time(1, 2, 3)]), "01:02:03"),
        (pl.Series(["a"], dtype=pl.Categorical), "a"),
        (pl.Series(["b"], dtype=pl.Enum(["a", "b"])), "b"),
        (pl.Series([2**100], dtype=pl.Int128), str(2**100)),
        (pl.Series([2**100], dtype=pl.UInt128), str(2**100)),
        (pl.Series([1.5], dtype=pl.Float16), "1.5"),
        (pl.Series([dt.date(2026, 1, 2)]), "2026-01-02"),
        (pl.Series([[1, 2]], dtype=pl.Array(pl.Int64, 2)), "[1,2]"),
        (pl.Series([[[1], [2, 3]]]), "[[1],[2,3]]"),
        (pl.Series([{"a": [1], "b": {"c": "x"}}]), '{"a":[1],"b":{"c":"x"}}'),
        (pl.Series([[None]], dtype=pl.List(pl.Null)), "[null]"),
        (pl.Series([["a"]], dtype=pl.List(pl.Categorical)), '["a"]'),
        (pl.Series([[{"key": "k", "value": 1}]]).cast(pl.Map(pl.String, pl.Int64)), '{"k":1}'),
    ],
    ids=lambda v: str(v.dtype) if isinstance(v, pl.Series) else "",
)
def test_every_renderable_dtype_renders(series: pl.Series, text: str) -> None:
    df = pl.DataFrame({"x": series})
    assert render(df, "<{x}>").row(0) == (f"<{text}>", None)
    assert render(df, pl.col("x")).row(0) == (text, None)


@pytest.mark.parametrize(
    ("series", "needle"),
    [
        (pl.Series([b"ab"]), r"dtype Binary: .*pl\.col\('x'\)\.cast\(pl\.String\).*bin\.encode\('base64'\)"),
        (pl.Series([object()], dtype=pl.Object), r"dtype Object: .*map_elements\(str, return_dtype=pl\.String\)"),
        (pl.Series([[b"a"]]), r"List\(Binary\), which contains Binary.*\.cast\(pl\.List\(pl\.String\)\)"),
        (pl.Series([{"a": b"x", "n": 1}]), r"Binary.*cast\(pl\.Struct\(\{'a': pl\.String, 'n': pl\.Int64\}\)\)"),
        (pl.Series([[{"k": b"x"}]]), r"cast\(pl\.List\(pl\.Struct\(\{'k': pl\.String\}\)\)\)"),
        (pl.Series([[b"a"]], dtype=pl.Array(pl.Binary, 1)), r"cast\(pl\.Array\(pl\.String, 1\)\)"),
        (pl.Series([1]).cast(pl.Extension("acme.money", pl.Int64)), r"Extension.*pl\.col\('x'\)\.ext\.storage\(\)"),
    ],
    ids=lambda v: str(v.dtype) if isinstance(v, pl.Series) else "",
)
def test_dtypes_without_text_form_are_template_errors(series: pl.Series, needle: str) -> None:
    df = pl.DataFrame({"x": series})
    with pytest.raises(TemplateError, match=r"column 'x' has .*" + needle):
        render(df, "Q: {x}")
    with pytest.raises(TemplateError, match=r"The prompt expression col\(\"x\"\) has dtype"):
        render(df, pl.col("x"))


def test_the_suggested_cast_makes_binary_renderable() -> None:
    df = pl.DataFrame({"x": [[{"k": b"hi"}]]})
    fixed = df.with_columns(pl.col("x").cast(pl.List(pl.Struct({"k": pl.String}))))
    assert render(fixed, "{x}").row(0) == ('[{"k":"hi"}]', None)


def test_null_dtype_column_is_never_sent() -> None:
    out = render(pl.DataFrame({"x": [None, None]}), "Q: {x}")
    assert out.rows() == [(None, "x"), (None, "x")]


@pytest.mark.parametrize(
    "series",
    [
        pl.Series([["a"], None]),
        pl.Series([{"k": 1}, None]),
        pl.Series([[1], None], dtype=pl.Array(pl.Int64, 1)),
        pl.Series([[{"key": "k", "value": 1}], None]).cast(pl.Map(pl.String, pl.Int64)),
        pl.Series([dt.timedelta(1), None]),
    ],
    ids=lambda s: str(s.dtype),
)
def test_null_nested_cell_gets_a_null_prompt(series: pl.Series) -> None:
    df = pl.DataFrame({"a": ["x", "y"], "x": series})
    for template in ["{a}: {x}", pl.col("x")]:
        prompt, null_col = render(df, template).get_columns()
        assert prompt[0] is not None and prompt[1] is None
        assert null_col.to_list() == [None, "x" if isinstance(template, str) else "<prompt expression>"]


def test_null_inside_an_expression_template() -> None:
    df = pl.DataFrame({"a": ["x", "y", None], "tags": [["t"], [], ["u"]]})
    out = render(df, pl.format("{}: {}", pl.col("a"), pl.col("tags").list.first()))
    assert out.rows() == [("x: t", None), (None, "<prompt expression>"), (None, "<prompt expression>")]


@pytest.mark.parametrize("template", ["", " ", "\n\t "])
def test_empty_template_is_rejected(template: str) -> None:
    with pytest.raises(TemplateError, match=r"is empty.*e\.g\. 'Classify: \{review\}'"):
        render(pl.DataFrame({"a": [1]}), template)


@pytest.mark.parametrize("template", [5, None, b"{a}", ["{a}"]])
def test_template_of_a_wrong_type_is_rejected(template: object) -> None:
    with pytest.raises(TemplateError, match=rf"str or a polars Expr, got {type(template).__name__}.*Hint"):
        render(pl.DataFrame({"a": [1]}), template)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        (pl.col("nope"), r'does not fit this frame: unable to find column "nope"'),
        (pl.col("a") + pl.col("b"), r"does not fit this frame: arithmetic on dtypes i64 and str is not allowed"),
        (pl.all(), r"yields 2 columns \('a', 'b'\); a prompt is one column"),
    ],
)
def test_broken_expression_templates_are_template_errors(expr: pl.Expr, needle: str) -> None:
    with pytest.raises(TemplateError, match=needle):
        render(pl.DataFrame({"a": [1], "b": ["x"]}), expr)


def test_expression_template_is_typed_without_running_user_functions() -> None:
    calls: list[int] = []

    def first_upper(s: pl.Series) -> pl.Series:
        calls.append(len(s))
        return pl.Series([s[0].upper()] * len(s))  # fails on an empty input, as user code may

    df = pl.DataFrame({"a": ["x", "y"]})
    assert render(df, pl.col("a").map_batches(first_upper, return_dtype=pl.String)).rows() == [("X", None)] * 2
    assert calls and set(calls) == {2}  # never called on an empty frame to find the dtype


def test_columns_named_like_polars_patterns_are_just_columns() -> None:
    # pl.col("*") is every column and pl.col("^a$") a regex: a template names one column, whatever its name.
    df = pl.DataFrame({"*": ["star", None], "^a$": [1, 2], "other": [[1], [2]]})
    assert render(df, "{*} / {^a$}").rows() == [("star / 1", None), (None, "*")]
