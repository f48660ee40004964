"""Checkpoints in object storage, probed as a hostile user would: failures while opening one must not leave its lease
held, and bad credentials are library errors before anything is sent."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini import CheckpointCorruptedError, CheckpointError
from polars_gemini.checkpoint.files import read_json, write_json
from polars_gemini.checkpoint.location import ObstoreBackend, RemoteLocation, open_location
from polars_gemini.emulator import Emulator
from polars_gemini.emulator.s3 import S3Emulator

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}
ROWS = 12


def _frame() -> pl.DataFrame:
    return pl.DataFrame({"id": range(ROWS), "text": [f"row {i}" for i in range(ROWS)]})


def test_a_corrupted_index_does_not_leave_the_lease_held_once_it_is_restored(
    emu: Emulator, s3_emulator: S3Emulator, s3_bucket: str
) -> None:
    checkpoint, options = f"s3://{s3_bucket}/runs/restored", s3_emulator.storage_options()
    client = emu.client()
    polars_gemini.batch(_frame(), "Say: {text}", model="gemini-2.0-flash", client=client, checkpoint=checkpoint,
                        storage_options=options, max_requests_per_job=4, **FAST)  # fmt: skip
    s3 = s3_emulator.client()
    good = s3.get_object(Bucket=s3_bucket, Key="runs/restored/index.json")["Body"].read()
    s3.put_object(Bucket=s3_bucket, Key="runs/restored/index.json", Body=b"not an index")
    with pytest.raises(CheckpointCorruptedError, match=r"index\.json is not a polars-gemini checkpoint index"):
        polars_gemini.batch(_frame(), "Say: {text}", model="gemini-2.0-flash", client=client, checkpoint=checkpoint,
                            storage_options=options, max_requests_per_job=4, **FAST)  # fmt: skip
    s3.put_object(Bucket=s3_bucket, Key="runs/restored/index.json", Body=good)  # the user restores it
    # The same process (a notebook) picks the work up: the failed open released the lease it had taken.
    result = polars_gemini.resume(checkpoint, storage_options=options, client=client, **FAST).result()
    assert result.get_column("id").to_list() == list(range(ROWS))
    assert result.get_column("response").to_list() == [f"echo: Say: row {i}" for i in range(ROWS)]
    assert emu.calls("batches.create") == ROWS // 4


def test_cloud_storage_without_credentials_is_a_library_error(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    with pytest.raises(CheckpointError, match=r"no usable Cloud Storage credentials.*GOOGLE_APPLICATION_CREDENTIALS"):
        polars_gemini.batch(_frame(), "Say: {text}", model="gemini-2.0-flash", client=emu.client(),
                            checkpoint="gs://some-bucket/runs/x", **FAST)  # fmt: skip
    assert emu.calls("batches.create") == 0


class _NoDeletes(ObstoreBackend):
    """The real S3 backend, except that deleting fails (a policy denying it, an outage begun after a write landed)."""

    def delete(self, key: str) -> None:
        raise OSError("403 Forbidden: s3:DeleteObject denied")


def test_a_write_that_landed_is_not_failed_by_the_cleanup_of_the_object_it_replaced(
    s3_emulator: S3Emulator, s3_bucket: str
) -> None:
    checkpoint = f"s3://{s3_bucket}/runs/cleanup"
    location = open_location(checkpoint, s3_emulator.storage_options())
    assert isinstance(location, RemoteLocation)
    location.backend = _NoDeletes(checkpoint, s3_emulator.storage_options())
    hold = location.acquire()
    try:
        write_json(location / "jobs.json", {"v": 1})
        write_json(location / "jobs.json", {"v": 2})  # the old object cannot be deleted: the write still stands
    finally:
        hold.release()
    assert read_json(open_location(checkpoint, s3_emulator.storage_options()) / "jobs.json") == {"v": 2}
    leftover = [k for k in s3_emulator.keys(s3_bucket, "runs/cleanup/objects/") if "jobs." in k]
    assert len(leftover) == 2  # the replaced object stays until the next worker's sweep
    open_location(checkpoint, s3_emulator.storage_options()).acquire().release()  # a new lease sweeps it away
    assert len([k for k in s3_emulator.keys(s3_bucket, "runs/cleanup/objects/") if "jobs." in k]) == 1


def test_a_checkpoint_in_a_prefix_that_holds_other_files_deletes_none_of_them(
    emu: Emulator, s3_emulator: S3Emulator, s3_bucket: str
) -> None:
    s3 = s3_emulator.client()
    theirs = ["objects/photo-0001.jpg", "objects/2024/report.parquet", "objects/jobs.parquet"]
    for key in theirs:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"not polars-gemini's")
    out = polars_gemini.batch(_frame(), "Say: {text}", model="gemini-2.0-flash", client=emu.client(),
                              checkpoint=f"s3://{s3_bucket}", storage_options=s3_emulator.storage_options(),
                              max_requests_per_job=4, **FAST)  # fmt: skip  # the bucket's root: the sweep looks there
    assert out.get_column("response").to_list() == [f"echo: Say: row {i}" for i in range(ROWS)]
    assert set(theirs) <= set(s3_emulator.keys(s3_bucket, "objects/"))
    assert s3.get_object(Bucket=s3_bucket, Key=theirs[0])["Body"].read() == b"not polars-gemini's"


def test_a_url_passed_as_a_pathlib_path_is_refused_not_made_a_local_directory(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"lost a slash.*checkpoint='s3://bucket/runs/x'"):
        polars_gemini.batch(_frame(), "Say: {text}", model="gemini-2.0-flash", client=emu.client(),
                            checkpoint=Path("s3://bucket/runs/x"), **FAST)  # fmt: skip
    assert not (tmp_path / "s3:").exists() and emu.calls("batches.create") == 0
