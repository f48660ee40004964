"""Checkpoint behaviour in one process: incremental re-runs, retries with attempt counts, locks, corruption, status.

Every test runs twice (`place`): with the checkpoint in a local directory and under a prefix of an S3-compatible
server (moto, on 127.0.0.1)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini import CheckpointCorruptedError, CheckpointError, CheckpointLockedError
from polars_gemini.emulator import EmulatedError, Emulator, ResponderRequest, responses
from testing_support import Place, make_place

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}
SECRET = "AIza-checkpoint-secret-0123456789"


echo = responses.reply(lambda request: "echo: " + request.text)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(responder=echo) as emulator:
        yield emulator


def run(emu: Emulator, df: pl.DataFrame, place: Place, template: str = "{t}", **kwargs: object) -> pl.DataFrame:
    client = emu.client()
    client._api_client.api_key = SECRET  # the key a user's client carries: it must never reach the checkpoint
    return df.gemini.batch(template, model="gemini-2.0-flash", client=client, **place.kwargs, **FAST, **kwargs)


def parquet(place: Place, relative: str) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(place.read(relative)))


def worker_env(place: Place) -> dict[str, str]:
    """A subprocess's environment: a remote checkpoint's credentials come from it, as a scheduled job has them."""
    return {**os.environ, **place.env}


def sent_prompts(emu: Emulator) -> list[str]:
    bodies = [r.body_json for r in emu.requests if r.endpoint == "batches.create"]
    return [
        req["request"]["contents"][0]["parts"][0]["text"]
        for body in bodies
        for req in body["batch"]["inputConfig"]["requests"]["requests"]
    ]


def test_incremental_rerun_sends_only_new_requests(emu: Emulator, place: Place) -> None:
    first = pl.DataFrame({"t": [f"r{i}" for i in range(10)]})
    run(emu, first, place)
    more = pl.DataFrame({"t": [f"r{i}" for i in range(15)]})
    out = run(emu, more, place)
    assert sorted(sent_prompts(emu)) == sorted([f"r{i}" for i in range(10)] + [f"r{i}" for i in range(10, 15)])
    assert out.get_column("response").to_list() == [f"echo: r{i}" for i in range(15)]
    again = run(emu, more, place)  # everything stored: no job at all
    assert emu.calls("batches.create") == 2
    assert again.equals(out)


def test_changed_template_or_model_reuses_nothing(emu: Emulator, place: Place) -> None:
    df = pl.DataFrame({"t": ["a", "b"]})
    run(emu, df, place)
    out = run(emu, df, place, template="Q: {t}")
    assert out.get_column("response").to_list() == ["echo: Q: a", "echo: Q: b"]
    run(emu, df, place, template="Q: {t}", config={"temperature": 0.5})
    assert emu.calls("batches.create") == 3


def test_retry_rounds_record_attempts(emu: Emulator, place: Place) -> None:
    calls: dict[str, int] = {}

    def flaky(request: ResponderRequest) -> dict:
        calls[request.text] = calls.get(request.text, 0) + 1
        if request.text == "flaky" and calls["flaky"] < 3:
            raise EmulatedError(500, "transient", "INTERNAL")
        if request.text == "never":
            raise EmulatedError(503, "still down", "UNAVAILABLE")
        return echo(request)

    emu.settings.responder = flaky
    out = run(emu, pl.DataFrame({"t": ["ok", "flaky", "never"]}), place, max_retries=2)
    assert out.get_column("response").to_list() == ["echo: ok", "echo: flaky", None]
    assert "still down" in out.get_column("response_error")[2]
    results = pl.concat([parquet(place, name) for name in place.names("results")])
    attempts = results.group_by("key").agg(pl.col("attempt").max()).get_column("attempt").sort().to_list()
    assert attempts == [1, 3, 3]
    assert calls == {"ok": 1, "flaky": 3, "never": 3}


HOLD = """import sys, time
from polars_gemini.checkpoint.location import open_location
from polars_gemini.checkpoint.store import Store
s = Store(open_location(sys.argv[1]))
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_process_gets_a_lock_error(emu: Emulator, place: Place) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, place.checkpoint], env=worker_env(place),
                              stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        # a directory: an fcntl lock naming the holder's pid; object storage: its lease, naming host and pid
        holding = r"another process \(pid" if place.kind == "dir" else r"another worker \(.+, pid"
        with pytest.raises(CheckpointLockedError, match=rf"in use by {holding} {holder.pid}\)"):
            run(emu, pl.DataFrame({"t": ["a"]}), place)
        assert emu.requests == []
        if place.kind == "s3":  # the refused run left the holder's lease alone
            assert json.loads(place.read_raw("lease.json"))["pid"] == holder.pid
    finally:
        holder.kill()
        holder.communicate()


@pytest.mark.parametrize("name", ["jobs.parquet", "manifest.json", "results"])
def test_corrupted_files_are_reported_by_name_never_reset(emu: Emulator, place: Place, name: str) -> None:
    df = pl.DataFrame({"t": ["a", "b"]})
    run(emu, df, place)
    target = place.names("results")[0] if name == "results" else name
    whole = place.read(target)
    place.overwrite(target, whole[: len(whole) // 2])  # a remote one: the object the index points at
    with pytest.raises(CheckpointCorruptedError, match=Path(target).name):
        run(emu, df, place)
    assert emu.calls("batches.create") == 1
    assert place.read(target) == whole[: len(whole) // 2]  # reported, not reset


def test_status_offline_and_cli(emu: Emulator, place: Place) -> None:
    emu.settings.responder = responses.when(lambda r: r.text == "bad", responses.error(400, "no"), echo)
    run(emu, pl.DataFrame({"t": ["a", "bad", None, "a"]}), place)
    status = polars_gemini.checkpoint_status(**place.kwargs)
    assert (status.rows, status.done, status.failed, status.pending) == (4, 2, 2, 0)
    assert status.jobs.get_column("state").to_list() == ["SUCCEEDED"]
    assert status.actual_cost is not None and status.actual_cost > 0
    printed = subprocess.run(
        [sys.executable, "-m", "polars_gemini.cli.main", "status", place.checkpoint],
        capture_output=True,
        text=True,
        check=True,
        env=worker_env(place),
    ).stdout
    assert "4 = 2 done + 2 failed + 0 pending" in printed and "SUCCEEDED" in printed


def test_input_files_are_deleted_unless_kept(emu: Emulator, place: Place, tmp_path: Path) -> None:
    df = pl.DataFrame({"t": ["a", "b"]})
    one, two = (make_place(place.kind, tmp_path, place.s3, name) for name in ("one", "two"))
    run(emu, df, one, inline_limit_bytes=1)
    assert not [f for f in emu.files.values() if f.get("displayName", "").endswith("-input")]
    run(emu, df, two, inline_limit_bytes=1, keep_files=True, system_instruction="x")
    assert len([f for f in emu.files.values() if f.get("displayName", "").endswith("-input")]) == 1


def test_the_api_key_and_local_paths_never_reach_the_checkpoint(emu: Emulator, place: Place) -> None:
    run(emu, pl.DataFrame({"t": ["a", "b"]}), place, inline_limit_bytes=1)
    keys = place.stored()
    assert "manifest.json" in keys if place.kind == "dir" else {"index.json", "lease.json"} <= set(keys)
    for key in keys:  # every file, or every object (the index and the lease too)
        body = place.read_raw(key)
        assert SECRET.encode() not in body, key
        # no file of the machine that wrote it (a remote one's local cache, a local one's own absolute path) is
        # named: the checkpoint can be moved, or resumed on another machine
        assert tempfile.gettempdir().encode() + b"/" not in body, key


def test_run_status_reports_from_the_checkpoint_alone(emu: Emulator, place: Place) -> None:
    run(emu, pl.DataFrame({"t": ["a", "b", "c"]}), place)
    calls = len(emu.requests)
    resumed = polars_gemini.resume(**place.kwargs, client=emu.client())  # everything stored: nothing to poll or send
    status = resumed.status()
    assert (status.requests, status.done, status.failed, status.pending) == (3, 3, 0, 0)
    assert status.estimated_cost is not None and status.actual_cost is not None and status.actual_cost > 0
    assert "estimated" in repr(status) and len(emu.requests) == calls


def test_resume_needs_a_checkpoint(place: Place) -> None:
    with pytest.raises(CheckpointError, match=r"holds no run \(no manifest\.json\)"):
        polars_gemini.resume(**place.kwargs)


def test_checkpoint_files_hold_what_the_docs_promise(emu: Emulator, place: Place) -> None:
    from polars_gemini.emulator import default_responder

    emu.settings.responder = default_responder
    df = pl.DataFrame({"t": ["a", "b", "a"]})
    run(emu, df, place, schema={"label": pl.Enum(["x", "y"]), "n": pl.Int8}, inline_limit_bytes=1)
    requests = parquet(place, "requests.parquet")
    assert requests.get_column("rows").to_list() == [[0, 2], [1]]
    assert requests.get_column("estimated_input_tokens").min() > 0  # type: ignore[operator]
    jobs = parquet(place, "jobs.parquet")
    assert set(jobs.columns) >= {"name", "display_name", "shard", "state", "created_at", "input_file", "result_file"}
    assert jobs.get_column("result_file").str.starts_with("files/batch-").all()
    results = parquet(place, place.names("results")[0])
    assert set(results.columns) >= {"key", "line", "answer", "usage", "error", "attempt"}
    assert results.schema["answer"] == pl.Struct({"label": pl.Enum(["x", "y"]), "n": pl.Int8})
    manifest = place.read("manifest.json").decode()
    assert '"model": "gemini-2.0-flash"' in manifest and '"library_version"' in manifest


PROBE = """import sys
from polars_gemini.checkpoint.location import open_location
from polars_gemini.checkpoint.store import Store
Store(open_location(sys.argv[1]))
print("opened")
"""


def test_batch_releases_the_lock_when_it_returns(emu: Emulator, place: Place) -> None:
    run(emu, pl.DataFrame({"t": ["a"]}), place)
    probe = subprocess.run([sys.executable, "-c", PROBE, place.checkpoint], env=worker_env(place),
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert probe.stdout.strip() == "opened", probe.stderr
