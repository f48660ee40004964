"""Where Vertex AI batch jobs read requests and write predictions: Cloud Storage (through google-cloud-storage, against
`Settings.storage_url`) and BigQuery (through `_vertex_bigquery`, when that module exists).

Input lines are `{"request": {...}, <other top-level fields>}`; a line's other fields (the library's `"key"`) are
copied to its prediction line unless `vertex_echo_fields` is off: Vertex documents no per-row key for Cloud Storage
input, so whether the real service echoes them is not confirmed; with the setting off the library must join on the
echoed request. Prediction lines, in the order of a real sample (litellm's Vertex batch docs, 2025-09):
`{<echoed fields>, "status": "", "processed_time": "...+00:00", "request": {...}, "response": {...}}`; a failed row has
a non-empty `status` ("Bad Request: {"error": {...}}", as the real service words them) and no `response`.

The BigQuery seam: `_vertex_bigquery` (written separately) provides `read_table(settings, uri) -> list[dict]` (one
dict per row, column name to value; the `request` column a dict or a JSON string) and
`write_table(settings, uri, rows: list[dict]) -> None` (creates the table `bq://project.dataset.table`). Until it
exists, `bq://` sources and destinations are refused with 400 INVALID_ARGUMENT at create.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import threading
from collections.abc import Sequence
from http import HTTPStatus
from types import ModuleType
from typing import TYPE_CHECKING, Any

from polars_gemini.emulator._config import Settings
from polars_gemini.emulator._jobs import Entry
from polars_gemini.emulator._normalize import normalize
from polars_gemini.emulator._status import EmulatedError, invalid_argument
from polars_gemini.emulator._types import Outcome
from polars_gemini.emulator._validate import check_request
from polars_gemini.emulator._vertex_jobs import Row

if TYPE_CHECKING:
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]  # google.cloud: a namespace package mypy may not resolve

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class InputUnreadable(Exception):
    """The job's input cannot be read or parsed: the job is created, then FAILED with this message (the real service
    checks its input after accepting the job)."""


def split_gcs(uri: str) -> tuple[str, str]:
    bucket, _, path = uri.removeprefix("gs://").partition("/")
    return bucket, path


class CloudStorage:
    """google-cloud-storage clients for `settings.storage_url`, one per thread (a client is not thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._local = threading.local()

    def client(self) -> storage.Client:
        url = self._settings.storage_url
        if url is None:
            raise invalid_argument(
                "This emulator has no Cloud Storage: start it with Emulator(storage_url=GcsEmulator().start().url) "
                "or Emulator(gcs=...) to run gs:// batch jobs."
            )
        cached = getattr(self._local, "client", None)
        if cached is not None and cached[0] == url:
            return cached[1]
        try:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            raise invalid_argument("gs:// batch jobs need google-cloud-storage in the emulator's environment: "
                                   "pip install 'polars-gemini[vertex]'.") from None  # fmt: skip
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call,unused-ignore]
        client = storage.Client(project="emulator", credentials=anonymous, client_options={"api_endpoint": url})
        self._local.client = (url, client)
        return client

    def read_inputs(self, uris: Sequence[str]) -> list[tuple[str, bytes]]:
        """Each input object's bytes (wildcards `*` expanded, in name order); objects over the size limit are a 400,
        missing ones `InputUnreadable`."""
        limit = self._settings.vertex_file_limit_bytes
        out = []
        for uri in uris:
            for name, blob in self._blobs(uri):
                if blob.size is not None and blob.size > limit:
                    raise invalid_argument(
                        f"Input file {name} is {blob.size} bytes; Cloud Storage input files of a batch prediction job "
                        f"may be at most {limit} bytes ({limit / 2**30:g} GB). Split the requests into several jobs."
                    )
                out.append((name, blob.download_as_bytes()))
        return out

    def _blobs(self, uri: str) -> list[tuple[str, Any]]:
        from google.api_core import exceptions

        bucket_name, path = split_gcs(uri)
        bucket = self.client().bucket(bucket_name)
        try:
            if "*" in path:
                prefix = path.split("*", 1)[0]
                found = [b for b in bucket.list_blobs(prefix=prefix) if fnmatch.fnmatchcase(b.name, path)]
                if not found:
                    raise InputUnreadable(f"No Cloud Storage object matches {uri}.")
                return [(f"gs://{bucket_name}/{b.name}", b) for b in sorted(found, key=lambda b: b.name)]
            blob = bucket.get_blob(path)
        except exceptions.NotFound:
            raise InputUnreadable(f"Cloud Storage bucket {bucket_name} does not exist (input {uri}).") from None
        if blob is None:
            raise InputUnreadable(f"Cloud Storage object {uri} does not exist or cannot be read.")
        return [(uri, blob)]

    def write(self, directory: str, files: dict[str, bytes]) -> None:
        """Writes `files` (name -> bytes) under the gs:// `directory`."""
        bucket_name, path = split_gcs(directory)
        bucket = self.client().bucket(bucket_name)
        for name, data in files.items():
            bucket.blob(f"{path}/{name}").upload_from_string(data, content_type="application/jsonl")


def rows_from_jsonl(data: bytes, uri: str) -> list[Row]:
    """One `Row` per non-blank line; a line that is not a JSON object with a `request` object fails the job."""
    return [_row(line, uri, n) for n, line in enumerate(data.splitlines(), 1) if line.strip()]


def _row(line: bytes, uri: str, number: int) -> Row:
    try:
        parsed = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputUnreadable(f"Failed to import data: invalid JSON in {uri} line {number}: {exc}.") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("request"), dict):
        raise InputUnreadable(f"Failed to import data: {uri} line {number} has no \"request\" object.")
    return row_of(parsed, f"{uri} line {number} request")


def row_of(parsed: dict[str, Any], where: str) -> Row:
    """The row of one input record (a JSONL line or a BigQuery row): `request` plus other fields, echoed."""
    raw = parsed["request"]
    extras = {k: v for k, v in parsed.items() if k != "request"}
    key = extras.get("key")
    request = normalize(raw)
    entry = Entry(request, None if key is None else str(key), extras)
    try:
        check_request(request, where)
    except EmulatedError as error:
        return Row(entry, raw, error)
    return Row(entry, raw, None)


def status_message(error: EmulatedError) -> str:
    """A failed row's `status`: the HTTP reason and the error body, as the real prediction files word it."""
    phrase = HTTPStatus(error.http_code).phrase if error.http_code in HTTPStatus._value2member_map_ else "Error"
    return f"{phrase}: {json.dumps(error.body())}"


def prediction(row: Row, outcome: Outcome, settings: Settings, when: str) -> dict[str, Any]:
    """One prediction record: echoed fields, status, processed_time, request, and the response of an answered row."""
    record: dict[str, Any] = dict(row.entry.metadata or {}) if settings.vertex_echo_fields else {}
    failed = isinstance(outcome, EmulatedError)
    record["status"] = status_message(outcome) if isinstance(outcome, EmulatedError) else ""
    record["processed_time"] = when
    record["request"] = row.verbatim if settings.vertex_echo_request == "verbatim" else row.entry.request
    if not failed:
        record["response"] = outcome
    return record


def jsonl_files(records: Sequence[dict[str, Any]], count: int) -> dict[str, bytes]:
    """`predictions.jsonl`, or the records split into `count` files `predictions_0001.jsonl`, ... (the naming of
    `GcsDestination`'s documentation), none of them empty."""
    lines = [_encode(record) for record in records]
    if count <= 1:
        return {"predictions.jsonl": _joined(lines)}
    count = max(1, min(count, len(lines)))
    size = -(-len(lines) // count)
    return {f"predictions_{i + 1:04d}.jsonl": _joined(lines[i * size:(i + 1) * size]) for i in range(count)}


def _joined(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode() if lines else b""


def bigquery() -> ModuleType:
    """The BigQuery side of the emulator (`_vertex_bigquery`), or 400 while it does not exist."""
    try:
        return importlib.import_module("polars_gemini.emulator._vertex_bigquery")
    except ModuleNotFoundError as exc:
        if exc.name != "polars_gemini.emulator._vertex_bigquery":
            raise
        message = "BigQuery is not available in this emulator: use gs:// sources and destinations."
        raise invalid_argument(message) from None
