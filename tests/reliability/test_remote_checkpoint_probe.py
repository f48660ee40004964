"""Checkpoints in object storage, probed as a hostile user would: failures while opening one must not leave its lease
held, and bad credentials are library errors before anything is sent."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini import CheckpointCorruptedError, CheckpointError
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
