"""Service quotas checked when a batch job is created: active jobs, and enqueued input tokens per model.

A job is active while PENDING or RUNNING. Its input tokens are counted like `countTokens` and
`usageMetadata.promptTokenCount` (`_generate.counted_texts`: prompt, system instruction, schema; embedding jobs: each
request's text), so a test can size a limit with `client.models.count_tokens`. The active-job limit is per project
(the real one is 100); the enqueued-token limit is per model, as Google's tiers are.
"""

from __future__ import annotations

from collections.abc import Sequence

from polars_gemini.emulator import _embed
from polars_gemini.emulator import _generate as g
from polars_gemini.emulator._config import Settings
from polars_gemini.emulator._jobs import Entries, Entry, Job, chunked
from polars_gemini.emulator._status import EmulatedError, quota_exceeded


def input_tokens(entries: Entries, kind: str = "generate") -> int:
    """The prompt tokens of all requests of a job, as `usageMetadata` would report them (embedding jobs: the tokens of
    each request's text, before truncation to the model's input limit); counted `CHUNK` requests at a time."""
    return sum(_chunk_tokens(chunk, kind) for chunk in chunked(entries))


def _chunk_tokens(entries: list[Entry], kind: str) -> int:
    if kind == "embed":
        texts = [_embed.text_of(entry.request) for entry in entries]
    else:
        texts = [text for entry in entries for text in g.counted_texts(entry.request)]
    counts = g.token_counts(texts)
    return sum(counts[text] for text in texts)


def job_tokens(job: Job) -> int:
    """`job.input_tokens`, counted on first use (a limit may be set after the job was created)."""
    if job.input_tokens is None:
        job.input_tokens = input_tokens(job.entries, job.kind)
    return job.input_tokens


def refusal(settings: Settings, active: Sequence[Job], new: Job) -> EmulatedError | None:
    """The 429 that refuses creating `new` next to the `active` jobs, or `None` if it fits."""
    max_jobs = settings.max_active_jobs
    if max_jobs is not None and len(active) >= max_jobs:
        return quota_exceeded("batch_active_jobs", max_jobs, new.model)
    max_tokens = settings.enqueued_token_limit
    if max_tokens is None:
        return None
    enqueued = sum(job_tokens(job) for job in active if job.model == new.model)
    if enqueued + job_tokens(new) > max_tokens:
        return quota_exceeded("batch_enqueued_tokens", max_tokens, new.model)
    return None
