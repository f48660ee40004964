"""Issue 9, part B: every row once, with an answer or an error, never neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from reliability_support import FAST, FILES, assert_complete, created, echo, frame

import polars_gemini
from polars_gemini import GeminiBatchWarning
from polars_gemini.emulator import Emulator, ResponderRequest


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_unreadable_result_line_is_counted_and_its_key_retried(emu: Emulator, tmp_path: Path, kind: str) -> None:
    """B7: a line that cannot be read is reported; its key is missing and retried; the rest is kept."""
    emu.corrupt_results(kind, lines=1)
    run = frame().gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(),
                                checkpoint=tmp_path / "c", **FILES, **FAST)  # fmt: skip
    with pytest.warns(GeminiBatchWarning, match="1 result line"):
        out = run.result()
    assert_complete(out, 6)
    assert run.status().unreadable_lines == 1
    assert created(emu) == 2  # the retry round re-sent the one request whose line was lost
    run.close()


def test_wrong_shape_line_is_an_error_for_its_key(emu: Emulator) -> None:
    """B7: valid JSON with the key but no response's shape: that row gets an error value, the others answers."""
    emu.corrupt_results("wrong_shape", lines=1)
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), max_retries=0,
                               **FILES, **FAST)  # fmt: skip
    errors = out.get_column("response_error")
    assert errors.null_count() == 5
    assert "could not be read" in errors.drop_nulls().item()
    assert out.filter(pl.col("response_error").is_null()).get_column("response").null_count() == 0


def test_wrong_shape_line_is_retried(emu: Emulator) -> None:
    emu.corrupt_results("wrong_shape", lines=2)
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FILES, **FAST)
    assert_complete(out, 6)


def test_non_ascii_prompts_are_measured_as_sent_inline() -> None:
    """B8: the SDK escapes non-ASCII inline (6 bytes a character): such payloads go by file before a refusal."""
    texts = pl.DataFrame({"id": range(4), "text": ["日本語のレビュー" * 60 + str(i) for i in range(4)]})
    utf8 = int(texts.get_column("text").str.len_bytes().sum())  # ~5.8 KB; ~11.5 KB once escaped
    with Emulator(responder=echo, inline_limit_bytes=2 * utf8 + 4_000) as emu:
        out = texts.gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(),
                                 inline_limit_bytes=utf8 + 4_000, **FAST)  # fmt: skip
        assert out.get_column("response_error").null_count() == 4
        assert emu.calls("files.upload_start") == 1  # measured as on the wire: too big for inline
        assert emu.calls("batches.create") == 1


def test_inline_create_refused_for_size_falls_back_to_a_file() -> None:
    """B8: when the service refuses an inline payload as too large, the same requests go as a file."""
    texts = pl.DataFrame({"id": range(4), "text": ["review " * 100 + str(i) for i in range(4)]})
    with Emulator(responder=echo, inline_limit_bytes=1_000) as emu:
        out = texts.gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
        assert out.get_column("response_error").null_count() == 4
        assert (emu.calls("batches.create"), created(emu), emu.calls("files.upload_start")) == (2, 1, 1)


def _empty_content(request: ResponderRequest) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model"}, "finishReason": "STOP"}], "modelVersion": "m"}


def _empty_parts(request: ResponderRequest) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "STOP"}]}


@pytest.mark.parametrize("responder", [_empty_content, _empty_parts])
def test_empty_answer_is_an_answer_in_text_mode_and_an_error_in_schema_mode(responder: Any) -> None:
    """B10: an empty text with STOP is the answer "" in text mode; in schema mode a missing field is an error."""
    with Emulator(responder=responder) as emu:
        text = frame(3).gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
        assert text.get_column("response").to_list() == ["", "", ""]
        assert text.get_column("response_error").null_count() == 3
        typed = frame(3).gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(),
                                      schema={"label": pl.String}, max_retries=0, **FAST)  # fmt: skip
        assert typed.get_column("label").null_count() == 3
        assert typed.get_column("response_error").null_count() == 0


def test_failed_job_reason_reaches_every_row_and_invalid_argument_is_not_resubmitted(emu: Emulator) -> None:
    """B11: the FAILED job's code and message are in each row's error; INVALID_ARGUMENT is final."""
    emu.end_next_job("FAILED", code=3, message="Request contains an invalid argument: bad response_schema.")
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    errors = out.get_column("response_error").to_list()
    assert all("bad response_schema" in e and "code 3" in e and "INVALID_ARGUMENT" in e for e in errors), errors[0]
    assert emu.calls("batches.create") == 1


def test_failed_job_with_internal_error_is_resubmitted(emu: Emulator) -> None:
    """B11: a FAILED job with a retryable code (13 INTERNAL) goes into the retry round."""
    emu.end_next_job("FAILED", code=13, message="Internal error.")
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    assert_complete(out, 6)
    assert created(emu) == 2


def test_null_nested_cells_are_not_sent(emu: Emulator) -> None:
    """B9: a null List/Struct/Array cell: the row is not sent (not billed) and has only an error."""
    df = pl.DataFrame({"tags": [["a"], None, ["b"]], "meta": [{"x": 1}, {"x": 2}, None]})
    df = df.with_columns(arr=pl.Series([[1, 2], None, [3, 4]], dtype=pl.Array(pl.Int64, 2)))
    out = df.gemini.batch("{tags} {meta} {arr}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    assert out.get_column("response").is_null().to_list() == [False, True, True]
    assert out.get_column("response_error").is_null().to_list() == [True, False, False]
    sent = next(r for r in emu.requests if r.endpoint == "batches.create").body_json
    assert len(sent["batch"]["inputConfig"]["requests"]["requests"]) == 1


def test_every_row_once_answer_xor_error_under_mixed_faults(emu: Emulator, tmp_path: Path) -> None:
    """The promise as a whole: shuffled results, a failed request, a garbage line, a 503 on get."""
    emu.settings.shuffle_results = True
    emu.corrupt_results("garbage", lines=1)
    emu.fail_http("batches.get", 503)
    df = pl.DataFrame({"id": range(30), "text": [f"item {i % 20}" for i in range(30)]})
    with pytest.warns(GeminiBatchWarning):
        out = polars_gemini.batch(df, "{text}", model="gemini-2.0-flash", client=emu.client(),
                                  checkpoint=tmp_path / "c", **FILES, **FAST)  # fmt: skip
    assert out.height == 30 and out.get_column("id").to_list() == list(range(30))
    both = out.select(pl.col("response").is_null() == pl.col("response_error").is_null()).to_series()
    assert not both.any()
    assert out.get_column("response").to_list() == [f"echo: item {i % 20}" for i in range(30)]


@pytest.mark.parametrize("checkpoint", [False, True])
def test_streamed_lazyframe_is_evaluated_once_so_answers_stay_on_their_rows(
    emu: Emulator, tmp_path: Path, checkpoint: bool
) -> None:
    """A LazyFrame whose row order differs between evaluations (group_by) still gets each answer on its own row."""
    lf = pl.LazyFrame({"t": [f"w{i % 300}" for i in range(3000)]}).group_by("t").agg(pl.len().alias("n"))
    out = lf.gemini.batch("Say {t}", model="gemini-2.0-flash", client=emu.client(), memory_budget=1_000_000,
                          checkpoint=tmp_path / "c" if checkpoint else None, **FAST)  # fmt: skip
    assert out.height == 300
    assert out.select((pl.col("response") == pl.format("echo: Say {}", pl.col("t"))).all()).item()
    if checkpoint:
        again = polars_gemini.resume(tmp_path / "c", client=emu.client(), **FAST)
        assert again.result().equals(out)
        again.close()


def test_hollow_candidate_is_an_error_and_retried() -> None:
    """A candidate with neither content nor finishReason is no answer: an error (retryable), not a silent ""."""
    calls: list[str] = []

    def hollow_once(request: ResponderRequest) -> dict[str, Any]:
        calls.append(request.text)
        if calls.count(request.text) == 1:
            return {"candidates": [{"index": 0}]}
        return echo(request)

    with Emulator(responder=hollow_once) as emu:
        out = frame(3).gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
        assert_complete(out, 3)
        assert created(emu) == 2


def test_a_results_file_with_a_cut_utf8_sequence_or_a_stray_control_byte_is_read_line_by_line() -> None:
    """What a crash or a full disk leaves makes those lines unreadable (retried), never the whole file."""
    from polars_gemini.run.results import parse_results, split_lines

    good = b'{"key":"k1","response":{"candidates":[{"content":{"parts":[{"text":"ok"}]}}]}}'
    cut = b'{"key":"k3","response":{"candidates":[{"content":{"parts":[{"text":"\xe2\x82'
    data = good + b'\n{"key":"k2","resp\x01onse":{}}\n' + cut
    lines = split_lines(data)
    assert lines.len() == 3
    results, unreadable = parse_results(lines, "a test file")
    assert results.filter(pl.col("key") == "k1").get_column("text").to_list() == ["ok"]
    assert unreadable == 2
