"""Embeddings through the real SDK: embedContent, batchEmbedContents, embedding batch jobs (inline and file), their
vectors, errors, faults and lifecycle."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from emulator_support import SAMPLES, jsonl, raw, upload
from google import genai
from google.genai import errors, types
from google.genai._common import ExperimentalWarning

from polars_gemini.emulator import EmbeddingRequest, EmulatedError, Emulator, _vectors, responses

MODEL = "gemini-embedding-001"
CREATE = f"models/{MODEL}:asyncBatchEmbedContent"


def _create(client: genai.Client, src: Any, model: str = MODEL, **config: Any) -> types.BatchJob:
    """`batches.create_embeddings`, whose ExperimentalWarning would be an error under `filterwarnings=error`."""
    with pytest.warns(ExperimentalWarning, match="experimental"):
        return client.batches.create_embeddings(model=model, src=src, config=config or None)


def _inline(texts: list[str], **config: Any) -> dict[str, Any]:
    return {"inlined_requests": {"contents": texts, "config": config or None}}


def _with_metadata(client: genai.Client, requests: list[dict[str, Any]], name: str = "emb") -> dict[str, Any]:
    """The REST create with `metadata` per request, as the library sends it (the SDK has no field for it)."""
    body = {"batch": {"displayName": name, "inputConfig": {"requests": {"requests": requests}}}}
    return json.loads(client._api_client.request("post", CREATE, body, None).body)


def _row(text: str, key: str, **request: Any) -> dict[str, Any]:
    return {"request": {"content": {"parts": [{"text": text}]}, **request}, "metadata": {"key": key}}


def _norm(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


# -- synchronous calls ---------------------------------------------------------------------------------


def test_embed_content_through_the_sdk_is_batch_embed_contents(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    config = types.EmbedContentConfig(task_type="RETRIEVAL_QUERY", output_dimensionality=768)
    reply = client.models.embed_content(model=MODEL, contents=["red fox", "blue whale"], config=config)
    assert reply.embeddings is not None
    assert [e.values for e in reply.embeddings] == [
        responses.embedding(text, task_type="RETRIEVAL_QUERY", dimensions=768) for text in ("red fox", "blue whale")
    ]
    sent = gemini_emulator.requests[-1]
    assert sent.endpoint == "models.batchEmbedContents" and gemini_emulator.calls("models.batchEmbedContents") == 1
    assert sent.body_json["requests"][0]["model"] == f"models/{MODEL}"


@pytest.mark.parametrize("version", ["v1", "v1beta", "v1alpha"])
def test_embed_content_rest_accepts_both_spellings(gemini_emulator: Emulator, version: str) -> None:
    camel = {"content": {"parts": [{"text": "Hello"}]}, "taskType": "CLUSTERING", "outputDimensionality": 8}
    snake = {"content": {"parts": [{"text": "Hello"}]}, "task_type": "CLUSTERING", "output_dimensionality": 8}
    replies = [raw(gemini_emulator, "POST", f"/{version}/models/{MODEL}:embedContent", b) for b in (camel, snake)]
    assert [r.status_code for r in replies] == [200, 200]
    assert (
        replies[0].json()
        == replies[1].json()
        == {"embedding": {"values": responses.embedding("Hello", task_type="CLUSTERING", dimensions=8)}}
    )
    assert gemini_emulator.calls("models.embedContent") == 2


def test_vectors_are_unit_length_and_smaller_sizes_are_prefixes() -> None:
    full = responses.embedding("The cat sat on the mat")
    assert len(full) == 3072 and abs(_norm(full) - 1) < 1e-6
    for size in (3, 768, 1536):
        short = responses.embedding("The cat sat on the mat", dimensions=size)
        assert short == full[:size] and _norm(short) < 1 - 1e-3  # not renormalized, as the real service
    assert all(len(repr(v).lstrip("-").removeprefix("0.")) <= 14 for v in full[:50])  # ~float32 digits, not 17


def test_vectors_mean_something() -> None:
    base = responses.embedding("The quick brown fox jumps over the lazy dog")
    near = responses.embedding("The quick brown fox jumped over the lazy dog")
    same_words = responses.embedding("the quick brown fox jumps over the lazy dog!")
    other = responses.embedding("Quarterly revenue grew by eight percent in Asia")
    assert responses.cosine(base, same_words) > 0.95 and base != same_words  # distinct texts never coincide
    assert responses.cosine(base, near) > 0.8
    assert abs(responses.cosine(base, other)) < 0.15
    query = responses.embedding("The quick brown fox jumps over the lazy dog", task_type="RETRIEVAL_QUERY")
    assert 0.97 < responses.cosine(base, query) < 1  # task types move vectors slightly
    assert responses.embedding("x", model="gemini-embedding-2") != responses.embedding("x")  # a space per model
    titled = responses.embedding("body", task_type="RETRIEVAL_DOCUMENT", title="A title")
    assert titled != responses.embedding("body", task_type="RETRIEVAL_DOCUMENT")
    assert responses.embedding("body", title="A title") == responses.embedding("body")  # title needs the task type
    with pytest.raises(ValueError, match="Unknown task_type"):
        responses.embedding("x", task_type="retrieval_query")


def test_batch_embed_contents_limits_and_model_match(gemini_emulator: Emulator) -> None:
    path = f"/v1beta/models/{MODEL}:batchEmbedContents"
    one = {"model": f"models/{MODEL}", "content": {"parts": [{"text": "a"}]}}
    too_many = raw(gemini_emulator, "POST", path, {"requests": [one] * 101})
    assert too_many.status_code == 400
    assert too_many.json()["error"] == {
        "code": 400,
        "message": "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
        "status": "INVALID_ARGUMENT",
    }
    assert raw(gemini_emulator, "POST", path, {"requests": [one] * 100}).status_code == 200
    wrong = raw(gemini_emulator, "POST", path, {"requests": [one, {**one, "model": "models/gemini-embedding-2"}]})
    assert wrong.status_code == 400 and "requests[1].model" in wrong.json()["error"]["message"]


def test_sync_errors_are_http_errors(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    with pytest.raises(errors.ClientError) as unknown:
        client.models.embed_content(model="gemini-2.5-flash", contents=["x"])
    assert unknown.value.code == 404 and "not supported for batchEmbedContents" in str(unknown.value)
    with pytest.raises(errors.ClientError) as shut_down:
        client.models.embed_content(model="text-embedding-004", contents=["x"])
    assert shut_down.value.code == 404
    with pytest.raises(errors.ClientError, match="TaskType") as task:
        client.models.embed_content(model=MODEL, contents=["x"], config={"task_type": "NOT_A_TASK"})
    assert task.value.code == 400 and "requests[0].task_type" in str(task.value)
    with pytest.raises(errors.ClientError, match="out of range"):
        client.models.embed_content(model=MODEL, contents=["x"], config={"output_dimensionality": 4000})
    empty = raw(gemini_emulator, "POST", f"/v1beta/models/{MODEL}:embedContent", {"content": {"parts": [{"text": ""}]}})
    assert empty.status_code == 400 and empty.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_long_texts_are_cut_silently_to_the_input_limit(gemini_emulator: Emulator) -> None:
    long = " ".join(f"word{i}" for i in range(6000))
    reply = raw(
        gemini_emulator, "POST", f"/v1beta/models/{MODEL}:embedContent", {"content": {"parts": [{"text": long}]}}
    )
    assert reply.status_code == 200 and reply.json()["embedding"]["values"] == responses.embedding(long)
    assert responses.embedding(long) == responses.embedding(long + " more")  # the tail is not embedded...
    cut = responses.embedding(long[: len(long) // 3])
    assert responses.cosine(responses.embedding(long), cut) < 0.99  # ...but the head is


def test_models_get_and_list_know_embedding_models(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    model = client.models.get(model=MODEL)
    assert (model.input_token_limit, model.output_token_limit) == (2048, 1)
    assert model.supported_actions == ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]
    names = [m.name for m in client.models.list()]
    assert names.count(f"models/{MODEL}") == 1 and "models/gemini-embedding-2-preview" in names
    assert "models/text-embedding-004" not in names
    with pytest.raises(errors.ClientError) as generate:
        client.models.generate_content(model=MODEL, contents="Hi")
    assert generate.value.code == 404
    assert client.models.count_tokens(model=MODEL, contents="Hello there").total_tokens


# -- batch jobs ----------------------------------------------------------------------------------------


def test_inline_job_through_the_sdk(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    texts = ["alpha beta", "gamma delta", "epsilon"]
    job = _create(client, _inline(texts, task_type="CLUSTERING", output_dimensionality=16), display_name="emb")
    assert job.state == types.JobState.JOB_STATE_PENDING and job.display_name == "emb"
    assert gemini_emulator.calls("batches.create_embeddings") == 1 and gemini_emulator.calls("batches.create") == 0
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.dest is not None
    answers = done.dest.inlined_embed_content_responses
    assert answers is not None and done.dest.inlined_responses is None
    assert [a.response.embedding.values for a in answers if a.response and a.response.embedding] == [
        responses.embedding(text, task_type="CLUSTERING", dimensions=16) for text in texts
    ]
    assert all(a.response and a.response.token_count and a.metadata is None for a in answers)
    raw_job = gemini_emulator.jobs[done.name or ""]
    assert raw_job["metadata"]["@type"].endswith("v1main.EmbedContentBatch")
    assert raw_job["response"]["@type"].endswith("v1main.EmbedContentBatchOutput")
    assert raw_job["metadata"]["batchStats"] == {"requestCount": "3", "successfulRequestCount": "3"}
    first = raw_job["metadata"]["output"]["inlinedResponses"]["inlinedResponses"][0]
    assert list(first["response"]) == ["tokenCount", "embedding"] and isinstance(first["response"]["tokenCount"], str)


def test_inline_job_with_metadata_echoes_it_and_fails_rows_alone(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.fail_keys({"k1": (13, "boom")})
    rows = [_row("one", "k0"), _row("two", "k1"), {**_row("", "k2")}, _row("three", "k3", outputDimensionality=4)]
    created = _with_metadata(client, rows)
    assert created["metadata"]["state"] == "BATCH_STATE_PENDING" and created["name"].startswith("batches/")
    done = client.batches.get(name=created["name"])
    answers = done.dest.inlined_embed_content_responses if done.dest else None
    assert answers is not None and [a.metadata for a in answers] == [{"key": f"k{i}"} for i in range(4)]
    assert answers[0].response and answers[0].response.embedding
    assert answers[0].response.embedding.values == responses.embedding("one")
    assert answers[1].error and answers[1].error.code == 13 and answers[1].error.message == "boom"
    assert answers[2].error and answers[2].error.code == 3  # empty content: that row's error only
    assert answers[3].response and answers[3].response.embedding
    assert answers[3].response.embedding.values == responses.embedding("three", dimensions=4)
    stats = gemini_emulator.jobs[created["name"]]["metadata"]["batchStats"]
    assert stats == {"requestCount": "4", "successfulRequestCount": "2", "failedRequestCount": "2"}


def test_file_job_lines_look_like_the_real_sample(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    sample = (SAMPLES / "input_file_embeddings.jsonl").read_bytes()
    job = _create(client, {"file_name": upload(client, sample).name})
    done = client.batches.get(name=job.name)
    assert done.dest is not None and done.dest.file_name and done.dest.inlined_embed_content_responses is None
    lines = client.files.download(file=done.dest.file_name).decode().splitlines()
    real = (SAMPLES / "result_file_embeddings_gemini-embedding-001.jsonl").read_text().splitlines()
    ours, theirs = [json.loads(line) for line in lines], [json.loads(line) for line in real]
    assert [list(line) for line in ours] == [list(line) for line in theirs] == [["response", "key"]] * 2
    assert [list(line["response"]) for line in ours] == [list(line["response"]) for line in theirs]
    assert [len(line["response"]["embedding"]["values"]) for line in ours] == [3, 4]
    assert ours[0]["response"]["embedding"]["values"] == responses.embedding("1", dimensions=3)
    assert lines[0].startswith('{"response":{"tokenCount":"') and '"key":"request_1"}' in lines[0]


def test_file_job_row_errors_by_key(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.fail_keys({"b": (8, "Resource exhausted for this row.")})
    lines = [{"key": k, "request": {"content": {"parts": [{"text": k * 3}]}}} for k in "abc"]
    lines.append({"key": "d", "request": {"content": {"parts": []}}})
    done = client.batches.get(name=_create(client, {"file_name": upload(client, jsonl(lines)).name}).name or "")
    assert done.dest is not None and done.dest.file_name
    result = [json.loads(line) for line in client.files.download(file=done.dest.file_name).splitlines()]
    assert [line["key"] for line in result] == ["a", "b", "c", "d"]
    assert result[1] == {"error": {"code": 8, "message": "Resource exhausted for this row."}, "key": "b"}
    assert result[3]["error"]["code"] == 3 and "response" in result[0] and "response" in result[2]


@pytest.mark.parametrize(
    ("request_extra", "status", "match"),
    [
        ({"taskType": "SEARCH"}, 400, "TaskType"),
        ({"outputDimensionality": 3073}, 400, "out of range"),
        ({"outputDimensionality": -1}, 400, "out of range"),
        ({"output_dimensionality": "many"}, 400, "TYPE_INT32"),
    ],
)
def test_whole_job_refused_for_invalid_options(
    gemini_emulator: Emulator, request_extra: dict[str, Any], status: int, match: str
) -> None:
    client = gemini_emulator.client()
    with pytest.raises(errors.APIError, match=match) as refused:
        _with_metadata(client, [_row("fine", "k0"), _row("bad", "k1", **request_extra)])
    assert refused.value.code == status and "requests[1].request" in str(refused.value)
    assert gemini_emulator.jobs == {}


def test_whole_job_refusals_for_model_file_and_size(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    with pytest.raises(errors.ClientError) as generation_model:
        _create(client, _inline(["x"]), model="gemini-2.5-flash")
    assert generation_model.value.code == 404 and "asyncBatchEmbedContent" in str(generation_model.value)
    with pytest.raises(errors.ClientError, match="not found") as missing:
        _create(client, {"file_name": "files/nope"})
    assert missing.value.code == 400
    gemini_emulator.settings.inline_limit_bytes = 2_000
    with pytest.raises(errors.ClientError, match="payload size exceeds"):
        _create(client, _inline(["word " * 200, "more " * 200]))
    with pytest.raises(errors.ClientError) as wrong_route:
        client.batches.create(model=MODEL, src=[{"contents": "Hi"}])
    assert wrong_route.value.code == 404
    assert gemini_emulator.jobs == {}


def test_embed_jobs_live_with_the_others(gemini_emulator: Emulator) -> None:
    gemini_emulator.settings.pending_seconds = 60
    client = gemini_emulator.client()
    generation = client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}])
    embedding = _create(client, _inline(["x"]), display_name="vectors")
    listed = {job.name: job.display_name for job in client.batches.list()}
    assert set(listed) == {generation.name, embedding.name} and listed[embedding.name] == "vectors"
    client.batches.cancel(name=embedding.name or "")
    assert client.batches.get(name=embedding.name or "").state == types.JobState.JOB_STATE_CANCELLED
    gemini_emulator.advance_time(61)
    assert client.batches.get(name=generation.name or "").state == types.JobState.JOB_STATE_SUCCEEDED
    client.batches.delete(name=embedding.name or "")
    assert [job.name for job in client.batches.list()] == [generation.name]


def test_quota_and_endings_apply_to_embed_jobs() -> None:
    with Emulator(max_active_jobs=1, pending_seconds=60) as emu:
        client = emu.client()
        _create(client, _inline(["x"]))
        with pytest.raises(errors.ClientError) as refused:
            _create(client, _inline(["y"]))
        assert refused.value.code == 429 and len(emu.jobs) == 1
    with Emulator() as emu:
        client = emu.client()
        emu.end_next_job("FAILED", code=3, message="Bad embeddings.")
        name = _create(client, _inline(["x"])).name or ""
        failed = emu.jobs[name]
        assert failed["metadata"]["state"] == "BATCH_STATE_FAILED"
        assert failed["error"] == {"code": 3, "message": "Bad embeddings.", "status": "INVALID_ARGUMENT"}


def test_enqueued_token_quota_counts_embedding_texts() -> None:
    with Emulator(enqueued_token_limit=50, pending_seconds=60) as emu:
        client = emu.client()
        _create(client, _inline(["short text"]))
        with pytest.raises(errors.ClientError) as refused:
            _create(client, _inline(["many words " * 40]))
        assert refused.value.code == 429 and "batch_enqueued_tokens" in str(refused.value)


# -- faults --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["models.embedContent", "models.batchEmbedContents", "batches.create_embeddings"])
def test_fail_http_on_the_new_endpoints(gemini_emulator: Emulator, endpoint: str) -> None:
    client = gemini_emulator.client()
    gemini_emulator.fail_http(endpoint, 503)
    call = {
        "models.embedContent": lambda: raw(gemini_emulator, "POST", f"/v1beta/models/{MODEL}:embedContent",
                                           {"content": {"parts": [{"text": "x"}]}}),
        "models.batchEmbedContents": lambda: client.models.embed_content(model=MODEL, contents=["x"]),
        "batches.create_embeddings": lambda: _create(client, _inline(["x"])),
    }[endpoint]  # fmt: skip
    if endpoint == "models.embedContent":
        assert call().status_code == 503
    else:
        with pytest.raises(errors.ServerError):
            call()
    assert gemini_emulator.jobs == {}
    call()  # the next call succeeds
    assert gemini_emulator.calls(endpoint) == 2


def test_a_lost_create_reply_leaves_the_job_findable_by_display_name(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client(timeout=300)
    gemini_emulator.delay_reply("batches.create_embeddings", 1.0)
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        _create(client, _inline(["x"]), display_name="run-7")
    found = [job for job in client.batches.list() if job.display_name == "run-7"]
    assert len(found) == 1 and len(gemini_emulator.jobs) == 1


@pytest.mark.parametrize("kind", ["dropped", "duplicated", "shuffled", "wrong_shape"])
def test_corrupted_inline_responses(gemini_emulator: Emulator, kind: str) -> None:
    client = gemini_emulator.client()
    gemini_emulator.corrupt_results(kind, lines=1)
    created = _with_metadata(client, [_row(f"text {i}", f"k{i}") for i in range(4)])
    answers = client.batches.get(name=created["name"]).dest
    assert answers is not None and answers.inlined_embed_content_responses is not None
    keys = [a.metadata["key"] for a in answers.inlined_embed_content_responses if a.metadata]
    expected = {
        "dropped": ["k1", "k2", "k3"],
        "duplicated": ["k0", "k0", "k1", "k2", "k3"],
        "wrong_shape": ["k0", "k1", "k2", "k3"],
    }
    if kind == "shuffled":
        assert sorted(keys) == ["k0", "k1", "k2", "k3"] and keys != sorted(keys)
    else:
        assert keys == expected[kind]
    if kind == "wrong_shape":
        first = answers.inlined_embed_content_responses[0]
        assert first.error is None and (first.response is None or first.response.embedding is None)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "blank", "wrong_shape", "dropped", "duplicated", "shuffled"])
def test_corrupted_result_files(gemini_emulator: Emulator, kind: str) -> None:
    client = gemini_emulator.client()
    gemini_emulator.corrupt_results(kind, lines=1)
    lines = [{"key": f"k{i}", "request": {"content": {"parts": [{"text": f"text {i}"}]}}} for i in range(3)]
    done = client.batches.get(name=_create(client, {"file_name": upload(client, jsonl(lines)).name}).name or "")
    assert done.dest is not None and done.dest.file_name
    data = client.files.download(file=done.dest.file_name).decode()
    parsed = []
    for line in data.splitlines():
        try:
            parsed.append(json.loads(line) if line else None)
        except ValueError:
            parsed.append("broken")
    keys = [line.get("key") for line in parsed if isinstance(line, dict)]
    if kind in ("truncated", "garbage"):
        assert parsed[0] == "broken" and keys == ["k1", "k2"]
    elif kind == "blank":
        assert parsed[1] is None and keys == ["k0", "k1", "k2"]
    elif kind == "wrong_shape":
        assert keys == ["k0", "k1", "k2"] and parsed[0]["response"]["embedding"] == "oops"
    elif kind == "dropped":
        assert keys == ["k1", "k2"]
    elif kind == "duplicated":
        assert keys == ["k0", "k0", "k1", "k2"]
    else:
        assert sorted(keys) == ["k0", "k1", "k2"] and keys != ["k0", "k1", "k2"]


def test_a_custom_embedder_overrides_rows(gemini_emulator: Emulator) -> None:
    def embedder(request: EmbeddingRequest) -> list[float]:
        if request.key == "bad":
            raise EmulatedError(3, "Refused by the test.")
        return [1.0, 0.0] if request.key == "fixed" else responses.embedding(request.text, dimensions=2)

    gemini_emulator.settings.embedder = embedder
    client = gemini_emulator.client()
    created = _with_metadata(client, [_row("a", "fixed"), _row("b", "bad"), _row("c", "plain")])
    answers = client.batches.get(name=created["name"]).dest
    assert answers is not None and answers.inlined_embed_content_responses is not None
    fixed, bad, plain = answers.inlined_embed_content_responses
    assert fixed.response and fixed.response.embedding and fixed.response.embedding.values == [1.0, 0.0]
    assert bad.error and bad.error.message == "Refused by the test."
    assert plain.response and plain.response.embedding
    assert plain.response.embedding.values == responses.embedding("c", dimensions=2)


def test_every_row_failing_surfaces_as_generation_responses_in_the_sdk(gemini_emulator: Emulator) -> None:
    """The SDK renames `inlinedResponses` only when a response carries an embedding (as against the real API)."""
    client = gemini_emulator.client()
    gemini_emulator.fail_keys({"k0": (13, "boom")})
    dest = client.batches.get(name=_with_metadata(client, [_row("x", "k0")])["name"]).dest
    assert dest is not None and dest.inlined_embed_content_responses is None
    assert dest.inlined_responses and dest.inlined_responses[0].error


def test_word_cache_eviction_keeps_every_vector() -> None:
    texts = [" ".join(f"w{(i * 7 + j) % 50}" for j in range(6)) for i in range(100)]
    before = [responses.embedding(text) for text in texts]
    saved = _vectors._WORDS
    try:
        for capacity in (16, 4):  # evicting constantly; fewer rows than a text's words
            _vectors._WORDS = _vectors._WordCache(capacity)
            assert [responses.embedding(text) for text in texts] == before
    finally:
        _vectors._WORDS = saved


def test_three_thousand_rows_are_fast() -> None:
    texts = [f"Review {i}: the product arrived on time and works as described, rating {i % 5}" for i in range(3000)]
    with Emulator() as emu:
        client = emu.client()
        created = _with_metadata(
            client, [_row(text, f"r{i}", outputDimensionality=768) for i, text in enumerate(texts)]
        )
        start = time.process_time()
        job = emu._app.services.batches._job(created["name"].removeprefix("batches/"))
        outcomes = emu._app.services.batches._outcomes(job)  # the vectors, without the JSON of 2.3 million numbers
        elapsed = time.process_time() - start
    assert outcomes[0]["embedding"]["values"] == responses.embedding(texts[0], dimensions=768)
    assert elapsed < 2.0, f"3,000 embeddings took {elapsed:.2f} s of CPU"
