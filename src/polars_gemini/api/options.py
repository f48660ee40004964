"""Checking a call's options before anything is planned or sent: each wrong value is a `ConfigurationError` naming
the option, what it must be, and an example; never an AttributeError or TypeError from deep inside."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import polars as pl
from google.genai import types

from polars_gemini.checkpoint.location import is_url, url_problem
from polars_gemini.core.errors import ConfigurationError
from polars_gemini.cost.prices import PriceTable
from polars_gemini.prepare.plan import Plan
from polars_gemini.run.lifecycle import RunOptions
from polars_gemini.service import bigquery as _bigquery
from polars_gemini.service import gemini
from polars_gemini.service import storage as _storage

if TYPE_CHECKING:
    import google.cloud.bigquery as bigquery
    import google.cloud.storage as storage
    from google import genai

_INTS = {  # option: (least value, hint)
    "max_retries": (0, "0 disables retry rounds"),
    "max_concurrency": (1, "the number of jobs handled at once, e.g. 8"),
    "max_active_jobs": (1, "the service allows 100 concurrent batch jobs"),
    "max_enqueued_tokens": (1, "your tier's enqueued-token limit, e.g. 3_000_000"),
    "max_requests_per_job": (1, "e.g. 10_000"),
    "inline_limit_bytes": (0, "0 sends every job as an uploaded file"),
    "file_limit_bytes": (1, "the service takes files up to 2 GB"),
    "calibrate": (0, "the number of sample prompts to measure, e.g. 20"),
    "expected_output_tokens": (0, "the answer's length in tokens, e.g. 50"),
    "thinking_tokens": (0, "thinking tokens per request, e.g. 500; 0 for none"),
    "media_inline_bytes": (0, "media up to this size go inline, larger ones are uploaded; 0 uploads every one"),
}
_OPTIONAL = ("max_enqueued_tokens", "max_requests_per_job", "inline_limit_bytes", "file_limit_bytes",
             "expected_output_tokens", "thinking_tokens")  # fmt: skip
_SECONDS = ("poll_interval", "max_poll_interval", "timeout")
_BOOLS = ("progress", "check_model", "keep_files", "usage", "reuse_jobs", "resubmit_lost", "calibrate_output", "submit",
          "normalize", "stream")  # fmt: skip


def check_options(options: Mapping[str, Any]) -> None:
    """Every option given checked before anything is planned or sent: a `ConfigurationError` naming it and its fix.

    `options` maps option names to values (those of `submit`, `batch` or `resume`; absent ones are not checked).
    """
    if options.get("mode", "batch") not in ("batch", "sync"):
        raise ConfigurationError(f"mode must be 'batch' or 'sync', got {options['mode']!r}.")
    if options.get("on_media_error", "skip") not in ("skip", "raise"):
        raise ConfigurationError(
            f"on_media_error must be 'skip' (the row is not sent and says why) or 'raise', got "
            f"{options['on_media_error']!r}."
        )
    if options.get("media") is not None and options.get("memory_budget") is not None:
        raise ConfigurationError(
            "media= and memory_budget= cannot be combined yet: media rows are planned in memory. Drop memory_budget "
            "(a media row's text is small; its media are read one file at a time)."
        )
    if options.get("fallback", "batch") not in ("batch", "flex"):
        raise ConfigurationError(
            f"fallback must be 'batch' (a stuck or expired job's requests go into a new batch job) or 'flex' (sent "
            f"synchronously at the Flex tier, batch price); got {options['fallback']!r}."
        )
    stuck = options.get("stuck_after")
    if stuck is not None and (not _finite_at_least(stuck, 0.0) or stuck == 0):
        raise ConfigurationError(
            f"stuck_after is a number of hours > 0 (a job PENDING or RUNNING longer is cancelled and its requests sent "
            f"again), or None; got {stuck!r}. Example: stuck_after=12 (jobs expire on their own after 48 h)."
        )
    if "webhook" in options:
        webhook_uris(options["webhook"])
    batch_only = ("checkpoint", "memory_budget", "webhook", "stuck_after")
    for name in (n for n in batch_only if options.get("mode") == "sync" and options.get(n)):
        raise ConfigurationError(f"{name}= applies to batch runs; sync mode is for quick iterations on few rows.")
    for name, (least, hint) in _INTS.items():
        value = options.get(name)
        if name in options and not (value is None and name in _OPTIONAL):
            _int_at_least(name, value, least, hint)
    for name in (n for n in _SECONDS if options.get(n) is not None):
        if not _finite_at_least(options[name], 0.0) or options[name] == 0:
            raise ConfigurationError(f"{name} is a number of seconds > 0, got {options[name]!r}.")
    if options.get("max_cost") is not None and not _finite_at_least(options["max_cost"], 0.0):
        raise ConfigurationError(
            f"max_cost is a finite number of US dollars >= 0, or None for no limit; got {options['max_cost']!r}. "
            "Example: max_cost=25.0."
        )
    for name in (n for n in _BOOLS if n in options and not isinstance(options[n], bool)):
        raise ConfigurationError(f"{name} must be True or False, got {options[name]!r}.")
    _check_kinds(options)


def _check_kinds(options: Mapping[str, Any]) -> None:
    """Options that must be of one kind of object: said before an AttributeError could be raised deep inside."""
    kinds: dict[str, tuple[tuple[type, ...], str]] = {
        "retry": ((types.HttpRetryOptions, type(None)), "google.genai.types.HttpRetryOptions(attempts=6, ...)"),
        "prices": ((PriceTable, Mapping, type(None)), 'a mapping, e.g. {"gemini-2.5-flash": {"input": 0.3, ...}}'),
        "checkpoint": ((str, os.PathLike, type(None)), "a directory path or object-storage URL, e.g. 'runs/reviews'"),
        "storage_options": ((Mapping, type(None)), "a dict of credentials, e.g. {'aws_region': 'eu-west-1'}"),
        "system_instruction": ((str, type(None)), "a string"),
        "output": ((str,), "a non-empty string, e.g. 'response'"),
        "prefix": ((str,), "a string, e.g. 'llm_'"),
        "tokenizer": ((str, os.PathLike), "'auto', 'exact', 'offline' or the path of a SentencePiece model file"),
    }
    if options.get("client") is not None and not gemini.is_client(options["client"]):
        kind = type(options["client"]).__name__  # the value is never shown: a key passed as client= must not leak
        raise ConfigurationError(f"client must be a google.genai.Client, e.g. genai.Client(api_key=...); got a {kind}.")
    for name, (allowed, hint) in kinds.items():
        if name in options and not isinstance(options[name], allowed):
            kind = type(options[name]).__name__
            raise ConfigurationError(f"{name} must be {hint}; got {options[name]!r} of type {kind}.")
    if options.get("output") == "":
        raise ConfigurationError("output must be a non-empty string, e.g. 'response'.")
    if "frame" in options and not isinstance(options["frame"], (pl.DataFrame, pl.LazyFrame)):
        kind = type(options["frame"]).__name__
        raise ConfigurationError(f"frame must be a polars DataFrame or LazyFrame, got a {kind}: use pl.DataFrame(...).")
    checkpoint = options.get("checkpoint")
    if options.get("storage_options") and (checkpoint is None or not is_url(checkpoint)):
        raise ConfigurationError(
            "storage_options are the credentials of a checkpoint in object storage, but checkpoint= is "
            f"{'not given' if checkpoint is None else 'a local directory'}. Pass checkpoint='s3://bucket/prefix' "
            "(or gs://, az://), or drop storage_options."
        )
    if checkpoint is not None and is_url(checkpoint):
        problem = url_problem(os.fspath(checkpoint))
        if problem:
            raise ConfigurationError(problem)
        return
    if checkpoint is not None and (str(checkpoint).strip() == "" or Path(checkpoint).is_file()):
        raise ConfigurationError(
            f"checkpoint must name a directory (created if missing), got {str(checkpoint)!r}, which is "
            f"{'empty' if str(checkpoint).strip() == '' else 'a file'}. Example: checkpoint='runs/reviews'."
        )


REGISTERED = "registered"
"""`webhook="registered"`: no URIs of the job's own; the project's registered webhooks get its events (with the run's
identity in the metadata), signed with the secret `client.webhooks.create(...)` returned."""


def webhook_uris(webhook: object) -> tuple[str, ...]:
    """`webhook=` as the URIs of a `webhook_config`: https URLs (http only to this machine, for tests and tunnels),
    or `("registered",)` for the project's registered webhooks."""
    if webhook is None:
        return ()
    if webhook == REGISTERED:
        return (REGISTERED,)
    uris = [webhook] if isinstance(webhook, str) else webhook
    hint = ("an https URL or a list of them, e.g. webhook='https://example.com/gemini-events', or 'registered' (the "
            "project's registered webhooks)")  # fmt: skip
    if not isinstance(uris, (list, tuple)) or not uris or not all(isinstance(u, str) for u in uris):
        raise ConfigurationError(f"webhook must be {hint}; got {webhook!r}.")
    for uri in uris:
        if any(c.isspace() or ord(c) < 32 for c in uri):
            raise ConfigurationError(f"webhook {uri!r} holds spaces or control characters; pass {hint}.")
        try:
            parts = urlsplit(uri)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number in 0-65535)
        except ValueError as exc:
            raise ConfigurationError(f"webhook {uri!r} is not a valid URL ({exc}); pass {hint}.") from None
        if parts.username is not None or parts.password is not None:
            raise ConfigurationError(
                f"webhook URL for host {parts.hostname!r} carries a user name or password: it would be stored in the "
                "checkpoint and sent to Google with every job. Authenticate the events by their signature instead."
            )
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and local)):
            raise ConfigurationError(
                f"webhook {uri!r} is not an https URL (the service delivers events to https endpoints; plain http is "
                f"accepted for 127.0.0.1/localhost only); pass {hint}."
            )
    return tuple(uris)


def _finite_at_least(value: object, least: float) -> bool:
    """`value` is a real number (not a bool, a string or NaN), finite and >= `least`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value >= least


def _int_at_least(name: str, value: object, least: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigurationError(f"{name} must be an integer >= {least} ({hint}), got {value!r}.")


def check_staging(staging: object) -> str:
    """`staging=` as a `gs://bucket[/prefix]` URI (Vertex AI runs), or a `ConfigurationError`."""
    if isinstance(staging, str) and staging.startswith("bq://"):
        return _bigquery.check_dataset_uri(staging)
    return _storage.check_staging(staging)


def check_vertex(
    client: genai.Client, plan: Plan, options: RunOptions, mode: str, given: storage.Client | bigquery.Client | None
) -> storage.Client | bigquery.Client | None:
    """A Vertex AI run's own checks, made before anything is written or sent; returns the run's Cloud Storage client
    (None for a Developer API run, or a Vertex AI run in sync mode, which stages nothing).

    A Developer API client with `staging=` or `storage_client=` is refused too: those options would silently do
    nothing there."""
    if not gemini.is_vertex(client):
        for name, value in (("staging", options.staging), ("storage_client", given)):
            if value is not None:
                raise ConfigurationError(
                    f"{name}= applies to Vertex AI batch runs, and this client talks to the Gemini Developer API. "
                    "Pass client=genai.Client(vertexai=True, project=..., location=...), or drop it."
                )
        return None
    if mode == "sync":
        return given
    if options.staging is None:
        raise ConfigurationError(
            "A Vertex AI batch job reads its requests from Cloud Storage: pass staging='gs://bucket/prefix' (a bucket "
            "in the job's region). Request shards and predictions are written under it and deleted when the run is "
            "done (keep_files=True keeps them)."
        )
    unsupported = {
        "webhook": bool(options.webhook),  # the SDK refuses webhook_config in Vertex AI mode
        "fallback='flex'": options.fallback == "flex",
        "embeddings": plan.spec.embeds,
    }
    for name, used in unsupported.items():
        if used:
            raise ConfigurationError(
                f"{name} is a Gemini Developer API feature that Vertex AI batch jobs do not have. Drop it, or use a "
                "Developer API client (genai.Client(api_key=...))."
            )
    media = plan.media
    if media is not None and not media.filter(pl.col("transport") == "upload").is_empty():
        raise ConfigurationError(
            "Some media of this run are too large to send inline, and Vertex AI batch jobs cannot use the Files API. "
            "Put them in Cloud Storage and pass their gs:// URIs in the media column (sent as references), or raise "
            "media_inline_bytes= to send them inline."
        )
    if options.staging.startswith("bq://"):  # requests and predictions in BigQuery tables
        bq = _bigquery.bigquery_client(client, given)
        _bigquery.check_dataset(bq, options.staging)
        return bq
    storage = _storage.storage_client(client, given)
    _storage.check_bucket(storage, options.staging)
    return storage
