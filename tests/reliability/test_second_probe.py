"""Issue 9's promises against a second hostile probe: lost result files, finished runs called again, reordered
work, cancelling a crashed run, resume's output clash, reuse_jobs=False with a checkpoint, bad input to estimate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from reliability_support import FAST, FILES, assert_complete, created, echo, frame

import polars_gemini
from polars_gemini import ColumnClashError, ConfigurationError, GeminiBatchWarning
from polars_gemini.emulator import EmulatedError, Emulator, ResponderRequest


def test_a_results_file_the_service_lost_gives_errors_and_can_be_bought_again(emu: Emulator, tmp_path: Path) -> None:
    """The service answers 403 for a file it no longer has: every row says its results are lost; resubmit_lost pays."""
    ckpt = tmp_path / "c"
    client = emu.client()
    run = frame().gemini.submit("{text}", model="gemini-2.0-flash", client=client, checkpoint=ckpt, **FILES, **FAST)
    job = client.batches.get(name=next(iter(emu.jobs)))
    assert job.dest is not None and job.dest.file_name
    client.files.delete(name=job.dest.file_name)
    lost = run.result()
    assert lost.get_column("response_error").str.contains("no longer on the service").all()
    run.close()
    again = polars_gemini.resume(ckpt, client=client, resubmit_lost=True, **FAST)
    assert_complete(again.result(), 6)
    again.close()


def test_a_finished_run_called_again_buys_no_further_round(tmp_path: Path) -> None:
    """A row that keeps failing with a retryable error is retried max_retries times, not once more per call."""

    def fails_on_item_3(request: ResponderRequest) -> dict[str, Any]:
        if request.text == "item 3":
            raise EmulatedError(500, "Internal error.")
        return echo(request)

    with Emulator(responder=fails_on_item_3) as emu:
        ckpt = tmp_path / "c"
        for _ in range(3):
            out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt,
                                       **FAST)  # fmt: skip
        assert out.get_column("response_error").null_count() == 5
        assert created(emu) == 3  # the first call: round 1 and two retry rounds; later calls add nothing
        polars_gemini.resume(ckpt, client=emu.client(), **FAST).result()
        assert created(emu) == 3
        with pytest.warns(GeminiBatchWarning):
            frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), max_retries=0, **FAST)
        assert created(emu) == 3


def test_the_same_work_in_another_row_order_finds_the_same_job(emu: Emulator) -> None:
    df = frame(30)
    first = df.gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    with pytest.warns(GeminiBatchWarning, match="Re-attached"):
        shuffled = df.reverse().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    assert created(emu) == 1
    assert shuffled.reverse().equals(first)


def test_resume_without_submitting_lets_cancel_drop_queued_jobs(tmp_path: Path) -> None:
    """resume(dir, submit=False) opens a run without creating anything: cancel() then drops its queued jobs."""
    with Emulator(responder=echo, running_seconds=30, max_active_jobs=1) as emu:
        ckpt = tmp_path / "c"
        run = frame(30).gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt,
                                      max_requests_per_job=10, **FAST)  # fmt: skip
        assert run.status().queued == 2
        run.close()
        reopened = polars_gemini.resume(ckpt, client=emu.client(), submit=False, **FAST)
        reopened.cancel()
        assert created(emu) == 1
        out = reopened.result()
        reopened.close()
    assert out.get_column("response_error").drop_nulls().len() == 30  # the running job was cancelled too


def test_resume_output_that_clashes_with_an_input_column_is_refused_before_sending(
    emu: Emulator, tmp_path: Path
) -> None:
    ckpt = tmp_path / "c"
    frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt, **FAST)
    before = len(emu.requests)
    with pytest.raises(ColumnClashError, match="'text'"):
        polars_gemini.resume(ckpt, client=emu.client(), output="text", **FAST)
    assert len(emu.requests) == before


def test_reuse_jobs_false_with_a_checkpoint_still_finds_its_own_jobs(emu: Emulator, tmp_path: Path) -> None:
    ckpt = tmp_path / "c"
    frame(10).gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt,
                           max_requests_per_job=4, reuse_jobs=False, **FAST)  # fmt: skip
    (ckpt / "jobs.parquet").unlink()
    with pytest.warns(GeminiBatchWarning):
        out = frame(10).gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt,
                                     max_requests_per_job=4, reuse_jobs=False, **FAST)  # fmt: skip
    assert_complete(out, 10)
    assert created(emu) == 3


@pytest.mark.parametrize(
    "call",
    [
        lambda c: polars_gemini.batch({"text": ["a"]}, "{text}", model="gemini-2.0-flash", client=c),  # type: ignore[arg-type]
        lambda c: polars_gemini.batch(frame(), "{text}", model="gemini-2.0-flash", client=c, checkpoint=""),
        lambda c: polars_gemini.batch(frame(), "{text}", model="gemini-2.0-flash", client=c,
                                      config={"max_output_tokens": -3}),
        lambda c: frame().gemini.estimate("{text}", model="gemini-2.0-flash", calibrate="3"),  # type: ignore[arg-type]
        lambda c: frame().gemini.estimate("{text}", model="gemini-2.0-flash", expected_output_tokens=-5000),
        lambda c: frame().gemini.estimate("{text}", model="gemini-2.0-flash", thinking_tokens=-1),
        lambda c: frame().gemini.estimate("{text}", model="gemini-2.0-flash", prices=5),  # type: ignore[arg-type]
        lambda c: frame().gemini.estimate("{text}", model="gemini-2.0-flash", system_instruction=5),  # type: ignore[arg-type]
        lambda c: frame().gemini.estimate("{text}", model="gemini-2.0-flash", check_model="no"),  # type: ignore[arg-type]
        lambda c: frame(5).gemini.estimate(pl.lit("a"), model="gemini-2.0-flash"),
    ],
    ids=[
        "dict-frame", "empty-checkpoint", "negative-max-output", "calibrate-str", "negative-output",
        "negative-thinking", "prices-int", "system-int", "check-model-str", "wrong-length",
    ],
)
def test_more_bad_input_is_a_library_error_before_any_request(emu: Emulator, call: Any) -> None:
    with pytest.raises(polars_gemini.GeminiBatchError):
        call(emu.client())
    assert emu.requests == []


def test_a_checkpoint_that_is_a_file_is_refused(emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(ConfigurationError, match="a file"):
        frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=path, **FAST)


def test_headers_in_config_http_options_never_reach_a_repr(emu: Emulator) -> None:
    from google.genai import types

    config = types.GenerateContentConfig(http_options=types.HttpOptions(headers={"x-goog-api-key": "SECRET-KEY-1"}))
    run = frame().gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(), config=config, **FAST)
    assert "SECRET" not in repr(run.plan) and "SECRET" not in repr(run.plan.spec) and "SECRET" not in repr(run)
    run.result()
