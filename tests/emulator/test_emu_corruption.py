"""Corrupted results (`corrupt_results`), read back through the SDK's `files.download` and `batches.get`."""

from __future__ import annotations

import json

import pytest
from emulator_support import jsonl, prompt_lines, upload
from google import genai
from google.genai import types

from polars_gemini.emulator import Emulator


def _download(client: genai.Client, count: int = 3) -> bytes:
    """Runs a file job over `count` prompts and returns its results file as served."""
    job = client.batches.create(model="gemini-2.0-flash", src=upload(client, jsonl(prompt_lines(count))).name or "")
    done = client.batches.get(name=job.name or "")
    assert done.dest is not None and done.dest.file_name is not None
    return client.files.download(file=done.dest.file_name)


def _inline_answers(client: genai.Client, keys: list[str]) -> list[types.InlinedResponse]:
    src: list[types.InlinedRequestDict] = [{"contents": "Tell me about owls", "metadata": {"key": k}} for k in keys]
    job = client.batches.create(model="gemini-2.0-flash", src=src)
    dest = client.batches.get(name=job.name or "").dest
    assert dest is not None and dest.inlined_responses is not None
    return dest.inlined_responses


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_broken_lines(gemini_emulator: Emulator, gemini_client: genai.Client, kind: str) -> None:
    gemini_emulator.corrupt_results(kind, lines=2)
    lines = _download(gemini_client).splitlines()
    assert [_parses(line) for line in lines] == [False, False, True]
    assert json.loads(lines[2])["key"] == "row-2" and b"row-0" not in lines[0]


def test_wrong_shape_lines_keep_their_key(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_emulator.corrupt_results("wrong_shape", lines=4)
    lines = [json.loads(line) for line in _download(gemini_client, 5).splitlines()]
    assert [line["key"] for line in lines] == [f"row-{i}" for i in range(5)]
    assert lines[0]["response"] == {"candidates": "oops"} and isinstance(lines[1]["response"], list)
    assert lines[2]["response"]["candidates"][0]["content"]["parts"] == {"text": "oops"}
    assert lines[3] == {"error": "oops", "key": "row-3"} and "candidates" in lines[4]["response"]


def test_blank_lines_in_the_middle(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_emulator.corrupt_results("blank")
    data = _download(gemini_client)
    lines = data.split(b"\n")
    assert lines[1] == b"" and [json.loads(line)["key"] for line in lines if line] == ["row-0", "row-1", "row-2"]
    assert int(next(iter(gemini_emulator.files.values()))["sizeBytes"]) == len(data)  # metadata matches the bytes


def test_only_the_next_jobs_are_corrupted(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_emulator.corrupt_results("garbage", jobs=2)
    assert _inline_answers(gemini_client, ["a"])[0].response is not None  # inline jobs leave file kinds queued
    results = [_download(gemini_client).splitlines()[0] for _ in range(3)]
    assert [_parses(line) for line in results] == [False, False, True]


def test_wrong_shape_inline_responses_the_sdk_still_parses(
    gemini_emulator: Emulator, gemini_client: genai.Client
) -> None:
    gemini_emulator.corrupt_results("wrong_shape", lines=3)
    answers = _inline_answers(gemini_client, ["a", "b", "c", "d"])
    assert [a.metadata for a in answers] == [{"key": k} for k in "abcd"]
    assert answers[0].response is not None and answers[0].response.candidates is None
    second = answers[1].response
    assert second is not None and second.candidates and second.candidates[0].content is None and second.text is None
    assert (answers[2].response, answers[2].error) == (None, None)
    assert answers[3].response is not None and answers[3].response.text


def test_unknown_kind_is_refused(gemini_emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="expected one of truncated, garbage, wrong_shape, blank"):
        gemini_emulator.corrupt_results("zeros")
    with pytest.raises(ValueError, match="lines must be at least 1"):
        gemini_emulator.corrupt_results("blank", lines=0)
