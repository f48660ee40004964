"""Estimates before submitting, the budget guard, and estimate vs actual on an emulator run."""

from __future__ import annotations

import polars as pl
import pytest

from polars_gemini import BudgetExceededError
from polars_gemini.cli.demo import SCHEMA, TEMPLATE, reviews
from polars_gemini.emulator import Emulator

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}


def test_estimate_counts_prompt_system_and_schema_tokens() -> None:
    df = pl.DataFrame({"t": ["a short review", "another one, longer than the first", "a short review"]})
    plain = df.gemini.estimate("Rate: {t}", model="gemini-2.5-flash")
    per_row = df.gemini.input_tokens("Rate: {t}", model="gemini-2.5-flash")
    assert (plain.rows, plain.requests) == (3, 2)
    assert plain.input_tokens == per_row[0] + per_row[1] and per_row[0] == per_row[2]
    system = df.gemini.estimate("Rate: {t}", model="gemini-2.5-flash", system_instruction="You are a careful rater.")
    assert system.input_tokens > plain.input_tokens
    typed = df.gemini.estimate("Rate: {t}", model="gemini-2.5-flash", schema={"label": pl.Enum(["pos", "neg"])})
    assert typed.input_tokens > plain.input_tokens  # the response schema is billed as prompt text (an assumption)
    assert typed.output_tokens < plain.output_tokens  # an enum answer is a few tokens, a text answer ~150


def test_thinking_dominates_output_and_can_be_switched_off() -> None:
    df = pl.DataFrame({"t": [f"review {i}" for i in range(100)]})
    thinking = df.gemini.estimate("{t}", model="gemini-2.5-flash", schema={"ok": pl.Boolean})
    off = df.gemini.estimate("{t}", model="gemini-2.5-flash", schema={"ok": pl.Boolean},
                             config={"thinking_config": {"thinking_budget": 0}})  # fmt: skip
    assert thinking.thinking_tokens == 100 * 1_000 and off.thinking_tokens == 0
    assert thinking.output_tokens > 50 * off.output_tokens
    capped = df.gemini.estimate("{t}", model="gemini-2.5-flash", config={"max_output_tokens": 300})
    assert capped.output_tokens_max == 100 * 300
    assert capped.cost_max is not None and capped.cost_max < thinking.cost_max  # type: ignore[operator]


def test_batch_is_half_the_standard_price_and_unknown_prices_are_said() -> None:
    df = pl.DataFrame({"t": [f"text {i}" for i in range(50)]})
    est = df.gemini.estimate("{t}", model="gemini-2.5-flash")
    assert est.cost == pytest.approx(est.sync_cost / 2)  # type: ignore[operator]
    unknown = df.gemini.estimate("{t}", model="gemini-9-preview", check_model=False)
    assert unknown.cost is None and unknown.input_tokens > 0 and "price unknown" in repr(unknown)
    priced = df.gemini.estimate("{t}", model="gemini-9-preview", check_model=False,
                                prices={"gemini-9-preview": {"input": 1.0, "output": 2.0}})  # fmt: skip
    assert priced.cost is not None and priced.cost > 0
    assert set(est.to_dict()) >= {"rows", "requests", "input_tokens", "output_tokens", "output_tokens_max", "cost",
                                  "cost_max", "sync_cost", "prices_as_of"}  # fmt: skip
    assert "<table " in est._repr_html_()


def test_budget_refusal_sends_nothing() -> None:
    df = reviews(300)
    with Emulator() as emu:
        with pytest.raises(BudgetExceededError, match=r"upper bound \$.* exceeds max_cost=\$0\.01") as info:
            df.gemini.batch(TEMPLATE, model="gemini-2.5-flash", schema=SCHEMA, client=emu.client(), max_cost=0.01)
        assert "input tokens" in str(info.value)  # the estimate is in the message
        assert emu.requests == []
        out = df.gemini.batch(TEMPLATE, model="gemini-2.5-flash", schema=SCHEMA, client=emu.client(), max_cost=50.0,
                              config={"max_output_tokens": 2_000}, **FAST)  # fmt: skip
        assert out.height == 300


def test_estimate_matches_the_emulators_bill() -> None:
    df = reviews(500)
    with Emulator() as emu:
        est = df.gemini.estimate(TEMPLATE, model="gemini-2.5-flash", schema=SCHEMA)
        run = df.gemini.submit(TEMPLATE, model="gemini-2.5-flash", schema=SCHEMA, client=emu.client(), **FAST)
        out = run.result()
        bill = run.cost()
    assert out.get_column("response_error").null_count() == 500
    assert bill.estimate is not None and bill.estimate.input_tokens == est.input_tokens
    assert bill.tokens["input"] == pytest.approx(est.input_tokens, rel=0.03)
    assert bill.tokens["thinking"] == pytest.approx(est.thinking_tokens, rel=0.10)
    assert bill.actual == pytest.approx(est.cost, rel=0.15)
    assert "actual so far" in repr(bill)


def test_usage_columns_and_calibration() -> None:
    df = reviews(40)
    with Emulator() as emu:
        out = df.gemini.batch(TEMPLATE, model="gemini-2.5-flash", client=emu.client(), usage=True, **FAST)
        assert out.get_column("response_input_tokens").min() > 0  # type: ignore[operator]
        assert out.get_column("response_thinking_tokens").min() > 0  # type: ignore[operator]
        free = df.gemini.estimate(TEMPLATE, model="gemini-2.5-flash", calibrate=10, client=emu.client())
        assert (emu.calls("models.countTokens"), emu.calls("models.generateContent")) == (10, 0)  # nothing billed
        calibrated = df.gemini.estimate(TEMPLATE, model="gemini-2.5-flash", calibrate=10, calibrate_output=True,
                                        client=emu.client())  # fmt: skip
        assert emu.calls("models.generateContent") == 10
    assert "countTokens on 10 sample prompts (free)" in free.method
    assert "measured on 10 billed sync requests ($" in calibrated.method
    # countTokens counts as the bill does: the calibrated input estimate is the emulator's input count.
    assert free.input_tokens == pytest.approx(int(out.get_column("response_input_tokens").sum()), rel=0.02)
    measured = out.get_column("response_output_tokens").mean()
    assert calibrated.output_tokens / calibrated.requests == pytest.approx(
        measured + calibrated.thinking_tokens / calibrated.requests, rel=0.5
    )


def test_exact_estimate_matches_an_exactly_counting_emulator_on_2000_rows() -> None:
    """With the Gemma 3 model on both sides, the estimate's input tokens are the bill's, within 1%: the estimate is
    compared with the truth, not with itself (the emulator counts with the model, not with the estimator)."""
    from pathlib import Path

    model = Path(__file__).parents[1] / "data" / "gemma3.spiece.model"
    df = reviews(2_000)
    with Emulator(tokenizer=model) as emu:
        assert emu.token_counting.startswith("exact")
        est = df.gemini.estimate(TEMPLATE, model="gemini-2.5-flash", schema=SCHEMA, tokenizer=model)
        run = df.gemini.submit(TEMPLATE, model="gemini-2.5-flash", schema=SCHEMA, client=emu.client(),
                               tokenizer=model, **FAST)  # fmt: skip
        assert run.result().get_column("response_error").null_count() == 2_000
        bill = run.cost()
        client = emu.client()  # kept in a variable: a client nothing refers to closes its connections
        counted = client.models.count_tokens(model="gemini-2.5-flash", contents="Hello, world!")
    assert est.method.startswith("exact")
    assert bill.tokens["input"] == pytest.approx(est.input_tokens, rel=0.01)
    assert counted.total_tokens == 4  # Gemma 3: [9259, 236764, 1902, 236888]
    offline = df.gemini.estimate(TEMPLATE, model="gemini-2.5-flash", schema=SCHEMA, tokenizer="offline")
    assert offline.input_tokens != est.input_tokens  # the estimator is not what the bill was compared with


def test_calibration_with_exact_counts_needs_no_count_tokens_calls() -> None:
    from pathlib import Path

    model = Path(__file__).parents[1] / "data" / "gemma3.spiece.model"
    df = reviews(40)
    with Emulator() as emu:
        est = df.gemini.estimate(TEMPLATE, model="gemini-2.5-flash", calibrate=10, client=emu.client(), tokenizer=model)
        assert emu.calls("models.countTokens") == 0
    assert est.method.startswith("exact") and "nothing to measure" in est.method


def test_gemini_3_thinking_levels_and_the_advice_when_thinking_dominates() -> None:
    df = pl.DataFrame({"t": [f"review {i}" for i in range(100)]})
    schema = {"ok": pl.Boolean}
    high = df.gemini.estimate("{t}", model="gemini-3-flash-preview", schema=schema)
    low = df.gemini.estimate("{t}", model="gemini-3-flash-preview", schema=schema,
                             config={"thinking_config": {"thinking_level": "low"}})  # fmt: skip
    minimal = df.gemini.estimate("{t}", model="gemini-3-flash-preview", schema=schema,
                                 config={"thinking_config": {"thinking_level": "minimal"}})  # fmt: skip
    assert high.thinking_tokens > low.thinking_tokens > minimal.thinking_tokens > 0
    assert any("level low" in note for note in low.assumptions)
    advice = high.assumptions[0]
    assert advice.startswith("thinking is") and "thinking_level='minimal' would cost about $" in advice
    flash = df.gemini.estimate("{t}", model="gemini-2.5-flash", schema=schema)
    assert "thinking_budget=0 would cost $" in flash.assumptions[0]
    pro = df.gemini.estimate("{t}", model="gemini-2.5-pro", schema=schema)
    assert "cannot stop thinking; thinking_budget=128" in pro.assumptions[0]
    off = df.gemini.estimate("{t}", model="gemini-2.5-flash", schema=schema,
                             config={"thinking_config": {"thinking_budget": 0}})  # fmt: skip
    assert not any(note.startswith("thinking is") for note in off.assumptions)
