"""The BigQuery side of the emulator's Vertex AI batch jobs: reading a job's input table and writing its output table,
through google-cloud-bigquery against a `BigQueryEmulator` (bqemulator).

What the real service documents, and what is guessed (sources in tests/fixtures/vertex_bigquery/README.md):

- Input (`bigquerySource.inputUri = bq://project.dataset.table`): a `request` column, JSON or STRING holding JSON, of a
  GenerateContentRequest; any other columns, of any type but ARRAY, STRUCT, RANGE, DATETIME and GEOGRAPHY, are
  ignored for generation and carried to the output table. `response` and `status` are reserved for the output.
  Documented. Here a table that breaks those rules, or is missing, fails the job ("Failed to import data ..."), as
  the service reports input errors after accepting the job; a `request` that is not valid JSON fails its row only.
- Output (`bigqueryDestination.outputUri = bq://project.dataset[.table]`): the named table, created when missing
  (documented), or `predictions_<timestamp>` in the named dataset (documented: `bigqueryOutputTable` "in
  predictions_<timestamp> format"; the AIPlatform docs spell the timestamp `YYYY_MM_DDThh_mm_ss_sssZ`). Its columns:
  every input column, then `response` (JSON; the GenerateContentResponse, NULL for a failed row), `status` (STRING;
  "" when answered, the error otherwise: documented as "error details are stored in the status column") and
  `processed_time` (TIMESTAMP). The types of those three and the column order are the contract's, not confirmed
  against a real output table. An existing output table is appended to (a guess). The dataset must exist.

Two entry points over the same code: `read_requests(client, uri)` / `write_predictions(client, uri, rows,
input_schema)` take a `google.cloud.bigquery.Client`; `read_table(settings, uri)` / `write_table(settings, uri, rows)`
are the seam `_vertex_io` calls, building that client from `settings.bigquery_url` (`BigQueryEmulator.url`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from polars_gemini.emulator._status import invalid_argument
from polars_gemini.emulator._vertex_io import InputUnreadable

if TYPE_CHECKING:
    from google.cloud import bigquery

__all__ = [
    "OUTPUT_COLUMNS",
    "output_schema",
    "parse_uri",
    "read_requests",
    "read_table",
    "write_predictions",
    "write_table",
]

OUTPUT_COLUMNS = (("response", "JSON"), ("status", "STRING"), ("processed_time", "TIMESTAMP"))
"""The columns Vertex adds to the input's in the output table, with their BigQuery types."""
RESERVED = ("response", "status")
"""Input columns the service reserves for its output (Vertex AI docs, batch prediction from BigQuery)."""
_REFUSED_TYPES = {"RECORD", "STRUCT", "RANGE", "DATETIME", "GEOGRAPHY"}
_INSERT_CHUNK = 5_000  # rows per insertAll request: one request per 200,000-row job would be hundreds of MB


def parse_uri(uri: str, *, table: bool) -> tuple[str, str, str | None]:
    """`bq://project.dataset.table` (or `bq://project.dataset` when `table` is False) as (project, dataset, table);
    anything else is a 400 INVALID_ARGUMENT."""
    parts = uri.removeprefix("bq://").split(".") if uri.startswith("bq://") else []
    if len(parts) == 3 and all(parts):
        return parts[0], parts[1], parts[2]
    if not table and len(parts) == 2 and all(parts):
        return parts[0], parts[1], None
    shape = "bq://project.dataset.table" if table else "bq://project.dataset or bq://project.dataset.table"
    raise invalid_argument(f"BigQuery URI {uri!r} is not of the form {shape}.")


def read_requests(client: bigquery.Client, uri: str) -> list[dict[str, Any]]:
    """Every row of the input table `uri` as a dict, column name to value, `request` decoded to a dict (None when it
    is not valid JSON: that row fails). A missing table or one Vertex would refuse raises `InputUnreadable`."""
    table = _input_table(client, uri)
    rows = client.list_rows(table, page_size=10_000)
    return [{**dict(row), "request": _decoded(row.get("request"))} for row in rows]


def write_predictions(
    client: bigquery.Client,
    uri: str,
    rows: Sequence[dict[str, Any]],
    input_schema: Sequence[bigquery.SchemaField] | None = None,
) -> str:
    """Writes the prediction rows (input columns + `response`, `status`, `processed_time`) to `uri`, a table or a
    dataset (then into a new `predictions_<timestamp>` table); returns the table's id `project.dataset.table`.

    The input columns take their types from `input_schema` (the input table's schema) or, without it, from their
    values. The table is created when missing. A missing dataset, or rows BigQuery refuses, are a 400
    (`EmulatedError`): the job fails.
    """
    from google.api_core import exceptions

    project, dataset, name = parse_uri(uri, table=False)
    table_id = f"{project}.{dataset}.{name or _predictions_table()}"
    schema = output_schema(input_schema if input_schema is not None else _inferred_schema(rows))
    try:
        client.get_dataset(f"{project}.{dataset}")  # first: bqemulator answers a create in a missing dataset with 500s
        table = _output_table(client, table_id, schema)
        for start in range(0, len(rows), _INSERT_CHUNK):
            errors = client.insert_rows(table, rows[start:start + _INSERT_CHUNK], selected_fields=table.schema)
            if errors:
                raise invalid_argument(f"Writing the predictions to {table_id} failed: {errors[:3]}")
    except exceptions.NotFound as exc:
        raise invalid_argument(f"BigQuery output dataset {project}.{dataset} was not found: {exc.message}") from None
    except exceptions.GoogleAPICallError as exc:
        raise invalid_argument(f"Writing the predictions to {table_id} failed: {exc.message}") from None
    return table_id


def output_schema(input_schema: Sequence[bigquery.SchemaField]) -> list[bigquery.SchemaField]:
    """The output table's schema: the input columns (less any named like an output column), then `response`,
    `status`, `processed_time`."""
    from google.cloud import bigquery

    added = {name for name, _ in OUTPUT_COLUMNS}
    carried = [field for field in input_schema if field.name not in added]
    return [*carried, *(bigquery.SchemaField(name, kind) for name, kind in OUTPUT_COLUMNS)]


# One BigQuery read or write at a time: bqemulator (DuckDB behind one connection) lost rows of output tables written
# by several jobs at once, which no real BigQuery does.
_ONE_AT_A_TIME = threading.Lock()


def read_table(settings: Any, uri: str) -> list[dict[str, Any]]:
    """`read_requests` against the emulator's BigQuery (`settings.bigquery_url`)."""
    project, _, _ = parse_uri(uri, table=True)
    with _ONE_AT_A_TIME:
        return read_requests(_client(settings, project), uri)


def write_table(settings: Any, uri: str, rows: Sequence[dict[str, Any]]) -> None:
    """`write_predictions` against the emulator's BigQuery (`settings.bigquery_url`), column types from the values."""
    project, _, _ = parse_uri(uri, table=False)
    with _ONE_AT_A_TIME:
        write_predictions(_client(settings, project), uri, rows)


def _client(settings: Any, project: str) -> bigquery.Client:
    url = getattr(settings, "bigquery_url", None)
    if url is None:
        raise invalid_argument(
            "This emulator has no BigQuery: start it with Emulator(bigquery_url=BigQueryEmulator().start().url) "
            "to run bq:// batch jobs."
        )
    try:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery
    except ImportError:
        raise invalid_argument("bq:// batch jobs need google-cloud-bigquery in the emulator's environment: "
                               "pip install 'polars-gemini[bigquery]'.") from None  # fmt: skip
    anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
    return bigquery.Client(project=project, credentials=anonymous, client_options=ClientOptions(api_endpoint=str(url)))


def _input_table(client: bigquery.Client, uri: str) -> bigquery.Table:
    from google.api_core import exceptions

    project, dataset, name = parse_uri(uri, table=True)
    try:
        table = client.get_table(f"{project}.{dataset}.{name}")
    except exceptions.NotFound as exc:
        where = f"{project}:{dataset}.{name}"
        raise InputUnreadable(f"Failed to import data. Not found: Table {where}: {exc.message}") from None
    columns = {field.name: field for field in table.schema}
    if "request" not in columns or columns["request"].field_type not in ("JSON", "STRING"):
        raise InputUnreadable(f"Failed to import data: {uri} needs a column `request` of type JSON or STRING.")
    for field in table.schema:
        kind = "ARRAY" if field.mode == "REPEATED" else field.field_type
        if field.name in RESERVED:
            raise InputUnreadable(f"Failed to import data: column `{field.name}` of {uri} is reserved for the output.")
        if kind in _REFUSED_TYPES or kind == "ARRAY":
            raise InputUnreadable(f"Failed to import data: column `{field.name}` of {uri} has type {kind}; input "
                                  "columns may not be ARRAY, STRUCT, RANGE, DATETIME or GEOGRAPHY.")  # fmt: skip
    return table


def _decoded(request: Any) -> dict[str, Any] | None:
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except ValueError:
            return None
    return request if isinstance(request, dict) else None


def _output_table(client: bigquery.Client, table_id: str, schema: list[bigquery.SchemaField]) -> bigquery.Table:
    from google.api_core import exceptions
    from google.cloud import bigquery

    try:
        return client.create_table(bigquery.Table(table_id, schema=schema))
    except exceptions.Conflict:
        return client.get_table(table_id)


def _predictions_table() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return f"predictions_{now:%Y_%m_%dT%H_%M_%S}_{now.microsecond // 1000:03d}Z"


def _inferred_schema(rows: Sequence[dict[str, Any]]) -> list[bigquery.SchemaField]:
    """The input columns' schema guessed from their values (the first non-null one of each column; all null: STRING);
    `request` is JSON."""
    from google.cloud import bigquery

    added = {name for name, _ in OUTPUT_COLUMNS}
    names = list(dict.fromkeys(name for row in rows for name in row if name not in added))
    fields = []
    for name in names:
        value = next((row[name] for row in rows if row.get(name) is not None), None)
        fields.append(bigquery.SchemaField(name, "JSON" if name == "request" else _bigquery_type(value)))
    return fields


def _bigquery_type(value: Any) -> str:
    # the names BigQuery's API reports in table schemas (INTEGER, not its SQL alias INT64)
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (bool, "BOOLEAN"), (int, "INTEGER"), (float, "FLOAT"), (decimal.Decimal, "NUMERIC"), (bytes, "BYTES"),
        ((dict, list), "JSON"), (dt.datetime, "TIMESTAMP"), (dt.date, "DATE"), (dt.time, "TIME"),
    )  # fmt: skip
    return next((kind for cls, kind in kinds if isinstance(value, cls)), "STRING")
