"""A local Gemini API emulator: the real google-genai SDK, unchanged, against a server on 127.0.0.1.

It speaks the REST API the SDK uses (Batch API for generation and embeddings, Files API with resumable uploads,
generateContent, countTokens, embedContent, batchEmbedContents, models) under /v1, /v1beta and /v1alpha, answers
deterministically, and can inject the failures the real service produces: HTTP 429/500/503, per-request errors,
FAILED/CANCELLED/EXPIRED jobs, shuffled or late results, latency, size limits, quotas, lost replies, corrupted result
lines.

    >>> from polars_gemini.emulator import Emulator, EmulatedError, responses
    >>> with Emulator() as emu:
    ...     client = emu.client()
    ...     job = client.batches.create(
    ...         model="gemini-2.5-flash",
    ...         src=[{"contents": "Name a colour.", "metadata": {"key": "row-1"}}],
    ...     )
    ...     job = client.batches.get(name=job.name)
    ...     answer = job.dest.inlined_responses[0]
    ...     (job.state.name, answer.metadata, answer.response.text is not None, emu.calls("batches.create"))
    ('JOB_STATE_SUCCEEDED', {'key': 'row-1'}, True, 1)

Three ways in: this context manager (or `Emulator(...).start()` / `.stop()`); the pytest fixtures
`gemini_emulator` and `gemini_client` (installed as a pytest plugin; parametrize `gemini_emulator`
indirectly with a dict of `Emulator` arguments); and the command `polars-gemini emulator --port 0`.

Faults for reliability tests (see `Emulator` for the details):

- `emu.fail_http(endpoint, 503, on_call=2, times=3)`: HTTP errors with Google's bodies.
- `emu.delay_reply(endpoint, seconds, on_call=None, times=1)`: the call is performed, its reply held
  back; with `emu.client(timeout=300)` (ms) the SDK raises `httpx2.ReadTimeout` while, say, the job it
  created exists: a lost `batches.create` reply, or a `get`/`list`/`files.download` timeout.
- `emu.inject(endpoint, fault, times=1)` with `fault` in `FAULTS = ("429", "500", "503", "timeout")`:
  one switch for a fault matrix, `@pytest.mark.parametrize("fault", FAULTS)` x endpoints x times.
- `emu.corrupt_results("truncated" | "garbage" | "wrong_shape" | "blank", lines=1, jobs=1)`: broken
  result lines in the next results file (inline jobs: "wrong_shape" responses the SDK still parses);
  "dropped" | "duplicated" | "shuffled" lose, double or reorder results of files and inline jobs alike.
- `Emulator(max_active_jobs=1, enqueued_token_limit=10_000, pending_seconds=0.3)`: creates over a
  quota get 429 RESOURCE_EXHAUSTED and create nothing.
- `emu.end_next_job("FAILED", code=3, message="...")`: the Operation carries
  `"error": {"code": 3, "message": "...", "status": "INVALID_ARGUMENT"}`.
- `emu.slow_next_jobs(count=1, pending_seconds=math.inf, running_seconds=0)`: only the next jobs are slow (a stuck
  shard beside one that finishes); a job pending or running over 48 hours is EXPIRED at its 48-hour mark, no results.
- `Emulator(flex_latency=, flex_unavailable_rate=, flex_seed=)`: `generateContent` with `service_tier="flex"` waits
  and is shed with 503 UNAVAILABLE at that (seeded) rate; the tier served is in `usageMetadata.serviceTier`.
- `Emulator(responder=responses.flawed(0.1, seed=0))`: about a tenth of the answers off-schema (valid JSON breaking
  the response schema), invalid JSON (fenced in Markdown) or truncated (MAX_TOKENS), drawn afresh for each attempt
  of a request, so that a re-run fixes most of them.
- `emu.answered()`: every generation request answered (billed), as `AnsweredRequest(route, tier, model, prompt, key,
  job)`: which prompt was answered by which batch job or generateContent call, in which tier.

Media parts (`inlineData`, `fileData`) are checked per request like the real API, counted by
`polars_gemini.tokens.media`, and quoted by the default responder: answers start with
`[media <d1> <d2> ...] `, each digest `hashlib.sha256(part_bytes).hexdigest()[:12]` in part order
(`responses.media_tag(*datas)` builds the tag). `emu.advance_time`, `emu.expire_file`,
`emu.set_file_state` and `emu.uploads` cover file lifetimes, processing and upload counts.

Embeddings: `client.models.embed_content` (endpoint `models.batchEmbedContents`), `models.embedContent` and
`client.batches.create_embeddings` (endpoint `batches.create_embeddings`, jobs under `batches/` like any other)
serve `responses.embedding(text, model=, task_type=, title=, dimensions=)`: deterministic bag-of-words vectors
(near-duplicates close, unrelated texts near orthogonal), unit length at 3072 values, Matryoshka prefixes below.
`Emulator(embedder=...)` takes a callable from `EmbeddingRequest` to a list of floats instead.

Vertex AI batch prediction: `Emulator(gcs=GcsEmulator())` (or `storage_url=`) serves `batchPredictionJobs` under
/v1 and /v1beta1 `projects/{p}/locations/{l}` to `emu.vertex_client()` (Bearer-token auth), reading JSONL requests
from and writing `predictions.jsonl` files to that Cloud Storage emulator; see `Emulator` and `gcs`.

Responders answer each request: `Emulator(responder=...)` takes a callable from `ResponderRequest`
to a `GenerateContentResponse` dict that may raise `EmulatedError`; `default_responder` and the
helpers in `responses` cover most tests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polars_gemini.emulator import responses
    from polars_gemini.emulator._embed import default_embedder
    from polars_gemini.emulator._emulator import Emulator
    from polars_gemini.emulator._faults import FAULTS
    from polars_gemini.emulator._files import UploadRecord
    from polars_gemini.emulator._responder import default_responder
    from polars_gemini.emulator._routes import ENDPOINTS
    from polars_gemini.emulator._status import EmulatedError
    from polars_gemini.emulator._types import (
        AnsweredRequest,
        Embedder,
        EmbeddingRequest,
        MediaPart,
        RecordedRequest,
        Responder,
        ResponderRequest,
    )
    from polars_gemini.emulator._webhooks import WebhookDelivery
    from polars_gemini.emulator.gcs import GcsEmulator

# Imported on first use, so that loading the pytest plugin (which imports this package) stays cheap.
_LAZY = {
    "AnsweredRequest": "_types",
    "Emulator": "_emulator",
    "GcsEmulator": "gcs",
    "EmulatedError": "_status",
    "Embedder": "_types",
    "EmbeddingRequest": "_types",
    "default_embedder": "_embed",
    "FAULTS": "_faults",
    "ENDPOINTS": "_routes",
    "MediaPart": "_types",
    "UploadRecord": "_files",
    "RecordedRequest": "_types",
    "Responder": "_types",
    "ResponderRequest": "_types",
    "default_responder": "_responder",
    "WebhookDelivery": "_webhooks",
}

__all__ = [
    "ENDPOINTS",
    "FAULTS",
    "AnsweredRequest",
    "Embedder",
    "EmbeddingRequest",
    "EmulatedError",
    "Emulator",
    "GcsEmulator",
    "MediaPart",
    "RecordedRequest",
    "Responder",
    "ResponderRequest",
    "UploadRecord",
    "WebhookDelivery",
    "default_embedder",
    "default_responder",
    "responses",
]


def __getattr__(name: str) -> Any:
    if name == "responses":
        return importlib.import_module(f"{__name__}.responses")
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
