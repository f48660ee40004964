"""Issue 9, parts C (bad input: a library error before any request) and D (resume and small things)."""

from __future__ import annotations

import inspect
import math
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from google import genai
from google.genai import types
from reliability_support import FAST, FILES, RETRY, assert_complete, created, echo, frame

import polars_gemini
from polars_gemini import APIError, ConfigurationError
from polars_gemini.emulator import Emulator

BAD_OPTIONS: list[dict[str, Any]] = [
    {"max_concurrency": 0},
    {"max_concurrency": 2.5},
    {"max_retries": None},
    {"max_retries": -1},
    {"max_cost": "5"},
    {"max_cost": math.nan},
    {"max_cost": math.inf},
    {"max_cost": -1.0},
    {"max_cost": True},
    {"poll_interval": 0},
    {"max_poll_interval": -1},
    {"max_active_jobs": 0},
    {"max_enqueued_tokens": 0},
    {"output": ""},
    {"prices": {"gemini-2.0-flash": {"input": -0.1, "output": 0.4}}},
    {"prices": {"gemini-2.0-flash": {"input": "cheap", "output": 0.4}}},
    {"prices": {"gemini-2.0-flash": {"input": math.nan, "output": 0.4}}},
    {"prices": "cheap"},
    {"retry": 3},
    {"system_instruction": 5},
    {"max_requests_per_job": "5"},
    {"max_requests_per_job": 2.5},
    {"checkpoint": 123},
    {"file_limit_bytes": "x"},
    {"inline_limit_bytes": -1},
    {"usage": "yes"},
    {"timeout": "5"},
    {"timeout": -1},
    {"memory_budget": "big"},
    {"memory_budget": 10**30},
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=lambda o: f"{next(iter(o))}={next(iter(o.values()))!r}")
def test_bad_options_are_configuration_errors_before_any_request(emu: Emulator, options: dict[str, Any]) -> None:
    """C15: each a ConfigurationError naming the option, before anything reaches the service."""
    merged = {**FAST, **options}
    with pytest.raises(ConfigurationError) as info:
        frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **merged)
    name = next(iter(options))
    assert name in str(info.value) or "price" in str(info.value)
    assert emu.requests == []


def test_a_key_passed_as_client_is_refused_without_echoing_it(emu: Emulator) -> None:
    with pytest.raises(ConfigurationError, match=r"client must be a google\.genai\.Client") as info:
        frame().gemini.batch("{text}", model="gemini-2.0-flash", client="SECRET-KEY-123", **FAST)  # type: ignore[arg-type]
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize("options", [{"max_concurrency": "8"}, {"poll_interval": -1}, {"retry": 3},
                                     {"max_retries": -2}, {"output": ""}])  # fmt: skip
def test_resume_checks_its_options(emu: Emulator, tmp_path: Path, options: dict[str, Any]) -> None:
    ckpt = tmp_path / "c"
    frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt, **FAST)
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        polars_gemini.resume(ckpt, client=emu.client(), **{**FAST, **options})


def test_zero_row_lazyframe_with_memory_budget_just_works(emu: Emulator, tmp_path: Path) -> None:
    """C15: streaming an empty LazyFrame returns an empty frame with the output columns; no job."""
    lf = pl.LazyFrame({"text": []}, schema={"text": pl.String})
    out = lf.gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), memory_budget=1_000_000,
                          checkpoint=tmp_path / "c", **FAST)  # fmt: skip
    assert out.columns == ["text", "response", "response_error"] and out.height == 0
    assert created(emu) == 0


def test_unreachable_host_is_an_api_error_naming_the_url() -> None:
    """C15: no service at the address: an APIError that names the URL (no raw httpx error), after retries."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens there
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(APIError, match=rf"could not reach the service .*127\.0\.0\.1:{port}") as info:
        frame().gemini.batch("{text}", model="gemini-2.0-flash", client=client, **FAST)
    assert "k" not in str(info.value).split() and "api_key" not in str(info.value)


def test_public_functions_show_their_full_signatures() -> None:
    """D: no **kwargs hides options from help(), IDEs and inspect.signature."""
    df = pl.DataFrame({"t": ["x"]})
    for fn in (polars_gemini.batch, polars_gemini.submit, polars_gemini.resume, polars_gemini.estimate,
               df.gemini.batch, df.gemini.submit, df.gemini.estimate, df.gemini.input_tokens,
               df.lazy().gemini.batch, df.lazy().gemini.submit):  # fmt: skip
        params = inspect.signature(fn).parameters
        assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params.values()), fn
    batch_params = set(inspect.signature(df.gemini.batch).parameters)
    assert {"poll_interval", "checkpoint", "max_cost", "timeout", "retry", "max_active_jobs"} <= batch_params
    assert set(inspect.signature(polars_gemini.submit).parameters) - {"frame"} == batch_params - {"timeout"}


def test_resume_takes_output_and_repr_shows_the_cost(emu: Emulator, tmp_path: Path) -> None:
    """D: resume(d, output=...) works; repr(run) shows the costs status() knows."""
    ckpt = tmp_path / "c"
    frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt, **FAST)
    run = polars_gemini.resume(ckpt, client=emu.client(), output="answer", **FAST)
    out = run.result()
    assert {"answer", "answer_error"} <= set(out.columns)
    assert "unknown" not in repr(run) and "estimated" in repr(run)
    run.close()


def test_streamed_run_resumes_from_another_working_directory(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D: paths in a checkpoint are relative to the checkpoint, so resume works from any directory."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    emu.fail_http("batches.create", 400, times=1, message="Refused once.")  # the run stops before its job exists
    lf = frame(20).lazy()
    with pytest.raises(APIError):
        lf.gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint="ckpt",
                        memory_budget=100_000, **FAST)  # fmt: skip
    shutil.move(tmp_path / "a" / "ckpt", tmp_path / "b" / "moved")
    monkeypatch.chdir(tmp_path / "b")
    run = polars_gemini.resume("moved", client=emu.client(), **FAST)
    assert_complete(run.result(), 20)
    run.close()


def test_resume_when_jobs_are_gone_says_what_was_lost_and_can_pay_again(emu: Emulator, tmp_path: Path) -> None:
    """D: a job the service no longer has (404 / expired): rows say so; resubmit_lost=True buys them again."""
    from polars_gemini.emulator import Emulator as Emu

    ckpt = tmp_path / "c"
    with Emu(responder=echo, running_seconds=30) as slow:
        run = frame().gemini.submit("{text}", model="gemini-2.0-flash", client=slow.client(), checkpoint=ckpt, **FAST)
        run.close()
    # The emulator that had the job is gone; a fresh one does not know it (as after 48 h).
    lost = polars_gemini.resume(ckpt, client=emu.client(), **FAST).result()
    errors = lost.get_column("response_error").to_list()
    assert all("no longer on the service" in e and "resubmit_lost=True" in e for e in errors), errors[0]
    assert created(emu) == 0
    again = polars_gemini.resume(ckpt, client=emu.client(), resubmit_lost=True, **FAST)
    assert_complete(again.result(), 6)
    again.close()
    assert created(emu) == 1


def test_first_poll_comes_soon() -> None:
    """D: against a job that takes 0.3 s, the default polling (poll_interval=5) does not wait 5 s first."""
    with Emulator(responder=echo, running_seconds=0.3) as emu:
        started = time.monotonic()
        run = frame().gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(), progress=False,
                                    retry=RETRY)  # fmt: skip
        run.result()
        assert time.monotonic() - started < 4.0
        assert emu.calls("batches.get") >= 2


def test_file_transport_inputs_are_deleted_and_a_lost_delete_reply_is_fine(emu: Emulator) -> None:
    """A delete whose reply is lost is retried; the file is already gone (403/404): that is success."""
    emu.delay_reply("files.delete", 4.0)
    # A 1.5 s client timeout (not less: on a loaded machine every call, not just the delayed one, must beat it).
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(timeout=1500), **FILES, **FAST)
    assert_complete(out, 6)
    assert not [f for f in emu.files.values() if (f.get("displayName") or "").endswith("-input")]


def test_constraints_survive_a_resume(emu: Emulator, tmp_path: Path) -> None:
    """A resumed run decodes with the same constraints (they live in the manifest next to schema.parquet)."""
    from pydantic import BaseModel, Field

    class Score(BaseModel):
        score: float = Field(ge=0, le=1)

    ckpt = tmp_path / "c"
    run = frame().gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(), schema=Score,
                                checkpoint=ckpt, **FAST)  # fmt: skip
    before = run.plan.spec.field
    run.close()
    again = polars_gemini.resume(ckpt, client=emu.client(), **FAST)
    assert again.plan.spec.field == before
    assert again.plan.spec.fingerprint == run.plan.spec.fingerprint
    again.close()


@pytest.mark.parametrize("expr", [pl.lit("Say hi"), pl.col("text").str.join(","), pl.col("text").head(2)],
                         ids=["literal", "aggregate", "slice"])  # fmt: skip
@pytest.mark.parametrize("streamed", [False, True])
def test_prompt_expression_of_the_wrong_length_is_refused_before_sending(
    emu: Emulator, tmp_path: Path, expr: pl.Expr, streamed: bool
) -> None:
    """An expression that does not give one prompt per row is a TemplateError before any job (not an assertion)."""
    from polars_gemini import TemplateError

    source = frame(3).lazy() if streamed else frame(3)
    with pytest.raises(TemplateError, match="prompt\\(s\\) for 3 row"):
        source.gemini.batch(expr, model="gemini-2.0-flash", client=emu.client(),
                            memory_budget=1_000_000 if streamed else None, **FAST)  # fmt: skip
    assert created(emu) == 0 and emu.calls("files.upload_start") == 0


@pytest.mark.parametrize("lost", ["input.parquet", "rows.parquet", "requests.parquet", "schema.parquet", "jobkeys",
                                  "request file"])  # fmt: skip
def test_resume_with_a_checkpoint_file_deleted_is_a_checkpoint_error(emu: Emulator, tmp_path: Path, lost: str) -> None:
    """A missing file is a CheckpointCorruptedError naming it, never a raw FileNotFoundError; nothing is sent."""
    from polars_gemini import CheckpointCorruptedError

    ckpt = tmp_path / "c"
    emu.settings.pending_seconds = 30
    run = frame().lazy().gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt,
                                       schema={"label": pl.String}, memory_budget=1_000_000, **FAST)  # fmt: skip
    run.close()
    victims = {"jobkeys": next((ckpt / "jobkeys").iterdir()), "request file": next((ckpt / "inputs").rglob("*.jsonl"))}
    path = victims.get(lost, ckpt / lost)
    path.unlink()
    before = emu.calls("batches.create")
    with pytest.raises(CheckpointCorruptedError, match="missing"):
        polars_gemini.resume(ckpt, client=emu.client(), **FAST).result()
    assert emu.calls("batches.create") == before


def test_a_key_in_config_is_never_echoed(emu: Emulator) -> None:
    with pytest.raises(ConfigurationError, match="api_key") as info:
        frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(),
                             config={"api_key": "SECRET-KEY-123"}, **FAST)  # fmt: skip
    assert "SECRET" not in str(info.value)


def test_expression_template_with_a_python_function_and_a_checkpoint(emu: Emulator, tmp_path: Path) -> None:
    """An expression Polars cannot serialize (a Python function) is recorded as text; the run works and resumes."""
    expr = pl.col("text").map_elements(lambda t: f"Say {t}", return_dtype=pl.String)
    out = frame().gemini.batch(expr, model="gemini-2.0-flash", client=emu.client(), checkpoint=tmp_path / "c", **FAST)
    assert out.get_column("response").to_list() == [f"echo: Say item {i}" for i in range(6)]
    again = polars_gemini.resume(tmp_path / "c", client=emu.client(), **FAST)
    assert again.result().equals(out)
    again.close()


def test_batch_timeout_says_to_call_batch_again(tmp_path: Path) -> None:
    from polars_gemini import RunTimeoutError

    with Emulator(responder=echo, running_seconds=30) as emu, pytest.raises(RunTimeoutError, match=r"the same batch"):
        frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), timeout=0.3, **FAST)


def test_usage_columns_clash_with_input_columns_before_sending(emu: Emulator) -> None:
    from polars_gemini import ColumnClashError

    df = frame().with_columns(pl.lit(1).alias("response_input_tokens"))
    with pytest.raises(ColumnClashError, match="response_input_tokens"):
        df.gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), usage=True, **FAST)
    assert emu.requests == []
