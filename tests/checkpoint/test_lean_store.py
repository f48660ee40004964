"""A lean store (results on disk only) answers what polls and retry rounds ask exactly as the in-memory store does:
the standing result per key (an answer beats an error, a later result beats an earlier one), counts, settled keys."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from polars_gemini.checkpoint.files import JobRecord
from polars_gemini.checkpoint.store import Store
from polars_gemini.run.results import synthetic_errors

KEYS = [f"{random.Random(i).getrandbits(128):032x}" for i in range(400)]


def results(keys: list[str], seed: int) -> pl.DataFrame:
    """An answer or an error (retryable 13, or final 3) per key, at random."""
    rng = random.Random(seed)
    kinds = [rng.choice(["ok", "ok", "retry", "final"]) for _ in keys]
    frame = synthetic_errors(pl.Series("key", keys), 13, "boom")
    return frame.with_columns(
        pl.when(pl.Series(kinds) == "ok").then(pl.lit("answer")).alias("text"),
        pl.when(pl.Series(kinds) != "ok").then(pl.col("error")).alias("error"),
        pl.when(pl.Series(kinds) == "final").then(3).when(pl.Series(kinds) == "retry").then(13).alias("error_code"),
    )


@pytest.mark.parametrize("seed", range(6))
def test_lean_store_answers_like_the_in_memory_store(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    plain, lean, on_disk = Store(), Store(lean=True), Store(tmp_path / "ck", lean=True)
    for n in range(4):  # rounds: each a random subset of the keys, some answered again, some only failing
        keys = rng.sample(KEYS, rng.randint(1, len(KEYS)))
        frame = results(keys, seed * 10 + n)
        for store in (plain, lean, on_disk):
            job = JobRecord(f"job-{n}", "run", n + 1, 0, "file", len(keys))
            store.add_job(job, pl.Series("key", keys))
            store.add_results(job, frame)
    asked = pl.Series("key", [*KEYS, "not-a-hex-key"])
    for store in (lean, on_disk):
        assert store.counts(asked) == plain.counts(asked)
        assert store.settled(asked, [13]).to_list() == plain.settled(asked, [13]).to_list()
        assert store.latest().drop("line", strict=False).sort("key").equals(plain.latest().drop("line").sort("key"))
    on_disk.opened()
    on_disk.close()
    reopened = Store(tmp_path / "ck", lean=True)  # the standing table rebuilt from the files
    assert reopened.counts(asked) == plain.counts(asked)
    assert "line" not in pl.read_parquet(next((tmp_path / "ck" / "results").glob("*.parquet"))).columns
    reopened.close()
