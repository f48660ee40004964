"""Checkpoints in object storage: the lease (expiry, renewal, takeover, fencing), two workers racing for one
checkpoint, resuming on another machine, Cloud Storage, and bad URLs refused before anything is sent."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini import CheckpointError, CheckpointLockedError, ConfigurationError
from polars_gemini.checkpoint.files import read_json, write_json
from polars_gemini.checkpoint.location import ANY, Backend, Conflict, RemoteLocation, lease_seconds, open_location
from polars_gemini.emulator import Emulator
from polars_gemini.emulator.gcs import GcsEmulator
from polars_gemini.emulator.s3 import S3Emulator
from testing_support import FAST, Place, make_place

WORKER = str(Path(__file__).with_name("remote_worker.py"))
ROWS = 24


@pytest.fixture
def remote(tmp_path: Path, s3_emulator: S3Emulator) -> Place:
    return make_place("s3", tmp_path, s3_emulator)


@dataclass
class Store:
    """A checkpoint URL in S3 or in Cloud Storage, with its lease read and written past the library."""

    checkpoint: str
    storage_options: dict[str, str] | None
    read: Callable[[str], bytes]
    write: Callable[[str, bytes], None]


@pytest.fixture(params=["s3", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "s3":
        place = make_place("s3", tmp_path, request.getfixturevalue("s3_emulator"))
        assert place.s3 is not None
        client, bucket = place.s3.client(), place.bucket
        prefix = place.checkpoint.removeprefix(f"s3://{bucket}/")
        return Store(
            place.checkpoint,
            place.storage_options,
            lambda name: client.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read(),
            lambda name, body: client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body),
        )
    request.getfixturevalue("gcs_emulator")  # STORAGE_EMULATOR_HOST set: credentials from the environment
    bucket = request.getfixturevalue("gcs_bucket")
    return Store(f"gs://{bucket.name}/runs/ckpt", None,
                 lambda name: bucket.blob(f"runs/ckpt/{name}").download_as_bytes(),
                 lambda name, body: bucket.blob(f"runs/ckpt/{name}").upload_from_string(body))  # fmt: skip


def lease_of(place: Place | Store) -> dict:
    if isinstance(place, Store):
        return json.loads(place.read("lease.json"))
    assert place.s3 is not None
    prefix = place.checkpoint.removeprefix(f"s3://{place.bucket}/")
    body = place.s3.client().get_object(Bucket=place.bucket, Key=f"{prefix}/lease.json")["Body"].read()
    return json.loads(body)


def test_the_lease_is_renewed_while_its_holder_lives_and_refuses_other_workers(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = store
    monkeypatch.setenv("POLARS_GEMINI_LEASE_SECONDS", "1.5")
    first = open_location(remote.checkpoint, remote.storage_options)
    hold = first.acquire()
    try:
        granted = lease_of(remote)["expires_at"]
        time.sleep(1.8)  # longer than the term: only renewal keeps it
        renewed = lease_of(remote)
        assert renewed["expires_at"] > granted
        assert renewed["pid"] == os.getpid() and renewed["host"]
        with pytest.raises(CheckpointLockedError, match=r"in use by another worker .*pid \d+.*lease runs for"):
            open_location(remote.checkpoint, remote.storage_options).acquire()
        write_json(first / "note.json", {"still": "mine"})  # the holder keeps writing
    finally:
        hold.release()
    second = open_location(remote.checkpoint, remote.storage_options)
    second.acquire().release()  # released: taken at once
    assert read_json(second / "note.json") == {"still": "mine"}


def test_a_crashed_workers_lease_is_taken_over_once_it_has_run_out(store: Store) -> None:
    remote = store
    crashed = {"owner": "x" * 32, "host": "worker-7", "pid": 4242, "expires_at": time.time() + 1.5, "term": 1.5}
    remote.write("lease.json", json.dumps(crashed).encode())
    with pytest.raises(CheckpointLockedError, match="worker-7, pid 4242"):
        open_location(remote.checkpoint, remote.storage_options).acquire()
    time.sleep(1.7)
    hold = open_location(remote.checkpoint, remote.storage_options).acquire()
    assert lease_of(remote)["pid"] == os.getpid()
    hold.release()


def test_a_worker_that_lost_its_lease_is_fenced_off(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = store
    monkeypatch.setenv("POLARS_GEMINI_LEASE_SECONDS", "1")
    paused = open_location(remote.checkpoint, remote.storage_options)
    hold = paused.acquire()
    write_json(paused / "jobs.json", {"by": "paused"})
    hold._stop.set()  # type: ignore[attr-defined]  # a worker frozen (GC pause, suspended VM): no renewal
    time.sleep(1.3)
    other = open_location(remote.checkpoint, remote.storage_options)
    other_hold = other.acquire()  # the lease ran out: taken over
    write_json(other / "jobs.json", {"by": "other"})
    # Its clock running behind (a skewed machine), the paused worker believes its lease still runs: the conditional
    # write of the index is what refuses it.
    hold.expires, hold._lost = time.time() + 60, None  # type: ignore[attr-defined]
    with pytest.raises(CheckpointLockedError, match="changed by another worker"):
        write_json(paused / "jobs.json", {"by": "paused, again"})
    with pytest.raises(CheckpointLockedError, match=r"lost its lease .*another worker changed"):
        hold.check(lease_seconds() / 2)  # what is asked before a job is created: refused from now on
    fresh = open_location(remote.checkpoint, remote.storage_options)
    assert read_json(fresh / "jobs.json") == {"by": "other"}
    other_hold.release()


def _start(mode: str, emu: Emulator, place: Place, out: Path, cwd: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, **place.env, "POLARS_GEMINI_LEASE_SECONDS": "30"}
    return subprocess.Popen([sys.executable, WORKER, mode, emu.url, place.checkpoint, str(out), str(ROWS)], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def test_two_workers_racing_for_one_remote_checkpoint_create_each_job_once(
    remote: Place, emu: Emulator, tmp_path: Path
) -> None:
    emu.settings.latency = 0.05
    racers = [_start("batch", emu, remote, tmp_path / f"out{i}.parquet") for i in range(2)]
    ended = [(p.wait(timeout=120), p.communicate()[1].decode()) for p in racers]
    codes = sorted(code for code, _ in ended)
    assert codes in ([0, 0], [0, 3]), ended  # both done (one after the other), or one refused as busy
    for code, err in ended:
        if code == 3:
            assert "in use by another worker" in err or "just taken by another worker" in err
    names = collections.Counter(job["metadata"]["displayName"] for job in emu.jobs.values())
    assert len(names) == ROWS // 8 and set(names.values()) == {1}, names  # each shard's job created once
    winner = next(tmp_path / f"out{i}.parquet" for i, (code, _) in enumerate(ended) if code == 0)
    result = pl.read_parquet(winner)
    assert result.get_column("id").to_list() == list(range(ROWS))
    assert result.get_column("response").to_list() == [f"echo: Say: row {i}" for i in range(ROWS)]


def test_a_run_resumes_on_another_machine_from_the_bucket_alone(remote: Place, emu: Emulator, tmp_path: Path) -> None:
    """Submitted here, streamed (its request files in the checkpoint too); resumed by another process in another
    working directory with another temporary directory: nothing of this machine's files is needed."""
    df = pl.DataFrame({"id": range(ROWS), "text": [f"row {i}" for i in range(ROWS)]})
    run = polars_gemini.submit(df, "Say: {text}", model="gemini-2.0-flash", client=emu.client(),
                               max_requests_per_job=8, memory_budget=50_000_000, **remote.kwargs, **FAST)  # fmt: skip
    run.close()
    assert any(k.startswith("objects/inputs/") and k.endswith(".jsonl") for k in remote.stored())  # request files
    elsewhere = tmp_path / "other-machine"
    (elsewhere / "tmp").mkdir(parents=True)
    out = elsewhere / "out.parquet"
    env = {**os.environ, **remote.env, "TMPDIR": str(elsewhere / "tmp")}
    proc = subprocess.run([sys.executable, WORKER, "resume", emu.url, remote.checkpoint, str(out)], env=env,
                          cwd=elsewhere, capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    result = pl.read_parquet(out)
    assert result.get_column("id").to_list() == list(range(ROWS))
    assert result.get_column("response_error").null_count() == ROWS
    assert emu.calls("batches.create") == ROWS // 8  # resumed, not sent again
    assert remote.s3 is not None
    for key in remote.s3.keys(remote.bucket):  # no object names a local path of the submitting machine
        body = remote.s3.client().get_object(Bucket=remote.bucket, Key=key)["Body"].read()
        assert str(tmp_path).encode() not in body, key


def test_a_checkpoint_in_cloud_storage(gcs_emulator: GcsEmulator, gcs_bucket: object, emu: Emulator) -> None:
    url = f"gs://{gcs_bucket.name}/runs/reviews"  # type: ignore[attr-defined]
    df = pl.DataFrame({"text": [f"row {i}" for i in range(10)]})
    out = df.gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=url, **FAST)
    assert out.get_column("response").to_list() == [f"echo: row {i}" for i in range(10)]
    status = polars_gemini.checkpoint_status(url)
    assert (status.rows, status.done, status.directory) == (10, 10, url)
    again = df.gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=url, **FAST)
    assert again.equals(out) and emu.calls("batches.create") == 1  # everything stored: nothing sent again
    resumed = polars_gemini.resume(url, client=emu.client(), progress=False).result()
    assert resumed.equals(out)
    names = [b.name for b in gcs_emulator.client().list_blobs(gcs_bucket.name)]  # type: ignore[attr-defined]
    assert "runs/reviews/index.json" in names and "runs/reviews/lease.json" in names


def test_bad_object_storage_checkpoints_are_refused_before_anything_is_sent(
    emu: Emulator, tmp_path: Path, s3_emulator: S3Emulator
) -> None:
    df = pl.DataFrame({"text": ["a", "b"]})
    kw = {"model": "gemini-2.0-flash", "client": emu.client(), **FAST}
    with pytest.raises(ConfigurationError, match="unknown scheme 'ftp'"):
        df.gemini.batch("{text}", checkpoint="ftp://host/runs", **kw)
    with pytest.raises(ConfigurationError, match="no bucket named"):
        df.gemini.batch("{text}", checkpoint="s3:///runs", **kw)
    with pytest.raises(ConfigurationError, match="storage_options are the credentials"):
        df.gemini.batch("{text}", checkpoint=str(tmp_path / "local"), storage_options={"aws_region": "x"}, **kw)
    with pytest.raises(CheckpointError, match=r"s3://no-such-bucket-here/runs.*bucket"):
        df.gemini.batch("{text}", checkpoint="s3://no-such-bucket-here/runs",
                        storage_options=s3_emulator.storage_options(), **kw)  # fmt: skip
    with pytest.raises(CheckpointError, match="storage_options"):
        df.gemini.batch("{text}", checkpoint="s3://bucket/runs", storage_options={"no_such_key": "1"}, **kw)
    assert emu.calls("batches.create") == 0 and emu.calls("files.upload_start") == 0
    with pytest.raises(CheckpointError, match="holds no run"):
        polars_gemini.resume("s3://bucket-x/none", client=emu.client(), storage_options=s3_emulator.storage_options())


class LostReplies(Backend):
    """The S3 backend, except that conditional writes of `names` land and then report a conflict, as the store's
    answer to a retry does when the first attempt's reply was lost on the way back."""

    def __init__(self, inner: Backend, names: set[str]) -> None:
        self.inner, self.names, self.lost = inner, names, 0

    def get(self, key: str) -> tuple[bytes, str] | None:
        return self.inner.get(key)

    def download(self, key: str, target: Path) -> None:
        self.inner.download(key, target)

    def put(self, key: str, data: bytes | Path, expect: object = ANY) -> str:
        version = self.inner.put(key, data, expect)
        if key in self.names and expect is not ANY:
            self.lost += 1
            raise Conflict(key)
        return version

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)


def test_a_conditional_write_whose_reply_was_lost_counts_as_landed(
    remote: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLARS_GEMINI_LEASE_SECONDS", "1.5")
    plain = open_location(remote.checkpoint, remote.storage_options)
    assert isinstance(plain, RemoteLocation)
    flaky = LostReplies(plain.backend, {"index.json", "lease.json"})
    location = RemoteLocation(remote.checkpoint, flaky)
    hold = location.acquire()  # its lease's create "refused" too
    try:
        for i in range(3):
            write_json(location / f"part-{i}.json", {"i": i})  # each index write "refused", yet its own
        time.sleep(1.0)  # a renewal or two, each "refused" the same way
        hold.check(lease_seconds() / 2)  # still held: nothing was mistaken for another worker's takeover
        assert flaky.lost >= 4
    finally:
        hold.release()
    fresh = open_location(remote.checkpoint, remote.storage_options)
    assert [read_json(fresh / f"part-{i}.json") for i in range(3)] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_storage_options_that_are_no_mapping_are_a_library_error(emu: Emulator, s3_emulator: S3Emulator) -> None:
    with pytest.raises(CheckpointError, match="storage_options must be a dict"):
        polars_gemini.resume("s3://bucket-x/none", client=emu.client(), storage_options=["aws_region"])  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="storage_options must be a dict"):
        polars_gemini.checkpoint_status("s3://bucket-x/none", storage_options="key=value")  # type: ignore[arg-type]
