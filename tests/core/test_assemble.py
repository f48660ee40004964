"""Joining results by key: missing keys, duplicate lines, foreign keys."""

from __future__ import annotations

import json

import polars as pl

from polars_gemini._assemble import answer_columns, join_rows, per_request
from polars_gemini._plan import Limits, make_plan
from polars_gemini._requests import build_spec
from polars_gemini._results import LINE, parse_lines


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
