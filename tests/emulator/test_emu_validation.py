"""Requests the real API refuses, refused the same way: status, Google-style body, a message that helps."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
from emulator_support import KEY_HEADER, jsonl, prompt_lines, raw, run_file_job, text_request, upload
from google import genai
from google.genai import errors

from polars_gemini.emulator import Emulator

_CREATE = "/v1beta/models/gemini-2.0-flash:batchGenerateContent"


def _batch(*requests: dict[str, object]) -> dict[str, object]:
    items = [{"request": r, "metadata": {"key": f"k{i}"}} for i, r in enumerate(requests)]
    return {"batch": {"inputConfig": {"requests": {"requests": items}}}}


def _error(reply_json: dict[str, object]) -> dict[str, object]:
    error = reply_json["error"]
    assert isinstance(error, dict) and set(error) >= {"code", "message", "status"}
    return error


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "Invalid JSON payload"),
        ({}, "'batch'"),
        ({"batch": {}}, "input_config"),
        (_batch({"contents": []}), "contents is not specified"),
        (_batch({"generationConfig": {"temperature": 0}}), "contents is not specified"),
        (_batch(text_request("x", responseSchema={"type": "STRING"}, responseJsonSchema={"type": "string"})),
         "cannot both be set"),
        (_batch({**text_request("x"), "thinkingConfig": {"thinkingBudget": 0}}), "thinking_config"),
        ({"batch": {"inputConfig": {"fileName": "files/nope"}}}, "files/nope not found"),
    ],
)  # fmt: skip
def test_malformed_create_is_400(gemini_emulator: Emulator, body: object, fragment: str) -> None:
    reply = raw(gemini_emulator, "POST", _CREATE, body)
    error = _error(reply.json())
    assert (reply.status_code, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert fragment in str(error["message"])
    assert gemini_emulator.jobs == {}


def test_bad_file_lines_are_400(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    line = {"key": "a", "request": {**text_request("x"), "thinking_config": {"thinking_budget": 0}}}
    uploaded = upload(gemini_client, jsonl([line]))
    with pytest.raises(errors.ClientError) as caught:
        gemini_client.batches.create(model="gemini-2.0-flash", src=uploaded.name or "")
    assert caught.value.code == 400 and "line 1" in (caught.value.message or "")
    broken = upload(gemini_client, jsonl(prompt_lines(1)) + b"{oops\n")
    with pytest.raises(errors.ClientError, match="line 2"):
        gemini_client.batches.create(model="gemini-2.0-flash", src=broken.name or "")


def test_inline_limit_default_and_configured(gemini_emulator: Emulator) -> None:
    assert gemini_emulator.settings.inline_limit_bytes == 20 * 1024**2
    gemini_emulator.settings.inline_limit_bytes = 1000
    reply = raw(gemini_emulator, "POST", _CREATE, _batch(text_request("x" * 1000)))
    assert reply.status_code == 400 and "20 MB" not in reply.json()["error"]["message"]
    assert "Files API" in reply.json()["error"]["message"]
    assert raw(gemini_emulator, "POST", _CREATE, _batch(text_request("x"))).status_code == 200


def test_inline_limit_message_names_twenty_megabytes(gemini_emulator: Emulator) -> None:
    reply = raw(gemini_emulator, "POST", _CREATE, b" " * (20 * 1024**2 + 1))
    assert reply.status_code == 400 and "20 MB" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/models/gemini-9:batchGenerateContent"), ("POST", "/v1/models/gemini-9:generateContent"),
     ("POST", "/v1/models/gemini-9:countTokens"), ("GET", "/v1/models/gemini-9")],
)  # fmt: skip
def test_unknown_model_is_404(gemini_emulator: Emulator, method: str, path: str) -> None:
    reply = raw(gemini_emulator, method, path, _batch(text_request("x")) if method == "POST" else None)
    assert (reply.status_code, reply.json()["error"]["status"]) == (404, "NOT_FOUND")
    assert "models/gemini-9 is not found" in reply.json()["error"]["message"]


def test_extra_models_are_known() -> None:
    with Emulator(models=["gemini-9-ultra"]) as emu:
        client = emu.client()  # keep a reference: a collected Client closes its HTTP connection pool
        reply = client.models.generate_content(model="gemini-9-ultra", contents="hi")
        assert reply.text and reply.model_version == "gemini-9-ultra"


def test_unknown_route_is_404(gemini_emulator: Emulator) -> None:
    assert raw(gemini_emulator, "GET", "/v1/nothing/here").status_code == 404


def test_missing_api_key_is_403(gemini_emulator: Emulator) -> None:
    reply = raw(gemini_emulator, "GET", "/v1/batches", headers={"x-goog-api-key": ""})
    assert (reply.status_code, reply.json()["error"]["status"]) == (403, "PERMISSION_DENIED")


def test_wrong_api_key_is_api_key_invalid() -> None:
    with Emulator(api_key="right") as emu:
        client = emu.client()
        assert client.batches.list() is not None
        wrong = genai.Client(api_key="wrong", http_options={"base_url": emu.url})
        with pytest.raises(errors.ClientError) as caught:
            wrong.batches.list()
        assert caught.value.code == 400
        assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


@pytest.mark.parametrize(
    "spelling",
    [
        {"inputConfig": {"fileName": "{file}"}, "displayName": "camel"},
        {"input_config": {"file_name": "{file}"}, "display_name": "snake"},
    ],
)
def test_snake_and_camel_case_bodies(gemini_emulator: Emulator, gemini_client: genai.Client, spelling: dict) -> None:
    uploaded = upload(gemini_client, jsonl(prompt_lines(1)))
    body = {"batch": _fill(spelling, uploaded.name or "")}
    reply = raw(gemini_emulator, "POST", _CREATE, body)
    assert reply.status_code == 200, reply.content
    assert reply.json()["metadata"]["inputConfig"] == {"fileName": uploaded.name}
    assert reply.json()["metadata"]["displayName"] in {"camel", "snake"}


def _fill(value: object, file_name: str) -> object:
    if isinstance(value, dict):
        return {k: _fill(v, file_name) for k, v in value.items()}
    return file_name if value == "{file}" else value


def test_snake_case_options_inline(gemini_emulator: Emulator) -> None:
    schema = {"type": "OBJECT", "properties": {"first_name": {"type": "STRING"}}, "required": ["first_name"]}
    request = {
        "contents": [{"parts": [{"text": "Name someone"}]}],
        "generation_config": {"response_mime_type": "application/json", "response_schema": schema,
                              "thinking_config": {"thinking_budget": 0}},
    }  # fmt: skip
    created = raw(gemini_emulator, "POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent", _batch(request))
    done = raw(gemini_emulator, "GET", f"/v1beta/{created.json()['name']}").json()
    response = done["response"]["inlinedResponses"]["inlinedResponses"][0]["response"]
    assert "first_name" in response["candidates"][0]["content"]["parts"][0]["text"]
    assert "thoughtsTokenCount" not in response["usageMetadata"]


def test_config_in_file_lines_is_ignored(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    schema = {"type": "OBJECT", "properties": {"label": {"type": "STRING"}}}
    config = {"response_mime_type": "application/json", "response_schema": schema}
    lines = run_file_job(gemini_client, prompt_lines(1, config=config))
    text = lines[0]["response"]["candidates"][0]["content"]["parts"][0]["text"]
    assert not text.startswith("{")


def test_chunked_request_bodies(gemini_emulator: Emulator) -> None:
    body = json.dumps(_batch(text_request("streamed"))).encode()
    url = urlsplit(gemini_emulator.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request("POST", _CREATE, body=iter([body[:10], body[10:]]), headers=KEY_HEADER, encode_chunked=True)
        reply = connection.getresponse()
        assert reply.status == 200 and json.loads(reply.read())["name"].startswith("batches/")
    finally:
        connection.close()
    assert gemini_emulator.requests[-1].body_json == json.loads(body)
