"""Whole-column JSON decoding: spread over every core, and tolerant of bad rows (found by bisecting failing chunks,
so the common case, a column that decodes, costs one vectorized call). Used for result lines and for answers."""

from __future__ import annotations

import polars as pl

# Rows decoded one at a time once a failing chunk is this small: below it, bisecting costs more than it saves.
_BISECT_FLOOR = 32



def spread(series: pl.Series) -> pl.Series:
    """`series` in at least one chunk per Polars thread, without copying.

    An eager query evaluates a column chunk by chunk, in parallel: JSON parsing of a single-chunk column runs on
    one core while the others idle (measured on Polars 2.1: half the time on two cores).
    """
    threads = pl.thread_pool_size()
    if threads < 2 or series.n_chunks() >= threads or len(series) < 2 * threads:
        return series
    size = -(-len(series) // threads)
    return pl.concat([series.slice(start, size) for start in range(0, len(series), size)], rechunk=False)


def json_decode_tolerant(texts: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    """Decode `texts` as `dtype`; rows Polars cannot decode become null with their error message.

    One undecodable row makes `str.json_decode` fail for the whole column, so failing chunks are bisected to find the
    culprits; the common case (everything decodes) costs a single vectorized call.
    """
    values, errors = _decode_chunk(spread(texts), dtype)
    # Bisection appends chunks; list.eval over a multi-chunk column panics in Polars 2.1, so rechunk.
    return values.alias(texts.name).rechunk(), errors.rechunk()


def _json_decode(texts: pl.Series, dtype: pl.DataType) -> pl.Series:
    # In a frame query, not `Series.str.json_decode`, which on Polars 2.1 is ~3x slower at a million rows (it
    # does not work chunk by chunk on every core).
    return pl.DataFrame({"t": texts}).select(pl.col("t").str.json_decode(dtype)).to_series().alias(texts.name)


def _decode_chunk(texts: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    try:
        return _json_decode(texts, dtype), pl.Series(values=[None] * len(texts), dtype=pl.String)
    except pl.exceptions.PolarsError as exc:
        if len(texts) > _BISECT_FLOOR:
            mid = len(texts) // 2
            (v1, e1), (v2, e2) = _decode_chunk(texts[:mid], dtype), _decode_chunk(texts[mid:], dtype)
            return v1.append(v2), e1.append(e2)
        if len(texts) == 1:
            return pl.Series(values=[None], dtype=dtype), pl.Series(values=[_short(exc)], dtype=pl.String)
    # A small failing chunk: decode row by row (bounded to _BISECT_FLOOR rows per failing chunk).
    parts = [_decode_chunk(texts[i : i + 1], dtype) for i in range(len(texts))]
    return pl.concat([p[0] for p in parts]), pl.concat([p[1] for p in parts])


def _short(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return "answer does not match the schema: " + first.removeprefix("error deserializing JSON: ")[:200]
