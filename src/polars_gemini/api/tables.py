"""A BigQuery table of requests through one Vertex AI batch job: `batch_table(source="bq://...", destination=...)`.

For data that already lives in the warehouse: the source table holds a `request` column (a GenerateContentRequest as
JSON) and any other columns (ids, keys, anything the caller joins on later), which Vertex carries through to the
output table next to `response` and `status`. Nothing is loaded or keyed by the library: the job reads the table
itself, and the output table comes back as a Polars frame through Arrow, with the answers decoded like every other
result (`response` as text, `response_error` with the reason where a row failed).

The job is created once: its display name is derived from the source, the destination and the model (or given as
`display_name=`), and a job of that name already on the service (running, or succeeded) is followed instead of
creating another, so calling again after a crash or a timeout never pays twice.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

import polars as pl
from google.genai import types

from polars_gemini.api.options import check_options
from polars_gemini.core.errors import APIError, ConfigurationError, RunTimeoutError
from polars_gemini.core.models import normalize_model
from polars_gemini.core.result_columns import ERROR, KEY, TEXT
from polars_gemini.run.lifecycle import VERTEX_MAX_REQUESTS
from polars_gemini.run.predictions import parse_predictions
from polars_gemini.service import bigquery as _bigquery
from polars_gemini.service import gemini as _client

if TYPE_CHECKING:
    import google.cloud.bigquery as bigquery
    from google import genai

_ROW = "__polars_gemini_row"


def batch_table(
    source: str,
    destination: str,
    *,
    model: str,
    client: genai.Client,
    bigquery_client: bigquery.Client | None = None,
    display_name: str | None = None,
    poll_interval: float = 5.0,
    max_poll_interval: float = 60.0,
    timeout: float | None = None,
    retry: types.HttpRetryOptions | None = None,
) -> pl.DataFrame:
    """Run one Vertex AI batch job over the BigQuery table `source` (a `request` JSON column, plus any others) into
    `destination` (`bq://project.dataset.table`, or a dataset for a `predictions_<time>` table), wait for it, and
    return the output table: every input column as Vertex carried it, `response` (the answer text), `response_error`
    (why a row has none), `status` and `processed_time` as the service wrote them.

    Checked before anything is sent: a Vertex AI client, both URIs, the source table (it exists, has a `request`
    column, and at most 200,000 rows: Vertex's limit per job; more, or a frame, go through `df.gemini.batch(...,
    staging="bq://project.dataset")`, which splits them), and a destination table that does not exist yet (unless
    its job is the one followed: Vertex would add the new rows to the old ones). `timeout` (seconds) raises
    `RunTimeoutError` with the job still running: call again with the same arguments to follow it.

    >>> client = genai.Client(vertexai=True, project="my-project", location="us-central1")  # doctest: +SKIP
    >>> out = polars_gemini.batch_table("bq://my-project.reviews.requests", "bq://my-project.reviews.answers",
    ...                                 model="gemini-2.5-flash", client=client)  # doctest: +SKIP
    """
    check_options({"poll_interval": poll_interval, "max_poll_interval": max_poll_interval, "retry": retry})
    if not _client.is_client(client) or not _client.is_vertex(client):
        raise ConfigurationError(
            "batch_table runs a Vertex AI batch job over BigQuery: pass client=genai.Client(vertexai=True, "
            "project=..., location=...)."
        )
    _check_table_uri("source", source, table=True)
    _check_table_uri("destination", destination, table=False)
    if timeout is not None and not timeout > 0:
        raise ConfigurationError(f"timeout is a number of seconds > 0, or None; got {timeout!r}.")
    bq = _bigquery.bigquery_client(client, bigquery_client)
    _check_source(bq, source)
    name = display_name or _display_name(source, destination, model)
    found = _client.find_jobs(client, name, retry, exact=True)
    usable = [j for j in found if j.active or j.state in ("SUCCEEDED", "PARTIALLY_SUCCEEDED")]
    if not usable:
        _check_destination(bq, destination)
    snap = usable[0] if usable else _client.create_job(client, model, source, name, retry, None, destination)
    snap = _wait(client, snap, poll_interval, max_poll_interval, timeout, retry)
    if snap.state not in ("SUCCEEDED", "PARTIALLY_SUCCEEDED") or snap.output_dir is None:
        raise APIError(f"Batch job {snap.name} ({name}) ended {snap.state}" + (f": {snap.error}" if snap.error else ""),
                       code=snap.error_code)  # fmt: skip
    return _answers(bq, snap.output_dir, snap.name)


def _check_table_uri(name: str, uri: object, *, table: bool) -> None:
    parts = _bigquery.uri_parts(uri) if isinstance(uri, str) and uri.startswith("bq://") else []
    if not (len(parts) == 3 or (not table and len(parts) == 2)) or not all(parts):
        shape = "bq://project.dataset.table" if table else "bq://project.dataset.table or bq://project.dataset"
        raise ConfigurationError(f"{name}={uri!r} is not a BigQuery table: pass {name}='{shape}'.")


def _check_source(bq: Any, source: str) -> None:
    project, dataset, table = _bigquery.split_table(source)
    try:
        found = bq.get_table(f"{project}.{dataset}.{table}")
    except Exception as exc:  # google.api_core's NotFound, or any failure to read it: said as the library's error
        code = getattr(exc, "code", None)
        if code == 404:
            raise ConfigurationError(f"The source table {source} does not exist.") from None
        raise APIError(f"Looking up the source table {source} failed: {type(exc).__name__}", code=code) from None
    if "request" not in [f.name for f in found.schema]:
        raise ConfigurationError(
            f"The source table {source} has no `request` column: Vertex AI reads each row's GenerateContentRequest "
            "(JSON) from it. For a table of text, use df.gemini.batch(template, staging='bq://project.dataset')."
        )
    if found.num_rows is not None and found.num_rows > VERTEX_MAX_REQUESTS:
        raise ConfigurationError(
            f"The source table {source} has {found.num_rows:,} rows, over Vertex AI's {VERTEX_MAX_REQUESTS:,} "
            "requests per job. Read it into a frame and use df.gemini.batch(..., staging='bq://project.dataset'), "
            "which splits it into jobs."
        )


def _check_destination(bq: Any, destination: str) -> None:
    """A destination table must not exist yet when a new job is to write it: Vertex would add this job's rows to
    the ones already there, and the table read back would mix them (a dataset gets a new table of its own)."""
    project, dataset, table = _bigquery.split_table(destination)
    if table is None:
        return
    try:
        bq.get_table(f"{project}.{dataset}.{table}")
    except Exception as exc:  # google.api_core's NotFound: the table is made by the job, as it should be
        code = getattr(exc, "code", None)
        if code == 404:
            return
        raise APIError(f"Looking up the destination table {destination} failed: {type(exc).__name__}",
                       code=code) from None  # fmt: skip
    raise ConfigurationError(
        f"The destination table {destination} already exists, and no job of this source, destination and model is "
        "on the service to follow: a new job would add its rows to the ones in it. Pass a table that does not exist "
        f"yet, or the dataset bq://{project}.{dataset} (the job makes a predictions_<time> table), or drop it first."
    )


def _display_name(source: str, destination: str, model: str) -> str:
    digest = hashlib.sha256(f"{source}\x00{destination}\x00{normalize_model(model)}".encode()).hexdigest()
    return f"polars-gemini-table-{digest[:16]}"


def _wait(client: genai.Client, snap: _client.JobSnapshot, interval: float, cap: float, timeout: float | None,
          retry: types.HttpRetryOptions | None) -> _client.JobSnapshot:  # fmt: skip
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = min(interval, 0.5)
    while not snap.done or (snap.state in ("SUCCEEDED", "PARTIALLY_SUCCEEDED") and snap.output_dir is None):
        if deadline is not None and time.monotonic() + delay > deadline:
            raise RunTimeoutError(
                f"Batch job {snap.name} is still {snap.state} after {timeout:g} s; call batch_table again with the "
                "same arguments to follow it (it is not created again)."
            )
        time.sleep(delay)
        delay = min(delay * 1.5, max(cap, interval))
        snap = _client.get_job(client, snap.name, retry)
    return snap


def _answers(bq: Any, table: str, job: str) -> pl.DataFrame:
    """The output table with `response` as answer text and `response_error`, in the table's row order."""
    frame = _bigquery.read_table(bq, table, f"Reading the output table {table} of {job}")
    frame = frame.with_row_index(_ROW)
    status = pl.col("status").cast(pl.String) if "status" in frame.columns else pl.lit("", pl.String)
    response = pl.col("response").cast(pl.String) if "response" in frame.columns else pl.lit(None, pl.String)
    parts = pl.struct(pl.col(_ROW).cast(pl.String).alias("key"), status.alias("status")).struct.json_encode()
    lines = frame.select(pl.concat_str(parts.str.head(-1), pl.lit(',"response":'), response.fill_null("null"),
                                       pl.lit("}")).alias("line")).get_column("line")  # fmt: skip
    results, _ = parse_predictions(lines, f"job {job}", None)
    answers = results.select(pl.col(KEY).cast(pl.UInt32).alias(_ROW), pl.col(TEXT).alias("response"),
                             pl.col(ERROR).alias("response_error"))  # fmt: skip
    out = frame.drop("response", strict=False).join(answers, on=_ROW, how="left", maintain_order="left")
    missing = pl.col("response").is_null() & pl.col("response_error").is_null()
    return out.with_columns(
        pl.when(missing).then(pl.lit("the output table has no readable prediction for this row"))
        .otherwise(pl.col("response_error")).alias("response_error")
    ).drop(_ROW)  # fmt: skip
