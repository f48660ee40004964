"""Flawed answers (`responses.flawed`): off-schema, invalid JSON and truncated answers, through the SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest
from emulator_support import conforms, run_file_job
from google import genai
from google.genai import types

from polars_gemini.emulator import Emulator, responses

_SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {
        "vendor": {
            "type": "OBJECT",
            "properties": {"name": {"type": "STRING"}, "country": {"type": "STRING", "enum": ["DE", "FR", "US"]}},
            "required": ["name", "country"],
        },
        "issued": {"type": "STRING", "format": "date"},
        "lines": {
            "type": "ARRAY",
            "items": {
                "type": "OBJECT",
                "properties": {"item": {"type": "STRING"}, "amount": {"type": "NUMBER"}},
                "required": ["item", "amount"],
            },
            "minItems": 1,
        },
        "paid": {"type": "BOOLEAN"},
    },
    "required": ["vendor", "issued", "lines", "paid"],
}
_CONFIG = {"response_mime_type": "application/json", "response_schema": _SCHEMA}


def _generate(client: genai.Client, text: str, **config: Any) -> types.GenerateContentResponse:
    return client.models.generate_content(
        model="gemini-2.0-flash", contents=text, config=types.GenerateContentConfig(**config)
    )


def _lines(count: int) -> list[dict[str, Any]]:
    config = {"responseMimeType": "application/json", "responseSchema": _SCHEMA}
    contents = [[{"parts": [{"text": f"Invoice {i}"}]}] for i in range(count)]
    return [{"key": f"row-{i}", "request": {"contents": c, "generationConfig": config}} for i, c in enumerate(contents)]


def _answer(line: dict[str, Any]) -> tuple[str, str]:
    candidate = line["response"]["candidates"][0]
    return candidate["finishReason"], candidate["content"]["parts"][-1]["text"]


def _flawed_keys(lines: list[dict[str, Any]]) -> set[str]:
    def good(line: dict[str, Any]) -> bool:
        reason, text = _answer(line)
        try:
            return reason == "STOP" and conforms(json.loads(text), _SCHEMA)
        except ValueError:
            return False

    return {line["key"] for line in lines if not good(line)}


def test_off_schema_answers_are_json_that_breaks_the_schema() -> None:
    with Emulator(responder=responses.flawed(1.0, kinds=["off_schema"])) as emu:
        client = emu.client()
        for i in range(20):
            reply = _generate(client, f"Invoice {i}", **_CONFIG)
            value = json.loads(reply.text or "")
            assert isinstance(value, dict) and not conforms(value, _SCHEMA), value
            assert reply.candidates and reply.candidates[0].finish_reason == types.FinishReason.STOP


def test_off_schema_breaks_one_value_of_a_conforming_answer() -> None:
    with Emulator() as good_emu, Emulator(responder=responses.flawed(1.0, kinds=["off_schema"])) as bad_emu:
        good = json.loads(_generate(good_emu.client(), "Invoice 7", **_CONFIG).text or "")
        bad = json.loads(_generate(bad_emu.client(), "Invoice 7", **_CONFIG).text or "")
    assert conforms(good, _SCHEMA)
    changed = [path for path, (a, b) in _diff(good, bad).items() if a != b]
    assert len(changed) == 1 and _diff(good, bad)[changed[0]][1] in ("n/a", "maybe", "unknown", "next Tuesday")


def _diff(a: Any, b: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return {p: v for k in a for p, v in _diff(a[k], b[k], f"{path}.{k}").items()}
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return {p: v for i, (x, y) in enumerate(zip(a, b, strict=True)) for p, v in _diff(x, y, f"{path}[{i}]").items()}
    return {path: (a, b)}


def test_invalid_json_answers_are_fenced() -> None:
    with Emulator() as good_emu, Emulator(responder=responses.flawed(1.0, kinds=["invalid_json"])) as bad_emu:
        good = _generate(good_emu.client(), "Invoice 3", **_CONFIG).text or ""
        bad = _generate(bad_emu.client(), "Invoice 3", **_CONFIG).text or ""
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        json.loads(bad)
    assert bad == f"```json\n{good}\n```"


def test_truncated_answers_stop_at_max_tokens_with_fewer_tokens() -> None:
    with Emulator() as good_emu, Emulator(responder=responses.flawed(1.0, kinds=["truncated"])) as bad_emu:
        good = _generate(good_emu.client(), "Invoice 5", **_CONFIG)
        bad = _generate(bad_emu.client(), "Invoice 5", **_CONFIG)
    assert bad.candidates and bad.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert good.text and bad.text and good.text.startswith(bad.text) and len(bad.text) < len(good.text)
    assert good.usage_metadata and bad.usage_metadata
    good_out, bad_out = good.usage_metadata.candidates_token_count or 0, bad.usage_metadata.candidates_token_count or 0
    assert 0 < bad_out < good_out
    assert bad.usage_metadata.total_token_count == (good.usage_metadata.total_token_count or 0) - good_out + bad_out


def test_plain_text_answers_can_only_be_truncated() -> None:
    with Emulator(responder=responses.flawed(1.0, kinds=["off_schema", "invalid_json"])) as emu:
        reply = _generate(emu.client(), "Why is the sky blue?")
        assert reply.candidates and reply.candidates[0].finish_reason == types.FinishReason.STOP
        assert "sky blue" in (reply.text or "")
    with Emulator(responder=responses.flawed(1.0)) as emu:
        reply = _generate(emu.client(), "Why is the sky blue?")
        assert reply.candidates and reply.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_a_share_of_a_batch_is_flawed_the_same_way_for_the_same_seed() -> None:
    runs = []
    for seed in (0, 0, 1):
        with Emulator(responder=responses.flawed(0.25, seed=seed)) as emu:
            runs.append(_flawed_keys(run_file_job(emu.client(), _lines(400))))
    assert runs[0] == runs[1] != runs[2]
    assert 60 <= len(runs[0]) <= 140 and 60 <= len(runs[2]) <= 140  # about a quarter of 400


def test_every_kind_shows_up_in_a_batch() -> None:
    with Emulator(responder=responses.flawed(0.5)) as emu:
        lines = run_file_job(emu.client(), _lines(120))
    reasons = [_answer(line) for line in lines]
    assert any(reason == "MAX_TOKENS" for reason, _ in reasons)
    assert any(text.startswith("```json\n") for _, text in reasons)
    off = [text for reason, text in reasons if reason == "STOP" and text.startswith("{")]
    assert any(not conforms(json.loads(text), _SCHEMA) for text in off)


def test_a_flawed_request_sent_again_gets_a_fresh_draw() -> None:
    with Emulator(responder=responses.flawed(0.3)) as emu:
        client = emu.client()
        first = _flawed_keys(run_file_job(client, _lines(300)))
        again = [line for line in _lines(300) if line["key"] in first]
        second = _flawed_keys(run_file_job(client, again))
    assert len(first) >= 50 and second < first
    assert len(second) <= len(first) // 2  # about 30% of them again, not all


def test_errors_of_the_wrapped_responder_pass_through() -> None:
    failing = responses.error(503, "overloaded")
    with Emulator(responder=responses.flawed(1.0, answer=failing)) as emu, Emulator(responder=failing) as plain:
        lines, expected = run_file_job(emu.client(), _lines(3)), run_file_job(plain.client(), _lines(3))
    assert lines == expected and all(line["error"]["message"] == "overloaded" for line in lines)


@pytest.mark.parametrize(("rate", "kinds"), [(1.5, ["truncated"]), (-0.1, ["truncated"]), (0.1, []), (0.1, ["bad"])])
def test_bad_settings_are_refused(rate: float, kinds: list[str]) -> None:
    with pytest.raises(ValueError, match=r"^(rate|kinds) "):
        responses.flawed(rate, kinds=kinds)
