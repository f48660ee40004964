"""Service quotas on `batches.create`: active jobs and enqueued tokens, refused with 429 through the SDK."""

from __future__ import annotations

import time

import pytest
from google import genai
from google.genai import errors, types

from polars_gemini.emulator import Emulator

_PROMPT = "Tell me about owls and their habits"
_QUICK = {"pending_seconds": 0.2, "running_seconds": 0.2}


def _create(client: genai.Client, model: str = "gemini-2.0-flash", prompts: int = 1) -> types.BatchJob:
    return client.batches.create(model=model, src=[{"contents": _PROMPT} for _ in range(prompts)])


def _refused(client: genai.Client, prompts: int = 1) -> errors.ClientError:
    with pytest.raises(errors.ClientError) as caught:
        _create(client, prompts=prompts)
    return caught.value


def _wait_until_done(client: genai.Client, job: types.BatchJob) -> None:
    deadline = time.monotonic() + 5
    while not client.batches.get(name=job.name or "").done:
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.05)


@pytest.mark.parametrize("gemini_emulator", [{"max_active_jobs": 1, **_QUICK}], indirect=True)
def test_active_job_limit(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    first = _create(gemini_client)
    refusal = _refused(gemini_client)
    assert (refusal.code, refusal.status) == (429, "RESOURCE_EXHAUSTED")
    assert refusal.message and refusal.message.startswith("You exceeded your current quota")
    assert "batch_active_jobs, limit: 1, model: gemini-2.0-flash" in refusal.message
    assert len(gemini_emulator.jobs) == 1 and gemini_emulator.calls("batches.create") == 2
    _wait_until_done(gemini_client, first)
    assert _create(gemini_client).state == types.JobState.JOB_STATE_PENDING and len(gemini_emulator.jobs) == 2


@pytest.mark.parametrize("gemini_emulator", [_QUICK], indirect=True)
def test_enqueued_token_limit_per_model(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    tokens = gemini_client.models.count_tokens(model="gemini-2.0-flash", contents=_PROMPT).total_tokens or 0
    assert tokens > 0
    gemini_emulator.settings.enqueued_token_limit = 2 * tokens
    first = _create(gemini_client)
    assert _create(gemini_client).name  # exactly at the limit: accepted
    refusal = _refused(gemini_client)
    assert "batch_enqueued_tokens" in (refusal.message or "") and len(gemini_emulator.jobs) == 2
    assert _create(gemini_client, model="gemini-2.5-flash").name  # another model has its own allowance
    _wait_until_done(gemini_client, first)
    assert _create(gemini_client).name


@pytest.mark.parametrize("gemini_emulator", [{"enqueued_token_limit": 5}], indirect=True)
def test_a_job_over_the_token_limit_is_refused_alone(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    assert _refused(gemini_client, prompts=3).code == 429 and gemini_emulator.jobs == {}


@pytest.mark.parametrize("gemini_emulator", [{"max_active_jobs": 1, **_QUICK}], indirect=True)
def test_refusal_body_and_queued_endings(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    first = _create(gemini_client)
    gemini_emulator.end_next_job("FAILED")
    details = _refused(gemini_client).details["error"]["details"]
    assert [d["@type"].rsplit(".", 1)[1] for d in details] == ["Help", "QuotaFailure"]
    assert details[1]["violations"][0]["quotaValue"] == "1"
    _wait_until_done(gemini_client, first)
    failed = _create(gemini_client)  # the refused create did not use up `end_next_job`
    _wait_until_done(gemini_client, failed)
    assert gemini_client.batches.get(name=failed.name or "").state == types.JobState.JOB_STATE_FAILED


def test_no_quota_by_default(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_emulator.settings.pending_seconds = 60
    assert all(_create(gemini_client).name for _ in range(5))
    gemini_emulator.settings.max_active_jobs = 5
    assert _refused(gemini_client).code == 429
