"""Join results back to the input rows by key: every row exactly once, in order, with its answer or an error."""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from polars_gemini.core.result_columns import EMBEDDING, ERROR, LINE, TEXT
from polars_gemini.prepare.plan import SKIP, Plan
from polars_gemini.prepare.requests import KEY
from polars_gemini.prepare.schema import Field, check_names
from polars_gemini.run.decode import decode_answers

_FOUND = "__pg_found"
_NORMALIZE_ROWS = 16_384  # embedding rows normalized at a time


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


def per_row(plan: Plan, results: pl.DataFrame, standing: pl.Series) -> pl.DataFrame:
    """One row per input row, in order: its request's standing result (`standing`: positions in `results`, one per
    key), gathered from `results` in one pass, with the reason in `error` where there is none (the row was not sent,
    or no result came back). For wide results (vectors), instead of `per_request` and `join_rows`, which copy every
    value twice more."""
    positions = results.select(KEY).with_row_index(_FOUND)[standing]
    rows = plan.rows.select(KEY, SKIP).join(positions, on=KEY, how="left", maintain_order="left")
    found = rows.get_column(_FOUND)
    gathered = results.select(pl.exclude(KEY, LINE).gather(found))
    missing = pl.when(pl.col(_FOUND).is_null()).then(pl.lit("no result was returned for this request"))
    reason = pl.DataFrame([rows.get_column(SKIP), found, gathered.get_column(ERROR)]).select(
        pl.coalesce(SKIP, ERROR, missing).alias(ERROR)
    )
    return gathered.with_columns(reason.get_column(ERROR)).insert_column(0, rows.get_column(KEY))


def answer_columns(plan: Plan, by_request: pl.DataFrame, output: str, prefix: str) -> pl.DataFrame:
    """The answer column(s) and the error column per request, decoded to the declared dtypes.

    The first column is the request key, under a name none of the others has (schema fields are the user's to name,
    `key` included); `join_rows` finds it by position.
    """
    error_col = f"{output}_error"
    field = plan.spec.field
    if field is None:
        answers = by_request.select(
            pl.when(pl.col(ERROR).is_null()).then(pl.col(TEXT)).alias(output), pl.col(ERROR).alias(error_col)
        )
    else:
        check_names(field, output, prefix)  # `submit` checks it before sending; this keeps the frame well-formed
        decoded = decode_answers(by_request.get_column(TEXT), field)
        both = (
            by_request.select(ERROR)
            .hstack(decoded)
            .select(
                pl.when(pl.col(ERROR).is_null()).then(pl.col("value")).alias("value"),
                pl.coalesce(ERROR, "problem").alias(ERROR),
            )
        )
        answers = _unnest(both.get_column("value"), field, prefix).hstack([both.get_column(ERROR).alias(error_col)])
    return answers.insert_column(0, by_request.get_column(KEY).alias(_fresh("__pg_key", answers.columns)))


def embedding_columns(by_request: pl.DataFrame, output: str, dimensions: int | None, normalize: bool) -> pl.DataFrame:
    """The embedding column, `Array(Float32, dimensions)`, and the error column per request (key first, as
    `answer_columns` gives them).

    With `normalize`, each vector is scaled to unit length (the service normalizes only full-size vectors; a
    truncated one is a prefix of it). All whole-column work: one cast from the lists, one norm per row.
    `dimensions` None (a model this library does not know): the size the vectors came back with.
    """
    error_col = f"{output}_error"
    lists = by_request.get_column(EMBEDDING) if EMBEDDING in by_request.columns else None
    if lists is None:
        lists = pl.Series(EMBEDDING, [None] * by_request.height, dtype=pl.List(pl.Float32))
    if dimensions is None:
        sizes = lists.list.len().drop_nulls()
        dimensions = int(sizes.mode().sort().item(0)) if sizes.len() else 0
    ok = by_request.get_column(ERROR).is_null() & (lists.list.len() == dimensions).fill_null(False)
    vectors = pl.DataFrame({"v": lists})
    # Masking copies every value: only when a row that is not ok has a vector (rare); the cast itself is zero-copy.
    if (lists.is_not_null() & ~ok).any():
        vectors = pl.DataFrame({"v": lists, "ok": ok}).select(pl.when(pl.col("ok")).then(pl.col("v")).alias("v"))
    vectors = vectors.select(pl.col("v").cast(pl.Array(pl.Float32, dimensions)))
    degenerate = pl.Series("d", [False] * by_request.height, dtype=pl.Boolean)
    if normalize and dimensions > 0:
        v = pl.col("v")
        # The norms first (a small column), then one division: the only copy of the values.
        norms = vectors.select((v * v).arr.sum().sqrt().alias("n")).get_column("n")
        # No unit vector exists for all zeros, and an overflowing norm (|values| ~1e19) would give zeros: errors.
        degenerate = ((norms == 0) | norms.is_infinite() | norms.is_nan()).fill_null(False).alias("d")
        safe = pl.select(pl.when(degenerate).then(pl.lit(1.0, pl.Float32)).otherwise(norms)).to_series()
        # Divided slice by slice: a whole-column division first joins the parsed chunks into one copy (2x the
        # values at the peak); slices are views, so only the result is new.
        step = _NORMALIZE_ROWS
        vectors = pl.concat(
            [part.select(v / pl.lit(safe.slice(i * step, part.height))) for i, part in
             enumerate(vectors.iter_slices(step))] or [vectors],
            rechunk=False,
        )  # fmt: skip
        if degenerate.any():
            vectors = vectors.with_columns(pl.when(~degenerate).then(v).alias("v"))
    wrong = pl.format("the embedding has {} values, not {}", pl.col("n"), pl.lit(dimensions))
    cannot = pl.lit("the embedding cannot be normalized (all zeros, or too large); pass normalize=False to keep it")
    errors = pl.DataFrame({"e": by_request.get_column(ERROR), "ok": ok, "n": lists.list.len(), "d": degenerate})
    errors = errors.select(
        pl.coalesce(
            pl.col("e"),
            pl.when(~pl.col("ok") & pl.col("n").is_not_null()).then(wrong),
            pl.when(pl.col("d")).then(cannot),
        ).alias(error_col)
    )
    answers = pl.DataFrame([vectors.get_column("v").alias(output), errors.get_column(error_col)])
    return answers.insert_column(0, by_request.get_column(KEY).alias(_fresh("__pg_key", answers.columns)))


def _unnest(values: pl.Series, field: Field, prefix: str) -> pl.DataFrame:
    """One column per schema field, named `prefix` + field name; any name, even one Polars would read as a pattern."""
    positional = [f"f{i}" for i in range(len(field.children))]
    frame = values.struct.rename_fields(positional).struct.unnest()
    return frame.rename({p: f"{prefix}{name}" for p, (name, _) in zip(positional, field.children, strict=True)})


def _fresh(base: str, taken: Collection[str]) -> str:
    """`base`, lengthened until it is the name of no column in `taken`: internal columns never shadow a user's."""
    name = base
    while name in taken:
        name += "_"
    return name


def join_rows(frame: pl.DataFrame, plan: Plan, answers: pl.DataFrame, output: str) -> pl.DataFrame:
    """The input frame with the answer columns appended, row order and count unchanged.

    `answers`: the request key first (as `answer_columns` makes it), then the columns to append.
    """
    error_col = f"{output}_error"
    key = answers.columns[0]
    row_key = _fresh("__pg_row_key", answers.columns)
    skip = _fresh(SKIP, [*answers.columns, row_key])
    rows = plan.rows.select(pl.col(KEY).alias(row_key), pl.col(SKIP).alias(skip))
    joined = rows.join(answers, left_on=row_key, right_on=key, how="left", maintain_order="left")
    added = joined.with_columns(pl.coalesce(pl.col(skip), pl.col(error_col)).alias(error_col)).drop(row_key, skip)
    assert added.height == frame.height, "a join changed the number of rows"  # keys are unique in `answers`
    return pl.concat([frame, added], how="horizontal")
