"""A lean store (results on disk only) answers what polls and retry rounds ask exactly as the in-memory store does:
the standing result per key (an answer beats an error, a later result beats an earlier one), counts, settled keys;
with its checkpoint in a local directory and under an S3 prefix (`place`)."""

from __future__ import annotations

import io
import random

import polars as pl
import pytest

from polars_gemini.checkpoint.files import JobRecord
from polars_gemini.checkpoint.location import open_location
from polars_gemini.checkpoint.store import Store
from polars_gemini.run.results import synthetic_errors
from testing_support import Place

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
def test_lean_store_answers_like_the_in_memory_store(place: Place, seed: int) -> None:
    rng = random.Random(seed)
    plain, lean = Store(), Store(lean=True)
    on_disk = Store(open_location(place.checkpoint, place.storage_options), lean=True)
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
    reopened = Store(open_location(place.checkpoint, place.storage_options), lean=True)  # rebuilt from the files
    assert reopened.counts(asked) == plain.counts(asked)
    assert len(place.names("results")) == 4
    assert "line" not in pl.read_parquet(io.BytesIO(place.read(place.names("results")[0]))).columns
    reopened.close()
