"""Failure injection through the SDK: HTTP errors and retries, per-key errors, job endings, timing quirks."""

from __future__ import annotations

import io
import time

import pytest
from emulator_support import jsonl, prompt_lines, raw, run_file_job, upload
from google import genai
from google.genai import errors, types

from polars_gemini.emulator import EmulatedError, Emulator, responses

_FAST_RETRY = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0)


def _inline(keys: list[str], text: str = "Tell me about owls") -> list[types.InlinedRequestDict]:
    return [{"contents": text, "metadata": {"key": key}} for key in keys]


def _finished(client: genai.Client, src: list[types.InlinedRequestDict]) -> types.BatchJob:
    job = client.batches.create(model="gemini-2.0-flash", src=src)
    return client.batches.get(name=job.name or "")


@pytest.mark.parametrize(
    ("status", "name", "kind"),
    [(429, "RESOURCE_EXHAUSTED", errors.ClientError), (500, "INTERNAL", errors.ServerError),
     (503, "UNAVAILABLE", errors.ServerError)],
)  # fmt: skip
def test_http_failure_on_the_nth_call(gemini_emulator: Emulator, status: int, name: str, kind: type) -> None:
    client = gemini_emulator.client()
    gemini_emulator.fail_http("batches.list", status, on_call=2)
    client.batches.list()
    with pytest.raises(kind) as caught:
        client.batches.list()
    assert (caught.value.code, caught.value.status) == (status, name)
    client.batches.list()
    assert gemini_emulator.calls("batches.list") == 3


def test_sdk_retries_through_transient_failures(gemini_emulator: Emulator) -> None:
    gemini_emulator.fail_http("batches.create", 503, times=2)
    client = gemini_emulator.client(retry_options=_FAST_RETRY)
    job = client.batches.create(model="gemini-2.0-flash", src=_inline(["a"]))
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert gemini_emulator.calls("batches.create") == 3 and len(gemini_emulator.jobs) == 1


def test_without_retry_options_the_sdk_gives_up_at_once(gemini_emulator: Emulator) -> None:
    gemini_emulator.fail_http("models.generateContent", 429)
    client = gemini_emulator.client()
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="gemini-2.0-flash", contents="hi")
    assert gemini_emulator.calls("models.generateContent") == 1


def test_failed_chunk_is_resent_by_the_sdk(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_emulator.fail_http("files.upload_chunk", 503)  # no upload status header: the SDK waits 1 s, resends
    assert run_file_job(gemini_client, prompt_lines(2))[1]["key"] == "row-1"
    assert gemini_emulator.calls("files.upload_chunk") == 2


def test_every_endpoint_can_fail(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_emulator.fail_http("files.download", 500)
    with pytest.raises(errors.ServerError):
        run_file_job(gemini_client, prompt_lines(1))
    with pytest.raises(ValueError, match=r"did you mean 'files\.download'"):
        gemini_emulator.fail_http("files.downlaod")


def test_per_key_errors_inline(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_emulator.fail_keys({"b": (13, "Internal error"), "c": EmulatedError(429, "quota", "RESOURCE_EXHAUSTED")})
    answers = (_finished(gemini_client, _inline(["a", "b", "c"])).dest or types.BatchJobDestination()).inlined_responses
    assert answers is not None and answers[0].error is None and answers[0].response is not None
    assert (answers[1].error and answers[1].error.code, answers[1].response) == (13, None)
    assert answers[2].error and (answers[2].error.code, answers[2].error.message) == (8, "quota")
    assert [a.metadata for a in answers] == [{"key": k} for k in "abc"]
    stats = next(iter(gemini_emulator.jobs.values()))["metadata"]["batchStats"]
    assert stats == {"requestCount": "3", "successfulRequestCount": "1", "failedRequestCount": "2"}


def test_per_key_errors_in_files(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_emulator.fail_keys({"row-1": (13, "Internal error")})
    lines = run_file_job(gemini_client, prompt_lines(3))
    assert lines[1] == {"error": {"code": 13, "message": "Internal error"}, "key": "row-1"}
    assert "response" in lines[0] and "response" in lines[2]


def test_predicate_errors_through_the_responder() -> None:
    responder = responses.when(lambda r: "FAIL" in r.text, responses.error(400, "bad row"))
    with Emulator(responder=responder) as emu:
        src = [*_inline(["ok"]), *_inline(["bad"], "please FAIL")]
        answers = (_finished(emu.client(), src).dest or types.BatchJobDestination()).inlined_responses or []
        assert answers[0].response and answers[1].error and answers[1].error.code == 3


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED", "EXPIRED"])
def test_jobs_that_do_not_succeed(gemini_emulator: Emulator, gemini_client: genai.Client, state: str) -> None:
    gemini_emulator.end_next_job(state)
    job = _finished(gemini_client, _inline(["a"]))
    assert job.state and job.state.name == f"JOB_STATE_{state}" and job.dest is None
    raw_job = gemini_emulator.jobs[job.name or ""]
    assert raw_job["done"] is True and "response" not in raw_job and "output" not in raw_job["metadata"]
    assert ("error" in raw_job) == (state == "FAILED")
    assert _finished(gemini_client, _inline(["b"])).state == types.JobState.JOB_STATE_SUCCEEDED


def test_failed_job_operation_carries_its_status(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_emulator.end_next_job("FAILED", code=3, message="Request 7 has no contents.")
    gemini_emulator.end_next_job("FAILED")
    named, default = (_finished(gemini_client, _inline([key])).name or "" for key in "ab")
    wanted = {"code": 3, "message": "Request 7 has no contents.", "status": "INVALID_ARGUMENT"}
    assert raw(gemini_emulator, "GET", f"/v1beta/{named}").json()["error"] == wanted
    listed = {op["name"]: op for op in raw(gemini_emulator, "GET", "/v1/batches").json()["operations"]}
    assert listed[named]["error"] == wanted and listed[named]["done"] is True
    assert listed[default]["error"]["code"] == 13 and listed[default]["error"]["status"] == "INTERNAL"
    assert gemini_client.batches.get(name=named).error is None  # the SDK ignores it in Gemini mode


def _results_file(client: genai.Client) -> str:
    job = client.batches.create(model="gemini-2.0-flash", src=upload(client, jsonl(prompt_lines(2))).name or "")
    dest = client.batches.get(name=job.name or "").dest
    assert dest is not None and dest.file_name is not None
    return dest.file_name


def test_download_failures_through_the_sdk(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client(retry_options=_FAST_RETRY)
    name = _results_file(client)
    gemini_emulator.fail_http("files.download", 503, times=2)
    with pytest.raises(errors.ServerError):
        client.files.download(file=name)  # the SDK never retries a download, even with retry_options
    with pytest.raises(errors.ServerError):
        client.files.download(file=name, destination=io.BytesIO())  # the streaming path
    stream = io.BytesIO()
    client.files.download(file=name, destination=stream)
    assert stream.getvalue() == client.files.download(file=name) and gemini_emulator.calls("files.download") == 4


@pytest.mark.parametrize("prefix", ["", "/download"])
def test_download_failures_on_both_url_shapes(
    gemini_emulator: Emulator, gemini_client: genai.Client, prefix: str
) -> None:
    path = f"{prefix}/v1beta/{_results_file(gemini_client)}:download?alt=media"
    gemini_emulator.fail_http("files.download", 503, times=2)
    replies = [raw(gemini_emulator, "GET", path) for _ in range(3)]
    assert [r.status_code for r in replies] == [503, 503, 200]
    assert replies[0].json()["error"]["status"] == "UNAVAILABLE" and replies[2].content.count(b"\n") == 2


def test_job_outcome_rule() -> None:
    rule = lambda job: "EXPIRED" if job["metadata"].get("displayName") == "old" else None  # noqa: E731
    with Emulator(job_outcome=rule) as emu:
        client = emu.client()
        old = client.batches.create(model="gemini-2.0-flash", src=_inline(["a"]), config={"display_name": "old"})
        new = client.batches.create(model="gemini-2.0-flash", src=_inline(["a"]), config={"display_name": "new"})
        assert client.batches.get(name=old.name or "").state == types.JobState.JOB_STATE_EXPIRED
        assert client.batches.get(name=new.name or "").state == types.JobState.JOB_STATE_SUCCEEDED


@pytest.mark.parametrize("gemini_emulator", [{"shuffle_results": True}], indirect=True)
def test_shuffled_results(gemini_client: genai.Client) -> None:
    keys = [f"k{i}" for i in range(20)]
    answers = (_finished(gemini_client, _inline(keys)).dest or types.BatchJobDestination()).inlined_responses or []
    got = [(a.metadata or {})["key"] for a in answers]
    assert sorted(got) == sorted(keys) and got != keys
    lines = run_file_job(gemini_client, [{**line, "key": f"k{i}"} for i, line in enumerate(prompt_lines(20))])
    assert sorted(line["key"] for line in lines) == sorted(keys) and [line["key"] for line in lines] != keys


@pytest.mark.parametrize("gemini_emulator", [{"results_file_delay_polls": 2}], indirect=True)
def test_results_file_appears_late(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    uploaded = upload(gemini_client, jsonl(prompt_lines(1)))
    job = gemini_client.batches.create(model="gemini-2.0-flash", src=uploaded.name or "")
    polls = [gemini_client.batches.get(name=job.name or "") for _ in range(3)]
    assert [p.state.name if p.state else None for p in polls] == ["JOB_STATE_SUCCEEDED"] * 3
    assert [p.dest is not None and p.dest.file_name is not None for p in polls] == [False, False, True]


@pytest.mark.parametrize("gemini_emulator", [{"latency": 0.2}], indirect=True)
def test_latency(gemini_client: genai.Client) -> None:
    started = time.perf_counter()
    gemini_client.batches.list()
    assert time.perf_counter() - started >= 0.2
