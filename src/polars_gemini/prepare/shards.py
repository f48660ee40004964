"""Greedy, order-preserving split of requests into job shards that never exceed a byte or a count limit."""

from __future__ import annotations

import polars as pl


def shard_ids(
    sizes: pl.Series, budget: int, max_count: int | None = None, *, fill_bytes: int = 0, fill_count: int = 0
) -> pl.Series:
    """Shard number (from 0) of each request: contiguous runs, each under `budget` bytes and `max_count` requests.

    `fill_bytes`/`fill_count` say how full shard 0 already is (streaming appends to an open file). One request
    larger than `budget` gets a shard of its own (callers refuse such requests before this). The loop runs once
    per shard, not per request: each boundary is a binary search in the cumulative sizes.
    """
    n, per_job = len(sizes), max_count or len(sizes) or 1
    cum = sizes.cast(pl.Int64).cum_sum()
    shards: list[int] = []
    lengths: list[int] = []
    start, shard, used, room = 0, 0, fill_bytes, per_job - fill_count
    while start < n:
        before = int(cum[start - 1]) if start else 0
        end = min(int(cum.search_sorted(before + budget - used, side="right")), start + max(room, 0), n)
        if end == start and (used or room <= 0):  # the open shard is full: start a fresh one
            shard, used, room = shard + 1, 0, per_job
            continue
        end = max(end, start + 1)
        shards.append(shard)
        lengths.append(end - start)
        start, shard, used, room = end, shard + 1, 0, per_job
    if not shards:
        return pl.Series("shard", [], dtype=pl.UInt32)
    ids = pl.Series("shard", shards, dtype=pl.UInt32).repeat_by(pl.Series(lengths, dtype=pl.UInt32))
    flat: pl.Series = ids.explode().rename("shard")
    return flat
