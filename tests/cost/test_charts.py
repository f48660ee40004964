"""Charts of an estimate's cost and of tokens per row: the numbers behind the bars are the estimate's own."""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini import ConfigurationError, Estimate
from polars_gemini.emulator import Emulator

SCHEMA = {"sentiment": pl.Enum(["positive", "negative"]), "confidence": pl.Float64}


def frame(n: int = 400) -> pl.DataFrame:
    words = pl.Series([" ".join(["word"] * (1 + i % 37)) for i in range(n)])
    return pl.DataFrame({"review": words, "id": range(n)})


def chart_rows(chart: object) -> list[dict[str, object]]:
    """The rows of the one dataset a chart embeds (Altair puts a chart's data in `datasets`)."""
    spec = chart.to_dict()  # type: ignore[attr-defined]
    (rows,) = spec["datasets"].values()
    return list(rows)


def test_the_breakdown_adds_up_to_the_estimate_at_both_prices() -> None:
    est = frame().gemini.estimate("Classify: {review}", model="gemini-2.5-flash", schema=SCHEMA)
    parts = est.cost_breakdown()
    assert parts.columns == ["price", "part", "usd"] and parts.height == 6
    total = dict(parts.group_by("price").agg(pl.col("usd").sum()).iter_rows())
    assert total["batch"] == pytest.approx(est.cost, rel=1e-9)
    assert total["standard"] == pytest.approx(est.sync_cost, rel=1e-9)
    usd = {(p, q): v for p, q, v in parts.iter_rows()}
    # gemini-2.5-flash thinks by default: the dated default is most of the bill, and standard is twice batch
    assert usd["batch", "thinking"] > usd["batch", "output"] > 0 and usd["batch", "input"] > 0
    for part in ("input", "output", "thinking"):
        assert usd["standard", part] == pytest.approx(2 * usd["batch", part], rel=1e-9)


def test_no_thinking_means_no_thinking_bar_and_long_prompts_take_the_long_tier() -> None:
    no_thinking = {"thinking_config": {"thinking_budget": 0}}
    est = frame().gemini.estimate("{review}", model="gemini-2.5-flash", config=no_thinking)
    usd = {(p, q): v for p, q, v in est.cost_breakdown().iter_rows()}
    assert usd["batch", "thinking"] == 0.0 and usd["batch", "output"] > 0
    # gemini-2.5-pro prices prompts over 200k tokens higher, on all of their tokens: the parts still add up
    long = pl.DataFrame({"review": ["token " * 210_000, "short"]})
    pro = long.gemini.estimate("{review}", model="gemini-2.5-pro", expected_output_tokens=100)
    assert sum(pro.cost_parts[:3]) == pytest.approx(pro.cost, rel=1e-9)
    prices = polars_gemini.load_prices().require("gemini-2.5-pro")
    cheap = pro.input_tokens * prices.batch.input / 1e6  # everything at the short-context rate
    assert pro.cost_parts[0] > cheap  # the long prompt was priced at the long-context rate


def test_the_cost_chart_holds_the_breakdown(tmp_path: Path) -> None:
    est = frame().gemini.estimate("Classify: {review}", model="gemini-2.5-flash", schema=SCHEMA)
    chart = est.plot()
    rows = chart_rows(chart)
    assert {(r["price"], r["part"]): r["usd"] for r in rows} == {
        (p, q): v for p, q, v in est.cost_breakdown().iter_rows()
    }
    spec = chart.to_dict()
    assert spec["mark"]["type"] == "bar" and spec["encoding"]["color"]["field"] == "part"
    assert "gemini-2.5-flash" in spec["title"]["text"] and "batch saves 50%" in spec["title"]["subtitle"]
    chart.save(tmp_path / "cost.html")  # a standalone page: the chart and its data
    assert "thinking" in (tmp_path / "cost.html").read_text()


def test_an_unknown_price_has_no_breakdown_and_no_chart() -> None:
    est = frame(3).gemini.estimate("{review}", model="gemini-9-preview", check_model=False)
    assert est.cost is None and est.cost_parts == () and est.cost_breakdown().is_empty()
    with pytest.raises(ConfigurationError, match="No price is known for gemini-9-preview"):
        est.plot()


def test_the_histogram_counts_every_sent_row_once() -> None:
    df = frame(1_000).with_columns(pl.when(pl.col("id") % 100 == 0).then(None).otherwise("review").alias("review"))
    tokens = df.gemini.input_tokens("Classify: {review}", model="gemini-2.5-flash")
    assert tokens.null_count() == 10  # rows with a null cell are not sent
    chart = polars_gemini.tokens_histogram(tokens, bins=12)
    rows = chart_rows(chart)
    assert 1 <= len(rows) <= 12  # bars, not a value per row
    assert sum(r["rows"] for r in rows) == 990
    edges = [(r["from"], r["to"]) for r in rows]
    assert all(a < b for a, b in edges) and all(b == a2 for (_, b), (a2, _) in itertools.pairwise(edges))
    sent = tokens.drop_nulls()
    assert edges[0][0] < sent.min() and edges[-1][1] > sent.max()  # type: ignore[operator]
    # each bar counts exactly the rows whose tokens fall in it
    for r in rows:
        assert r["rows"] == ((sent > r["from"]) & (sent < r["to"])).sum()
    assert "10 rows not sent" in chart.to_dict()["title"]["subtitle"]


def test_one_token_count_makes_one_bar() -> None:
    rows = chart_rows(polars_gemini.tokens_histogram(pl.Series([7, 7, 7])))
    assert rows == [{"from": 6.5, "to": 7.5, "rows": 3}]


@pytest.mark.parametrize(
    ("tokens", "bins", "message"),
    [
        (pl.Series(["a"]), 10, "a Series of String"),
        ([1, 2, 3], 10, "got list"),
        (pl.Series([1, 2]), 0, "bins is a number of bars >= 1"),
        (pl.Series([1, 2]), True, "bins is a number of bars >= 1"),
        (pl.Series([None, None], dtype=pl.Int64), 10, "No row has a token count"),
    ],
)
def test_bad_histogram_input_is_a_library_error(tokens: object, bins: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        polars_gemini.tokens_histogram(tokens, bins=bins)  # type: ignore[arg-type]


def test_the_breakdown_survives_a_checkpoint_and_resume(tmp_path: Path) -> None:
    with Emulator() as emu:
        client = emu.client()
        run = frame(20).gemini.submit("{review}", model="gemini-2.5-flash", client=client, progress=False,
                                      checkpoint=tmp_path / "ck", poll_interval=0.01)  # fmt: skip
        assert isinstance(run.estimate, Estimate) and len(run.estimate.cost_parts) == 6
        run.wait()
        run.close()
        again = polars_gemini.resume(tmp_path / "ck", client=client, progress=False)
        assert again.estimate == run.estimate  # cost_parts and assumptions come back as tuples, equal
        assert again.estimate is not None and again.estimate.cost_breakdown().equals(run.estimate.cost_breakdown())
        again.close()
