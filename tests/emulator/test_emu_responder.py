"""The default responder and the helper responders, through generateContent and batches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from emulator_support import conforms, run_file_job, text_request
from google import genai
from google.genai import errors, types

from polars_gemini.emulator import EmulatedError, Emulator, ResponderRequest, default_responder, responses
from polars_gemini.tokens.tokenizer import count_tokens

_OPENAPI = {
    "type": "OBJECT",
    "properties": {
        "label": {"type": "STRING", "enum": ["pos", "neg", "neutral"]},
        "score": {"type": "NUMBER", "minimum": 0, "maximum": 1},
        "stars": {"type": "INTEGER", "minimum": 1, "maximum": 5},
        "verified": {"type": "BOOLEAN"},
        "reviewed_on": {"type": "STRING", "format": "date"},
        "seen_at": {"type": "STRING", "format": "date-time", "nullable": True},
        "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 2, "maxItems": 4},
        "author": {
            "type": "OBJECT",
            "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER", "minimum": 18, "maximum": 99}},
            "required": ["name", "age"],
        },
        "either": {"anyOf": [{"type": "INTEGER"}, {"type": "STRING", "enum": ["none"]}]},
    },
    "required": ["label", "score", "stars", "verified", "reviewed_on", "seen_at", "tags", "author", "either"],
    "propertyOrdering": ["stars", "label"],
}
_JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "rating": {"type": ["number", "null"], "minimum": -1, "maximum": 1},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "maxItems": 3},
        "kind": {"enum": ["a", "b"]},
    },
    "required": ["title", "rating", "items", "kind"],
    "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 4}},
                       "required": ["n"]}},
}  # fmt: skip


def _generate(client: genai.Client, text: str, model: str = "gemini-2.0-flash", **config: Any) -> Any:
    return client.models.generate_content(model=model, contents=text, config=types.GenerateContentConfig(**config))


def test_response_schema_output_conforms(gemini_client: genai.Client) -> None:
    for i in range(40):
        reply = _generate(gemini_client, f"Review {i}", response_mime_type="application/json", response_schema=_OPENAPI)
        value = json.loads(reply.text)
        assert conforms(value, _OPENAPI), value
        assert list(value)[:2] == ["stars", "label"]  # propertyOrdering first, then alphabetical
        assert list(value)[2:] == sorted(list(value)[2:])


def test_response_json_schema_output_conforms(gemini_client: genai.Client) -> None:
    for i in range(40):
        config = {"response_mime_type": "application/json", "response_json_schema": _JSON_SCHEMA}
        value = json.loads(_generate(gemini_client, f"Item {i}", **config).text)
        assert conforms(value, _JSON_SCHEMA) and list(value) == ["title", "rating", "items", "kind"], value


def test_enums_and_nulls_vary_with_the_prompt(gemini_client: genai.Client) -> None:
    config = {"response_mime_type": "application/json", "response_schema": _OPENAPI}
    values = [json.loads(_generate(gemini_client, f"Review {i}", **config).text) for i in range(40)]
    assert {v["label"] for v in values} == {"pos", "neg", "neutral"}
    assert None in {v["seen_at"] for v in values}


def test_answers_are_deterministic(gemini_client: genai.Client) -> None:
    first, second = (_generate(gemini_client, "Why is the sea salty?").text for _ in range(2))
    assert first == second and "sea salty" in (first or "")


def test_enum_mime_type(gemini_client: genai.Client) -> None:
    schema = {"type": "STRING", "enum": ["red", "green"]}
    assert _generate(gemini_client, "A colour", response_mime_type="text/x.enum", response_schema=schema).text in {
        "red",
        "green",
    }


def test_usage_metadata_counts_with_the_library_tokenizer(gemini_client: genai.Client) -> None:
    reply = _generate(gemini_client, "Explain tides", system_instruction="Be brief.")
    usage = reply.usage_metadata
    assert usage.prompt_token_count == sum(count_tokens(["Explain tides", "Be brief."]))
    assert usage.candidates_token_count == count_tokens([reply.text])[0]
    assert usage.thoughts_token_count is None
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert usage.prompt_tokens_details[0].token_count == usage.prompt_token_count


def test_thinking_tokens(gemini_client: genai.Client) -> None:
    thinking = _generate(gemini_client, "Plan a trip", model="gemini-2.5-flash").usage_metadata
    assert thinking.thoughts_token_count and thinking.thoughts_token_count > 100
    assert thinking.total_token_count == (
        thinking.prompt_token_count + thinking.candidates_token_count + thinking.thoughts_token_count
    )
    off = types.ThinkingConfig(thinking_budget=0)
    assert (
        _generate(
            gemini_client, "Plan a trip", "gemini-2.5-flash", thinking_config=off
        ).usage_metadata.thoughts_token_count
        is None
    )
    assert _generate(gemini_client, "Plan a trip", "gemini-2.0-flash").usage_metadata.thoughts_token_count is None
    capped = types.ThinkingConfig(thinking_budget=50)
    assert (
        _generate(
            gemini_client, "Plan a trip", "gemini-2.5-flash", thinking_config=capped
        ).usage_metadata.thoughts_token_count
        <= 50
    )


def test_include_thoughts_adds_a_thought_part(gemini_client: genai.Client) -> None:
    config = types.ThinkingConfig(include_thoughts=True)
    reply = _generate(gemini_client, "Plan a trip", "gemini-2.5-flash", thinking_config=config)
    parts = reply.candidates[0].content.parts
    assert [bool(p.thought) for p in parts] == [True, False] and reply.text == parts[1].text


def test_max_output_tokens_truncates_json(gemini_client: genai.Client) -> None:
    reply = _generate(gemini_client, "Review", response_mime_type="application/json", response_schema=_OPENAPI,
                      max_output_tokens=12)  # fmt: skip
    assert reply.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert reply.usage_metadata.candidates_token_count <= 12
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.text)


def test_thinking_counts_against_max_output_tokens(gemini_client: genai.Client) -> None:
    reply = _generate(gemini_client, "Plan a trip", "gemini-2.5-flash", max_output_tokens=30)
    assert reply.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert reply.text is None and reply.usage_metadata.thoughts_token_count == 30


def test_gemini_3_parts_carry_signatures(gemini_client: genai.Client) -> None:
    reply = _generate(gemini_client, "Hello", "gemini-3.5-flash")
    assert reply.candidates[0].content.parts[0].thought_signature


def test_count_tokens_agrees_with_generate(gemini_client: genai.Client) -> None:
    counted = gemini_client.models.count_tokens(model="gemini-2.5-flash", contents="What is your name?")
    generated = _generate(gemini_client, "What is your name?", "gemini-2.5-flash")
    assert (
        counted.total_tokens == generated.usage_metadata.prompt_token_count == count_tokens(["What is your name?"])[0]
    )


def test_helper_responders() -> None:
    request = ResponderRequest("gemini-2.0-flash", text_request("hello"), "k1", "batch")
    assert responses.text("hi")(request)["candidates"][0]["content"]["parts"] == [{"text": "hi"}]
    assert responses.json_value({"a": 1})(request)["candidates"][0]["content"]["parts"][0]["text"] == '{"a": 1}'
    blocked = responses.blocked("PROHIBITED_CONTENT")(request)
    assert blocked["promptFeedback"] == {"blockReason": "PROHIBITED_CONTENT"} and "candidates" not in blocked
    refused = responses.finish("SAFETY")(request)["candidates"][0]
    assert refused == {"content": {"role": "model"}, "finishReason": "SAFETY", "index": 0}
    thought = responses.with_thought("42", thoughts_tokens=7)(request)
    assert thought["usageMetadata"]["thoughtsTokenCount"] == 7
    assert thought["candidates"][0]["content"]["parts"][0]["thought"] is True
    routed = responses.by_key({"k1": responses.text("one")}, default=responses.text("other"))
    assert routed(request)["candidates"][0]["content"]["parts"][0]["text"] == "one"


def test_blocked_and_safety_through_the_sdk() -> None:
    responder = responses.when(
        lambda r: "unsafe" in r.text, responses.blocked(), responses.finish("RECITATION", "Once")
    )
    with Emulator(responder=responder) as emu:
        client = emu.client()
        blocked = client.models.generate_content(model="gemini-2.0-flash", contents="unsafe thing")
        assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY and not blocked.candidates
        recited = client.models.generate_content(model="gemini-2.0-flash", contents="a poem")
        assert recited.candidates[0].finish_reason == types.FinishReason.RECITATION and recited.text == "Once"


def test_emulated_error_in_sync_mode_is_an_http_error() -> None:
    with Emulator(responder=responses.error(503, "overloaded")) as emu:
        client = emu.client()
        with pytest.raises(errors.ServerError) as caught:
            client.models.generate_content(model="gemini-2.0-flash", contents="x")
        assert (caught.value.code, caught.value.status, caught.value.message) == (503, "UNAVAILABLE", "overloaded")


def test_responder_sees_camel_case_requests_and_modes() -> None:
    seen: list[ResponderRequest] = []

    def spy(request: ResponderRequest) -> dict[str, Any]:
        seen.append(request)
        return default_responder(request)

    with Emulator(responder=spy) as emu:
        client = emu.client()
        config = {"thinking_config": {"thinking_budget": 0}}
        client.models.generate_content(model="gemini-2.5-flash", contents="x", config=config)
        job = client.batches.create(model="gemini-2.5-flash", src=[{"contents": "y", "metadata": {"key": "k"}}])
        client.batches.get(name=job.name or "")
    assert [(r.mode, r.key, r.model) for r in seen] == [
        ("sync", None, "gemini-2.5-flash"),
        ("batch", "k", "gemini-2.5-flash"),
    ]
    assert seen[0].request["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}


def test_a_broken_responder_is_reported(gemini_emulator: Emulator) -> None:
    def broken(request: ResponderRequest) -> dict[str, Any]:
        raise KeyError("oops")

    gemini_emulator.settings.responder = broken
    client = gemini_emulator.client()
    job = client.batches.create(model="gemini-2.0-flash", src=[{"contents": "x"}])
    answer = (client.batches.get(name=job.name or "").dest or types.BatchJobDestination()).inlined_responses
    assert answer and answer[0].error and answer[0].error.code == 13
    assert [type(e) for e in gemini_emulator.errors] == [KeyError]


def test_emulated_error_codes() -> None:
    assert EmulatedError(13, "x").rpc_status() == {"code": 13, "message": "x"}
    assert EmulatedError(13, "x").body() == {"error": {"code": 500, "message": "x", "status": "INTERNAL"}}
    assert EmulatedError(429).grpc_code == 8


def test_models_get_and_list(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    model = gemini_client.models.get(model="gemini-2.5-flash")
    assert (model.name, model.output_token_limit) == ("models/gemini-2.5-flash", 65_536)
    assert model.supported_actions and "batchGenerateContent" in model.supported_actions
    names = [m.name for m in gemini_client.models.list(config={"page_size": 4})]
    assert "models/gemini-2.0-flash" in names and len(names) == len(set(names)) >= 10
    assert gemini_emulator.calls("models.get") == 1 and gemini_emulator.calls("models.list") >= 3


def test_routing_keeps_every_row_in_place() -> None:
    fixed = {"candidates": [{"content": {"role": "model", "parts": [{"text": "fixed"}]}, "finishReason": "STOP"}]}
    inner = responses.when(lambda r: "odd" in r.text, responses.text("odd one"), responses.blocked())
    responder = responses.by_key({"row-0": fixed, "row-1": responses.error(429, "slow down"), "row-2": inner})
    lines = [{"key": f"row-{i}", "request": text_request(t)} for i, t in enumerate(["a", "b", "odd", "x", "y"])]
    with Emulator(responder=responder) as emu:
        results = run_file_job(emu.client(), lines)
    assert [r["key"] for r in results] == [f"row-{i}" for i in range(5)]
    assert results[0]["response"] == fixed and results[1]["error"] == {"code": 8, "message": "slow down"}
    assert results[2]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "odd one"
    assert all(r["response"]["candidates"][0]["finishReason"] == "STOP" for r in results[3:])
