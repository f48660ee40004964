"""Bugs found by probing the Vertex AI path as a demanding user, each proven through the real SDK against the
emulators (Cloud Storage, BigQuery). A test marked xfail(strict=True) is a bug still open: its reason says the
fix; the others were fixed with the test."""

from __future__ import annotations

import collections
import json
import uuid
import warnings
from typing import Any

import polars as pl
import pytest
from vertex_support import FAST, backend, echo

import polars_gemini
from polars_gemini import ConfigurationError, GeminiBatchWarning
from polars_gemini.emulator import Emulator
from polars_gemini.emulator.bigquery import BigQueryEmulator
from polars_gemini.emulator.gcs import GcsEmulator
from testing_support import make_png

MODEL = "gemini-2.5-flash"


def _twice(b: Any, df: pl.DataFrame) -> pl.DataFrame:
    """The same call made twice, without a checkpoint (as a notebook cell run again); the second's output."""
    polars_gemini.batch(df, "{text}", model=MODEL, client=b.client, **b.options, **FAST)
    with pytest.warns(GeminiBatchWarning, match="Re-attached"):
        return polars_gemini.batch(df, "{text}", model=MODEL, client=b.client, **b.options, **FAST)


def test_the_same_call_made_again_without_a_checkpoint_returns_the_answers(gcs: GcsEmulator) -> None:
    with backend("vertex", gcs) as b:
        again = _twice(b, pl.DataFrame({"text": ["a", "b"]}))
    assert again.get_column("response").to_list() == ["echo: a", "echo: b"]


def test_predictions_gone_say_where_they_were_not_a_results_file_named_none(gcs: GcsEmulator) -> None:
    """Fixed: the error said "the results file None of job ... is no longer on the service" (a Vertex job has an
    output directory, no results file)."""
    df = pl.DataFrame({"text": ["a", "b"]})
    with backend("vertex", gcs) as b:
        run = polars_gemini.submit(df, "{text}", model=MODEL, client=b.client, **b.options, **FAST)
        run.result()
        assert run.cleanup_staging(predictions=True) >= 1  # the predictions deleted by hand (or a lifecycle rule)
        with pytest.warns(GeminiBatchWarning, match="Re-attached"):
            again = polars_gemini.batch(df, "{text}", model=MODEL, client=b.client, **b.options, **FAST)
    error = again.get_column("response_error")[0]
    assert error is not None and "None" not in error
    assert f"gs://{b.bucket}/runs/" in error and "staging" in error


def test_a_small_image_shared_by_rows_is_sent_inline_on_vertex(gcs: GcsEmulator) -> None:
    shared = make_png(120, 120, 2)
    assert 16_384 <= len(shared) <= 1_000_000
    df = pl.DataFrame({"img": [shared, shared], "text": ["a", "b"]})
    with backend("vertex", gcs) as b:
        out = polars_gemini.batch(df, "{text} {img}", model=MODEL, client=b.client, media="img", **b.options,
                                  **FAST)  # fmt: skip
    assert out.get_column("response_error").null_count() == 2


def test_gs_uris_in_a_media_column_are_sent_by_reference_on_vertex(gcs: GcsEmulator) -> None:
    df = pl.DataFrame({"img": ["gs://photos/x.png", "gs://photos/y.png"], "text": ["a", "b"]})
    with backend("vertex", gcs) as b:
        out = polars_gemini.batch(df, "{text} {img}", model=MODEL, client=b.client, media={"img": "image/png"},
                                  **b.options, **FAST)  # fmt: skip
    assert out.get_column("response_error").to_list() == [None, None]


def test_a_job_queued_on_the_vertex_side_is_not_counted_as_waiting_to_be_created(gcs: GcsEmulator) -> None:
    """Fixed: RunStatus.queued ("jobs waiting for room ... to be created") counted Vertex jobs the service holds
    QUEUED, created and billed already."""
    with backend("vertex", gcs) as b:
        b.emu.settings.vertex_queued_seconds = 10**6
        run = polars_gemini.submit(pl.DataFrame({"text": ["a"]}), "{text}", model=MODEL, client=b.client,
                                   **b.options, **FAST)  # fmt: skip
        run.refresh()
        status = run.status()
        run.cancel()
    assert [state for _, state in status.jobs] == ["QUEUED"]
    assert status.queued == 0


def _requests_table(bigquery: BigQueryEmulator, rows: int) -> tuple[str, str, Any]:
    from google.cloud import bigquery as bq

    name = f"ds_{uuid.uuid4().hex[:10]}"
    client = bigquery.client("test-project")
    client.create_dataset(name)
    ref = f"test-project.{name}.requests"
    client.create_table(bq.Table(ref, schema=[bq.SchemaField("id", "INT64"), bq.SchemaField("request", "JSON")]))
    body = [{"id": i, "request": json.dumps({"contents": [{"role": "user", "parts": [{"text": f"q {i}"}]}]})}
            for i in range(rows)]  # fmt: skip
    assert client.insert_rows_json(ref, body) == []
    return f"bq://{ref}", f"bq://test-project.{name}", client


def test_batch_table_refuses_a_destination_table_that_exists_before_paying(bigquery: BigQueryEmulator) -> None:
    """Fixed: a second model's job into the same destination table added its rows to the first job's, and
    batch_table returned both jobs' rows (8 for a source of 4) as this job's answers."""
    source, dataset, client = _requests_table(bigquery, 4)
    with Emulator(responder=echo, bigquery_url=bigquery.url) as emu:
        args: dict[str, Any] = {"client": emu.vertex_client(), "bigquery_client": client, "poll_interval": 0.01,
                                "max_poll_interval": 0.05}  # fmt: skip
        first = polars_gemini.batch_table(source, f"{dataset}.answers", model=MODEL, **args)
        with pytest.raises(ConfigurationError, match="already exists"):
            polars_gemini.batch_table(source, f"{dataset}.answers", model="gemini-2.5-flash-lite", **args)
        assert emu.calls("vertex.batches.create") == 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            again = polars_gemini.batch_table(source, f"{dataset}.answers", model=MODEL, **args)  # its own job
        other = polars_gemini.batch_table(source, dataset, model="gemini-2.5-flash-lite", **args)  # a new table
        billed = collections.Counter((a.model, a.prompt) for a in emu.answered())
    assert first.height == again.height == other.height == 4
    assert sorted(other.get_column("response").to_list()) == [f"echo: q {i}" for i in range(4)]
    assert max(billed.values()) == 1
