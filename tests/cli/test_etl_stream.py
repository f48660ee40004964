"""`polars-gemini run` and `resume` into a Parquet file stream: the plan in bounded memory (request files on disk),
the results kept in their files, the output written chunk by chunk; other formats take the collected path. Both give
the same rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from polars_gemini.emulator import Emulator
from testing_support import echo


def cli(emu: Emulator, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEMINI_API_KEY": "cli-test-key", "GOOGLE_GEMINI_BASE_URL": emu.url}
    return subprocess.run([sys.executable, "-m", "polars_gemini.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def reviews(path: Path) -> Path:
    texts = ["great", "bad", None, "great", "fine", "meh", None, "bad"] * 5
    pl.DataFrame({"id": range(len(texts)), "review": texts}).write_parquet(path)
    return path


def test_run_into_parquet_streams_and_equals_the_collected_csv(emu: Emulator, tmp_path: Path) -> None:
    src = reviews(tmp_path / "in.parquet")
    common = ("-t", "Label: {review}", "-m", "gemini-2.5-flash", "--poll-interval", "0.05", "--json",
              "--max-failed", "10")  # fmt: skip
    streamed = cli(emu, "run", str(src), "-o", str(tmp_path / "out.parquet"), "--checkpoint", str(tmp_path / "a"),
                   *common)  # fmt: skip
    collected = cli(emu, "run", str(src), "-o", str(tmp_path / "out.csv"), "--checkpoint", str(tmp_path / "b"),
                    *common)  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr
    assert collected.returncode == 0, collected.stderr
    got = pl.read_parquet(tmp_path / "out.parquet")
    expected = pl.read_csv(tmp_path / "out.csv", schema=got.schema)
    assert got.equals(expected)
    assert got.get_column("response").drop_nulls().to_list() == [
        f"echo: Label: {r}" for r in got.get_column("review").drop_nulls()
    ]
    report = json.loads(streamed.stdout)
    assert report["rows"] == 40 and report["failed"] == 10 and report["status"] == "done"
    other = json.loads(collected.stdout)
    assert [report[k] for k in ("rows", "failed", "requests", "done")] == [other[k] for k in ("rows", "failed",
                                                                                            "requests", "done")]
    # Streamed: requests rendered into request files, results kept without their raw lines.
    assert list((tmp_path / "a" / "inputs").glob("*/requests-*.jsonl"))
    assert not (tmp_path / "b" / "inputs").exists()
    results = pl.read_parquet(next((tmp_path / "a" / "results").glob("*.parquet")))
    assert "line" not in results.columns


def test_resume_into_parquet_streams(tmp_path: Path) -> None:
    src, ckpt = reviews(tmp_path / "in.parquet"), tmp_path / "ckpt"
    with Emulator(responder=echo, pending_seconds=600) as emu:
        proc = cli(emu, "submit", str(src), "-t", "L: {review}", "-m", "gemini-2.5-flash", "--checkpoint", str(ckpt))
        assert proc.returncode == 0, proc.stderr
        emu.advance_time(601)
        done = cli(emu, "resume", str(ckpt), "-o", str(tmp_path / "out.parquet"), "--poll-interval", "0.05",
                   "--json", "--max-failed", "10")  # fmt: skip
        assert done.returncode == 0, done.stderr
        again = cli(emu, "resume", str(ckpt), "-o", str(tmp_path / "out.ipc"), "--poll-interval", "0.05",
                    "--max-failed", "10")  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert len(emu.jobs) == 1
    got = pl.read_parquet(tmp_path / "out.parquet")
    assert got.equals(pl.read_ipc(tmp_path / "out.ipc"))
    assert got.get_column("id").to_list() == list(range(40))
    assert json.loads(done.stdout)["rows"] == 40 and json.loads(done.stdout)["failed"] == 10
