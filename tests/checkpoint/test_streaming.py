"""A LazyFrame larger than the memory budget streams into sharded request files, resumably; with the checkpoint in a
local directory and under an S3 prefix (`place`)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from polars_gemini.emulator import Emulator, responses
from testing_support import Place

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}


echo = responses.reply(lambda request: "echo: " + request.text)


def source(tmp_path: Path, rows: int = 6_000) -> pl.LazyFrame:
    path = tmp_path / "input.parquet"
    text = pl.format("review {} {}", pl.int_range(pl.len()) % 2_500, pl.lit("lorem ipsum dolor sit amet " * 8))
    pl.select(pl.int_range(rows).alias("id")).with_columns(text.alias("t")).write_parquet(path, row_group_size=500)
    return pl.scan_parquet(path)


def test_lazy_scan_streams_into_sharded_request_files(place: Place, tmp_path: Path) -> None:
    lf = source(tmp_path)
    budget = 2_000_000  # far below the frame's in-memory size once rendered: forces many small chunks
    assert lf.collect().estimated_size() * 2 > budget
    with Emulator(responder=echo) as emu:
        out = lf.gemini.batch("{t}", model="gemini-2.0-flash", client=emu.client(), **place.kwargs,
                              memory_budget=budget, file_limit_bytes=200_000, **FAST)  # fmt: skip
        files = [place.read(name) for name in place.names("inputs") if name.rpartition("/")[2].startswith("requests-")]
        assert len(files) >= 4  # sharded by the file limit
        assert emu.calls("files.upload_start") == len(files) == emu.calls("batches.create")
        lines = [line for f in files for line in f.splitlines()]
        assert len(lines) == 2_500  # one line per distinct prompt, deduplicated across chunks
        assert all(len(f) <= 200_000 for f in files)
    assert out.get_column("id").to_list() == list(range(6_000))
    assert (out.get_column("response") == "echo: " + out.get_column("t")).all()


def test_streamed_run_retries_and_resumes(place: Place, tmp_path: Path) -> None:
    lf = source(tmp_path, rows=1_200)
    with Emulator(responder=echo) as emu:
        emu.end_next_job("EXPIRED")
        kwargs = {"model": "gemini-2.0-flash", **place.kwargs, "memory_budget": 200_000, **FAST}
        out = lf.gemini.batch("{t}", client=emu.client(), file_limit_bytes=100_000, **kwargs)
        assert out.get_column("response_error").null_count() == 1_200  # the expired shard was retried
        created = emu.calls("batches.create")
        again = lf.gemini.batch("{t}", client=emu.client(), file_limit_bytes=100_000, **kwargs)
        assert emu.calls("batches.create") == created and again.equals(out)
