"""The one module that talks to google-genai. Everything else in the library is pure data in, data out.

Each function is one API call wrapped so that SDK exceptions become `APIError` (message and HTTP code, never the key)
and retry policy comes from the SDK's own `HttpRetryOptions`, applied per call so a caller's client works as it is.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from google import genai
from google.genai import errors, types

from polars_gemini._errors import APIError, MissingAPIKeyError

T = TypeVar("T")

ENV_KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED", "PARTIALLY_SUCCEEDED")
RETRY = types.HttpRetryOptions(
    attempts=6,
    initial_delay=1.0,
    max_delay=60.0,
    exp_base=2.0,
    http_status_codes=[408, 429, 500, 502, 503, 504],
)
_HTTP = types.HttpOptions(retry_options=RETRY)


def client_from_env(environ: Mapping[str, str] | None = None) -> genai.Client:
    """A client built from GEMINI_API_KEY / GOOGLE_API_KEY, with the library's retry policy."""
    env = os.environ if environ is None else environ
    key = next((env[name] for name in ENV_KEYS if env.get(name)), None)
    if key is None:
        raise MissingAPIKeyError(
            "No Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), or pass client=genai.Client(...). "
            "To try the library offline, use the bundled emulator: "
            "`with polars_gemini.emulator.Emulator() as emu: df.gemini.batch(..., client=emu.client())`."
        )
    return genai.Client(api_key=key, http_options=types.HttpOptions(retry_options=RETRY))


def _call(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except errors.APIError as exc:
        status = f" {exc.status}" if exc.status else ""
        raise APIError(f"{what} failed: HTTP {exc.code}{status}: {exc.message}", code=exc.code) from None


@dataclass(frozen=True)
class JobSnapshot:
    """What the library needs from a batch job's state."""

    name: str
    display_name: str | None
    state: str  # SUCCEEDED, RUNNING, ... (the SDK's JOB_STATE_ prefix removed)
    error: str | None
    result_file: str | None
    inlined: list[types.InlinedResponse] | None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def results_ready(self) -> bool:
        return self.result_file is not None or self.inlined is not None


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
    )


def upload_jsonl(client: genai.Client, data: bytes | Path, display_name: str) -> str:
    """Upload a JSONL request file (bytes, or a path streamed from disk); returns its name (`files/...`)."""
    config = types.UploadFileConfig(mime_type="application/jsonl", display_name=display_name, http_options=_HTTP)
    source = str(data) if isinstance(data, Path) else io.BytesIO(data)
    file = _call(f"Uploading {display_name}", lambda: client.files.upload(file=source, config=config))
    return file.name or ""


def create_job(client: genai.Client, model: str, src: Any, display_name: str) -> JobSnapshot:
    """Create a batch job from inline requests or an uploaded file name. This is the call that costs money."""
    config = types.CreateBatchJobConfig(display_name=display_name, http_options=_HTTP)
    job = _call(
        f"Creating batch job {display_name}",
        lambda: client.batches.create(model=model, src=src, config=config),
    )
    return _snapshot(job)


def get_job(client: genai.Client, name: str) -> JobSnapshot:
    config = types.GetBatchJobConfig(http_options=_HTTP)
    return _snapshot(_call(f"Polling {name}", lambda: client.batches.get(name=name, config=config)))


def cancel_job(client: genai.Client, name: str) -> None:
    config = types.CancelBatchJobConfig(http_options=_HTTP)
    _call(f"Cancelling {name}", lambda: client.batches.cancel(name=name, config=config))


def find_jobs(client: genai.Client, display_prefix: str) -> list[JobSnapshot]:
    """Jobs whose display name starts with `display_prefix` (to re-attach to jobs whose names were not saved)."""
    config = types.ListBatchJobsConfig(page_size=100, http_options=_HTTP)
    jobs = _call("Listing batch jobs", lambda: list(client.batches.list(config=config)))
    return [_snapshot(j) for j in jobs if (j.display_name or "").startswith(display_prefix)]


def download(client: genai.Client, file_name: str) -> bytes:
    config = types.DownloadFileConfig(http_options=_HTTP)
    data = _call(f"Downloading {file_name}", lambda: client.files.download(file=file_name, config=config))
    return data or b""


def delete_file(client: genai.Client, file_name: str) -> None:
    config = types.DeleteFileConfig(http_options=_HTTP)
    _call(f"Deleting {file_name}", lambda: client.files.delete(name=file_name, config=config))


def generate(
    client: genai.Client, model: str, prompt: str, config: types.GenerateContentConfig
) -> types.GenerateContentResponse:
    """One synchronous generateContent call (sync mode), with the library's retry policy for 429 and 5xx."""
    cfg = config.model_copy(update={"http_options": _HTTP})
    return _call(
        f"generateContent on {model}",
        lambda: client.models.generate_content(model=model, contents=prompt, config=cfg),
    )
