"""Service tiers on generateContent through the real SDK: Flex answers, refusals, shedding, latency, answers logged."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx2
import pytest
from emulator_support import jsonl, raw, upload
from google import genai
from google.genai import errors, types

from polars_gemini.emulator import AnsweredRequest, EmulatedError, Emulator, ResponderRequest, responses

MODEL = "gemini-2.5-flash"
FLEX: types.GenerateContentConfigDict = {"service_tier": "flex"}
RETRY = types.HttpRetryOptions(attempts=20, initial_delay=0.001, max_delay=0.005, jitter=0.0, http_status_codes=[503])


def _generate(client: genai.Client, prompt: str, **config: Any) -> types.GenerateContentResponse:
    return client.models.generate_content(model=MODEL, contents=prompt, config=config or None)


def _raw_usage(client: genai.Client, prompt: str, **config: Any) -> tuple[dict[str, Any], str | None]:
    """The reply's `usageMetadata` as sent, and its tier header: SDK 3.6.1 drops `serviceTier` from the
    parsed `usage_metadata` of generateContent (its `GenerateContentResponseUsageMetadata` has no such field)."""
    reply = _generate(client, prompt, should_return_http_response=True, **config)
    assert reply.sdk_http_response is not None and reply.sdk_http_response.body is not None
    headers = reply.sdk_http_response.headers or {}
    return json.loads(reply.sdk_http_response.body)["usageMetadata"], headers.get("x-gemini-service-tier")


def test_a_flex_call_is_answered_with_its_tier_in_usage(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    reply = _generate(client, "Name a colour.", service_tier="flex")
    assert reply.text and reply.sdk_http_response is not None and reply.sdk_http_response.headers is not None
    assert reply.sdk_http_response.headers["x-gemini-service-tier"] == "flex"
    assert gemini_emulator.requests[-1].body_json["serviceTier"] == "flex"  # what the SDK puts on the wire
    assert gemini_emulator.answered() == [AnsweredRequest("generate", "flex", MODEL, "Name a colour.")]
    usage, _ = _raw_usage(client, "Name a colour.", service_tier="flex")
    assert usage["serviceTier"] == "flex" and usage["totalTokenCount"] > 0


@pytest.mark.parametrize(
    ("config", "served"),
    [({}, "standard"), ({"service_tier": "standard"}, "standard"), ({"service_tier": "priority"}, "priority"),
     ({"service_tier": "unspecified"}, "standard")],
)  # fmt: skip
def test_every_call_carries_the_tier_it_was_served_in(
    gemini_emulator: Emulator, config: dict[str, Any], served: str
) -> None:
    usage, header = _raw_usage(gemini_emulator.client(), "Hello", **config)
    assert usage["serviceTier"] == header == served
    assert [record.tier for record in gemini_emulator.answered()] == [served]


@pytest.mark.parametrize("spelling", ["FLEX", "Flex", "flex"])
def test_the_tier_is_read_in_any_case(gemini_emulator: Emulator, spelling: str) -> None:
    """Google's REST example writes "FLEX"; the SDK sends "flex"."""
    body = {"contents": [{"parts": [{"text": "Hi"}]}], "service_tier": spelling}
    reply = raw(gemini_emulator, "POST", f"/v1beta/models/{MODEL}:generateContent", body)
    assert reply.status_code == 200 and reply.json()["usageMetadata"]["serviceTier"] == "flex"


def test_an_unknown_tier_is_refused_before_the_model_runs() -> None:
    asked: list[str] = []

    def responder(request: ResponderRequest) -> dict[str, Any]:
        asked.append(request.text)
        return responses.text("fine")(request)

    with Emulator(responder=responder) as emu:
        client = emu.client()
        with (
            pytest.warns(UserWarning, match="turbo is not a valid ServiceTier"),
            pytest.raises(errors.ClientError) as e,
        ):
            _generate(client, "Hi", service_tier="turbo")
        assert e.value.code == 400 and e.value.status == "INVALID_ARGUMENT"
        assert "service_tier" in (e.value.message or "") and '"turbo"' in (e.value.message or "")
        assert asked == [] and emu.answered() == []


def test_a_non_string_tier_is_refused(gemini_emulator: Emulator) -> None:
    body = {"contents": [{"parts": [{"text": "Hi"}]}], "serviceTier": 2}
    reply = raw(gemini_emulator, "POST", f"/v1beta/models/{MODEL}:generateContent", body)
    assert reply.status_code == 400 and reply.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_a_shed_flex_call_gets_googles_503_and_standard_calls_are_not_shed() -> None:
    with Emulator(flex_unavailable_rate=1.0) as emu:
        client = emu.client()
        with pytest.raises(errors.ServerError) as caught:
            _generate(client, "Hi", service_tier="flex")
        assert caught.value.code == 503 and caught.value.status == "UNAVAILABLE"
        assert caught.value.details == {
            "error": {
                "code": 503,
                "message": "The model is overloaded. Please try again later.",
                "status": "UNAVAILABLE",
            }
        }
        assert _generate(client, "Hi").text  # the standard tier is not shed
        assert [record.tier for record in emu.answered()] == ["standard"]


def test_with_shedding_the_sdks_retries_get_every_prompt_answered_once() -> None:
    prompts = [f"Prompt {i} about owls" for i in range(30)]
    with Emulator(flex_unavailable_rate=0.5, flex_seed=7) as emu:
        client = emu.client(retry_options=RETRY)
        replies = [_generate(client, prompt, service_tier="flex") for prompt in prompts]
        calls = emu.calls("models.generateContent")
        answered = emu.answered()
    assert all(reply.text for reply in replies)
    assert calls > len(prompts)  # some calls were shed and retried
    assert Counter(record.prompt for record in answered) == Counter(prompts)
    assert {record.tier for record in answered} == {"flex"}
    with Emulator(flex_unavailable_rate=0.5, flex_seed=7) as again:  # the same seed sheds the same attempts
        client = again.client(retry_options=RETRY)
        for prompt in prompts:
            _generate(client, prompt, service_tier="flex")
        assert again.calls("models.generateContent") == calls


def test_the_shedding_rate_can_change_while_running(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    assert _generate(client, "Hi", service_tier="flex").text
    gemini_emulator.settings.flex_unavailable_rate = 1.0
    with pytest.raises(errors.ServerError):
        _generate(client, "Hi", service_tier="flex")


def test_flex_latency_holds_back_flex_replies_only() -> None:
    """A client that gives up before the Flex reply: the call was answered (and billed) all the same."""
    with Emulator(flex_latency=1.0) as emu:
        client = emu.client(timeout=300)
        with pytest.raises(httpx2.TimeoutException):
            _generate(client, "slow", service_tier="flex")
        assert _generate(client, "quick").text  # the standard tier keeps its speed
        assert [(record.prompt, record.tier) for record in emu.answered()] == [("slow", "flex"), ("quick", "standard")]


def test_a_responder_error_or_an_injected_fault_is_not_answered(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.fail_http("models.generateContent", 500)
    with pytest.raises(errors.ServerError):
        _generate(client, "Hi", service_tier="flex")
    gemini_emulator.settings.responder = responses.error(429, "quota")
    with pytest.raises(errors.ClientError):
        _generate(client, "Hi", service_tier="flex")
    assert gemini_emulator.answered() == []


def test_batch_requests_may_name_a_tier_but_run_in_the_batch_tier(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    inline: list[types.InlinedRequestDict] = [{"contents": "one", "metadata": {"key": "a"}, "config": FLEX}]
    inline_job = client.batches.create(model=MODEL, src=inline)
    assert gemini_emulator.requests[-1].body_json["batch"]["inputConfig"]["requests"]["requests"][0]["request"][
        "serviceTier"
    ] == "flex"  # fmt: skip
    line = {"key": "b", "request": {"contents": [{"parts": [{"text": "two"}]}], "service_tier": "flex"}}
    file_job = client.batches.create(model=MODEL, src=upload(client, jsonl([line])).name or "")
    for job in (inline_job, file_job):
        assert client.batches.get(name=job.name or "").state == types.JobState.JOB_STATE_SUCCEEDED
    assert gemini_emulator.answered() == [
        AnsweredRequest("batch", "batch", MODEL, "one", "a", inline_job.name),
        AnsweredRequest("batch", "batch", MODEL, "two", "b", file_job.name),
    ]
    assert "serviceTier" not in json.dumps(gemini_emulator.jobs[inline_job.name or ""])  # results say nothing of it


def test_an_unknown_tier_in_a_batch_request_refuses_the_create(gemini_emulator: Emulator) -> None:
    body = {"batch": {"inputConfig": {"requests": {"requests": [
        {"request": {"contents": [{"parts": [{"text": "Hi"}]}], "serviceTier": "turbo"}}]}}}}  # fmt: skip
    reply = raw(gemini_emulator, "POST", f"/v1beta/models/{MODEL}:batchGenerateContent", body)
    assert reply.status_code == 400 and reply.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "requests[0].request.service_tier" in reply.json()["error"]["message"]
    assert gemini_emulator.jobs == {}


def test_a_batch_jobs_failed_requests_are_not_answered(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    gemini_emulator.fail_keys({"bad": EmulatedError(13, "boom")})
    src: list[types.InlinedRequestDict] = [{"contents": p, "metadata": {"key": p}} for p in ("good", "bad")]
    job = client.batches.create(model=MODEL, src=src)
    assert gemini_emulator.answered() == [AnsweredRequest("batch", "batch", MODEL, "good", "good", job.name)]


def test_a_succeeded_job_is_answered_even_if_nobody_fetched_it(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client()
    job = client.batches.create(model=MODEL, src=[{"contents": "unseen"}])
    assert [(r.route, r.job, r.prompt, r.key) for r in gemini_emulator.answered()] == [
        ("batch", job.name, "unseen", None)
    ]
    assert gemini_emulator.calls("batches.get") == 0


@pytest.mark.parametrize("arguments", [{"flex_latency": -1.0}, {"flex_unavailable_rate": 1.5}])
def test_flex_settings_are_checked(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="flex_"):
        Emulator(**arguments)  # type: ignore[arg-type]
