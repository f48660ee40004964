"""A Vertex AI run killed with SIGKILL at each stage (before anything, after a shard is staged, while a create is in
flight, while polling, while storing results), then resumed from a fresh process: every row once, no job twice."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from vertex_support import echo

from polars_gemini.emulator import Emulator
from polars_gemini.emulator.gcs import GcsEmulator

WORKER = str(Path(__file__).with_name("vertex_worker.py"))
ROWS = 40  # 21 distinct prompts -> 3 jobs of at most 8 requests


def start(mode: str, emu: Emulator, gcs: GcsEmulator, bucket: str, tmp: Path, env: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:  # fmt: skip
    args = [sys.executable, WORKER, mode, emu.url, gcs.url, bucket, str(tmp / "ckpt"), str(tmp / "out.parquet")]
    return subprocess.Popen([*args, str(ROWS)], env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"worker ended before {what}: {proc.communicate()[1].decode()[-2000:]}"
        assert time.monotonic() < deadline, f"never reached {what}"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def finish(emu: Emulator, gcs: GcsEmulator, bucket: str, tmp: Path) -> pl.DataFrame:
    emu.settings.latency = 0.0
    time.sleep(0.5)  # a request the killed worker left in flight lands, as it would on the real service
    proc = start("resume", emu, gcs, bucket, tmp)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    return pl.read_parquet(tmp / "out.parquet")


def assert_complete(result: pl.DataFrame, emu: Emulator, gcs: GcsEmulator, bucket: str) -> None:
    assert result.get_column("id").to_list() == list(range(ROWS))
    assert result.get_column("response_error").null_count() == ROWS
    expected = [f"echo: Summarize: {t}" for t in result.get_column("text")]
    assert result.get_column("response").to_list() == expected
    names = collections.Counter(job["displayName"] for job in emu.jobs.values())
    assert len(names) == 3 and max(names.values()) == 1, f"a job was created twice: {names}"
    left = [b.name for b in gcs.client().list_blobs(bucket)]
    assert left == [], f"staging objects left behind: {left}"


def staged(gcs: GcsEmulator, bucket: str) -> Callable[[], bool]:
    return lambda: any(b.name.endswith("/input.jsonl") for b in gcs.client().list_blobs(bucket))


@pytest.mark.parametrize("stage", ["jobs.parquet", "staged", "vertex.batches.create", "vertex.batches.get",
                                   "results"])  # fmt: skip
def test_kill_at_each_stage_then_resume(tmp_path: Path, gcs: GcsEmulator, stage: str) -> None:
    bucket = f"crash-{uuid.uuid4().hex[:10]}"
    gcs.create_bucket(bucket)
    crash = {"POLARS_GEMINI_CRASH_AT": stage} if stage in ("jobs.parquet", "results") else None
    with Emulator(responder=echo, gcs=gcs, latency=0.0 if crash else 0.3) as emu:
        proc = start("batch", emu, gcs, bucket, tmp_path, crash)
        if crash:
            proc.communicate(timeout=120)
            assert proc.returncode == -signal.SIGKILL
            if stage == "jobs.parquet":
                assert emu.calls("vertex.batches.create") == 0 and not staged(gcs, bucket)()
        elif stage == "staged":
            kill_when(proc, staged(gcs, bucket), "a shard staged")
        else:
            kill_when(proc, lambda: emu.calls(stage) > 0, stage)
        assert_complete(finish(emu, gcs, bucket, tmp_path), emu, gcs, bucket)
