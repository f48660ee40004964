"""`python benchmarks/run.py --check`: the library and the per-row references compute the same things.

Run on 2,000 rows: the request files hold the same requests (compared as parsed JSON), and the ingested frames
agree on every answer and on which rows have an error (the messages are worded differently).
"""

from __future__ import annotations

import json

import polars as pl

import data
import stages
from polars_gemini.run.assemble import answer_columns, join_rows, per_request  # noqa: F401  # the code under check

ROWS = 2_000


def check_prepare(frame: pl.DataFrame) -> None:
    spec = stages.spec_for(typed=True)
    plan, files = stages.prepare_library(frame, spec)
    ours = [json.loads(line) for line in b"".join(files).splitlines()]
    theirs_bytes, row_keys = stages.prepare_per_row(frame, spec)
    theirs = [json.loads(line) for line in theirs_bytes.splitlines()]
    assert ours == theirs, "request files differ"
    assert plan.rows.get_column("key").to_list() == row_keys, "row keys differ"
    print(f"prepare: {len(ours):,} identical requests for {frame.height:,} rows")


def check_ingest(frame: pl.DataFrame, typed: bool) -> None:
    spec = stages.spec_for(typed)
    plan, _ = stages.prepare_library(frame, spec)
    results = data.results_file(plan.requests.get_column("key"), typed)
    ours = stages.ingest_library(results, frame, plan)
    theirs = stages.ingest_per_row(results, frame, plan.rows.get_column("key").to_list(), typed)
    error = f"{stages.OUTPUT}_error"
    assert ours.columns == theirs.columns, (ours.columns, theirs.columns)
    assert ours.schema == theirs.schema, (ours.schema, theirs.schema)
    assert ours.get_column(error).is_null().equals(theirs.get_column(error).is_null()), "error rows differ"
    assert ours.drop(error).equals(theirs.drop(error)), "answers differ"
    failed = ours.get_column(error).is_not_null().sum()
    print(f"ingest ({'typed' if typed else 'text'}): {ours.height:,} rows agree, {failed} with an error value")


def main() -> int:
    frame = data.reviews(ROWS)
    check_prepare(frame)
    check_ingest(frame, typed=False)
    check_ingest(frame, typed=True)
    return 0
