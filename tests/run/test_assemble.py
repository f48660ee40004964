"""Joining results by key: missing keys, duplicate lines, foreign keys."""

from __future__ import annotations

import json

import polars as pl

from polars_gemini.core.result_columns import LINE
from polars_gemini.prepare.plan import Limits, make_plan
from polars_gemini.prepare.requests import build_spec
from polars_gemini.run.assemble import answer_columns, join_rows, per_request
from polars_gemini.run.results import parse_lines


def _line(key: str, text: str) -> str:
    return json.dumps(
        {
            "key": key,
            "response": {"candidates": [{"content": {"parts": [{"text": text}]}, "finishReason": "STOP"}]},
        }
    )


def test_missing_duplicate_and_foreign_keys() -> None:
    df = pl.DataFrame({"t": ["a", "b", "c", "a"]})
    plan = make_plan(df, "{t}", build_spec("gemini-2.0-flash"), Limits())
    ka, kb, _kc = plan.requests.get_column("key").to_list()
    lines = pl.Series(LINE, [_line(kb, "B"), _line("not-ours", "X"), _line(ka, "A"), _line(ka, "A again")])
    by_request = per_request(plan, parse_lines(lines))
    out = join_rows(df, plan, answer_columns(plan, by_request, "response", ""), "response")
    assert out.get_column("response").to_list() == ["A", "B", None, "A"]
    assert out.get_column("response_error").to_list() == [
        None,
        None,
        "no result was returned for this request",
        None,
    ]


def test_answer_columns_may_take_any_name() -> None:
    """Schema fields and the output are the user's to name: `key`, `value`, `problem`, `*`, a regex, an internal one."""
    df = pl.DataFrame({"key": ["a", "b", None], "__pg_key": [1, 2, 3]})
    names = ["key", "value", "problem", "error", "text", "*", "^k.*$", "__pg_key", "__pg_row_key", "__pg_skip"]
    spec = build_spec("gemini-2.0-flash", schema=dict.fromkeys(names, pl.Int64))
    plan = make_plan(df, "{key}", spec, Limits())
    ka = plan.requests.get_column("key")[0]  # the request of row "a"; row "b" gets no result
    answer = json.dumps({name: i for i, name in enumerate(names)})
    by_request = per_request(plan, parse_lines(pl.Series(LINE, [_line(ka, answer)])))
    out = join_rows(df, plan, answer_columns(plan, by_request, "response", "p_"), "response")
    assert out.columns == ["key", "__pg_key", *[f"p_{n}" for n in names], "response_error"]
    assert out.row(0) == ("a", 1, *range(len(names)), None)
    assert out.get_column("response_error").to_list()[1:] == [
        "no result was returned for this request",
        "not sent: column 'key' is null in this row",
    ]
    bare = answer_columns(plan, by_request, "response", "")
    assert bare.columns[1:] == [*names, "response_error"]
    assert join_rows(df.drop("key", "__pg_key"), plan, bare, "response").row(0) == (*range(len(names)), None)


def test_text_mode_output_named_like_an_internal_column() -> None:
    df = pl.DataFrame({"t": ["a", "b"]})
    plan = make_plan(df, "{t}", build_spec("gemini-2.0-flash"), Limits())
    ka, kb = plan.requests.get_column("key").to_list()
    by_request = per_request(plan, parse_lines(pl.Series(LINE, [_line(ka, "A"), _line(kb, "B")])))
    out = join_rows(df, plan, answer_columns(plan, by_request, "key", ""), "key")
    assert out.to_dict(as_series=False) == {"t": ["a", "b"], "key": ["A", "B"], "key_error": [None, None]}
