"""Vertex AI runs staged in BigQuery (`staging="bq://project.dataset"`), against a real BigQuery emulator
(bqemulator): requests loaded into a table per job, the key carried by Vertex to the output table as a column, the
output read back through Arrow, every table deleted when the run is done."""

from __future__ import annotations

import collections
import json
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from vertex_support import FAST, echo

import polars_gemini
from polars_gemini import ConfigurationError
from polars_gemini.emulator import Emulator, responses
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
    # Input tables deleted; without a checkpoint the output tables stay, for the same call made again.
    left = [t.table_id for t in client.list_tables(staging.removeprefix("bq://"))]
    assert len(left) == 3 and all(name.endswith("_output") for name in left)


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


def source_table(client: Any, staging: str, rows: int) -> str:
    from google.cloud import bigquery as bq

    ref = f"{staging.removeprefix('bq://')}.requests"
    schema = [bq.SchemaField("id", "INT64"), bq.SchemaField("request", "JSON")]
    client.create_table(bq.Table(ref, schema=schema))
    body = [{"id": i, "request": json.dumps({"contents": [{"role": "user", "parts": [{"text": f"q {i}"}]}]})}
            for i in range(rows)]  # fmt: skip
    assert client.insert_rows_json(ref, body) == []
    return f"bq://{ref}"


def test_batch_table_runs_a_table_of_requests_once(bigquery: BigQueryEmulator) -> None:
    staging, client = dataset(bigquery)
    source = source_table(client, staging, 8)
    fail = responses.error(400, "Request contains an invalid argument.", "INVALID_ARGUMENT")
    with Emulator(responder=responses.when(lambda r: r.text == "q 5", fail, echo), bigquery_url=bigquery.url,
                  shuffle_results=True) as emu:  # fmt: skip
        args = {"model": "gemini-2.5-flash", "client": emu.vertex_client(), "bigquery_client": client,
                "poll_interval": 0.01, "max_poll_interval": 0.05}  # fmt: skip
        out = polars_gemini.batch_table(source, f"{staging}.answers", **args)
        again = polars_gemini.batch_table(source, f"{staging}.answers", **args)  # followed, not created again
        assert emu.calls("vertex.batches.create") == 1
    out = out.sort("id")
    assert out.get_column("id").to_list() == list(range(8))
    assert out.get_column("response").to_list() == [None if i == 5 else f"echo: q {i}" for i in range(8)]
    errors = out.get_column("response_error").to_list()
    assert [i for i, e in enumerate(errors) if e] == [5] and "400" in errors[5]
    assert again.sort("id").get_column("response").to_list() == out.get_column("response").to_list()


def test_batch_table_checks_its_source_before_sending(bigquery: BigQueryEmulator,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    staging, client = dataset(bigquery)
    source = source_table(client, staging, 5)
    from google.cloud import bigquery as bq

    client.create_table(bq.Table(f"{staging.removeprefix('bq://')}.texts", schema=[bq.SchemaField("t", "STRING")]))
    monkeypatch.setattr("polars_gemini.api.tables.VERTEX_MAX_REQUESTS", 4)
    with Emulator(responder=echo, bigquery_url=bigquery.url) as emu:
        args = {"model": "gemini-2.5-flash", "client": emu.vertex_client(), "bigquery_client": client}
        with pytest.raises(ConfigurationError, match="over Vertex AI's 4 requests"):
            polars_gemini.batch_table(source, staging, **args)
        with pytest.raises(ConfigurationError, match="no `request` column"):
            polars_gemini.batch_table(f"{staging}.texts", staging, **args)
        with pytest.raises(ConfigurationError, match="does not exist"):
            polars_gemini.batch_table(f"{staging}.nothing", staging, **args)
        with pytest.raises(ConfigurationError, match="not a BigQuery table"):
            polars_gemini.batch_table("gs://bucket/x.jsonl", staging, **args)
        with pytest.raises(ConfigurationError, match="Vertex AI"):
            polars_gemini.batch_table(source, staging, model="gemini-2.5-flash", client=emu.client())
        assert emu.calls("vertex.batches.create") == 0


def test_domain_scoped_projects_are_read_whole() -> None:
    from polars_gemini.service.bigquery import check_dataset_uri, split_table

    assert split_table("bq://example.com:my-project.ds.t") == ("example.com:my-project", "ds", "t")
    assert check_dataset_uri("bq://example.com:my-project.ds") == "bq://example.com:my-project.ds"
    with pytest.raises(ConfigurationError, match="not a BigQuery dataset"):
        check_dataset_uri("bq://example.com:my-project")
