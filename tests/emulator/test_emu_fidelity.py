"""Fidelity against real captures: job JSON shapes, a real results file, the SDK's own request shapes."""

from __future__ import annotations

import json
import re

from emulator_support import SAMPLES, prompt_lines, raw, run_file_job, sample_json, shape, upload
from google import genai

from polars_gemini.emulator import Emulator, responses

_CREATE = "/v1beta/models/{}:batchGenerateContent"


def _inline_body(count: int) -> dict[str, object]:
    requests = [{"request": {"contents": [{"parts": [{"text": f"Capital of {i}?"}]}]}} for i in range(count)]
    return {"batch": {"displayName": "capitals-batch", "inputConfig": {"requests": {"requests": requests}}}}


def test_pending_job_matches_the_real_pending_sample(gemini_emulator: Emulator) -> None:
    real = sample_json("batch_job_pending_inline_gemini-2.5-flash-lite.json")
    created = raw(gemini_emulator, "POST", _CREATE.format("gemini-2.5-flash-lite"), _inline_body(3)).json()
    assert shape(created) == shape(real)
    assert list(created["metadata"]) == list(real["metadata"])
    assert created["metadata"]["batchStats"] == real["metadata"]["batchStats"]


def test_succeeded_file_job_matches_the_real_sample(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    real = sample_json("batch_job_succeeded_file_output_gemini-3.5-flash.json")
    uploaded = upload(gemini_client, b'{"key":"k","request":{"contents":[{"parts":[{"text":"x"}]}]}}\n' * 4)
    job = gemini_client.batches.create(model="gemini-3.5-flash", src=uploaded.name or "", config={"display_name": "e"})
    ours = raw(gemini_emulator, "GET", f"/v1beta/{job.name}").json()
    assert shape(ours) == shape(real)
    assert list(ours["metadata"]) == list(real["metadata"]) and list(ours) == list(real)
    assert ours["metadata"]["batchStats"] == real["metadata"]["batchStats"]
    assert ours["metadata"]["createTime"].endswith("Z") and len(ours["metadata"]["createTime"]) == 30


def _lines(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (SAMPLES / name).read_text().splitlines()]


def test_a_real_results_file_parses_through_the_sdk() -> None:
    real_lines = _lines("result_file_generate_content_gemini-2.5-flash.jsonl")
    replay = responses.by_key({line["key"]: line["response"] for line in real_lines})
    inputs = _lines("input_file_generate_content.jsonl")
    with Emulator(responder=replay) as emu:
        assert run_file_job(emu.client(), inputs, model="gemini-2.5-flash") == real_lines


def test_put_file_serves_real_bytes_verbatim(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    data = (SAMPLES / "result_file_generate_content_gemini-2.5-flash.jsonl").read_bytes()
    gemini_emulator.put_file("files/batch-sample", data)
    assert gemini_client.files.download(file="files/batch-sample") == data


def _template(path: str) -> str:
    return re.sub(r"(batches|files)/[^/:?]+", r"\1/{id}", path.split("?")[0])


def test_sdk_requests_match_the_wire_capture(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    capture = json.loads((SAMPLES / "sdk_wire_capture" / "google-genai-3.6.1_requests.json").read_text())
    expected = {(c["method"], _template(c["path"])) for calls in capture.values() for c in calls}
    expected = {(method, path) for method, path in expected if "Embed" not in path}
    run_file_job(gemini_client, prompt_lines(1), model="gemini-2.5-flash")
    gemini_client.batches.list(config={"page_size": 5})
    gemini_client.models.count_tokens(model="gemini-2.5-flash", contents="What is your name?")
    gemini_emulator.settings.pending_seconds = 30
    job = gemini_client.batches.create(model="gemini-2.5-flash", src=[{"contents": "x"}])
    gemini_client.batches.cancel(name=job.name or "")
    gemini_client.batches.delete(name=job.name or "")
    seen = {(r.method, _template(r.path)) for r in gemini_emulator.requests}
    assert expected <= seen
    chunk = next(r for r in gemini_emulator.requests if r.endpoint == "files.upload_chunk")
    captured_chunk = capture["files_upload"][1]["headers"]
    assert {k.lower() for k in captured_chunk} - {"content-type", "x-goog-upload-file-name"} <= set(chunk.headers)


def test_recorded_paths_follow_the_capture(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    job = gemini_client.batches.create(model="gemini-2.5-flash", src=[{"contents": "x"}])
    gemini_client.batches.get(name=job.name or "")
    job_id = (job.name or "").removeprefix("batches/")
    assert [(r.endpoint, r.method, r.path) for r in gemini_emulator.requests] == [
        ("batches.create", "POST", "/v1/models/gemini-2.5-flash:batchGenerateContent"),
        ("batches.get", "GET", f"/v1/batches/{job_id}"),
    ]
    assert gemini_emulator.requests[0].body_json["batch"]["inputConfig"]["requests"]["requests"][0]["request"]


def test_the_api_key_is_never_recorded(gemini_emulator: Emulator) -> None:
    client = genai.Client(api_key="sk-secret-123", http_options={"base_url": gemini_emulator.url})
    client.batches.create(model="gemini-2.0-flash", src=[{"contents": "x"}])
    raw(gemini_emulator, "GET", "/v1beta/batches?key=sk-secret-123")
    assert "sk-secret-123" not in repr(gemini_emulator.requests)
    assert all("x-goog-api-key" not in r.headers and "key" not in r.query for r in gemini_emulator.requests)


def test_response_ids_look_like_real_ones(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    real = [json.loads(line)["response"]["responseId"] for line in _real_result_lines()]
    sync = gemini_client.models.generate_content(model="gemini-2.0-flash", contents="Why is the sky blue?")
    batch = run_file_job(gemini_client, prompt_lines(3))
    ours = [sync.response_id, *(line["response"]["responseId"] for line in batch)]
    unpadded = re.compile(r"[A-Za-z0-9_-]{23}")  # 17 bytes of URL-safe base64, no "=" padding
    assert all(unpadded.fullmatch(rid or "") for rid in [*real, *ours]) and len(set(ours)) == 4


def _real_result_lines() -> list[str]:
    return (SAMPLES / "result_file_generate_content_gemini-2.5-flash.jsonl").read_text().splitlines()
