"""Vertex AI batch prediction in the emulator, through the real google-genai SDK (`vertexai=True`) and real
google-cloud-storage against the Cloud Storage emulator (`gcs_emulator`, `gcs_bucket`, `vertex_emu` fixtures)."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from emulator_support import raw
from google.cloud import storage
from google.genai import errors, types

from polars_gemini.emulator import Emulator
from polars_gemini.emulator.gcs import GcsEmulator
from testing_support import echo

MODEL = "gemini-2.5-flash"
SCHEMA = {"type": "OBJECT", "properties": {"first_name": {"type": "STRING"}}}


def _line(i: int, **extra: Any) -> str:
    request = {"contents": [{"parts": [{"text": f"Q{i}"}], "role": "user"}],
               "generation_config": {"max_output_tokens": 64, "response_schema": SCHEMA}}  # fmt: skip
    return json.dumps({"key": f"k{i}", "request": request, **extra})


def _upload(bucket: storage.Bucket, count: int, name: str = "in/x.jsonl") -> str:
    bucket.blob(name).upload_from_string("\n".join(_line(i) for i in range(count)) + "\n")
    return f"gs://{bucket.name}/{name}"


def _create(emu: Emulator, bucket: storage.Bucket, src: str, name: str = "job") -> types.BatchJob:
    config = types.CreateBatchJobConfig(display_name=name, dest=f"gs://{bucket.name}/out")
    client = emu.vertex_client()  # kept while in use: a collected Client closes its connections
    return client.batches.create(model=MODEL, src=src, config=config)


def _finished(emu: Emulator, bucket: storage.Bucket, src: str) -> types.BatchJob:
    """A job created from `src` and read back once (with no pending or running time: ended)."""
    client = emu.vertex_client()
    return client.batches.get(name=_create(emu, bucket, src).name or "")


def _predictions(gcs: GcsEmulator, job: types.BatchJob) -> dict[str, list[dict[str, Any]]]:
    """Each prediction file under the job's output directory: its name -> its records."""
    assert job.output_info is not None and job.output_info.gcs_output_directory is not None
    bucket, _, prefix = job.output_info.gcs_output_directory.removeprefix("gs://").partition("/")
    blobs = gcs.client().list_blobs(bucket, prefix=prefix + "/")
    return {b.name.rsplit("/", 1)[1]: [json.loads(x) for x in b.download_as_text().splitlines()] for b in blobs}


def _records(gcs: GcsEmulator, job: types.BatchJob) -> list[dict[str, Any]]:
    return [record for records in _predictions(gcs, job).values() for record in records]


def test_a_job_reads_gcs_and_writes_predictions(vertex_emu: Emulator, gcs_emulator: GcsEmulator,
                                                gcs_bucket: storage.Bucket) -> None:  # fmt: skip
    client = vertex_emu.vertex_client()
    created = _create(vertex_emu, gcs_bucket, _upload(gcs_bucket, 4))
    assert created.state is not None and created.state.name == "JOB_STATE_PENDING"
    assert re.fullmatch(r"projects/123456789012/locations/us-central1/batchPredictionJobs/\d{19}", created.name or "")
    job = client.batches.get(name=created.name or "")
    assert job.state is not None and job.state.name == "JOB_STATE_SUCCEEDED"
    assert job.completion_stats is not None and job.completion_stats.successful_count == 4
    assert job.completion_stats.failed_count is None  # zero counts are left out, as proto JSON does
    directory = job.output_info.gcs_output_directory if job.output_info else ""
    assert re.fullmatch(rf"gs://{gcs_bucket.name}/out/prediction-model-\d{{4}}-\d\d-\d\dT[\d:]{{8}}\.\d{{6}}Z",
                        directory or "")  # fmt: skip
    files = _predictions(gcs_emulator, job)
    assert list(files) == ["predictions.jsonl"]
    records = files["predictions.jsonl"]
    assert [r["key"] for r in records] == ["k0", "k1", "k2", "k3"]
    first = records[0]
    assert list(first) == ["key", "status", "processed_time", "request", "response"]
    assert first["status"] == ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]{8}\.\d{3}\+00:00", first["processed_time"])
    assert first["request"]["generationConfig"]["maxOutputTokens"] == 64  # re-serialized in camelCase ...
    assert "first_name" in first["request"]["generationConfig"]["responseSchema"]["properties"]  # ... map keys kept
    assert first["response"]["candidates"][0]["content"]["parts"][0]["text"] == "echo: Q0"
    assert [(a.key, a.job) for a in vertex_emu.answered()] == [(f"k{i}", created.name) for i in range(4)]
    assert vertex_emu.jobs[created.name or ""]["state"] == "JOB_STATE_SUCCEEDED"


def test_echo_off_drops_the_key_and_verbatim_echoes_the_request_as_written(
    gcs_emulator: GcsEmulator, gcs_bucket: storage.Bucket
) -> None:
    with Emulator(storage_url=gcs_emulator.url, vertex_echo_fields=False, vertex_echo_request="verbatim") as emu:
        job = _finished(emu, gcs_bucket, _upload(gcs_bucket, 2))
        records = _records(gcs_emulator, job)
    assert len(records) == 2 and all("key" not in r for r in records)
    assert records[0]["request"]["generation_config"]["max_output_tokens"] == 64


def test_shuffled_predictions_keep_each_answer_with_its_key(gcs_emulator: GcsEmulator,
                                                            gcs_bucket: storage.Bucket) -> None:  # fmt: skip
    with Emulator(storage_url=gcs_emulator.url, shuffle_results=True, responder=echo) as emu:
        job = _finished(emu, gcs_bucket, _upload(gcs_bucket, 30))
        records = _records(gcs_emulator, job)
    keys = [r["key"] for r in records]
    assert sorted(keys) == sorted(f"k{i}" for i in range(30)) and keys != [f"k{i}" for i in range(30)]
    assert all(r["response"]["candidates"][0]["content"]["parts"][0]["text"] == f"echo: Q{r['key'][1:]}"
               for r in records)  # fmt: skip


def test_predictions_split_into_files(gcs_emulator: GcsEmulator, gcs_bucket: storage.Bucket) -> None:
    with Emulator(storage_url=gcs_emulator.url, vertex_output_files=3) as emu:
        job = _finished(emu, gcs_bucket, _upload(gcs_bucket, 7))
        files = _predictions(gcs_emulator, job)
    assert sorted(files) == ["predictions_0001.jsonl", "predictions_0002.jsonl", "predictions_0003.jsonl"]
    assert sorted(r["key"] for rs in files.values() for r in rs) == sorted(f"k{i}" for i in range(7))


def test_partially_succeeded_fails_some_rows(vertex_emu: Emulator, gcs_emulator: GcsEmulator,
                                             gcs_bucket: storage.Bucket) -> None:  # fmt: skip
    vertex_emu.end_next_job("PARTIALLY_SUCCEEDED", failed_rows=2)
    job = _finished(vertex_emu, gcs_bucket, _upload(gcs_bucket, 5))
    assert job.state is not None and job.state.name == "JOB_STATE_PARTIALLY_SUCCEEDED"
    assert job.completion_stats is not None
    assert (job.completion_stats.successful_count, job.completion_stats.failed_count) == (3, 2)
    assert job.error is not None and job.error.message
    records = {r["key"]: r for r in _records(gcs_emulator, job)}
    assert all(records[k]["status"] and "response" not in records[k] for k in ("k0", "k1"))
    assert all(records[k]["status"] == "" and "response" in records[k] for k in ("k2", "k3", "k4"))
    assert sorted(a.key or "" for a in vertex_emu.answered()) == ["k2", "k3", "k4"]


def test_fail_keys_fails_rows_by_their_key_in_a_succeeded_job(vertex_emu: Emulator, gcs_emulator: GcsEmulator,
                                                              gcs_bucket: storage.Bucket) -> None:  # fmt: skip
    vertex_emu.fail_keys({"k1": (3, "bad row")})
    job = _finished(vertex_emu, gcs_bucket, _upload(gcs_bucket, 3))
    assert job.state is not None and job.state.name == "JOB_STATE_SUCCEEDED"
    failed = next(r for r in _records(gcs_emulator, job) if r["key"] == "k1")
    assert failed["status"].startswith("Bad Request: ") and "bad row" in failed["status"] and "response" not in failed


def test_queued_then_running_then_succeeded_on_the_clock(gcs_emulator: GcsEmulator,
                                                         gcs_bucket: storage.Bucket) -> None:  # fmt: skip
    with Emulator(storage_url=gcs_emulator.url, pending_seconds=10, vertex_queued_seconds=3600,
                  running_seconds=60) as emu:  # fmt: skip
        client = emu.vertex_client()
        name = _create(emu, gcs_bucket, _upload(gcs_bucket, 2)).name or ""
        states = []
        for step in (0, 10, 3600, 60):
            emu.advance_time(step)
            job = client.batches.get(name=name)
            states.append(job.state.name if job.state else None)
            if states[-1] != "JOB_STATE_SUCCEEDED":
                assert job.output_info is None
    assert states == ["JOB_STATE_PENDING", "JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]


def test_a_job_queued_over_72_hours_expires_without_output(vertex_emu: Emulator, gcs_bucket: storage.Bucket) -> None:
    vertex_emu.slow_next_jobs(1)  # stuck PENDING
    client = vertex_emu.vertex_client()
    name = _create(vertex_emu, gcs_bucket, _upload(gcs_bucket, 2)).name or ""
    vertex_emu.advance_time(48 * 3600)
    assert client.batches.get(name=name).state == types.JobState.JOB_STATE_PENDING  # Vertex queues up to 72 h
    vertex_emu.advance_time(24 * 3600)
    job = client.batches.get(name=name)
    assert job.state == types.JobState.JOB_STATE_EXPIRED and job.output_info is None


def test_cancel_while_running_keeps_the_rows_done(gcs_emulator: GcsEmulator, gcs_bucket: storage.Bucket) -> None:
    with Emulator(storage_url=gcs_emulator.url, running_seconds=100, vertex_cancelling_seconds=5) as emu:
        client = emu.vertex_client()
        name = _create(emu, gcs_bucket, _upload(gcs_bucket, 10)).name or ""
        emu.advance_time(50)
        client.batches.cancel(name=name)
        assert client.batches.get(name=name).state == types.JobState.JOB_STATE_CANCELLING
        emu.advance_time(5)
        job = client.batches.get(name=name)
        with pytest.raises(errors.ClientError) as refused:
            client.batches.cancel(name=name)
        records = _records(gcs_emulator, job)
    assert job.state == types.JobState.JOB_STATE_CANCELLED
    assert job.completion_stats is not None
    assert (job.completion_stats.successful_count, job.completion_stats.incomplete_count) == (5, 5)
    assert sorted(r["key"] for r in records) == [f"k{i}" for i in range(5)]
    assert refused.value.code == 400


def test_cancel_before_running_writes_nothing(gcs_emulator: GcsEmulator, gcs_bucket: storage.Bucket) -> None:
    with Emulator(storage_url=gcs_emulator.url, pending_seconds=100) as emu:
        client = emu.vertex_client()
        name = _create(emu, gcs_bucket, _upload(gcs_bucket, 3)).name or ""
        client.batches.cancel(name=name)
        job = client.batches.get(name=name)
    assert job.state == types.JobState.JOB_STATE_CANCELLED and job.output_info is None
    assert job.error is not None and job.error.code == 1
    assert [b.name for b in gcs_emulator.client().list_blobs(gcs_bucket.name, prefix="out/")] == []


def test_a_missing_or_wrong_token_is_401(vertex_emu: Emulator) -> None:
    path = "/v1beta1/projects/test-project/locations/us-central1/batchPredictionJobs"
    missing = raw(vertex_emu, "GET", path, headers={})
    wrong = raw(vertex_emu, "GET", path, headers={"authorization": "Bearer nope"})
    right = raw(vertex_emu, "GET", path, headers={"authorization": "Bearer emulator-token"})
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert "missing required authentication credential" in missing.json()["error"]["message"]
    client = vertex_emu.vertex_client()  # its credentials carry the token it was made with
    vertex_emu.settings.vertex_token = "another"
    with pytest.raises(errors.ClientError) as refused:
        client.batches.list(config={"page_size": 1})
    assert refused.value.code == 401
    assert all("authorization" not in r.headers for r in vertex_emu.requests)  # the token is never recorded


def test_over_the_request_or_file_limit_is_refused_at_create(gcs_emulator: GcsEmulator,
                                                             gcs_bucket: storage.Bucket) -> None:  # fmt: skip
    with Emulator(storage_url=gcs_emulator.url, vertex_request_limit=3, vertex_file_limit_bytes=2000) as emu:
        with pytest.raises(errors.ClientError) as too_many:
            _create(emu, gcs_bucket, _upload(gcs_bucket, 4))
        gcs_bucket.blob("in/big.jsonl").upload_from_string(_line(0, padding="x" * 3000))
        with pytest.raises(errors.ClientError) as too_big:
            _create(emu, gcs_bucket, f"gs://{gcs_bucket.name}/in/big.jsonl")
        assert len(emu.jobs) == 0
    assert (too_many.value.code, too_many.value.status) == (400, "INVALID_ARGUMENT")
    assert "at most 3" in str(too_many.value.message)
    assert too_big.value.code == 400 and "2000 bytes" in str(too_big.value.message)


def test_an_unreadable_input_is_a_failed_job(vertex_emu: Emulator, gcs_bucket: storage.Bucket) -> None:
    src = f"gs://{gcs_bucket.name}/in/missing.jsonl"
    created = _create(vertex_emu, gcs_bucket, src)  # accepted: the service checks its input afterwards
    client = vertex_emu.vertex_client()
    job = client.batches.get(name=created.name or "")
    assert job.state == types.JobState.JOB_STATE_FAILED
    assert job.error is not None and job.error.code == 3 and src in (job.error.message or "")
    assert job.output_info is None and job.completion_stats is None


def test_list_pages_newest_first_and_filters(vertex_emu: Emulator, gcs_bucket: storage.Bucket) -> None:
    src = _upload(gcs_bucket, 1)
    names = [_create(vertex_emu, gcs_bucket, src, name=f"job-{i}").name for i in range(3)]
    client = vertex_emu.vertex_client()
    listed = [job.name for job in client.batches.list(config={"page_size": 2})]
    assert listed == names[::-1] and vertex_emu.calls("vertex.batches.list") == 2
    only = list(client.batches.list(config={"filter": 'display_name="job-1"'}))
    assert [job.name for job in only] == [names[1]]


def test_delete_only_ended_jobs(gcs_emulator: GcsEmulator, gcs_bucket: storage.Bucket) -> None:
    with Emulator(storage_url=gcs_emulator.url, running_seconds=10) as emu:
        client = emu.vertex_client()
        name = _create(emu, gcs_bucket, _upload(gcs_bucket, 1)).name or ""
        with pytest.raises(errors.ClientError) as running:
            client.batches.delete(name=name)
        emu.advance_time(10)
        assert client.batches.delete(name=name).done is True
        with pytest.raises(errors.ClientError) as gone:
            client.batches.get(name=name)
    assert (running.value.code, gone.value.code) == (400, 404)


def test_faults_apply_to_vertex_endpoints(vertex_emu: Emulator, gcs_bucket: storage.Bucket) -> None:
    name = _create(vertex_emu, gcs_bucket, _upload(gcs_bucket, 1)).name or ""
    vertex_emu.fail_http("vertex.batches.get", 503)
    client = vertex_emu.vertex_client()
    with pytest.raises(errors.ServerError) as failed:
        client.batches.get(name=name)
    assert failed.value.code == 503
    assert client.batches.get(name=name).state == types.JobState.JOB_STATE_SUCCEEDED


def test_end_next_job_failed_carries_an_rpc_status(vertex_emu: Emulator, gcs_bucket: storage.Bucket) -> None:
    vertex_emu.end_next_job("FAILED", code=3, message="bad input")
    job = _finished(vertex_emu, gcs_bucket, _upload(gcs_bucket, 2))
    assert job.state == types.JobState.JOB_STATE_FAILED and job.output_info is None
    assert job.error is not None and (job.error.code, job.error.message) == (3, "bad input")


def test_bigquery_is_refused_by_an_emulator_without_one(vertex_emu: Emulator) -> None:
    client = vertex_emu.vertex_client()
    with pytest.raises(errors.ClientError) as refused:
        client.batches.create(model=MODEL, src="bq://p.d.t", config={"dest": "bq://p.d.o"})
    assert refused.value.code == 400 and "has no BigQuery" in str(refused.value.message)
    assert vertex_emu.jobs == {}


def test_sync_generate_content_and_count_tokens_on_the_vertex_path(vertex_emu: Emulator) -> None:
    client = vertex_emu.vertex_client()
    answer = client.models.generate_content(model=MODEL, contents="hi there")
    counted = client.models.count_tokens(model=MODEL, contents="hi there")
    assert answer.text == "echo: hi there"
    assert counted.total_tokens is not None and counted.total_tokens > 0
    assert (vertex_emu.calls("vertex.models.generateContent"), vertex_emu.calls("vertex.models.countTokens")) == (1, 1)
    assert [(a.route, a.prompt) for a in vertex_emu.answered()] == [("generate", "hi there")]


def test_the_gcs_emulator_serves_what_the_library_needs(gcs_emulator: GcsEmulator, gcs_bucket: storage.Bucket,
                                                        tmp_path: Any) -> None:  # fmt: skip
    data = bytes(range(256)) * (20 * 4096)  # 20 MiB: a resumable upload
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    gcs_bucket.blob("a/big.bin").upload_from_filename(str(path))
    gcs_bucket.blob("a/small.jsonl").upload_from_string(b"one\ntwo\n")
    gcs_bucket.blob("b/other").upload_from_string(b"x")
    client = gcs_emulator.client()
    out = io.BytesIO()
    client.bucket(gcs_bucket.name).blob("a/big.bin").download_to_file(out)
    with client.bucket(gcs_bucket.name).blob("a/big.bin").open("rb", chunk_size=2**20) as stream:
        stream.seek(5 * 2**20 + 7)
        middle = stream.read(1000)
    with client.bucket(gcs_bucket.name).blob("a/small.jsonl").open("rt") as text:
        lines = list(text)
    names = [b.name for b in client.list_blobs(gcs_bucket.name, prefix="a/", page_size=1)]
    client.bucket(gcs_bucket.name).blob("a/small.jsonl").delete()
    after = [b.name for b in client.list_blobs(gcs_bucket.name, prefix="a/")]
    assert out.getvalue() == data and middle == data[5 * 2**20 + 7:5 * 2**20 + 1007]
    assert lines == ["one\n", "two\n"]
    assert names == ["a/big.bin", "a/small.jsonl"] and after == ["a/big.bin"]
