"""Slow and expiring batch jobs through the real SDK: `slow_next_jobs`, the 48-hour expiry, and what is answered."""

from __future__ import annotations

import datetime as dt

import pytest
from emulator_support import jsonl, prompt_lines, upload
from google import genai
from google.genai import errors, types
from google.genai._common import ExperimentalWarning

from polars_gemini.emulator import Emulator

HOUR = 3600.0
DAY2 = 48 * HOUR
MODEL = "gemini-2.0-flash"


def _inline(*prompts: str) -> list[types.InlinedRequestDict]:
    return [{"contents": prompt, "metadata": {"key": f"k-{prompt}"}} for prompt in prompts]


def _create(client: genai.Client, *prompts: str) -> types.BatchJob:
    return client.batches.create(model=MODEL, src=_inline(*prompts))


def _state(client: genai.Client, job: types.BatchJob) -> types.JobState | None:
    return client.batches.get(name=job.name or "").state


def test_a_slow_job_stays_pending_then_expires_at_48_hours(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs()
    job = _create(client, "a", "b")
    gemini_emulator.advance_time(DAY2 - 60)
    pending = client.batches.get(name=job.name or "")
    assert pending.state == types.JobState.JOB_STATE_PENDING and pending.end_time is None
    gemini_emulator.advance_time(120)
    expired = client.batches.get(name=job.name or "")
    assert expired.state == types.JobState.JOB_STATE_EXPIRED and expired.dest is None and expired.done
    assert expired.create_time is not None and expired.end_time is not None and expired.update_time is not None
    assert expired.end_time - expired.create_time == dt.timedelta(hours=48)  # the 48-hour mark, not "now"
    assert expired.update_time == expired.end_time
    raw_job = gemini_emulator.jobs[job.name or ""]
    assert "output" not in raw_job["metadata"] and "response" not in raw_job and "error" not in raw_job
    assert raw_job["metadata"]["batchStats"] == {"requestCount": "2", "pendingRequestCount": "2"}


def test_list_shows_the_expiry_too(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs()
    job = _create(client, "a")
    gemini_emulator.advance_time(DAY2 + 1)
    listed = {j.name: j for j in client.batches.list()}
    assert listed[job.name].state == types.JobState.JOB_STATE_EXPIRED and listed[job.name].dest is None


def test_only_the_next_jobs_are_slow(gemini_emulator: Emulator) -> None:
    """Shards 0 and 1 get stuck, shard 2 finishes: `count` jobs, in creation order."""
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs(count=2)
    jobs = [_create(client, f"shard {i}") for i in range(3)]
    states = [_state(client, job) for job in jobs]
    assert states == [types.JobState.JOB_STATE_PENDING] * 2 + [types.JobState.JOB_STATE_SUCCEEDED]
    done = client.batches.get(name=jobs[2].name or "")
    assert done.dest is not None and done.dest.inlined_responses is not None
    later = _create(client, "shard 3")  # the queue is used up
    assert _state(client, later) == types.JobState.JOB_STATE_SUCCEEDED


def test_a_job_running_past_48_hours_expires_at_the_mark(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs(pending_seconds=47 * HOUR, running_seconds=2 * HOUR)
    job = _create(client, "a")
    gemini_emulator.advance_time(47.5 * HOUR)
    running = client.batches.get(name=job.name or "")
    assert running.state == types.JobState.JOB_STATE_RUNNING and running.update_time is not None
    assert running.create_time is not None and running.update_time - running.create_time == dt.timedelta(hours=47)
    gemini_emulator.advance_time(HOUR)
    expired = client.batches.get(name=job.name or "")
    assert expired.state == types.JobState.JOB_STATE_EXPIRED and expired.dest is None
    assert expired.end_time is not None and expired.end_time - running.create_time == dt.timedelta(hours=48)


def test_a_job_of_exactly_48_hours_still_succeeds(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs(pending_seconds=40 * HOUR, running_seconds=8 * HOUR)
    job = _create(client, "a")
    gemini_emulator.advance_time(DAY2)
    assert _state(client, job) == types.JobState.JOB_STATE_SUCCEEDED


@pytest.mark.parametrize(
    "gemini_emulator", [{"pending_seconds": 30 * HOUR, "running_seconds": 20 * HOUR}], indirect=True
)
def test_the_emulator_wide_timing_expires_jobs_as_well(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    job = _create(client, "a")
    gemini_emulator.advance_time(DAY2)
    assert _state(client, job) == types.JobState.JOB_STATE_EXPIRED


def test_an_expired_file_job_writes_no_results_file(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    uploaded = upload(client, jsonl(prompt_lines(3)))
    gemini_emulator.slow_next_jobs(pending_seconds=DAY2 + HOUR)
    job = client.batches.create(model=MODEL, src=uploaded.name or "")
    gemini_emulator.advance_time(DAY2 + 2 * HOUR)  # past the slow job's planned end, too
    expired = client.batches.get(name=job.name or "")
    assert expired.state == types.JobState.JOB_STATE_EXPIRED and expired.dest is None
    assert f"files/batch-{(job.name or '').removeprefix('batches/')}" not in gemini_emulator.files


def test_an_expired_job_can_no_longer_be_cancelled(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs()
    job = _create(client, "a")
    gemini_emulator.advance_time(DAY2)
    with pytest.raises(errors.ClientError) as caught:
        client.batches.cancel(name=job.name or "")
    assert caught.value.code == 400 and caught.value.status == "FAILED_PRECONDITION"
    assert _state(client, job) == types.JobState.JOB_STATE_EXPIRED


def test_a_stuck_job_can_be_cancelled(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs()
    job = _create(client, "a")
    client.batches.cancel(name=job.name or "")
    gemini_emulator.advance_time(DAY2)
    cancelled = client.batches.get(name=job.name or "")
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.dest is None


@pytest.mark.parametrize("gemini_emulator", [{"max_active_jobs": 1}], indirect=True)
def test_an_expired_job_frees_its_quota_slot_and_a_refused_create_keeps_the_slow_job(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs(count=2)
    stuck = _create(client, "a")
    with pytest.raises(errors.ClientError) as caught:
        _create(client, "b")  # refused: the stuck job holds the only slot
    assert caught.value.code == 429
    gemini_emulator.advance_time(DAY2)
    assert _state(client, stuck) == types.JobState.JOB_STATE_EXPIRED
    second = _create(client, "b")  # admitted now, and still the second slow job
    assert _state(client, second) == types.JobState.JOB_STATE_PENDING


def test_embedding_jobs_are_slowed_and_expire_alike(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs()
    src: types.EmbeddingsBatchJobSourceDict = {"inlined_requests": {"contents": [{"parts": [{"text": "owl"}]}]}}
    with pytest.warns(ExperimentalWarning, match="experimental"):
        job = client.batches.create_embeddings(model="gemini-embedding-001", src=src)
    assert _state(client, job) == types.JobState.JOB_STATE_PENDING
    gemini_emulator.advance_time(DAY2)
    assert _state(client, job) == types.JobState.JOB_STATE_EXPIRED


@pytest.mark.parametrize(
    "arguments", [{"count": 0}, {"pending_seconds": -1.0}, {"running_seconds": -1.0}, {"pending_seconds": float("nan")}]
)
def test_slow_next_jobs_refuses_nonsense(gemini_emulator: Emulator, arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="slow_next_jobs needs"):
        gemini_emulator.slow_next_jobs(**arguments)  # type: ignore[arg-type]


# -- what was answered ------------------------------------------------------------------------------------


def test_an_expired_or_cancelled_jobs_requests_are_not_answered(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs(count=2)
    expiring = _create(client, "a", "b")
    cancelled = _create(client, "c")
    client.batches.cancel(name=cancelled.name or "")
    finished = _create(client, "d")
    gemini_emulator.advance_time(DAY2)
    assert _state(client, expiring) == types.JobState.JOB_STATE_EXPIRED
    assert [(r.prompt, r.job) for r in gemini_emulator.answered()] == [("d", finished.name)]


def test_a_stuck_shard_finished_through_flex_answers_every_prompt_once(gemini_emulator: Emulator) -> None:
    """The scenario the answered log is for: shard 0 stuck, shard 1 done, shard 0's prompts sent again via Flex."""
    client = gemini_emulator.client()
    gemini_emulator.slow_next_jobs()
    stuck = _create(client, "p0", "p1")
    done = _create(client, "p2", "p3")
    client.batches.cancel(name=stuck.name or "")
    for prompt in ("p0", "p1"):
        client.models.generate_content(model=MODEL, contents=prompt, config={"service_tier": "flex"})
    answered = sorted(gemini_emulator.answered(), key=lambda r: r.prompt)
    assert [(r.prompt, r.route, r.tier, r.job) for r in answered] == [
        ("p0", "generate", "flex", None),
        ("p1", "generate", "flex", None),
        ("p2", "batch", "batch", done.name),
        ("p3", "batch", "batch", done.name),
    ]
    assert [r.key for r in answered] == [None, None, "k-p2", "k-p3"]
