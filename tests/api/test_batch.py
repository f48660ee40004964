"""`batch` / `submit` end to end, through the real SDK against the emulator."""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

import polars as pl
import pytest
from pydantic import BaseModel

import polars_gemini
from polars_gemini import ColumnClashError, ConfigurationError, ModelError, RunTimeoutError, TemplateError
from polars_gemini.emulator import EmulatedError, Emulator, ResponderRequest, responses
from testing_support import FAST, echo


def reviews() -> pl.DataFrame:
    return pl.DataFrame({"id": [1, 2, 3, 4, 5], "review": ["great", "awful", "great", "meh", "awful"]})


def test_text_mode_keeps_rows_order_and_dedups(emu: Emulator) -> None:
    out = reviews().gemini.batch("Rate: {review}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    assert out.columns == ["id", "review", "response", "response_error"]
    assert out.get_column("response").to_list() == [f"echo: Rate: {r}" for r in reviews().get_column("review")]
    assert out.get_column("response_error").null_count() == 5
    assert emu.calls("batches.create") == 1
    sent = next(r for r in emu.requests if r.endpoint == "batches.create").body_json
    assert len(sent["batch"]["inputConfig"]["requests"]["requests"]) == 3  # 5 rows, 3 distinct prompts


def test_function_api_and_lazyframe(emu: Emulator) -> None:
    lazy = reviews().lazy().filter(pl.col("id") > 2)
    out = lazy.gemini.batch("{review}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    with pytest.warns(polars_gemini.GeminiBatchWarning, match="Re-attached to 1 batch job"):  # the same work again
        same = polars_gemini.batch(lazy.collect(), "{review}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    assert out.equals(same)
    assert emu.calls("batches.create") == 1
    assert out.get_column("id").to_list() == [3, 4, 5]


class Nested(BaseModel):
    name: str
    size: int


class Extraction(BaseModel):
    label: Literal["pos", "neg", "neutral"]
    score: float
    stars: int
    ok: bool
    day: dt.date
    at: dt.datetime
    tags: list[str]
    author: str | None = None
    parts: list[Nested]
    main: Nested


class WithMapping(Extraction):
    detail: dict[str, int] | None = None  # mappings have no response-schema form: rejected before sending


def test_schema_mode_every_dtype(emu: Emulator) -> None:
    from polars_gemini.emulator import default_responder

    emu.settings.responder = default_responder
    out = reviews().gemini.batch(
        "Extract: {review}", model="gemini-2.5-flash", schema=Extraction, client=emu.client(), **FAST
    )
    assert out.get_column("response_error").null_count() == 5, out.get_column("response_error").to_list()
    schema = out.schema
    assert schema["label"] == pl.Enum(["pos", "neg", "neutral"])
    assert (schema["score"], schema["stars"], schema["ok"]) == (pl.Float64, pl.Int64, pl.Boolean)
    assert (schema["day"], schema["at"], schema["tags"]) == (pl.Date, pl.Datetime("us"), pl.List(pl.String))
    assert schema["parts"] == pl.List(pl.Struct({"name": pl.String, "size": pl.Int64}))
    assert schema["main"] == pl.Struct({"name": pl.String, "size": pl.Int64})
    assert out.get_column("label").null_count() == 0 and out.get_column("main").null_count() == 0
    # Identical prompts got the identical answer (dedup), distinct prompts were sent separately.
    assert out.row(0, named=True)["main"] == out.row(2, named=True)["main"]
    generation = _first_inline_request(emu)["generationConfig"]
    assert generation["responseMimeType"] == "application/json"
    assert generation["responseSchema"]["properties"]["label"]["enum"] == ["pos", "neg", "neutral"]


def test_dict_schema_and_clash(emu: Emulator) -> None:
    emu.settings.responder = responses.json_value({"review": "x", "n": 3})
    with pytest.raises(ColumnClashError, match="prefix="):
        reviews().gemini.batch("{review}", model="gemini-2.0-flash", schema={"review": pl.String}, client=emu.client())
    out = reviews().gemini.batch(
        "{review}",
        model="gemini-2.0-flash",
        schema={"review": pl.String, "n": pl.UInt8},
        prefix="llm_",
        client=emu.client(),
        **FAST,
    )
    assert out.select("llm_review", "llm_n").unique().rows() == [("x", 3)]
    assert out.schema["llm_n"] == pl.UInt8


def test_unsupported_pydantic_field_is_rejected_before_sending(emu: Emulator) -> None:
    with pytest.raises(ConfigurationError, match="detail"):
        reviews().gemini.batch("{review}", model="gemini-2.0-flash", schema=WithMapping, client=emu.client())
    assert emu.requests == []


def _first_inline_request(emu: Emulator) -> dict:
    body = next(r for r in emu.requests if r.endpoint == "batches.create").body_json
    return body["batch"]["inputConfig"]["requests"]["requests"][0]["request"]


def test_file_transport_and_shuffled_results(emu: Emulator) -> None:
    emu.settings.shuffle_results = True
    df = pl.DataFrame({"t": [f"row {i} {{x}} 😀\t\x01" for i in range(300)]})
    out = df.gemini.batch("{t}", model="gemini-2.0-flash", client=emu.client(), inline_limit_bytes=1, **FAST)
    assert emu.calls("files.upload_start") == 1 and emu.calls("batches.create") == 1
    assert out.get_column("response").to_list() == ["echo: " + t for t in df.get_column("t")]
    upload = next(r for r in emu.requests if r.endpoint == "files.upload_start")
    assert upload.body_json["file"]["mime_type"] == "application/jsonl"


def test_multi_job_split_by_count_and_by_bytes(emu: Emulator) -> None:
    df = pl.DataFrame({"t": [f"text number {i}" for i in range(10)]})
    out = df.gemini.batch("{t}", model="gemini-2.0-flash", client=emu.client(), max_requests_per_job=3, **FAST)
    assert emu.calls("batches.create") == 4
    assert out.get_column("response").to_list() == ["echo: " + t for t in df.get_column("t")]
    out = df.gemini.batch(
        "{t}",
        model="gemini-2.0-flash",
        client=emu.client(),
        inline_limit_bytes=1,
        file_limit_bytes=400,
        **FAST,
    )
    assert emu.calls("files.upload_start") >= 3
    assert out.get_column("response").to_list() == ["echo: " + t for t in df.get_column("t")]


def test_submit_returns_a_run(emu: Emulator) -> None:
    emu.settings.pending_seconds = 0.3
    run = reviews().gemini.submit("{review}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    assert run.status().done == 0 and run.status().requests == 3
    with pytest.raises(RunTimeoutError, match=r"run\.wait"):
        run.wait(timeout=0.05)
    out = run.result()
    assert run.status().done == 3 and "3/3 requests done" in repr(run)
    assert out.get_column("response").null_count() == 0


def test_per_request_errors_blocked_prompts_and_finish_reasons(emu: Emulator) -> None:
    def responder(request: ResponderRequest) -> dict:
        if "FAIL" in request.text:
            raise EmulatedError(500, "backend exploded", "INTERNAL")
        if "BLOCK" in request.text:
            return responses.blocked("SAFETY")(request)
        if "RECITE" in request.text:
            return responses.finish("RECITATION", "partial")(request)
        if "THINK" in request.text:
            return responses.with_thought("the answer")(request)
        return echo(request)

    emu.settings.responder = responder
    df = pl.DataFrame({"t": ["ok", "FAIL", "BLOCK", "RECITE", "THINK", "ok2"]})
    out = df.gemini.batch("{t}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    got = dict(
        zip(
            df.get_column("t"),
            zip(out.get_column("response"), out.get_column("response_error"), strict=True),
            strict=True,
        )
    )
    assert got["ok"] == ("echo: ok", None) and got["ok2"] == ("echo: ok2", None)
    assert got["FAIL"][0] is None and "backend exploded" in got["FAIL"][1]
    assert got["BLOCK"][0] is None and "blockReason SAFETY" in got["BLOCK"][1]
    assert got["RECITE"][0] is None and "RECITATION" in got["RECITE"][1]
    assert got["THINK"] == ("the answer", None)


def test_failed_keys_in_a_file_job(emu: Emulator) -> None:
    df = pl.DataFrame({"t": ["a", "b", "c"]})
    plan_keys = polars_gemini.prepare.plan.make_plan(  # the keys are deterministic: compute them the library's way
        df, "{t}", polars_gemini.prepare.requests.build_spec("gemini-2.0-flash"), polars_gemini.prepare.plan.Limits()
    ).rows.get_column("key")
    emu.fail_keys({plan_keys[1]: (13, "internal error on b")})
    out = df.gemini.batch("{t}", model="gemini-2.0-flash", client=emu.client(), inline_limit_bytes=1, **FAST)
    assert out.get_column("response").to_list() == ["echo: a", None, "echo: c"]
    assert "internal error on b" in out.get_column("response_error")[1]


def test_truncated_and_invalid_json(emu: Emulator) -> None:
    def responder(request: ResponderRequest) -> dict:
        if "cut" in request.text:
            return responses.finish("MAX_TOKENS", '{"label": "po')(request)
        if "junk" in request.text:
            return responses.text("Sure! The label is pos.")(request)
        return responses.json_value({"label": "pos"})(request)

    emu.settings.responder = responder
    df = pl.DataFrame({"t": ["fine", "cut", "junk"]})
    out = df.gemini.batch(
        "{t}",
        model="gemini-2.0-flash",
        schema={"label": pl.Enum(["pos", "neg"])},
        client=emu.client(),
        **FAST,
    )
    assert out.get_column("label").to_list() == ["pos", None, None]
    errors = out.get_column("response_error").to_list()
    assert errors[0] is None and "MAX_TOKENS" in errors[1] and "not a valid JSON object" in errors[2]


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED", "EXPIRED"])
def test_jobs_that_end_badly_become_row_errors(emu: Emulator, state: str) -> None:
    emu.end_next_job(state, message="quota gone")
    df = pl.DataFrame({"t": [f"x{i}" for i in range(6)]})
    out = df.gemini.batch(
        "{t}", model="gemini-2.0-flash", client=emu.client(), max_requests_per_job=3, max_retries=0, **FAST
    )
    errors = out.get_column("response_error").to_list()
    assert sum(e is not None for e in errors) == 3
    assert all(f"ended {state}" in e for e in errors if e is not None)
    assert out.get_column("response").null_count() == 3


@pytest.mark.parametrize(("state", "retried"), [("FAILED", True), ("EXPIRED", True), ("CANCELLED", False)])
def test_failed_and_expired_jobs_are_retried_in_a_new_round(emu: Emulator, state: str, retried: bool) -> None:
    emu.end_next_job(state)
    df = pl.DataFrame({"t": [f"x{i}" for i in range(6)]})
    out = df.gemini.batch("{t}", model="gemini-2.0-flash", client=emu.client(), max_requests_per_job=3, **FAST)
    assert emu.calls("batches.create") == (3 if retried else 2)
    assert out.get_column("response").null_count() == (0 if retried else 3)


def test_retryable_per_request_errors_are_retried_and_others_are_not(emu: Emulator) -> None:
    seen: dict[str, int] = {}

    def flaky(request: ResponderRequest) -> dict:
        seen[request.text] = seen.get(request.text, 0) + 1
        if request.text == "flaky" and seen["flaky"] < 3:
            raise EmulatedError(503, "overloaded", "UNAVAILABLE")
        if request.text == "bad":
            raise EmulatedError(400, "invalid argument", "INVALID_ARGUMENT")
        return echo(request)

    emu.settings.responder = flaky
    df = pl.DataFrame({"t": ["ok", "flaky", "bad"]})
    out = df.gemini.batch("{t}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    assert out.get_column("response").to_list() == ["echo: ok", "echo: flaky", None]
    assert seen == {"ok": 1, "flaky": 3, "bad": 1}
    assert emu.calls("batches.create") == 3  # the first round and two retry rounds of the flaky request


def test_results_file_that_appears_late(emu: Emulator) -> None:
    emu.settings.results_file_delay_polls = 3
    df = pl.DataFrame({"t": ["a", "b"]})
    out = df.gemini.batch("{t}", model="gemini-2.0-flash", client=emu.client(), inline_limit_bytes=1, **FAST)
    assert out.get_column("response").to_list() == ["echo: a", "echo: b"]
    assert emu.calls("batches.get") >= 4


def test_nulls_are_not_sent_and_say_which_column(emu: Emulator) -> None:
    df = pl.DataFrame({"a": ["x", None, "y"], "b": [1, 2, None]})
    out = df.gemini.batch("{a}-{b}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    assert out.get_column("response").to_list() == ["echo: x-1", None, None]
    assert out.get_column("response_error").to_list()[1:] == [
        "not sent: column 'a' is null in this row",
        "not sent: column 'b' is null in this row",
    ]


def test_empty_frame_creates_no_job(emu: Emulator) -> None:
    df = pl.DataFrame(schema={"t": pl.String})
    out = df.gemini.batch("{t}", model="gemini-2.0-flash", schema={"n": pl.Int16}, client=emu.client(), **FAST)
    assert out.schema == pl.Schema({"t": pl.String, "n": pl.Int16, "response_error": pl.String})
    assert out.height == 0 and emu.requests == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"template": "{nope}"}, TemplateError),
        ({"template": "{t!r}"}, TemplateError),
        ({"model": "gemini-9-ultra"}, ModelError),
        ({"output": "t"}, ColumnClashError),
        ({"mode": "later"}, ConfigurationError),
        ({"config": {"temperature": "hot"}}, ConfigurationError),
        ({"max_requests_per_job": 0}, ConfigurationError),
    ],
)
def test_bad_input_fails_before_any_request(emu: Emulator, kwargs: dict, error: type) -> None:
    args = {"template": "{t}", "model": "gemini-2.0-flash", **kwargs}
    with pytest.raises(error):
        pl.DataFrame({"t": ["a"]}).gemini.batch(args.pop("template"), client=emu.client(), **args, **FAST)
    assert emu.requests == []


def test_missing_api_key_mentions_env_and_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(polars_gemini.MissingAPIKeyError, match=r"GEMINI_API_KEY.*emulator"):
        pl.DataFrame({"t": ["a"]}).gemini.batch("{t}", model="gemini-2.0-flash")


def test_api_key_from_env_never_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "AIzaSy-very-secret-key"
    monkeypatch.setenv("GEMINI_API_KEY", secret)
    with Emulator(api_key="another-key") as emu:  # the emulator refuses our key: the error must not echo it
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
        client = polars_gemini.service.gemini.client_from_env()
        client._api_client._http_options.base_url = emu.url + "/"
        with pytest.raises(polars_gemini.APIError) as info:
            pl.DataFrame({"t": ["a"]}).gemini.batch("{t}", model="gemini-2.0-flash", client=client, **FAST)
        assert secret not in str(info.value) and secret not in repr(info.value)
        assert all(secret not in json.dumps(r.body_json) for r in emu.requests)


def test_sync_mode_same_contract(emu: Emulator) -> None:
    emu.fail_http("models.generateContent", 429, on_call=1)
    out = reviews().gemini.batch("Rate: {review}", model="gemini-2.0-flash", mode="sync", client=emu.client(), **FAST)
    assert out.get_column("response").to_list() == [f"echo: Rate: {r}" for r in reviews().get_column("review")]
    assert emu.calls("batches.create") == 0
    assert emu.calls("models.generateContent") == 4  # 3 distinct prompts + 1 retried 429


def test_sync_mode_per_request_error_is_a_value(emu: Emulator) -> None:
    emu.settings.responder = responses.when(lambda r: "awful" in r.text, responses.error(400, "bad"), echo)
    out = reviews().gemini.batch("{review}", model="gemini-2.0-flash", mode="sync", client=emu.client(), **FAST)
    assert out.get_column("response_error").is_not_null().to_list() == [False, True, False, False, True]
