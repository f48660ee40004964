"""BigQuery for Vertex AI batch runs: request tables loaded under a `staging="bq://project.dataset"` dataset, output
tables read back as Arrow and deleted, through google-cloud-bigquery (the optional `bigquery` extra).

A job's input table holds `key` (STRING) and `request` (JSON); Vertex carries every column other than `request` to
the output table, so the key travels with its row, and adds `response` (JSON), `status` (STRING) and
`processed_time`. Loads replace the table whole (`WRITE_TRUNCATE`: a retry or a crash writes the same table again),
reads and deletes are idempotent, and google-cloud-bigquery retries them itself. Errors that escape are the library's
`APIError` (a dataset that does not exist is a `ConfigurationError`), never a credential.

>>> split_table("bq://my-project.my_dataset.requests")
('my-project', 'my_dataset', 'requests')
>>> table_name("polars-gemini-1a2b3c4d-5e6f7a8b9c0d-r1-0000", "input")
'polars_gemini_1a2b3c4d_5e6f7a8b9c0d_r1_0000_input'
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from polars_gemini.core.errors import APIError, ConfigurationError
from polars_gemini.service.gemini import vertex_identity
from polars_gemini.service.storage import google_call

if TYPE_CHECKING:
    import google.cloud.bigquery as bigquery
    from google import genai

T = TypeVar("T")

INSTALL = "pip install 'polars-gemini[bigquery]'"
_PART = re.compile(r"^[A-Za-z0-9_-]{1,1024}$")
_PROJECT = re.compile(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,62}[a-z0-9]$")


def uri_parts(uri: str) -> list[str]:
    """The dot-separated parts of a `bq://` URI, a domain-scoped project (`example.com:project`) kept whole."""
    rest = uri.removeprefix("bq://")
    domain, colon, rest = rest.rpartition(":") if ":" in rest else ("", "", rest)
    parts = rest.split(".")
    if colon:
        parts[0] = f"{domain}:{parts[0]}"
    return parts


def split_table(uri: str) -> tuple[str, str, str | None]:
    """`bq://project.dataset[.table]` as (project, dataset, table or None).

    >>> split_table("bq://example.com:my-project.ds")
    ('example.com:my-project', 'ds', None)
    """
    parts = uri_parts(uri)
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def table_name(job: str, kind: str) -> str:
    """The BigQuery table of a job's requests (`kind` "input") or predictions ("output")."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{job}_{kind}")


def check_dataset_uri(staging: str) -> str:
    """`staging` as `bq://project.dataset`, or a `ConfigurationError` saying what is wrong."""
    parts = uri_parts(staging)
    if len(parts) != 2 or not _PROJECT.match(parts[0]) or not _PART.match(parts[1]) or "-" in parts[1]:
        raise ConfigurationError(
            f"staging={staging!r} is not a BigQuery dataset: pass staging='bq://project.dataset' (a dataset in the "
            "job's region; request and prediction tables are made in it and deleted when the run is done)."
        )
    return staging


def bigquery_client(client: genai.Client, given: bigquery.Client | None) -> bigquery.Client:
    """The BigQuery client of a run: `given`, or one for the genai client's project, location and credentials (its
    Application Default Credentials when it was given none)."""
    if given is not None:
        return given
    try:
        import google.cloud.bigquery as bigquery
    except ImportError:
        raise ConfigurationError(
            f"Vertex AI batch runs staged in BigQuery need google-cloud-bigquery: {INSTALL}."
        ) from None
    project, location, credentials = vertex_identity(client)
    return bigquery.Client(project=project, credentials=credentials, location=location)


def _call(what: str, fn: Callable[[], T]) -> T:
    return google_call(what, fn, "BigQuery")


def check_dataset(bq: bigquery.Client, staging: str) -> None:
    """The staging dataset exists: checked before anything is loaded or paid for."""
    project, dataset, _ = split_table(staging)
    try:
        _call(f"Looking up the staging dataset {staging}", lambda: bq.get_dataset(f"{project}.{dataset}"))
    except APIError as exc:
        if exc.code == 404:
            raise ConfigurationError(
                f"The staging dataset {staging} does not exist: create it in the job's region, or pass another "
                "staging='bq://project.dataset'."
            ) from None
        raise


def load_requests(bq: bigquery.Client, uri: str, data: bytes | Path, what: str) -> str:
    """Load request lines (`{"key": .., "request": {..}}` JSONL, bytes or a file) into the table `uri`, replacing
    it whole; returns `uri`."""
    import google.cloud.bigquery as bigquery

    project, dataset, table = split_table(uri)
    ref = f"{project}.{dataset}.{table}"
    schema = [bigquery.SchemaField("key", "STRING"), bigquery.SchemaField("request", "JSON")]
    config = bigquery.LoadJobConfig(schema=schema, source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                                    write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE)  # fmt: skip

    def load() -> None:
        bq.create_table(bigquery.Table(ref, schema=schema), exists_ok=True)
        with (data.open("rb") if isinstance(data, Path) else io.BytesIO(data)) as source:
            bq.load_table_from_file(source, ref, job_config=config).result()

    _call(what, load)
    return uri


def read_table(bq: bigquery.Client, uri: str, what: str, columns: list[str] | None = None) -> pl.DataFrame:
    """The table `uri` (its `columns`, default all) as a Polars frame, read as Arrow (JSON columns as their text)."""
    project, dataset, table = split_table(uri)

    def read() -> Any:  # every column: `selected_fields` came back misaligned from the BigQuery emulator once
        return bq.list_rows(f"{project}.{dataset}.{table}", page_size=50_000).to_arrow(create_bqstorage_client=False)

    frame = pl.from_arrow(_plain(_call(what, read)))
    assert isinstance(frame, pl.DataFrame)
    return frame if columns is None else frame.select(c for c in frame.columns if c in columns)


def read_predictions(bq: bigquery.Client, uri: str, what: str) -> pl.Series:
    """The output table `uri` as prediction lines (`{"key": .., "status": .., "response": {..}}`, JSON text, one
    per row) for `run.predictions.parse_predictions`: read as Arrow, the lines built by Polars, never row by row."""
    frame = read_table(bq, uri, what, ["key", "status", "response"])
    response = pl.col("response").cast(pl.String) if "response" in frame.columns else pl.lit(None, pl.String)
    key = pl.col("key").cast(pl.String) if "key" in frame.columns else pl.lit(None, pl.String)
    parts = pl.struct(key.alias("key"), pl.col("status").cast(pl.String).alias("status")).struct.json_encode()
    line = pl.concat_str(parts.str.head(-1), pl.lit(',"response":'), response.fill_null("null"), pl.lit("}"))
    return frame.select(line.alias("line")).get_column("line")


def _plain(table: Any) -> Any:
    """An Arrow table with extension columns (BigQuery's JSON type arrives as one) as their storage: JSON text."""
    import pyarrow as pa

    columns = [
        pa.chunked_array([chunk.storage for chunk in column.chunks], type=column.type.storage_type)
        if isinstance(column.type, pa.ExtensionType) else column
        for column in table.columns
    ]  # fmt: skip
    return pa.table(columns, names=table.column_names)


def delete_table(bq: bigquery.Client, uri: str) -> None:
    """Delete one table; one already gone is fine."""
    project, dataset, table = split_table(uri)
    _call(f"Deleting {uri}", lambda: bq.delete_table(f"{project}.{dataset}.{table}", not_found_ok=True))


def delete_tables(bq: bigquery.Client, staging: str, prefix: str) -> int:
    """Delete the tables of `staging` whose names start with `prefix`; how many."""
    project, dataset, _ = split_table(staging)
    names = _call(f"Listing {staging}", lambda: [t.table_id for t in bq.list_tables(f"{project}.{dataset}")])
    mine = [n for n in names if n.startswith(prefix)]
    for name in mine:
        delete_table(bq, f"bq://{project}.{dataset}.{name}")
    return len(mine)
