"""Cloud Storage for Vertex AI batch runs: request shards written under a `staging` prefix, prediction files read
back and deleted, through google-cloud-storage (the optional `vertex` extra).

Every call here is idempotent (an object written again under its own name holds the same bytes; reads, lists and
deletes change nothing twice) and retried with google-cloud-storage's own policy (`google.cloud.storage.retry`:
exponential backoff on 408/429/5xx and connection errors), which covers uploads too when they are made idempotent
as here. Errors that escape are the library's `APIError` (or `ConfigurationError` for a bucket that does not exist or
cannot be written), naming the object, never a credential.

>>> uri = staging_uri("gs://my-bucket/runs", "polars-gemini-1a2b3c4d-5e6f7a8b9c0d-r1-0000", "input.jsonl")
>>> uri
'gs://my-bucket/runs/polars-gemini-1a2b3c4d-5e6f7a8b9c0d-r1-0000/input.jsonl'
>>> split_uri(uri)
('my-bucket', 'runs/polars-gemini-1a2b3c4d-5e6f7a8b9c0d-r1-0000/input.jsonl')
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from polars_gemini.core.errors import APIError, ConfigurationError
from polars_gemini.service.gemini import vertex_identity

if TYPE_CHECKING:
    import google.cloud.storage as storage
    from google import genai

T = TypeVar("T")

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
INSTALL = "pip install 'polars-gemini[vertex]'"


def split_uri(uri: str) -> tuple[str, str]:
    """`gs://bucket/path` as (bucket, path); the path may be empty."""
    rest = uri.removeprefix("gs://")
    bucket, _, path = rest.partition("/")
    return bucket, path


def staging_uri(staging: str, *parts: str) -> str:
    """An object name under the `staging` prefix."""
    return "/".join([staging.rstrip("/"), *(p.strip("/") for p in parts)])


def check_staging(staging: object) -> str:
    """`staging` as a `gs://bucket[/prefix]` URI, or a `ConfigurationError` saying what is wrong."""
    if not isinstance(staging, str) or not staging.startswith("gs://"):
        raise ConfigurationError(
            f"staging={staging!r} is not a Cloud Storage location: pass staging='gs://bucket/prefix', a bucket in the "
            "Vertex AI job's region that the job's service account can read and write."
        )
    bucket, path = split_uri(staging)
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigurationError(f"staging={staging!r}: {bucket!r} is not a valid Cloud Storage bucket name.")
    if "//" in path or any(c in path for c in "\r\n#[]*?"):
        raise ConfigurationError(
            f"staging={staging!r}: the prefix may not hold '//', line breaks or the characters # [ ] * ?."
        )
    return staging.rstrip("/")


def storage_client(client: genai.Client, given: storage.Client | None) -> storage.Client:
    """The Cloud Storage client of a run: `given`, or one for the genai client's project and credentials (its
    Application Default Credentials when it was given none)."""
    if given is not None:
        return given
    try:
        import google.cloud.storage as storage
    except ImportError:
        raise ConfigurationError(
            f"Vertex AI batch runs stage their requests in Cloud Storage, which needs google-cloud-storage: {INSTALL}."
        ) from None
    project, _, credentials = vertex_identity(client)
    return storage.Client(project=project, credentials=credentials)


def google_call(what: str, fn: Callable[[], T], service: str = "Cloud Storage") -> T:
    """`fn()` (a google-cloud-storage or google-cloud-bigquery call, already retried by that library) with its errors
    as the library's `APIError`: the call, the HTTP code, the service's message; never a credential."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    try:
        return fn()
    except gexc.GoogleAPICallError as exc:
        raise APIError(f"{what} failed: HTTP {exc.code}: {_message(exc)}", code=exc.code) from None
    except auth_exc.GoogleAuthError as exc:
        raise APIError(f"{what} failed: {service} credentials were refused ({type(exc).__name__}).") from None
    except (OSError, ValueError) as exc:  # requests' connection errors are OSErrors
        raise APIError(f"{what} failed: could not reach {service} ({type(exc).__name__}: {exc}).") from None


_call = google_call


def _message(exc: Any) -> str:
    return str(getattr(exc, "message", "") or exc).splitlines()[0][:500]


def _retry() -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY


def check_bucket(storage: storage.Client, staging: str) -> None:
    """The staging bucket exists: checked before anything is uploaded or paid for."""
    bucket, _ = split_uri(staging)
    try:
        _call(f"Looking up the staging bucket gs://{bucket}", lambda: storage.get_bucket(bucket, retry=_retry()))
    except APIError as exc:
        if exc.code == 404:
            raise ConfigurationError(
                f"The staging bucket gs://{bucket} does not exist: create it in the job's region, or pass another "
                "staging='gs://bucket/prefix'."
            ) from None
        raise


def upload(storage: storage.Client, uri: str, data: bytes | Path, what: str) -> str:
    """Write `data` (bytes, or a file streamed from disk) to the object `uri`; returns `uri`. Written again whole on
    a retry (same name, same bytes)."""
    bucket, name = split_uri(uri)
    blob = storage.bucket(bucket).blob(name)
    if isinstance(data, Path):
        _call(what, lambda: blob.upload_from_filename(str(data), content_type="application/jsonl", retry=_retry()))
    else:
        _call(what, lambda: blob.upload_from_string(data, content_type="application/jsonl", retry=_retry()))
    return uri


def list_objects(storage: storage.Client, prefix_uri: str, suffix: str = "") -> list[str]:
    """The objects under `prefix_uri` (as gs:// URIs) whose names end with `suffix`, sorted by name."""
    bucket, prefix = split_uri(prefix_uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""

    def names() -> list[str]:
        return sorted(b.name for b in storage.list_blobs(bucket, prefix=prefix, retry=_retry()))

    return [f"gs://{bucket}/{n}" for n in _call(f"Listing {prefix_uri}", names) if n.endswith(suffix)]


def download_to(storage: storage.Client, uri: str, path: Path, what: str) -> None:
    """Stream the object `uri` to `path`, written whole or not at all."""
    bucket, name = split_uri(uri)
    blob = storage.bucket(bucket).blob(name)
    partial = path.with_name(f".{path.name}.part")
    path.parent.mkdir(parents=True, exist_ok=True)
    _call(what, lambda: blob.download_to_filename(str(partial), retry=_retry()))
    os.replace(partial, path)


def delete(storage: storage.Client, uri: str) -> None:
    """Delete one object; one already gone is fine."""
    bucket, name = split_uri(uri)
    try:
        _call(f"Deleting {uri}", lambda: storage.bucket(bucket).blob(name).delete(retry=_retry()))
    except APIError as exc:
        if exc.code != 404:
            raise


def delete_prefix(storage: storage.Client, prefix_uri: str) -> int:
    """Delete every object under `prefix_uri`; how many there were."""
    found = list_objects(storage, prefix_uri)
    for uri in found:
        delete(storage, uri)
    return len(found)
