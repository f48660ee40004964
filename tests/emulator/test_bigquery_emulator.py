"""The BigQuery emulator (bqemulator in its own process) through the real google-cloud-bigquery client, and the
Vertex AI batch job's BigQuery side (`_vertex_bigquery`): reading input tables, writing output tables."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest
from google.cloud import bigquery

from polars_gemini.emulator._status import EmulatedError
from polars_gemini.emulator._vertex_bigquery import (
    output_schema,
    parse_uri,
    read_requests,
    read_table,
    write_predictions,
    write_table,
)
from polars_gemini.emulator._vertex_io import InputUnreadable
from polars_gemini.emulator.bigquery import BigQueryEmulator, environment

FIXTURES = Path(__file__).parents[1] / "fixtures" / "vertex_bigquery"
PROJECT = "bq-project"
_datasets = itertools.count()
REQUEST = {"contents": [{"role": "user", "parts": [{"text": "Name a colour."}]}], "generationConfig": {"topK": 1}}
RESPONSE = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Blue."}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6},
            "modelVersion": "gemini-2.5-flash"}  # fmt: skip


@pytest.fixture(scope="module")
def bq() -> Iterator[BigQueryEmulator]:
    """bqemulator in an environment of its own (`.venv-bqemulator`, made on first use): its grpcio-tools caps
    protobuf below 7, which the exact tokenizer's sentencepiece cannot load with."""
    python = environment(Path(__file__).parents[2] / ".venv-bqemulator")
    with BigQueryEmulator(project=PROJECT, python=python) as emulator:
        yield emulator


@pytest.fixture
def client(bq: BigQueryEmulator) -> bigquery.Client:
    return bq.client(PROJECT)


@pytest.fixture
def dataset(client: bigquery.Client, request: pytest.FixtureRequest) -> str:
    """A fresh dataset per test: `bq-project.<test name>_<n>`."""
    name = re.sub(r"\W", "_", request.node.originalname)[:60] + f"_{next(_datasets)}"
    client.create_dataset(name)
    return f"{PROJECT}.{name}"


def input_table(client: bigquery.Client, table_id: str, request_type: str = "JSON") -> list[bigquery.SchemaField]:
    schema = [
        bigquery.SchemaField("key", "STRING"),
        bigquery.SchemaField("request", request_type),
        bigquery.SchemaField("n", "INTEGER"),
        bigquery.SchemaField("seen", "TIMESTAMP"),
    ]
    client.create_table(bigquery.Table(table_id, schema=schema))
    rows = [{"key": f"k{i}", "request": json.dumps({**REQUEST, "i": i}), "n": i, "seen": f"2026-01-0{i + 1}T00:00:00Z"}
            for i in range(3)]  # fmt: skip
    assert client.insert_rows_json(table_id, rows) == []
    return schema


def test_url_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = BigQueryEmulator().url


def test_the_client_sees_what_it_wrote_over_rest_and_the_storage_read_api(
    bq: BigQueryEmulator, client: bigquery.Client, dataset: str
) -> None:
    input_table(client, f"{dataset}.t")
    over_rest = client.list_rows(f"{dataset}.t").to_arrow(create_bqstorage_client=False)
    # google-cloud-bigquery-storage 2.3x warns on Arrow pages unless pandas-gbq is installed: the library must expect it
    with pytest.warns(PendingDeprecationWarning, match="pandas-gbq"):
        over_grpc = client.list_rows(f"{dataset}.t").to_arrow(bqstorage_client=bq.read_client())
    for table in (over_rest, over_grpc):
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.sort("key")
        assert frame["key"].to_list() == ["k0", "k1", "k2"]
        assert frame["n"].to_list() == [0, 1, 2]
        assert [json.loads(r)["i"] for r in frame["request"]] == [0, 1, 2]
        assert frame["seen"].dtype == pl.Datetime("us", "UTC")
    assert bq.url.startswith("http://127.0.0.1:") and bq.grpc_endpoint.startswith("127.0.0.1:")
    assert bq.startup_seconds is not None and bq.startup_seconds > 0


def test_a_polars_frame_loads_through_parquet_and_queries_back(client: bigquery.Client, dataset: str) -> None:
    frame = pl.DataFrame({"key": ["a", "b"], "request": [json.dumps(REQUEST)] * 2, "n": [1, 2]})
    schema = [bigquery.SchemaField("key", "STRING"), bigquery.SchemaField("request", "JSON"),
              bigquery.SchemaField("n", "INT64")]  # fmt: skip
    client.create_table(bigquery.Table(f"{dataset}.staged", schema=schema))
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    buffer.seek(0)
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET, schema=schema)
    assert client.load_table_from_file(buffer, f"{dataset}.staged", job_config=config).result().state == "DONE"
    sql = f"SELECT key, JSON_VALUE(request, '$.contents[0].parts[0].text') AS text FROM `{dataset}.staged` ORDER BY key"
    answers = [tuple(row.values()) for row in client.query(sql).result()]
    assert answers == [("a", "Name a colour."), ("b", "Name a colour.")]


@pytest.mark.parametrize("request_type", ["JSON", "STRING"])
def test_read_requests_decodes_the_request_and_carries_every_column(
    client: bigquery.Client, dataset: str, request_type: str
) -> None:
    input_table(client, f"{dataset}.t", request_type)
    rows = sorted(read_requests(client, f"bq://{dataset}.t"), key=lambda r: r["key"])
    assert [r["request"] for r in rows] == [{**REQUEST, "i": i} for i in range(3)]
    assert [(r["key"], r["n"]) for r in rows] == [("k0", 0), ("k1", 1), ("k2", 2)]
    assert rows[0]["seen"] == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_a_request_that_is_not_json_fails_its_row_only(client: bigquery.Client, dataset: str) -> None:
    client.create_table(bigquery.Table(f"{dataset}.t", schema=[bigquery.SchemaField("request", "STRING")]))
    assert client.insert_rows_json(f"{dataset}.t", [{"request": "{not json"}, {"request": json.dumps(REQUEST)}]) == []
    decoded = [r["request"] for r in read_requests(client, f"bq://{dataset}.t")]
    assert sorted(decoded, key=lambda r: r is None) == [REQUEST, None]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([bigquery.SchemaField("prompt", "STRING")], "needs a column `request` of type JSON or STRING"),
        ([bigquery.SchemaField("request", "INT64")], "needs a column `request` of type JSON or STRING"),
        ([bigquery.SchemaField("request", "JSON"), bigquery.SchemaField("status", "STRING")], "reserved"),
        ([bigquery.SchemaField("request", "JSON"), bigquery.SchemaField("when", "DATETIME")], "has type DATETIME"),
        ([bigquery.SchemaField("request", "JSON"), bigquery.SchemaField("tags", "STRING", mode="REPEATED")],
         "has type ARRAY"),
    ],
)  # fmt: skip
def test_an_input_table_vertex_refuses_fails_the_import(
    client: bigquery.Client, dataset: str, schema: list[bigquery.SchemaField], message: str
) -> None:
    client.create_table(bigquery.Table(f"{dataset}.t", schema=schema))
    with pytest.raises(InputUnreadable, match=message):
        read_requests(client, f"bq://{dataset}.t")


def test_a_missing_input_table_fails_the_import(client: bigquery.Client, dataset: str) -> None:
    with pytest.raises(InputUnreadable, match=r"Failed to import data\. Not found: Table .*missing"):
        read_requests(client, f"bq://{dataset}.missing")


@pytest.mark.parametrize("uri", ["bq://only.two", "gs://b/x", "bq://a..c", "bq://a.b.c.d", "project.ds.table"])
def test_a_malformed_input_uri_is_invalid_argument(uri: str) -> None:
    with pytest.raises(EmulatedError) as caught:
        parse_uri(uri, table=True)
    assert caught.value.http_code == 400 and "is not of the form bq://project.dataset.table" in caught.value.message


def predictions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prediction rows as the Vertex endpoints build them: the input columns, then the three output columns; the
    second row failed."""
    out = []
    for i, row in enumerate(rows):
        failed = i == 1
        out.append({**row, "response": None if failed else {**RESPONSE, "responseId": f"r{i}"},
                    "status": 'Bad Request: {"error": {"code": 400}}' if failed else "",
                    "processed_time": "2026-01-02T03:04:05.678+00:00"})  # fmt: skip
    return out


@pytest.mark.parametrize("request_type", ["JSON", "STRING"])
def test_write_predictions_keeps_the_input_columns_and_their_types(
    client: bigquery.Client, dataset: str, request_type: str
) -> None:
    schema = input_table(client, f"{dataset}.in", request_type)
    rows = predictions(sorted(read_requests(client, f"bq://{dataset}.in"), key=lambda r: r["key"]))
    if request_type == "STRING":
        rows = [{**row, "request": json.dumps(row["request"])} for row in rows]
    assert write_predictions(client, f"bq://{dataset}.out", rows, schema) == f"{dataset}.out"
    table = client.get_table(f"{dataset}.out")
    assert [(f.name, f.field_type) for f in table.schema] == [
        ("key", "STRING"), ("request", request_type), ("n", "INTEGER"), ("seen", "TIMESTAMP"),
        ("response", "JSON"), ("status", "STRING"), ("processed_time", "TIMESTAMP"),
    ]  # fmt: skip
    back = sorted((dict(r) for r in client.list_rows(table)), key=lambda r: r["key"])
    assert [r["key"] for r in back] == ["k0", "k1", "k2"] and [r["n"] for r in back] == [0, 1, 2]
    assert back[0]["response"] == {**RESPONSE, "responseId": "r0"} and back[0]["status"] == ""
    assert back[1]["response"] is None and back[1]["status"].startswith("Bad Request: ")
    assert back[2]["processed_time"] == dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    decoded = back[0]["request"] if request_type == "JSON" else json.loads(back[0]["request"])
    assert decoded == {**REQUEST, "i": 0}


def test_write_predictions_to_a_dataset_creates_a_predictions_table(client: bigquery.Client, dataset: str) -> None:
    table_id = write_predictions(client, f"bq://{dataset}", predictions([{"key": "a", "request": REQUEST}]))
    assert re.fullmatch(re.escape(dataset) + r"\.predictions_\d{4}_\d\d_\d\dT\d\d_\d\d_\d\d_\d{3}Z", table_id)
    assert [dict(r)["key"] for r in client.list_rows(table_id)] == ["a"]


def test_an_existing_output_table_is_appended_to(client: bigquery.Client, dataset: str) -> None:
    for key in ("a", "b"):
        write_predictions(client, f"bq://{dataset}.out", predictions([{"key": key, "request": REQUEST}]))
    assert sorted(dict(r)["key"] for r in client.list_rows(f"{dataset}.out")) == ["a", "b"]


def test_a_missing_output_dataset_fails_the_write(client: bigquery.Client) -> None:
    rows = predictions([{"key": "a", "request": REQUEST}])
    with pytest.raises(EmulatedError) as caught:
        write_predictions(client, f"bq://{PROJECT}.no_such_dataset.out", rows)
    assert caught.value.http_code == 400 and "no_such_dataset" in caught.value.message


def test_without_a_schema_the_column_types_come_from_the_values(client: bigquery.Client, dataset: str) -> None:
    rows = [{"key": "a", "request": REQUEST, "n": 1, "x": 0.5, "ok": True, "day": dt.date(2026, 1, 2), "none": None}]
    write_predictions(client, f"bq://{dataset}.out", predictions(rows))
    kinds = {f.name: f.field_type for f in client.get_table(f"{dataset}.out").schema}
    assert kinds == {"key": "STRING", "request": "JSON", "n": "INTEGER", "x": "FLOAT", "ok": "BOOLEAN",
                     "day": "DATE", "none": "STRING", "response": "JSON", "status": "STRING",
                     "processed_time": "TIMESTAMP"}  # fmt: skip


def test_the_settings_seam_reads_and_writes_through_the_emulator_url(bq: BigQueryEmulator, dataset: str) -> None:
    client = bq.client(PROJECT)
    input_table(client, f"{dataset}.in")
    settings = SimpleNamespace(bigquery_url=bq.url)  # the one field of the emulator's Settings the seam reads
    rows = read_table(settings, f"bq://{dataset}.in")
    write_table(settings, f"bq://{dataset}.out", predictions(rows))
    assert sorted(dict(r)["key"] for r in client.list_rows(f"{dataset}.out")) == ["k0", "k1", "k2"]


def test_the_settings_seam_without_bigquery_is_invalid_argument() -> None:
    with pytest.raises(EmulatedError) as caught:
        read_table(SimpleNamespace(), f"bq://{PROJECT}.ds.t")
    assert caught.value.http_code == 400 and "has no BigQuery" in caught.value.message


def test_the_output_schema_matches_the_recorded_fixture() -> None:
    recorded = json.loads((FIXTURES / "output_schema.json").read_text())
    inputs = [bigquery.SchemaField.from_api_repr(f) for f in json.loads((FIXTURES / "input_schema.json").read_text())]
    assert [f.to_api_repr() for f in output_schema(inputs)] == [bigquery.SchemaField.from_api_repr(f).to_api_repr()
                                                                for f in recorded]  # fmt: skip
