"""Batch jobs through the real SDK: inline and file round trips, lifecycle, list, cancel, delete."""

from __future__ import annotations

import time

import pytest
from emulator_support import prompt_lines, raw, run_file_job, upload
from google import genai
from google.genai import errors, types

from polars_gemini.emulator import Emulator


def _inline(count: int) -> list[types.InlinedRequestDict]:
    return [{"contents": f"Question {i} about rivers", "metadata": {"key": f"row-{i}"}} for i in range(count)]


def test_inline_round_trip_echoes_metadata(gemini_client: genai.Client) -> None:
    job = gemini_client.batches.create(model="gemini-2.5-flash", src=_inline(3), config={"display_name": "df"})
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.name and len(job.name.removeprefix("batches/")) == 36
    done = gemini_client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.display_name == "df"
    assert done.dest is not None and done.dest.inlined_responses is not None
    answers = done.dest.inlined_responses
    assert [a.metadata for a in answers] == [{"key": f"row-{i}"} for i in range(3)]
    assert all(a.response and a.response.text and a.error is None for a in answers)


def test_file_round_trip(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    results = run_file_job(gemini_client, prompt_lines(4))
    assert [line["key"] for line in results] == [f"row-{i}" for i in range(4)]
    assert all(line["response"]["candidates"][0]["content"]["parts"][0]["text"] for line in results)
    job = next(iter(gemini_emulator.jobs.values()))
    assert job["metadata"]["output"]["responsesFile"] == f"files/batch-{job['name'].removeprefix('batches/')}"
    assert job["metadata"]["batchStats"] == {"requestCount": "4", "successfulRequestCount": "4"}


@pytest.mark.parametrize("version", ["v1", "v1beta", "v1alpha"])
def test_every_api_version(gemini_emulator: Emulator, version: str) -> None:
    client = gemini_emulator.client(api_version=version)
    results = run_file_job(client, prompt_lines(1))
    assert results[0]["key"] == "row-0"
    assert {r.path.removeprefix("/upload").split("/")[1] for r in gemini_emulator.requests} == {version}


def test_default_version_is_the_sdks(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_client.batches.list()
    assert gemini_emulator.requests[0].path == "/v1/batches"


@pytest.mark.parametrize("gemini_emulator", [{"pending_seconds": 0.3, "running_seconds": 0.3}], indirect=True)
def test_lifecycle_follows_the_clock(gemini_client: genai.Client) -> None:
    job = gemini_client.batches.create(model="gemini-2.0-flash", src=_inline(1))
    assert gemini_client.batches.get(name=job.name or "").state == types.JobState.JOB_STATE_PENDING
    time.sleep(0.35)
    running = gemini_client.batches.get(name=job.name or "")
    assert running.state == types.JobState.JOB_STATE_RUNNING and running.dest is None
    time.sleep(0.3)
    assert gemini_client.batches.get(name=job.name or "").state == types.JobState.JOB_STATE_SUCCEEDED


def test_list_pages_newest_first(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    names = [gemini_client.batches.create(model="gemini-2.0-flash", src=_inline(1)).name for _ in range(5)]
    listed = [job.name for job in gemini_client.batches.list(config={"page_size": 2})]
    assert listed == names[::-1]
    assert gemini_emulator.calls("batches.list") == 3
    assert [r.query.get("pageSize") for r in gemini_emulator.requests[-3:]] == ["2", "2", "2"]


def test_list_when_empty(gemini_client: genai.Client) -> None:
    assert list(gemini_client.batches.list()) == []


@pytest.mark.parametrize("gemini_emulator", [{"pending_seconds": 30}], indirect=True)
def test_cancel_then_cancel_again(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    job = gemini_client.batches.create(model="gemini-2.0-flash", src=_inline(2))
    gemini_client.batches.cancel(name=job.name or "")
    cancelled = gemini_client.batches.get(name=job.name or "")
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.dest is None
    assert gemini_emulator.jobs[job.name or ""]["done"] is True
    with pytest.raises(errors.ClientError) as caught:
        gemini_client.batches.cancel(name=job.name or "")
    assert (caught.value.code, caught.value.status) == (400, "FAILED_PRECONDITION")


def test_cancel_answers_empty_object(gemini_emulator: Emulator) -> None:
    gemini_emulator.settings.pending_seconds = 30
    created = raw(gemini_emulator, "POST", "/v1beta/models/gemini-2.0-flash:batchGenerateContent",
                  {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": [
                      {"parts": [{"text": "x"}]}]}}]}}}})  # fmt: skip
    reply = raw(gemini_emulator, "POST", f"/v1beta/{created.json()['name']}:cancel")
    assert (reply.status_code, reply.json()) == (200, {})


def test_delete_then_404(gemini_client: genai.Client) -> None:
    job = gemini_client.batches.create(model="gemini-2.0-flash", src=_inline(1))
    gemini_client.batches.delete(name=job.name or "")
    with pytest.raises(errors.ClientError) as caught:
        gemini_client.batches.get(name=job.name or "")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert list(gemini_client.batches.list()) == []


def test_creating_twice_makes_two_jobs(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    uploaded = upload(gemini_client, b'{"key":"a","request":{"contents":[{"parts":[{"text":"x"}]}]}}\n')
    first = gemini_client.batches.create(model="gemini-2.0-flash", src=uploaded.name or "")
    second = gemini_client.batches.create(model="gemini-2.0-flash", src=uploaded.name or "")
    assert first.name != second.name and gemini_emulator.calls("batches.create") == 2
