"""Checkpoint behaviour in one process: incremental re-runs, retries with attempt counts, locks, corruption, status."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini import CheckpointCorruptedError, CheckpointError, CheckpointLockedError
from polars_gemini.emulator import EmulatedError, Emulator, ResponderRequest, responses

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}
SECRET = "AIza-checkpoint-secret-0123456789"


def echo(request: ResponderRequest) -> dict:
    return responses.text("echo: " + request.text)(request)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(responder=echo) as emulator:
        yield emulator


def run(emu: Emulator, df: pl.DataFrame, ckpt: Path, template: str = "{t}", **kwargs: object) -> pl.DataFrame:
    client = emu.client()
    client._api_client.api_key = SECRET  # the key a user's client carries: it must never reach the directory
    return df.gemini.batch(template, model="gemini-2.0-flash", client=client, checkpoint=ckpt, **FAST, **kwargs)


def sent_prompts(emu: Emulator) -> list[str]:
    bodies = [r.body_json for r in emu.requests if r.endpoint == "batches.create"]
    return [
        req["request"]["contents"][0]["parts"][0]["text"]
        for body in bodies
        for req in body["batch"]["inputConfig"]["requests"]["requests"]
    ]


def test_incremental_rerun_sends_only_new_requests(emu: Emulator, tmp_path: Path) -> None:
    first = pl.DataFrame({"t": [f"r{i}" for i in range(10)]})
    run(emu, first, tmp_path)
    more = pl.DataFrame({"t": [f"r{i}" for i in range(15)]})
    out = run(emu, more, tmp_path)
    assert sorted(sent_prompts(emu)) == sorted([f"r{i}" for i in range(10)] + [f"r{i}" for i in range(10, 15)])
    assert out.get_column("response").to_list() == [f"echo: r{i}" for i in range(15)]
    again = run(emu, more, tmp_path)  # everything stored: no job at all
    assert emu.calls("batches.create") == 2
    assert again.equals(out)


def test_changed_template_or_model_reuses_nothing(emu: Emulator, tmp_path: Path) -> None:
    df = pl.DataFrame({"t": ["a", "b"]})
    run(emu, df, tmp_path)
    out = run(emu, df, tmp_path, template="Q: {t}")
    assert out.get_column("response").to_list() == ["echo: Q: a", "echo: Q: b"]
    run(emu, df, tmp_path, template="Q: {t}", config={"temperature": 0.5})
    assert emu.calls("batches.create") == 3


def test_retry_rounds_record_attempts(emu: Emulator, tmp_path: Path) -> None:
    calls: dict[str, int] = {}

    def flaky(request: ResponderRequest) -> dict:
        calls[request.text] = calls.get(request.text, 0) + 1
        if request.text == "flaky" and calls["flaky"] < 3:
            raise EmulatedError(500, "transient", "INTERNAL")
        if request.text == "never":
            raise EmulatedError(503, "still down", "UNAVAILABLE")
        return echo(request)

    emu.settings.responder = flaky
    out = run(emu, pl.DataFrame({"t": ["ok", "flaky", "never"]}), tmp_path, max_retries=2)
    assert out.get_column("response").to_list() == ["echo: ok", "echo: flaky", None]
    assert "still down" in out.get_column("response_error")[2]
    results = pl.concat([pl.read_parquet(p) for p in sorted((tmp_path / "results").glob("*.parquet"))])
    attempts = results.group_by("key").agg(pl.col("attempt").max()).get_column("attempt").sort().to_list()
    assert attempts == [1, 3, 3]
    assert calls == {"ok": 1, "flaky": 3, "never": 3}


def test_a_second_process_gets_a_lock_error(emu: Emulator, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from polars_gemini.checkpoint.store import Store; import pathlib, time; "
         f"s = Store(pathlib.Path({str(tmp_path)!r})); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        with pytest.raises(CheckpointLockedError, match=rf"in use by another process \(pid {holder.pid}\)"):
            run(emu, pl.DataFrame({"t": ["a"]}), tmp_path)
        assert emu.requests == []
    finally:
        holder.kill()
        holder.communicate()


@pytest.mark.parametrize("name", ["jobs.parquet", "manifest.json", "results"])
def test_corrupted_files_are_reported_by_name_never_reset(emu: Emulator, tmp_path: Path, name: str) -> None:
    df = pl.DataFrame({"t": ["a", "b"]})
    run(emu, df, tmp_path)
    target = next((tmp_path / "results").glob("*.parquet")) if name == "results" else tmp_path / name
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    with pytest.raises(CheckpointCorruptedError, match=target.name):
        run(emu, df, tmp_path)
    assert emu.calls("batches.create") == 1


def test_status_offline_and_cli(emu: Emulator, tmp_path: Path) -> None:
    emu.settings.responder = responses.when(lambda r: r.text == "bad", responses.error(400, "no"), echo)
    run(emu, pl.DataFrame({"t": ["a", "bad", None, "a"]}), tmp_path)
    status = polars_gemini.checkpoint_status(tmp_path)
    assert (status.rows, status.done, status.failed, status.pending) == (4, 2, 2, 0)
    assert status.jobs.get_column("state").to_list() == ["SUCCEEDED"]
    assert status.actual_cost is not None and status.actual_cost > 0
    printed = subprocess.run(
        [sys.executable, "-m", "polars_gemini.cli.main", "status", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "4 = 2 done + 2 failed + 0 pending" in printed and "SUCCEEDED" in printed


def test_input_files_are_deleted_unless_kept(emu: Emulator, tmp_path: Path) -> None:
    df = pl.DataFrame({"t": ["a", "b"]})
    run(emu, df, tmp_path / "one", inline_limit_bytes=1)
    assert not [f for f in emu.files.values() if f.get("displayName", "").endswith("-input")]
    run(emu, df, tmp_path / "two", inline_limit_bytes=1, keep_files=True, system_instruction="x")
    assert len([f for f in emu.files.values() if f.get("displayName", "").endswith("-input")]) == 1


def test_the_api_key_never_reaches_the_checkpoint(emu: Emulator, tmp_path: Path) -> None:
    run(emu, pl.DataFrame({"t": ["a", "b"]}), tmp_path, inline_limit_bytes=1)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_run_status_reports_from_the_checkpoint_alone(emu: Emulator, tmp_path: Path) -> None:
    run(emu, pl.DataFrame({"t": ["a", "b", "c"]}), tmp_path)
    calls = len(emu.requests)
    resumed = polars_gemini.resume(tmp_path, client=emu.client())  # everything is stored: nothing to poll or send
    status = resumed.status()
    assert (status.requests, status.done, status.failed, status.pending) == (3, 3, 0, 0)
    assert status.estimated_cost is not None and status.actual_cost is not None and status.actual_cost > 0
    assert "estimated" in repr(status) and len(emu.requests) == calls


def test_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no manifest\.json"):
        polars_gemini.resume(tmp_path)


def test_checkpoint_files_hold_what_the_docs_promise(emu: Emulator, tmp_path: Path) -> None:
    from polars_gemini.emulator import default_responder

    emu.settings.responder = default_responder
    df = pl.DataFrame({"t": ["a", "b", "a"]})
    run(emu, df, tmp_path, schema={"label": pl.Enum(["x", "y"]), "n": pl.Int8}, inline_limit_bytes=1)
    requests = pl.read_parquet(tmp_path / "requests.parquet")
    assert requests.get_column("rows").to_list() == [[0, 2], [1]]
    assert requests.get_column("estimated_input_tokens").min() > 0  # type: ignore[operator]
    jobs = pl.read_parquet(tmp_path / "jobs.parquet")
    assert set(jobs.columns) >= {"name", "display_name", "shard", "state", "created_at", "input_file", "result_file"}
    assert jobs.get_column("result_file").str.starts_with("files/batch-").all()
    results = pl.read_parquet(next((tmp_path / "results").glob("*.parquet")))
    assert set(results.columns) >= {"key", "line", "answer", "usage", "error", "attempt"}
    assert results.schema["answer"] == pl.Struct({"label": pl.Enum(["x", "y"]), "n": pl.Int8})
    manifest = (tmp_path / "manifest.json").read_text()
    assert '"model": "gemini-2.0-flash"' in manifest and '"library_version"' in manifest


def test_batch_releases_the_lock_when_it_returns(emu: Emulator, tmp_path: Path) -> None:
    run(emu, pl.DataFrame({"t": ["a"]}), tmp_path)
    probe = subprocess.run(
        [sys.executable, "-c", f"from polars_gemini.checkpoint.store import Store; import pathlib; "
         f"Store(pathlib.Path({str(tmp_path)!r})); print('opened')"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert probe.stdout.strip() == "opened", probe.stderr
