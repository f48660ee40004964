"""The one module that talks to google-genai. Everything else in the library is pure data in, data out.

Two kinds of call, two policies:

* **Idempotent calls** (get, list, download, upload, file get/delete, cancel, generateContent) are retried here with
  capped exponential backoff and jitter (tenacity, the SDK's own retry engine) on 408/429/5xx, timeouts and connection
  errors. The SDK's own retry is switched off per call so that the policy is the same for every call (the SDK's
  download ignores retry options altogether) and so that a caller's client works as it is.
* **Creating a job** costs money and is not idempotent: it is sent once, never retried blindly. When its outcome is
  unknown (timeout, connection error, 5xx), the job is looked up by its unique display name first and created again
  only if the service does not have it.

Every error that escapes is an `APIError` naming the call, the job or file, and the URL when the host is
unreachable; never the API key.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import tenacity
from google import genai
from google.genai import errors, types

from polars_gemini.core.errors import APIError, MissingAPIKeyError
from polars_gemini.core.models import normalize_model

T = TypeVar("T")

ENV_KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED", "PARTIALLY_SUCCEEDED")
RETRYABLE_HTTP = (408, 429, 500, 502, 503, 504)
RETRY = types.HttpRetryOptions(
    attempts=6, initial_delay=1.0, max_delay=60.0, exp_base=2.0, jitter=1.0, http_status_codes=list(RETRYABLE_HTTP)
)
"""The default policy for idempotent calls: 6 attempts, 1 s doubling to at most 60 s (about 30 s in all)."""


def _once() -> types.HttpOptions:
    """Options that turn the SDK's own retry off (the policy above runs here instead), fresh for every call.

    Never shared: `files.upload` writes its upload headers (the file's size among them) into the options it is
    given, so one shared object let concurrent uploads declare each other's sizes, and later calls send them.
    """
    return types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1))


# Rpc status names of the codes that say a request is wrong, whatever the number of times it is sent.
STATUS_NAMES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND", 7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 13: "INTERNAL", 14: "UNAVAILABLE", 16: "UNAUTHENTICATED",
}  # fmt: skip
# How a create whose outcome is unknown is looked up: a create still being processed may land a moment later.
LOOKUPS = 3
LOOKUP_PAUSE = 1.0
_CLOCK_SKEW = timedelta(seconds=60)  # between this machine's clock and the service's


def _transport_errors() -> tuple[type[Exception], ...]:
    """Timeouts and connection errors of whichever httpx the SDK uses (httpx, or its fork httpx2)."""
    found: list[type[Exception]] = []
    for module in ("httpx", "httpx2"):
        try:
            found.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


TRANSPORT_ERRORS: tuple[type[Exception], ...] = _transport_errors()


def is_vertex(client: genai.Client | None) -> bool:
    """Whether `client` talks to Vertex AI (`genai.Client(vertexai=True, ...)`) rather than the Gemini Developer API."""
    return bool(client is not None and client.vertexai)


def vertex_identity(client: genai.Client) -> tuple[str | None, str | None, Any]:
    """A Vertex AI client's project, location and credentials (None: Application Default Credentials, found by
    whichever Google client uses them), for the Cloud Storage and BigQuery clients of its runs."""
    api = client._api_client
    return api.project, api.location, getattr(api, "_credentials", None)


def is_client(value: object) -> bool:
    """Whether `value` is a google-genai client (checked here: the only module that imports the SDK's client)."""
    return isinstance(value, genai.Client)


def client_from_env(environ: Mapping[str, str] | None = None) -> genai.Client:
    """A client built from GEMINI_API_KEY / GOOGLE_API_KEY."""
    env = os.environ if environ is None else environ
    key = next((env[name] for name in ENV_KEYS if env.get(name)), None)
    if key is None:
        raise MissingAPIKeyError(
            "No Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), or pass client=genai.Client(...). "
            "To try the library offline, use the bundled emulator: "
            "`with polars_gemini.emulator.Emulator() as emu: df.gemini.batch(..., client=emu.client())`."
        )
    return genai.Client(api_key=key)


def retrying(what: str, fn: Callable[[], T], retry: types.HttpRetryOptions | None = None) -> T:
    """`fn()` retried under `retry` (default `RETRY`) on retryable HTTP codes, timeouts and connection errors."""
    policy = retry or RETRY
    codes = tuple(policy.http_status_codes or RETRYABLE_HTTP)
    retryer = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(policy.attempts or 1, 1)),
        wait=tenacity.wait_exponential_jitter(
            initial=_or(policy.initial_delay, 1.0),
            max=_or(policy.max_delay, 60.0),
            exp_base=_or(policy.exp_base, 2.0),
            jitter=_or(policy.jitter, 1.0),
        ),
        retry=tenacity.retry_if_exception(lambda e: is_transient(e, codes)),
        reraise=True,
    )
    try:
        return retryer(fn)
    except (errors.APIError, *TRANSPORT_ERRORS) as exc:  # type: ignore[misc]  # a tuple built at import
        raise as_api_error(what, exc) from None


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def is_transient(exc: BaseException, codes: tuple[int, ...] = RETRYABLE_HTTP) -> bool:
    """A failure that the same call may not meet again: a retryable HTTP code, a timeout, a lost connection."""
    if isinstance(exc, errors.APIError):
        return exc.code in codes
    return isinstance(exc, TRANSPORT_ERRORS)


def as_api_error(what: str, exc: BaseException) -> APIError:
    """`exc` (an SDK or transport error) as the library's `APIError`: the call, the code, the message; no key."""
    if isinstance(exc, errors.APIError):
        status = f" {exc.status}" if exc.status else ""
        return APIError(f"{what} failed: HTTP {exc.code}{status}: {exc.message}", code=exc.code)
    kind = "timed out" if "Timeout" in type(exc).__name__ else f"could not reach the service ({type(exc).__name__})"
    return APIError(f"{what} failed: {kind}{_url_of(exc)}: {exc}. Check the network and base_url, then retry.")


def _url_of(exc: BaseException) -> str:
    try:
        url = exc.request.url  # type: ignore[attr-defined]  # httpx errors carry the request they failed on
    except (AttributeError, RuntimeError):
        return ""
    return f" at {url.scheme}://{url.host}{f':{url.port}' if url.port else ''}{url.path}"


@dataclass(frozen=True)
class JobSnapshot:
    """What the library needs from a batch job's state."""

    name: str
    display_name: str | None
    state: str  # SUCCEEDED, RUNNING, ... (the SDK's JOB_STATE_ prefix removed)
    error: str | None
    result_file: str | None
    inlined: list[types.InlinedResponse] | None
    error_code: int | None = None
    created: datetime | None = None
    inlined_embed: list[types.InlinedEmbedContentResponse] | None = None
    output_dir: str | None = None  # Vertex AI: where the job wrote its predictions (`outputInfo`)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def active(self) -> bool:
        return self.state in ("PENDING", "RUNNING", "QUEUED", "UNSPECIFIED", "PAUSED", "UPDATING", "CANCELLING")

    @property
    def results_ready(self) -> bool:
        return (
            self.result_file is not None
            or self.inlined is not None
            or self.inlined_embed is not None
            or self.output_dir is not None
        )


def _snapshot(job: types.BatchJob) -> JobSnapshot:
    state = job.state.value if job.state is not None else "JOB_STATE_UNSPECIFIED"
    dest = job.dest
    error = f"{job.error.message} (code {job.error.code})" if job.error and job.error.message else None
    return JobSnapshot(
        name=job.name or "",
        display_name=job.display_name,
        state=state.removeprefix("JOB_STATE_"),
        error=error,
        result_file=dest.file_name if dest else None,
        inlined=dest.inlined_responses if dest and dest.inlined_responses is not None else None,
        error_code=job.error.code if job.error else None,
        created=job.create_time,
        inlined_embed=dest.inlined_embed_content_responses if dest else None,
        output_dir=_output_dir(job),
    )


def _output_dir(job: types.BatchJob) -> str | None:
    """A Vertex AI job's predictions: its Cloud Storage directory, or its BigQuery table as `bq://project.ds.table`."""
    info = job.output_info
    if info is None:
        return None
    if info.gcs_output_directory:
        return info.gcs_output_directory
    table = info.bigquery_output_table
    dest = job.dest.bigquery_uri if job.dest is not None else None
    if table and dest and not table.startswith("bq://"):  # the table's name only, in the destination's dataset
        dataset = dest.removeprefix("bq://").split(".")
        return "bq://" + ".".join([*dataset[:2], table])
    return table or None


def _operation_snapshot(body: str) -> JobSnapshot:
    """A job from the raw JSON of a create reply (a long-running operation whose metadata is the batch), read as
    the SDK's `_BatchJob_from_mldev` reads it: name, display name, state (`BATCH_STATE_X` is `JOB_STATE_X`)."""
    operation = json.loads(body or "{}")
    meta = operation.get("metadata") or {}
    state = str(meta.get("state") or "UNSPECIFIED").removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
    created = meta.get("createTime")
    when = datetime.fromisoformat(created.replace("Z", "+00:00")) if isinstance(created, str) else None
    return JobSnapshot(str(operation.get("name") or ""), meta.get("displayName"), state, None, None, None,
                       created=when)  # fmt: skip


def upload_jsonl(
    client: genai.Client, data: bytes | Path, display_name: str, retry: types.HttpRetryOptions | None = None
) -> str:
    """Upload a JSONL request file (bytes, or a path streamed from disk); returns its name (`files/...`).

    Retried as a whole: an upload cut off half way leaves an orphan file, which expires after 48 h and costs nothing.
    """

    def upload() -> str:
        source = str(data) if isinstance(data, Path) else io.BytesIO(data)
        config = types.UploadFileConfig(mime_type="application/jsonl", display_name=display_name, http_options=_once())
        return client.files.upload(file=source, config=config).name or ""

    return retrying(f"Uploading the requests of {display_name}", upload, retry)


def create_job(
    client: genai.Client,
    model: str,
    src: Any,
    display_name: str,
    retry: types.HttpRetryOptions | None = None,
    webhook: types.WebhookConfig | None = None,
    dest: str | None = None,
) -> JobSnapshot:
    """Create a batch job: the call that costs money, sent once. `display_name` must be unique.

    When the outcome is unknown (timeout, connection error, 5xx), the job is looked up by its display name: the
    service may have created it although the reply was lost. Only a job the service does not have is sent again.
    A definite refusal (400, 403, 429, ...) raises `APIError` with its code at once; when even the look-up fails,
    `CreateOutcomeUnknown` says so (the job may exist: look it up again later, never create it blindly).
    `webhook`: the URIs (and user metadata) the service notifies when the job ends. `dest` (Vertex AI): where the
    predictions go, a `gs://` prefix or a `bq://` table; `src` is then a `gs://` object or a `bq://` table.
    """

    def send() -> JobSnapshot:
        config = types.CreateBatchJobConfig(display_name=display_name, http_options=_once(), webhook_config=webhook,
                                            dest=dest)  # fmt: skip
        return _snapshot(client.batches.create(model=model, src=src, config=config))

    return _create_once(client, send, display_name, retry)


def create_embed_job(
    client: genai.Client,
    model: str,
    src: str | list[dict[str, Any]],
    display_name: str,
    retry: types.HttpRetryOptions | None = None,
) -> JobSnapshot:
    """Create an embedding batch job (`asyncBatchEmbedContent`), sent once as `create_job` is.

    `src` is an uploaded request file's name (sent through the SDK's `batches.create_embeddings`), or inline
    `InlinedEmbedContentRequest`s with a key in each one's `metadata` (`prepare.requests.inline_embed_requests`):
    the SDK has no field for per-request metadata, so those go as the REST body through the SDK's own client.
    """

    def send() -> JobSnapshot:
        if isinstance(src, str):
            config = types.CreateEmbeddingsBatchJobConfig(display_name=display_name, http_options=_once())
            with warnings.catch_warnings():  # "batches.create_embeddings() is experimental"
                warnings.filterwarnings("ignore", message=r".*create_embeddings\(\) is experimental")
                source = types.EmbeddingsBatchJobSource(file_name=src)
                return _snapshot(client.batches.create_embeddings(model=model, src=source, config=config))
        body: dict[str, object] = {
            "batch": {"display_name": display_name, "input_config": {"requests": {"requests": src}}}
        }
        path = f"models/{normalize_model(model)}:asyncBatchEmbedContent"
        return _operation_snapshot(client._api_client.request("post", path, body, _once()).body or "")

    return _create_once(client, send, display_name, retry)


def _create_once(
    client: genai.Client, send: Callable[[], JobSnapshot], display_name: str, retry: types.HttpRetryOptions | None
) -> JobSnapshot:
    """`send()` (a create), never re-sent blindly: see `create_job`."""
    what = f"Creating batch job {display_name}"
    attempts = max((retry or RETRY).attempts or 1, 1)
    for attempt in range(1, attempts + 1):
        since = datetime.now(timezone.utc) - _CLOCK_SKEW  # a job of that name created before this attempt is not it
        try:
            return send()
        except (errors.APIError, *TRANSPORT_ERRORS) as exc:  # type: ignore[misc]  # a tuple built at import
            if not is_transient(exc) or (isinstance(exc, errors.APIError) and exc.code == 429):
                raise as_api_error(what, exc) from None
            unknown = as_api_error(what, exc)
        try:
            found = find_created(client, display_name, retry, since=since)
        except APIError as lookup:
            raise CreateOutcomeUnknown(f"{unknown} Looking the job up failed too ({lookup}).") from None
        if found is not None:
            return found
        if attempt == attempts:
            raise CreateOutcomeUnknown(str(unknown))
        time.sleep(min(_or((retry or RETRY).initial_delay, 1.0) * 2 ** (attempt - 1), 30.0))
    raise AssertionError("unreachable")  # the loop returns or raises


class CreateOutcomeUnknown(APIError):
    """A create whose outcome is unknown and whose look-up failed or found nothing yet: the job may exist."""


def find_created(
    client: genai.Client,
    display_name: str,
    retry: types.HttpRetryOptions | None = None,
    *,
    since: datetime | None = None,
    lookups: int = LOOKUPS,
) -> JobSnapshot | None:
    """The job named `display_name` that this create made: created after `since`, and running or succeeded (an
    older job of that name, cancelled or failed, is not it). Looked for `lookups` times: a create in flight may
    still be landing."""
    for attempt in range(lookups):
        found = [
            j for j in find_jobs(client, display_name, retry, exact=True)
            if (j.active or j.state in ("SUCCEEDED", "PARTIALLY_SUCCEEDED"))
            and (since is None or j.created is None or j.created >= since)
        ]  # fmt: skip
        if found:
            return found[0]
        if attempt < lookups - 1:
            time.sleep(min(_or((retry or RETRY).initial_delay, LOOKUP_PAUSE), LOOKUP_PAUSE))
    return None


def best_match(jobs: list[JobSnapshot]) -> JobSnapshot:
    """Of several jobs with one display name, the one to follow: an active or succeeded one, newest first."""
    usable = [j for j in jobs if j.active or j.state in ("SUCCEEDED", "PARTIALLY_SUCCEEDED")]
    return (usable or jobs)[0]  # `list` answers newest first


def get_job(client: genai.Client, name: str, retry: types.HttpRetryOptions | None = None) -> JobSnapshot:
    config = types.GetBatchJobConfig(http_options=_once())
    snap = _snapshot(retrying(f"Polling {name}", lambda: client.batches.get(name=name, config=config), retry))
    if snap.state == "FAILED" and snap.error is None and not is_vertex(client):  # Vertex fills `error` itself
        return _with_operation_error(client, snap, retry)
    return snap


def _with_operation_error(client: genai.Client, snap: JobSnapshot, retry: types.HttpRetryOptions | None) -> JobSnapshot:
    """A FAILED job with the reason the service gave. The SDK drops the operation's `error` in Gemini API mode
    (`BatchJob.error` stays None), so the operation is read once more as plain JSON through the SDK's own client."""

    def read() -> Any:
        response = client._api_client.request("get", snap.name, {}, _once())
        return json.loads(response.body or "{}").get("error")

    error = retrying(f"Reading why {snap.name} failed", read, retry)
    if not isinstance(error, dict) or not error:
        return snap
    code = error.get("code") if isinstance(error.get("code"), int) else None
    status = error.get("status") or (STATUS_NAMES.get(code, "") if code is not None else "")
    message = f"{error.get('message') or 'no message'} (code {code}{f' {status}' if status else ''})"
    return JobSnapshot(snap.name, snap.display_name, snap.state, message, snap.result_file, snap.inlined, code)


def cancel_job(client: genai.Client, name: str, retry: types.HttpRetryOptions | None = None) -> None:
    config = types.CancelBatchJobConfig(http_options=_once())
    retrying(f"Cancelling {name}", lambda: client.batches.cancel(name=name, config=config), retry)


def find_jobs(
    client: genai.Client, display_prefix: str, retry: types.HttpRetryOptions | None = None, *, exact: bool = False
) -> list[JobSnapshot]:
    """Jobs whose display name starts with (or, `exact`, equals) `display_prefix`, newest first."""
    config = types.ListBatchJobsConfig(page_size=100, http_options=_once())
    jobs = retrying("Listing batch jobs", lambda: list(client.batches.list(config=config)), retry)
    name = display_prefix
    return [
        _snapshot(j) for j in jobs if (j.display_name == name if exact else (j.display_name or "").startswith(name))
    ]


def download(client: genai.Client, file_name: str, job: str, retry: types.HttpRetryOptions | None = None) -> bytes:
    config = types.DownloadFileConfig(http_options=_once())
    what = f"Downloading the results of {job} ({file_name})"
    data = retrying(what, lambda: client.files.download(file=file_name, config=config), retry)
    return data or b""


def download_to(
    client: genai.Client, file_name: str, path: Path, job: str, retry: types.HttpRetryOptions | None = None
) -> None:
    """Stream a results file to `path` (written whole or not at all): an embedding job's results are mostly
    vectors, gigabytes of JSON that never need to be in memory at once."""
    what = f"Downloading the results of {job} ({file_name})"
    partial = path.with_name(f".{path.name}.part")

    def fetch() -> None:
        with partial.open("wb") as out:
            config = types.DownloadFileConfig(http_options=_once())
            if "destination" in inspect.signature(client.files.download).parameters:
                client.files.download(file=file_name, config=config, destination=out)
            else:  # google-genai before streamed downloads
                out.write(client.files.download(file=file_name, config=config) or b"")

    path.parent.mkdir(parents=True, exist_ok=True)
    retrying(what, fetch, retry)
    os.replace(partial, path)


def delete_file(client: genai.Client, file_name: str, retry: types.HttpRetryOptions | None = None) -> None:
    """Delete an input file; one already gone (expired, or deleted by a retry whose first reply was lost) is fine.
    The service answers 403 PERMISSION_DENIED ("... or it may not exist") for a file it no longer has."""
    config = types.DeleteFileConfig(http_options=_once())
    try:
        retrying(f"Deleting {file_name}", lambda: client.files.delete(name=file_name, config=config), retry)
    except APIError as exc:
        if exc.code not in (403, 404):
            raise


@dataclass(frozen=True)
class FileSnapshot:
    """A Files API file as the library needs it."""

    name: str
    uri: str
    display_name: str | None
    state: str  # ACTIVE, PROCESSING, FAILED
    expires_at: float | None  # epoch seconds


def _file_snapshot(f: types.File) -> FileSnapshot:
    state = f.state.value if f.state is not None else "ACTIVE"
    expires = f.expiration_time.timestamp() if f.expiration_time is not None else None
    return FileSnapshot(f.name or "", f.uri or "", f.display_name, state, expires)


def upload_media(
    client: genai.Client, data: bytes, mime_type: str, display_name: str, retry: types.HttpRetryOptions | None = None
) -> FileSnapshot:
    """Upload one media file; retried as a whole (an upload cut off half way leaves an orphan that expires)."""

    def upload() -> types.File:
        config = types.UploadFileConfig(mime_type=mime_type, display_name=display_name, http_options=_once())
        return client.files.upload(file=io.BytesIO(data), config=config)
    return _file_snapshot(retrying(f"Uploading media {display_name}", upload, retry))


def get_file(client: genai.Client, name: str, retry: types.HttpRetryOptions | None = None) -> FileSnapshot | None:
    """A file's state, or None when the service no longer has it (403 "... or it may not exist", or 404)."""
    config = types.GetFileConfig(http_options=_once())
    try:
        return _file_snapshot(
            retrying(f"Reading file {name}", lambda: client.files.get(name=name, config=config), retry)
        )
    except APIError as exc:
        if exc.code in (403, 404):
            return None
        raise


def list_files(client: genai.Client, prefix: str, retry: types.HttpRetryOptions | None = None) -> list[FileSnapshot]:
    """The project's files whose display name starts with `prefix`."""
    config = types.ListFilesConfig(page_size=100, http_options=_once())
    files = retrying("Listing files", lambda: list(client.files.list(config=config)), retry)
    return [_file_snapshot(f) for f in files if (f.display_name or "").startswith(prefix)]


def file_uri(client: genai.Client, name: str) -> str:
    """The URI of the Files API file `name` (`files/abc`) on this client's service."""
    base = (client._api_client._http_options.base_url or "https://generativelanguage.googleapis.com/").rstrip("/")
    version = client._api_client._http_options.api_version or "v1beta"
    return f"{base}/{version}/{name}"


def count_tokens(client: genai.Client, model: str, text: str, retry: types.HttpRetryOptions | None = None) -> int:
    """countTokens for one text prompt. Not billed and outside the inference quota (ai.google.dev/gemini-api/docs/
    billing: "Requests to the GetTokens API are not billed")."""
    config = types.CountTokensConfig(http_options=_once())
    what = f"countTokens on {model}"
    result = retrying(what, lambda: client.models.count_tokens(model=model, contents=text, config=config), retry)
    return result.total_tokens or 0


def generate(
    client: genai.Client,
    model: str,
    prompt: str | list[types.Part],
    config: types.GenerateContentConfig,
    retry: types.HttpRetryOptions | None = None,
    timeout: int | None = None,
) -> types.GenerateContentResponse:
    """One synchronous generateContent call (sync mode; idempotent: nothing is stored on the service).
    `timeout` (milliseconds) replaces the client's for this call: a Flex call may take minutes, and one cut short
    by a client timeout is sent again, and may be billed twice."""
    options = _once()
    if timeout is not None:
        options.timeout = timeout
    cfg = config.model_copy(update={"http_options": options})
    return retrying(
        f"generateContent on {model}",
        lambda: client.models.generate_content(model=model, contents=prompt, config=cfg),
        retry,
    )


def embed_contents(
    client: genai.Client, model: str, texts: list[str], tail: Mapping[str, Any], retry: types.HttpRetryOptions | None
) -> list[list[float]]:
    """Synchronous embeddings of `texts` (one `batchEmbedContents` call through the SDK's `models.embed_content`,
    standard price), in order; `tail`: the embedding spec's `task_type`, `title`, `output_dimensionality`."""
    config = types.EmbedContentConfig(**dict(tail), http_options=_once())

    # One Content per text: for multimodal models (gemini-embedding-2*) the SDK reads a list of strings as the parts
    # of a single content, which is one embedding of them all.
    contents = [types.Content(parts=[types.Part(text=text)]) for text in texts]

    def call() -> list[list[float]]:
        response = client.models.embed_content(model=model, contents=contents, config=config)
        return [list(e.values or []) for e in response.embeddings or []]

    return retrying(f"Embedding {len(texts)} texts with {model}", call, retry)
