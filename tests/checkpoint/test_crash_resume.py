"""Kill a checkpointed run with SIGKILL at every stage, resume it from a fresh process: every row exactly once,
no job created twice. Each test runs against a local directory and against a prefix on an S3-compatible server
(`place`); the workers get a remote checkpoint's credentials from their environment, as a scheduled job does."""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from polars_gemini.emulator import Emulator, responses
from testing_support import Place

WORKER = str(Path(__file__).with_name("crash_worker.py"))
ROWS = 40  # 21 distinct prompts -> 3 jobs of at most 8 requests


echo = responses.reply(lambda request: "echo: " + request.text)


LEASE = 3.0  # seconds: a killed worker's lease on a remote checkpoint runs out this long after its last renewal


def start(mode: str, emu: Emulator, place: Place, out: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, WORKER, mode, emu.url, place.checkpoint, str(out), str(ROWS)],
        env={**os.environ, **place.env, "POLARS_GEMINI_LEASE_SECONDS": str(LEASE), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_out_the_lease(place: Place) -> None:
    """Wait till the killed worker's lease on a remote checkpoint has run out (a directory's fcntl lock went with
    the process), and at least a moment, for a request the worker left in flight to land, as it would on the real
    service."""
    wait = 0.5
    if place.kind == "s3":  # the worker took the lease before its first call to the service
        lease = json.loads(place.read_raw("lease.json"))
        assert not lease.get("released"), "the killed worker could not have released its lease"
        assert lease["term"] == LEASE
        wait = max(wait, lease["expires_at"] - time.time() + 0.05)
    time.sleep(wait)


def kill_when(proc: subprocess.Popen, emu: Emulator, endpoint: str, timeout: float = 60.0) -> None:
    """SIGKILL `proc` as soon as the emulator has received a call to `endpoint` (answers are delayed by latency)."""
    deadline = time.monotonic() + timeout
    while emu.calls(endpoint) == 0:
        assert proc.poll() is None, f"worker ended before calling {endpoint}: {proc.communicate()[1].decode()[-2000:]}"
        assert time.monotonic() < deadline, f"no call to {endpoint}"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # reap it and close its pipes


def finish(emu: Emulator, place: Place, out: Path) -> pl.DataFrame:
    emu.settings.latency = 0.0
    wait_out_the_lease(place)
    proc = start("resume", emu, place, out)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    return pl.read_parquet(out)


def orphans(place: Place) -> set[str]:
    """A remote checkpoint's objects that its index does not point at (a directory has none)."""
    if place.kind == "dir":
        return set()
    live = set(json.loads(place.read_raw("index.json"))["files"].values())
    stored = place.stored()
    return {k for k in stored if k.startswith("objects/")} - live


def assert_no_orphans(place: Place) -> None:
    """What a killed worker uploaded but never pointed the index at was swept when the checkpoint was taken over."""
    assert orphans(place) == set()


def assert_complete(result: pl.DataFrame, emu: Emulator, place: Place) -> None:
    assert result.get_column("id").to_list() == list(range(ROWS))
    assert result.get_column("response_error").null_count() == ROWS
    expected = [f"echo: Summarize: {t}" for t in result.get_column("text")]
    assert result.get_column("response").to_list() == expected
    names = collections.Counter(job["metadata"]["displayName"] for job in emu.jobs.values())
    assert names and max(names.values()) == 1, f"a job was created twice: {names}"
    assert len(names) == 3
    assert_no_orphans(place)


@pytest.mark.parametrize("endpoint", ["files.upload_chunk", "batches.create", "batches.get", "files.download"])
def test_kill_at_a_network_stage_then_resume(place: Place, tmp_path: Path, endpoint: str) -> None:
    with Emulator(responder=echo, latency=0.3) as emu:
        proc = start("batch", emu, place, tmp_path / "out.parquet")
        kill_when(proc, emu, endpoint)
        assert_complete(finish(emu, place, tmp_path / "out.parquet"), emu, place)


@pytest.mark.parametrize("write", ["jobs.parquet", "results"])
def test_kill_before_submission_and_while_writing_results(place: Place, tmp_path: Path, write: str) -> None:
    with Emulator(responder=echo) as emu:
        proc = start("batch", emu, place, tmp_path / "out.parquet", {"POLARS_GEMINI_CRASH_AT": write})
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL
        if write == "jobs.parquet":
            assert emu.calls("batches.create") == 0 and emu.calls("files.upload_start") == 0
        if place.kind == "s3":  # killed between uploading the object and pointing the index at it (other threads
            left = orphans(place)  # collecting other jobs at that moment may have left theirs too)
            assert any(key.startswith(f"objects/{write.removesuffix('.parquet')}") for key in left), left
        assert_complete(finish(emu, place, tmp_path / "out.parquet"), emu, place)


def test_rerunning_the_same_call_resumes_it(place: Place, tmp_path: Path) -> None:
    with Emulator(responder=echo, latency=0.3) as emu:
        proc = start("batch", emu, place, tmp_path / "out.parquet")
        kill_when(proc, emu, "batches.get")
        emu.settings.latency = 0.0
        wait_out_the_lease(place)
        proc = start("batch", emu, place, tmp_path / "out.parquet")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-3000:]
        assert_complete(pl.read_parquet(tmp_path / "out.parquet"), emu, place)


STAGES = ["files.upload_chunk", "batches.create_embeddings", "batches.get", "files.download"]


@pytest.mark.parametrize("endpoint", STAGES)
def test_embedding_run_killed_at_a_network_stage_then_resumed(place: Place, tmp_path: Path, endpoint: str) -> None:
    with Emulator(latency=0.3) as emu:
        proc = start("embed", emu, place, tmp_path / "out.parquet")
        kill_when(proc, emu, endpoint)
        result = finish(emu, place, tmp_path / "out.parquet")
    assert result.get_column("id").to_list() == list(range(ROWS))
    assert result.get_column("embedding_error").null_count() == ROWS
    assert result.schema["embedding"] == pl.Array(pl.Float32, 16)
    for text, vector in zip(result.get_column("text"), result.get_column("embedding").to_list(), strict=True):
        values = responses.embedding(text, dimensions=16)
        norm = math.sqrt(sum(v * v for v in values))
        assert vector == pytest.approx([v / norm for v in values], abs=2e-6)
    names = collections.Counter(job["metadata"]["displayName"] for job in emu.jobs.values())
    assert len(names) == 3 and max(names.values()) == 1, f"a job was created twice: {names}"
    assert_no_orphans(place)
