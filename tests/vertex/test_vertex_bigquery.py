"""Vertex AI runs staged in BigQuery (`staging="bq://project.dataset"`), against a real BigQuery emulator
(bqemulator): requests loaded into a table per job, the key carried by Vertex to the output table as a column, the
output read back through Arrow, every table deleted when the run is done."""

from __future__ import annotations

import collections
import uuid
from pathlib import Path

import polars as pl
import pytest
from vertex_support import FAST, echo

import polars_gemini
from polars_gemini import ConfigurationError
from polars_gemini.emulator import Emulator
from polars_gemini.emulator.bigquery import BigQueryEmulator


def dataset(bigquery: BigQueryEmulator) -> tuple[str, object]:
    name = f"ds_{uuid.uuid4().hex[:10]}"
    client = bigquery.client("test-project")
    client.create_dataset(name)
    return f"bq://test-project.{name}", client


def frame(n: int = 12) -> pl.DataFrame:
    return pl.DataFrame({"id": range(n), "text": [f"row {i % 9}" for i in range(n)]})


def test_a_run_staged_in_bigquery_returns_every_row(bigquery: BigQueryEmulator) -> None:
    staging, client = dataset(bigquery)
    with Emulator(responder=echo, bigquery_url=bigquery.url, shuffle_results=True) as emu:
        out = polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=emu.vertex_client(),
                                  staging=staging, storage_client=client, max_requests_per_job=4, **FAST)  # fmt: skip
        assert emu.calls("vertex.batches.create") == 3
        billed = collections.Counter(a.prompt for a in emu.answered())
    assert out.get_column("response").to_list() == [f"echo: row {i % 9}" for i in range(12)]
    assert set(billed) == {f"row {i}" for i in range(9)} and max(billed.values()) == 1
    assert list(client.list_tables(staging.removeprefix("bq://"))) == []  # input and output tables deleted


def test_a_bigquery_run_resumes_from_its_checkpoint(bigquery: BigQueryEmulator, tmp_path: Path) -> None:
    staging, client = dataset(bigquery)
    with Emulator(responder=echo, bigquery_url=bigquery.url, pending_seconds=0.2) as emu:
        run = polars_gemini.submit(frame(), "{text}", model="gemini-2.5-flash", client=emu.vertex_client(),
                                   staging=staging, storage_client=client, checkpoint=tmp_path / "ckpt", **FAST)
        run.close()
        out = polars_gemini.resume(tmp_path / "ckpt", client=emu.vertex_client(), storage_client=client,
                                   **FAST).result()  # fmt: skip
        assert emu.calls("vertex.batches.create") == 1
    assert out.get_column("response").to_list() == [f"echo: row {i % 9}" for i in range(12)]


def test_keep_files_keeps_the_tables(bigquery: BigQueryEmulator) -> None:
    staging, client = dataset(bigquery)
    with Emulator(responder=echo, bigquery_url=bigquery.url) as emu:
        polars_gemini.batch(frame(4), "{text}", model="gemini-2.5-flash", client=emu.vertex_client(),
                            staging=staging, storage_client=client, keep_files=True, **FAST)  # fmt: skip
    names = sorted(t.table_id for t in client.list_tables(staging.removeprefix("bq://")))
    assert len(names) == 2 and names[0].endswith("_input") and names[1].endswith("_output")
    rows = list(client.list_rows(f"{staging.removeprefix('bq://')}.{names[1]}"))
    assert {r["key"] for r in rows} and all(r["status"] == "" for r in rows)


def test_a_missing_dataset_or_a_bad_uri_is_refused_before_anything_is_sent(bigquery: BigQueryEmulator) -> None:
    _, client = dataset(bigquery)
    with Emulator(responder=echo, bigquery_url=bigquery.url) as emu:
        for bad, match in (("bq://test-project.no_such_dataset", "does not exist"),
                           ("bq://test-project", "not a BigQuery dataset"),
                           ("bq://test-project.ds.table", "not a BigQuery dataset")):  # fmt: skip
            with pytest.raises(ConfigurationError, match=match):
                polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=emu.vertex_client(),
                                    staging=bad, storage_client=client, **FAST)  # fmt: skip
        assert emu.calls("vertex.batches.create") == 0
