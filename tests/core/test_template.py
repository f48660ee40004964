from __future__ import annotations

import polars as pl
import pytest

from polars_gemini import TemplateError
from polars_gemini._template import NULL_COLUMN, PROMPT, parse_template, prompt_exprs


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
