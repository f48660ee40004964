"""Join results back to the input rows by key: every row exactly once, in order, with its answer or an error."""

from __future__ import annotations

import polars as pl

from polars_gemini._decode import decode_answers
from polars_gemini._plan import SKIP, Plan
from polars_gemini._requests import KEY
from polars_gemini._results import ERROR, LINE, TEXT

_FOUND = "__pg_found"


def per_request(plan: Plan, results: pl.DataFrame) -> pl.DataFrame:
    """One row per planned request: its result, or why it has none (key missing from the results).

    Results are matched by key, never by position; a key reported twice keeps its first answer. Jobs that ended
    badly already left an error result per key (`_results.synthetic_errors`).
    """
    # The raw `line` column is the bulk of the results; only whether a line exists matters here.
    slim = results.select(pl.exclude(LINE), pl.lit(True).alias(_FOUND))
    first = slim.unique(subset=KEY, keep="first", maintain_order=True)
    joined = plan.requests.select(KEY).join(first, on=KEY, how="left", maintain_order="left")
    missing = pl.when(pl.col(_FOUND).is_null()).then(pl.lit("no result was returned for this request"))
    return joined.with_columns(pl.coalesce(ERROR, missing).alias(ERROR)).drop(_FOUND)


def answer_columns(plan: Plan, by_request: pl.DataFrame, output: str, prefix: str) -> pl.DataFrame:
    """The answer column(s) and the error column per request, decoded to the declared dtypes."""
    error_col = f"{output}_error"
    field = plan.spec.field
    if field is None:
        return by_request.select(
            KEY,
            pl.when(pl.col(ERROR).is_null()).then(pl.col(TEXT)).alias(output),
            pl.col(ERROR).alias(error_col),
        )
    decoded = decode_answers(by_request.get_column(TEXT).alias(TEXT), field)
    both = pl.concat([by_request.select(KEY, ERROR), decoded], how="horizontal")
    both = both.select(
        KEY,
        pl.when(pl.col(ERROR).is_null() & pl.col("problem").is_null()).then(pl.col("value")).alias("value"),
        pl.coalesce(ERROR, "problem").alias(error_col),
    )
    fields = both.get_column("value").struct.unnest()
    fields = fields.rename({name: f"{prefix}{name}" for name in fields.columns})
    return pl.concat([both.select(KEY), fields, both.select(error_col)], how="horizontal")


def join_rows(frame: pl.DataFrame, plan: Plan, answers: pl.DataFrame, output: str) -> pl.DataFrame:
    """The input frame with the answer columns appended, row order and count unchanged."""
    error_col = f"{output}_error"
    joined = plan.rows.join(answers, on=KEY, how="left", maintain_order="left")
    added = joined.with_columns(pl.coalesce(pl.col(SKIP), pl.col(error_col)).alias(error_col)).drop(KEY, SKIP)
    assert added.height == frame.height, "a join changed the number of rows"  # keys are unique in `answers`
    return pl.concat([frame, added], how="horizontal")
