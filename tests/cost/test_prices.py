"""The dated price table and the cost arithmetic, against hand-computed cases."""

from __future__ import annotations

import polars as pl
import pytest

from polars_gemini import estimate
from polars_gemini.core.errors import ConfigurationError, ModelError
from polars_gemini.core.models import MODELS
from polars_gemini.cost.arithmetic import cost, cost_expr
from polars_gemini.cost.prices import SERVICE_TIERS, ModelPrice, PriceTable, Rates, as_price_table, load_prices

# The README's pricing snapshot: standard -> batch, USD per 1M tokens (input, output).
README_TABLE = {
    "gemini-3.1-pro-preview": ((2.00, 1.00), (12.0, 6.0)),
    "gemini-3-flash-preview": ((0.50, 0.25), (3.00, 1.50)),
    "gemini-3.1-flash-lite-preview": ((0.25, 0.125), (1.50, 0.75)),
    "gemini-2.5-pro": ((1.25, 0.625), (10.0, 5.0)),
    "gemini-2.5-flash": ((0.30, 0.15), (2.50, 1.25)),
    "gemini-2.5-flash-lite": ((0.10, 0.05), (0.40, 0.20)),
    "gemini-2.0-flash": ((0.10, 0.05), (0.40, 0.20)),
    "gemini-2.0-flash-lite": ((0.075, 0.0375), (0.30, 0.15)),
}


@pytest.fixture
def table() -> PriceTable:
    return load_prices()


def test_table_is_dated_and_sourced(table: PriceTable) -> None:
    assert table.as_of.startswith("2026") and "ai.google.dev/gemini-api/docs/pricing" in table.source


@pytest.mark.parametrize(("model", "rates"), README_TABLE.items())
def test_table_matches_the_pricing_snapshot(
    table: PriceTable, model: str, rates: tuple[tuple[float, ...], ...]
) -> None:
    price = table.require(model)
    (inp, batch_inp), (out, batch_out) = rates
    assert (price.standard.input, price.batch.input, price.standard.output, price.batch.output) == (
        inp,
        batch_inp,
        out,
        batch_out,
    )


def test_long_context_tiers_and_audio_rate(table: PriceTable) -> None:
    pro, pro3 = table.require("gemini-2.5-pro"), table.require("gemini-3.1-pro-preview")
    assert pro.long_context_above == pro3.long_context_above == 200_000
    assert pro.standard_long is not None and pro.batch_long is not None
    assert (pro.standard_long.input, pro.batch_long.input, pro.standard_long.output, pro.batch_long.output) == (
        2.50,
        1.25,
        15.0,
        7.50,
    )
    assert pro3.standard_long is not None and (pro3.standard_long.input, pro3.standard_long.output) == (4.0, 18.0)
    flash = table.require("gemini-2.5-flash")
    assert (flash.standard.audio_input, flash.batch.audio_input) == (1.00, 0.50)


def test_later_models_have_derived_batch_prices(table: PriceTable) -> None:
    for model, (inp, out) in {"gemini-3.5-flash": (1.50, 9.00), "gemini-3.5-flash-lite": (0.30, 2.50)}.items():
        price = table.require(model)
        assert (price.standard.input, price.standard.output) == (inp, out)
        assert (price.batch.input, price.batch.output) == (inp / 2, out / 2)
        assert price.batch_source == "derived: 50% of standard"


def test_every_batch_rate_is_half_of_standard_and_every_cache_rate_is_sourced(table: PriceTable) -> None:
    for price in table.models.values():
        assert price.batch.input == price.standard.input / 2 and price.batch.output == price.standard.output / 2
        assert price.standard.cached_input <= price.standard.input and price.batch.cached_input <= price.batch.input
        assert price.cached_source


def test_every_model_the_library_accepts_is_priced_and_embeddings_too(table: PriceTable) -> None:
    batchable = {name for name, info in MODELS.items() if info.supports_batch}
    assert batchable <= set(table.models)
    # Models without a batch rate (gemini-embedding-2*) have no price here: a derived half price would be invented.
    assert not (set(MODELS) - batchable) & set(table.models)
    embed = table.require("gemini-embedding-001")
    assert (embed.standard.input, embed.batch.input, embed.standard.output) == (0.15, 0.075, 0.0)


def test_every_rate_carries_a_date_and_a_source_that_resolves(table: PriceTable) -> None:
    for name, price in table.models.items():
        for tier in price.tiers:
            for long_context in (False, True):
                rates = price.tier_rates(tier, long_context=long_context)
                assert rates is not None and rates.as_of and rates.source, (name, tier, long_context)
                cited = [key for key in table.sources if key in rates.source]
                assert cited or rates.source.startswith("derived"), (name, tier, rates.source)
    assert all("http" in text or ".md" in text for text in table.sources.values())
    assert table.notes and any("Priority" in note for note in table.notes)


def test_derived_rates_say_so(table: PriceTable) -> None:
    lite = table.require("gemini-2.5-flash-lite")
    assert lite.flex is not None and lite.flex.source.startswith("derived")
    assert (lite.flex.input, lite.flex.output) == (lite.batch.input, lite.batch.output)
    published = table.require("gemini-2.5-flash")
    assert published.flex is not None and not published.flex.source.startswith("derived")


def test_cached_input_and_cache_storage_from_the_pricing_page(table: PriceTable) -> None:
    flash, pro = table.require("gemini-2.5-flash"), table.require("gemini-2.5-pro")
    # cache hits in a batch are priced as in standard (batch docs; the page lists the same rate in both tabs)
    assert (flash.standard.cached_input, flash.batch.cached_input) == (0.03, 0.03)
    assert (flash.standard.cached_audio_input, flash.standard.cache_storage) == (0.10, 1.00)
    assert pro.standard_long is not None and pro.standard_long.cached_input == 0.25
    assert pro.standard.cached_input == 0.125
    assert pro.standard.cache_storage == 4.50
    lite3 = table.require("gemini-3.1-flash-lite-preview")
    assert (lite3.batch.cached_input, lite3.batch.cache_storage) == (0.0125, 0.50)
    no_cache = table.require("gemini-2.0-flash-lite")
    assert no_cache.standard.cached_input == no_cache.standard.input and "not available" in no_cache.cached_source


def test_flex_and_priority_rates_where_published(table: PriceTable) -> None:
    for model in ("gemini-2.5-pro", "gemini-2.5-flash"):
        price = table.require(model)
        assert price.tiers == SERVICE_TIERS
        flex, priority = price.tier_rates("flex"), price.tier_rates("priority")
        assert flex is not None and (flex.input, flex.output) == (price.batch.input, price.batch.output)
        assert priority is not None and priority.input == pytest.approx(1.8 * price.standard.input)
        assert priority.output == pytest.approx(1.8 * price.standard.output)
    pro_priority_long = table.require("gemini-2.5-pro").tier_rates("priority", long_context=True)
    assert pro_priority_long is not None and (pro_priority_long.input, pro_priority_long.output) == (4.50, 27.00)
    assert table.require("gemini-2.5-flash").tier_rates("priority").cache_storage == 1.80  # type: ignore[union-attr]
    for model in ("gemini-3-flash-preview", "gemini-2.0-flash"):  # no per-model Priority rate was found
        assert table.require(model).tier_rates("priority") is None
    assert "flex" not in table.require("gemini-2.0-flash").tiers
    with pytest.raises(ConfigurationError, match=r"unknown service tier 'turbo'.*standard, batch, flex, priority"):
        table.require("gemini-2.5-flash").tier_rates("turbo")


def test_unknown_model_is_none_and_require_says_how_to_price_it(table: PriceTable) -> None:
    assert table.get("gemini-9-ultra") is None
    with pytest.raises(ModelError, match=r"gemini-9-ultra.*prices="):
        table.require("models/gemini-9-ultra")


def test_models_prefix_is_accepted(table: PriceTable) -> None:
    assert table.get("models/gemini-2.5-flash") == table.get("gemini-2.5-flash") is not None


def test_override_adds_and_replaces_without_touching_the_shipped_table(table: PriceTable) -> None:
    custom = table.override(
        {"models/gemini-2.5-flash": {"input": 0.5, "output": 3.0}, "my-model": {"input": 1, "output": 2}}
    )
    flash = custom.require("gemini-2.5-flash")
    assert (flash.standard.input, flash.batch.input, flash.standard.cached_input) == (0.5, 0.25, 0.5)
    assert custom.require("my-model").batch.output == 1.0
    assert "overridden" in custom.source and "my-model" in custom.source
    assert load_prices().require("gemini-2.5-flash").standard.input == 0.30
    assert custom.get("gemini-2.5-pro") == table.get("gemini-2.5-pro")


def test_prices_overrides_carry_tier_rates(table: PriceTable) -> None:
    custom = as_price_table(
        {
            "my-model": {
                "input": 1.0, "output": 4.0, "cached_input": 0.1,
                "flex": {"input": 0.5, "output": 2.0}, "priority": {"input": 1.8, "output": 7.2},
                "long_context": {"above_prompt_tokens": 100_000, "standard": {"input": 2.0, "output": 8.0}},
            }
        }
    )  # fmt: skip
    mine = custom.require("my-model")
    assert mine.tiers == SERVICE_TIERS and mine.tier_rates("flex") == Rates(0.5, 2.0, 0.5, source=mine.flex.source)  # type: ignore[union-attr]
    assert mine.tier_rates("priority").input == 1.8  # type: ignore[union-attr]
    assert mine.batch.cached_input == 0.1 and mine.batch.source.startswith("derived")  # cache hits as standard
    assert mine.batch_long is not None and mine.batch_long.input == 1.0  # batch long derived from standard long
    assert mine.tier_rates("flex", long_context=True) is None  # a long prompt's flex rate was not given
    assert "caller" in mine.standard.source
    assert ModelPrice.from_dict("my-model", mine.to_dict()) == mine
    with pytest.raises(ConfigurationError, match=r"unknown keys \['cahced_input'\]"):
        as_price_table({"m": {"input": 1.0, "output": 2.0, "cahced_input": 0.1}})
    with pytest.raises(ConfigurationError, match=r"flex\)\.input must be a finite number"):
        as_price_table({"m": {"input": 1.0, "output": 2.0, "flex": {"input": -1, "output": 1}}})
    with pytest.raises(ConfigurationError, match="above_prompt_tokens must be a whole number"):
        as_price_table({"m": {"input": 1, "output": 2, "long_context": {"above_prompt_tokens": "200k"}}})


def test_unknown_model_still_gets_token_counts_and_price_unknown() -> None:
    df = pl.DataFrame({"t": ["one review", "another review"]})
    est = estimate(df, "{t}", model="gemini-9-ultra", check_model=False, tokenizer="offline")
    assert est.input_tokens > 0 and est.cost is None and "price unknown" in repr(est)
    tiered = {"gemini-9-ultra": {"input": 1.0, "output": 2.0, "flex": {"input": 0.5, "output": 1.0}}}
    priced = estimate(df, "{t}", model="gemini-9-ultra", check_model=False, tokenizer="offline", prices=tiered)
    assert priced.cost is not None and priced.cost > 0


def test_rows_and_frame_list_every_tier(table: PriceTable) -> None:
    rows = table.rows("models/gemini-2.5-pro")
    assert [(r["tier"], r["prompt"]) for r in rows] == [
        (tier, prompt) for prompt in ("<=200k", ">200k") for tier in SERVICE_TIERS
    ]
    frame = table.to_frame()
    assert frame.height == len(table.rows()) and set(frame["model"]) == set(table.models)
    assert frame.filter(pl.col("tier") == "priority")["model"].unique().sort().to_list() == [
        "gemini-2.5-flash",
        "gemini-2.5-pro",
    ]
    with pytest.raises(ModelError, match="gemini-9-ultra"):
        table.rows("gemini-9-ultra")


def test_prices_argument_forms(table: PriceTable) -> None:
    assert as_price_table(None) is load_prices()
    assert as_price_table(table) is table
    whole = as_price_table({"as_of": "2030-01-01", "models": {"m": {"input": 1.0, "output": 4.0}}})
    assert whole.as_of == "2030-01-01" and list(whole.models) == ["m"]
    assert as_price_table({"m": {"input": 1.0, "output": 4.0}}).get("gemini-2.5-pro") is not None
    with pytest.raises(ConfigurationError, match="output"):
        as_price_table({"m": {"input": 1.0}})


def test_table_round_trips_through_its_dict_form(table: PriceTable) -> None:
    assert PriceTable.from_dict(table.to_dict()) == table
    price = table.require("gemini-2.5-pro")
    assert ModelPrice.from_dict(price.model, price.to_dict()) == price


def test_flash_job_costs_forty_dollars_standard_and_twenty_batch(table: PriceTable) -> None:
    flash = table.require("gemini-2.5-flash")
    counts = {"input_tokens": 100_000 * 500, "output_tokens": 100_000 * 100, "per_request_prompt_tokens": 500}
    assert cost(flash, **counts, batch=False) == 40.00
    assert cost(flash, **counts, batch=True) == 20.00


def test_thinking_tokens_are_priced_as_output(table: PriceTable) -> None:
    flash = table.require("gemini-2.5-flash")
    assert cost(flash, input_tokens=0, output_tokens=0, thinking_tokens=1_000_000, batch=False) == 2.50
    assert cost(flash, input_tokens=0, output_tokens=400_000, thinking_tokens=600_000) == 1.25


def test_prompt_above_200k_hits_the_long_context_rates(table: PriceTable) -> None:
    pro = table.require("gemini-2.5-pro")
    # 250,000 x $2.50/M + 10,000 x $15/M; at <= 200k it would be $1.25/M and $10/M.
    assert cost(pro, input_tokens=250_000, output_tokens=10_000, batch=False) == pytest.approx(0.625 + 0.15)
    assert cost(pro, input_tokens=250_000, output_tokens=10_000) == pytest.approx(0.3125 + 0.075)
    assert cost(pro, input_tokens=200_000, output_tokens=10_000, batch=False) == pytest.approx(0.25 + 0.10)


def test_tier_is_per_request_not_per_total(table: PriceTable) -> None:
    pro = table.require("gemini-2.5-pro")
    short = cost(pro, input_tokens=1_000 * 100_000, output_tokens=0, batch=False, per_request_prompt_tokens=100_000)
    long = cost(pro, input_tokens=1_000 * 250_000, output_tokens=0, batch=False, per_request_prompt_tokens=250_000)
    assert (short, long) == (pytest.approx(125.0), pytest.approx(625.0))


def test_cached_tokens_are_part_of_the_prompt_at_the_cached_rate(table: PriceTable) -> None:
    flash = table.require("gemini-2.5-flash")
    # 600k uncached x $0.30/M + 400k cached x $0.03/M
    assert cost(flash, input_tokens=1_000_000, output_tokens=0, cached_tokens=400_000, batch=False) == pytest.approx(
        0.192
    )
    # in a batch: 600k x $0.15/M + 400k cached x $0.03/M (cache hits are not discounted further)
    assert cost(flash, input_tokens=1_000_000, output_tokens=0, cached_tokens=400_000) == pytest.approx(0.102)
    pro = table.require("gemini-2.5-pro")
    long = cost(pro, input_tokens=300_000, output_tokens=0, cached_tokens=300_000, batch=False)
    assert long == pytest.approx(300_000 * 0.25 / 1e6)


def test_audio_tokens_use_the_audio_rate_or_the_input_rate(table: PriceTable) -> None:
    flash = table.require("gemini-2.5-flash")
    assert cost(flash, input_tokens=1_000_000, output_tokens=0, audio_tokens=1_000_000, batch=False) == 1.00
    assert cost(flash, input_tokens=1_000_000, output_tokens=0, audio_tokens=1_000_000) == 0.50
    lite = table.require("gemini-2.5-flash-lite")
    assert cost(lite, input_tokens=1_000_000, output_tokens=0, audio_tokens=1_000_000, batch=False) == 0.30
    no_audio_rate = table.require("gemini-2.0-flash-lite")  # the page lists one input rate for every modality
    assert no_audio_rate.standard.audio_input is None
    assert cost(no_audio_rate, input_tokens=1_000_000, output_tokens=0, audio_tokens=1_000_000, batch=False) == 0.075


def test_inconsistent_counts_are_refused(table: PriceTable) -> None:
    flash = table.require("gemini-2.5-flash")
    with pytest.raises(ConfigurationError, match="promptTokenCount"):
        cost(flash, input_tokens=100, output_tokens=0, cached_tokens=80, audio_tokens=30)
    with pytest.raises(ConfigurationError, match=">= 0"):
        cost(flash, input_tokens=100, output_tokens=-1)


def test_vectorized_cost_applies_the_tier_row_by_row(table: PriceTable) -> None:
    pro = table.require("gemini-2.5-pro")
    df = pl.DataFrame(
        {
            "prompt": [100_000, 250_000, 300_000],
            "answer": [1_000, 1_000, 0],
            "thoughts": [500, None, 0],
            "cached": [0, 0, 300_000],
        }
    )
    usd = df.select(
        cost_expr(
            pro,
            input_tokens="prompt",
            output_tokens="answer",
            thinking_tokens="thoughts",
            cached_tokens="cached",
            batch=False,
        )
    )
    expected = [
        cost(pro, input_tokens=100_000, output_tokens=1_000, thinking_tokens=500, batch=False),
        cost(pro, input_tokens=250_000, output_tokens=1_000, batch=False),
        cost(pro, input_tokens=300_000, output_tokens=0, cached_tokens=300_000, batch=False),
    ]
    assert usd.to_series().to_list() == pytest.approx(expected)


def test_vectorized_cost_over_a_job_and_over_series(table: PriceTable) -> None:
    flash = table.require("gemini-2.5-flash")
    jobs = pl.DataFrame({"prompt": [500] * 100_000, "answer": [100] * 100_000})
    total = jobs.select(cost_expr(flash, input_tokens=pl.col("prompt"), output_tokens=pl.col("answer")).sum()).item()
    assert total == pytest.approx(20.00, abs=1e-9)
    series = pl.select(cost_expr(flash, input_tokens=pl.Series([1_000_000]), output_tokens=0, batch=False)).item()
    assert series == 0.30
