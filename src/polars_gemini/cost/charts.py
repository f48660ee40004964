"""Charts of what a job will cost, for people who would rather look than read: Altair, through Polars' `df.plot`.

Two charts, both small however many rows the job has (the data behind them is a handful of bars, never a row per
input row): an estimate's cost split into input, output and thinking, at batch and at standard price
(`Estimate.plot()`), and a histogram of input tokens per row (`tokens_histogram`), to spot the few long rows that
carry the bill or cross a long-context price tier. Altair is an optional extra: `pip install 'polars-gemini[plot]'`.

>>> est = df.gemini.estimate("Classify: {review}", model="gemini-2.5-flash")  # doctest: +SKIP
>>> est.plot()  # doctest: +SKIP
>>> tokens = df.gemini.input_tokens("Classify: {review}", model="gemini-2.5-flash")  # doctest: +SKIP
>>> polars_gemini.tokens_histogram(tokens)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, cast

import polars as pl

from polars_gemini.core.errors import ConfigurationError

if TYPE_CHECKING:
    from polars_gemini.cost.estimate import Estimate

__all__ = ["PARTS", "PRICES", "cost_breakdown", "cost_chart", "tokens_histogram"]

INSTALL = "pip install 'polars-gemini[plot]'"
PARTS = ("input", "output", "thinking")  # what a request is billed for, in the order the bars stack
PRICES = ("batch", "standard")
_COLOURS = ("#4c78a8", "#f58518", "#e45756")  # one per part, as Vega's default scheme orders them
_MOST = 2**53  # more tokens per row than any model reads, by far; and past it a float edge loses whole counts


def cost_breakdown(estimate: Estimate) -> pl.DataFrame:
    """The estimate's expected cost as a frame: one row per price (`batch`, `standard`) and part (`input`, `output`,
    `thinking`), in USD; empty when the model's price is unknown, or when the estimate was restored from a checkpoint
    written before estimates kept their parts.

    >>> polars_gemini.cost.charts.cost_breakdown(est)  # doctest: +SKIP
    shape: (6, 3) with columns price, part, usd
    """
    parts = estimate.cost_parts
    price, part = pl.Enum(PRICES), pl.Enum(PARTS)
    if len(parts) != len(PRICES) * len(PARTS):
        return pl.DataFrame(schema={"price": price, "part": part, "usd": pl.Float64})
    return pl.DataFrame(
        {
            "price": [p for p in PRICES for _ in PARTS],
            "part": list(PARTS) * len(PRICES),
            "usd": [float(v) for v in parts],
        },
        schema={"price": price, "part": part, "usd": pl.Float64},
    )


def cost_chart(estimate: Estimate) -> Any:
    """A stacked bar per price (batch, standard) of the expected cost, split into input, output and thinking: an
    `altair.Chart` (displayed as is in a notebook; `.save("cost.html")` elsewhere).

    >>> cost_chart(est)  # doctest: +SKIP
    """
    _require_altair()
    import altair as alt

    frame = cost_breakdown(estimate)
    if frame.is_empty() and estimate.cost is None:
        raise ConfigurationError(
            f"No price is known for {estimate.model}, so its cost cannot be charted. Hint: pass prices= (a PriceTable "
            "with this model) to estimate()."
        )
    if frame.is_empty():  # priced, but saved in a manifest by a version that kept no parts (a resumed run's)
        raise ConfigurationError(
            f"This estimate of {estimate.model} ({estimate.requests:,} requests, {estimate.cost:,.6g} USD expected) "
            "has no cost breakdown to chart: it was restored from a checkpoint written by an older polars-gemini. "
            "Hint: estimate the call again (df.gemini.estimate(...) with the same template and model) and plot that."
        )
    saving = 1 - estimate.cost / estimate.sync_cost if estimate.cost is not None and estimate.sync_cost else None
    subtitle = f"{estimate.requests:,} requests; batch saves {saving:.0%}" if saving is not None else ""
    return (
        frame.plot.bar(
            x=alt.X("sum(usd):Q", title="expected cost (USD)", axis=alt.Axis(format="$,.4~f")),
            y=alt.Y("price:N", title=None, sort=list(PRICES)),
            color=alt.Color("part:N", title=None, sort=list(PARTS), scale=alt.Scale(domain=PARTS, range=_COLOURS)),
            order=alt.Order("part_order:Q"),
            tooltip=["price:N", "part:N", alt.Tooltip("usd:Q", format="$,.6f")],
        )
        .transform_calculate(part_order=f"indexof({list(PARTS)!r}, datum.part)")
        .properties(title={"text": f"{estimate.model}: what the job will cost", "subtitle": subtitle}, width=420)
    )


def tokens_histogram(tokens: pl.Series | object, *, bins: int = 30, title: str | None = None) -> Any:
    """A histogram of input tokens per row (a column from `input_tokens`: a Polars Series, or what it gives for a
    pandas, Arrow or DuckDB input: a pandas Series, an Arrow array, a one-column relation; rows that are not sent,
    null, are left out and counted in the subtitle): an `altair.Chart`. The bins are counted by Polars
    (`Series.hist`), so the chart holds `bins` bars, not one value per row.

    >>> tokens = df.gemini.input_tokens("Classify: {review}", model="gemini-2.5-flash")  # doctest: +SKIP
    >>> tokens_histogram(tokens, bins=40)  # doctest: +SKIP
    """
    _require_altair()
    import altair as alt

    tokens = _as_series(tokens)
    if not isinstance(tokens, pl.Series) or not (tokens.dtype.is_integer() or tokens.dtype == pl.Null):
        got = f"a Series of {tokens.dtype}" if isinstance(tokens, pl.Series) else type(tokens).__name__
        raise ConfigurationError(
            f"tokens_histogram takes a column of token counts, got {got}. Hint: pass the Series that "
            "df.gemini.input_tokens(...) or polars_gemini.input_tokens(...) returns."
        )
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ConfigurationError(f"bins is a number of bars >= 1, e.g. 30; got {bins!r}.")
    sent, low, high = _counts(tokens)
    edges = _edges(low, high, bins)
    counts = (
        sent.hist(bins=edges, include_breakpoint=True, include_category=False)
        .rename({"breakpoint": "to", "count": "rows"})
        .with_columns(pl.Series("from", edges[:-1], dtype=pl.Float64))
        .select("from", "to", pl.col("rows").cast(pl.Int64))
    )
    left_out = tokens.len() - sent.len()
    subtitle = f"{sent.len():,} rows, {low:,} to {high:,} tokens; median {cast(float, sent.median()):,.0f}"
    subtitle += f"; {left_out:,} rows not sent (left out)" if left_out else ""
    return counts.plot.bar(
        x=alt.X("from:Q", title="input tokens per row", bin="binned"),
        x2="to:Q",
        y=alt.Y("rows:Q", title="rows"),
        tooltip=[alt.Tooltip("from:Q", format=",.0f"), alt.Tooltip("to:Q", format=",.0f"), "rows:Q"],
    ).properties(title={"text": title or "Input tokens per row", "subtitle": subtitle}, width=420)


def _as_series(tokens: object) -> object:
    """A pandas Series, an Arrow array, a one-column DuckDB relation or a narwhals-wrapped column (what
    `input_tokens` gives for such inputs) as a Polars Series; anything else as it is."""
    native: Any = tokens.to_native() if type(tokens).__module__.startswith("narwhals") else tokens  # type: ignore[attr-defined]
    library = type(native).__module__.split(".")[0]
    if library == "duckdb" and hasattr(native, "pl") and len(native.columns) == 1:
        return native.pl().to_series()
    if library in ("pandas", "pyarrow"):
        try:
            return pl.Series(native)
        except (TypeError, ValueError, pl.exceptions.PolarsError):  # not one column: said by the caller's check
            return tokens
    return native


def _counts(tokens: pl.Series) -> tuple[pl.Series, int, int]:
    """The counts of the rows that are sent (not null) as Int64, their least and greatest; a ConfigurationError if
    no row is sent, or a count cannot be a number of tokens."""
    sent = tokens.drop_nulls()
    if sent.is_empty():
        empty = "The column is empty: no row to chart."
        nulls = "No row has a token count to chart (every row is null: none of them would be sent)."
        raise ConfigurationError(
            empty if tokens.is_empty() else f"{nulls} Hint: check the template's columns for nulls."
        )
    low, high = int(cast(int, sent.min())), int(cast(int, sent.max()))
    hint = "Hint: pass the Series that input_tokens(...) returns."
    if low < 0:
        raise ConfigurationError(f"Token counts are never negative; the column holds {low:,}. {hint}")
    if high > _MOST:
        raise ConfigurationError(f"A row of {high:,} tokens: more tokens than any request holds. {hint}")
    return sent.cast(pl.Int64), low, high


def _edges(low: int, high: int, bins: int) -> list[float]:
    """At most `bins` + 1 bin edges covering `low` to `high`, each bin a whole number of tokens wide (edges fall
    halfway between two counts, so no count sits on an edge)."""
    width = max(-(-(high - low + 1) // bins), 1)  # ceiling division: at most `bins` bins
    count = -(-(high - low + 1) // width)
    return [low - 0.5 + i * width for i in range(count + 1)]


def _require_altair() -> None:
    if importlib.util.find_spec("altair") is None:
        raise ConfigurationError(f"Charts are drawn with Altair, which is not installed: {INSTALL}.")
