"""The emulator's settings: one mutable object, read by the handlers on every request.

Tests may change a setting while the server runs (`emu.settings.latency = 0.5`); the next request
sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from polars_gemini.core.models import MODELS, ModelInfo
from polars_gemini.emulator._embed import default_embedder
from polars_gemini.emulator._embed_models import EMBEDDING_MODELS, EmbeddingModel
from polars_gemini.emulator._responder import default_responder
from polars_gemini.emulator._types import Embedder, Responder

INLINE_LIMIT_BYTES = 20 * 1024 * 1024
"""Inline batch requests: the whole create request must stay under 20 MB (Gemini Batch API docs)."""
FILE_LIMIT_BYTES = 2 * 1024 * 1024 * 1024
"""Files API: at most 2 GB per file."""
VERTEX_REQUEST_LIMIT = 200_000
"""Vertex AI batch: at most 200,000 requests per job (Vertex AI docs, "Batch prediction for Gemini", limits)."""
VERTEX_FILE_LIMIT_BYTES = 1024**3
"""Vertex AI batch: at most 1 GB per Cloud Storage input file (same page)."""

JobOutcome = Callable[[dict[str, Any]], "str | None"]
"""Given a new job's JSON, the state it should end in (`None`: SUCCEEDED)."""


def _generation_models() -> dict[str, ModelInfo]:
    """The library's models that generate content: embedding models (served from `embedding_models`) left out, so
    that generateContent on them is the real 404 and listings name them once."""
    return {
        name: info
        for name, info in MODELS.items()
        if name not in EMBEDDING_MODELS and not getattr(info, "embeds", False)  # `embeds`: newer `ModelInfo`s
    }


@dataclass
class Settings:
    responder: Responder = default_responder
    pending_seconds: float = 0.0
    running_seconds: float = 0.0
    latency: float = 0.0
    shuffle_results: bool = False
    results_file_delay_polls: int = 0
    api_key: str | None = None
    inline_limit_bytes: int = INLINE_LIMIT_BYTES
    file_limit_bytes: int = FILE_LIMIT_BYTES
    job_outcome: JobOutcome | None = None
    max_active_jobs: int | None = None
    enqueued_token_limit: int | None = None
    video_processing_seconds: float = 0.0
    flex_latency: float = 0.0  # seconds a Flex-tier generateContent reply waits (`_tiers`)
    flex_unavailable_rate: float = 0.0  # the share of Flex calls shed with 503 UNAVAILABLE, decided by `flex_seed`
    flex_seed: int = 0
    models: dict[str, ModelInfo] = field(default_factory=lambda: _generation_models())
    embedder: Embedder = default_embedder
    embedding_models: dict[str, EmbeddingModel] = field(default_factory=lambda: dict(EMBEDDING_MODELS))
    # Webhook delivery (`_webhooks`); the signing secret is not a setting (kept off reprs).
    webhook_uris: tuple[str, ...] = ()  # the project's registered webhooks: for jobs whose config names no URIs
    webhook_retry_seconds: float = 0.05  # first backoff after a failed delivery, doubling each attempt
    webhook_max_attempts: int = 8
    webhook_timeout_seconds: float = 5.0
    webhook_duplicate: bool = False  # deliver every event twice (receivers must deduplicate on webhook-id)
    webhook_poll_seconds: float = 0.02  # how often ended jobs are looked for (job states follow the clock)
    webhook_audience: str | None = None  # the `aud` of per-job webhook JWTs (None: the delivery's URI)
    # Vertex AI batch prediction (`_vertex`): jobs read their requests from and write predictions to Cloud Storage.
    storage_url: str | None = None  # the Cloud Storage endpoint (`GcsEmulator.url`); None: gs:// jobs are refused
    bigquery_url: str | None = None  # the BigQuery endpoint (`BigQueryEmulator.url`); None: bq:// jobs are refused
    vertex_project_number: str = "123456789012"  # job names say `projects/<number>/...`, whatever id the client used
    vertex_token: str = field(default="emulator-token", repr=False)  # the Bearer token Vertex calls must carry
    vertex_echo_fields: bool = True  # copy an input line's other top-level fields (e.g. "key") to its prediction line
    vertex_echo_request: str = "proto"  # the echoed "request": "proto" (camelCase field names) or "verbatim"
    vertex_output_files: int = 1  # predictions.jsonl, or split into predictions_0001.jsonl ... predictions_000N.jsonl
    vertex_queued_seconds: float = 0.0  # JOB_STATE_QUEUED after pending_seconds of PENDING, before RUNNING
    vertex_cancelling_seconds: float = 0.0  # JOB_STATE_CANCELLING after a cancel, before CANCELLED
    vertex_request_limit: int = VERTEX_REQUEST_LIMIT  # more requests in a job's input: 400 at create
    vertex_file_limit_bytes: int = VERTEX_FILE_LIMIT_BYTES  # a larger input object: 400 at create

    def add_models(self, names: Iterable[str]) -> None:
        """Makes extra model names known to the routes (the default responder treats them as non-thinking)."""
        for name in names:
            bare = name.removeprefix("models/")
            self.models.setdefault(bare, ModelInfo(bare, False, 0, 0))
