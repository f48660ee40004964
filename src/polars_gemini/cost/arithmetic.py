"""What token counts cost in USD: pure arithmetic over a `ModelPrice`, for one request or a column of them.

Billing rules, as `usageMetadata` reports the counts:
- `promptTokenCount` includes cached tokens (`cachedContentTokenCount`) and audio tokens: cached ones are
  billed at the cached-input rate, audio ones at the audio rate, the rest at the input rate.
- Thinking tokens (`thoughtsTokenCount`) are billed as output, next to `candidatesTokenCount`.
- The long-context tier is chosen per request from its prompt size and applies to all of its tokens; so a
  total over many requests must be priced row by row (`cost_expr`) or with `per_request_prompt_tokens`.

    >>> from polars_gemini.cost.prices import load_prices
    >>> flash = load_prices().require("gemini-2.5-flash")
    >>> cost(flash, input_tokens=100_000 * 500, output_tokens=100_000 * 100, batch=False, per_request_prompt_tokens=500)
    40.0
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from polars_gemini.core.errors import ConfigurationError
from polars_gemini.cost.prices import ModelPrice, Rates

__all__ = ["cost", "cost_expr"]

PER = 1_000_000  # prices are per million tokens
# Results are rounded to 1e-10 USD: Polars divides a column by a constant through its reciprocal, which turns
# $0.135 into 0.13499999999999998; no bill needs more than ten decimals.
DECIMALS = 10
N = TypeVar("N", float, pl.Expr)
IntoTokens = pl.Expr | pl.Series | str | int


def _usd(rates: Rates, prompt: N, output: N, cached: N, audio: N) -> N:
    audio_rate = rates.input if rates.audio_input is None else rates.audio_input
    text = prompt - cached - audio
    return (text * rates.input + cached * rates.cached_input + audio * audio_rate + output * rates.output) / PER


def cost(
    prices: ModelPrice,
    *,
    input_tokens: int,
    output_tokens: int,
    thinking_tokens: int = 0,
    cached_tokens: int = 0,
    audio_tokens: int = 0,
    batch: bool = True,
    per_request_prompt_tokens: int | None = None,
) -> float:
    """USD for these token counts. `input_tokens` is the prompt total (cached and audio tokens included).

    The long-context tier is chosen by `per_request_prompt_tokens` when the counts add up several requests
    of that prompt size, else by `input_tokens` itself (one request).

    >>> from polars_gemini.cost.prices import load_prices
    >>> cost(load_prices().require("gemini-2.5-pro"), input_tokens=250_000, output_tokens=0, batch=False)
    0.625
    """
    counts = {"input_tokens": input_tokens, "output_tokens": output_tokens, "thinking_tokens": thinking_tokens}
    counts |= {"cached_tokens": cached_tokens, "audio_tokens": audio_tokens}
    _check_counts(counts)
    prompt = input_tokens if per_request_prompt_tokens is None else per_request_prompt_tokens
    rates = prices.rates(batch=batch, long_context=_is_long(prices, prompt))
    usd = _usd(
        rates, float(input_tokens), float(output_tokens + thinking_tokens), float(cached_tokens), float(audio_tokens)
    )
    return round(usd, DECIMALS)


def _is_long(prices: ModelPrice, prompt_tokens: int) -> bool:
    return prices.long_context_above is not None and prompt_tokens > prices.long_context_above


def _check_counts(counts: dict[str, int]) -> None:
    negative = {name: n for name, n in counts.items() if n < 0}
    if negative:
        raise ConfigurationError(f"token counts must be >= 0, got {negative}")
    if counts["cached_tokens"] + counts["audio_tokens"] > counts["input_tokens"]:
        msg = (
            f"cached_tokens ({counts['cached_tokens']}) + audio_tokens ({counts['audio_tokens']}) exceed "
            f"input_tokens ({counts['input_tokens']}). Hint: input_tokens is promptTokenCount, which includes both."
        )
        raise ConfigurationError(msg)


def cost_expr(
    prices: ModelPrice,
    *,
    input_tokens: IntoTokens,
    output_tokens: IntoTokens,
    thinking_tokens: IntoTokens = 0,
    cached_tokens: IntoTokens = 0,
    audio_tokens: IntoTokens = 0,
    batch: bool = True,
) -> pl.Expr:
    """USD per row (Float64), each row one request: the long-context tier applies row by row.

    Arguments are column names, expressions, Series or constants; missing thinking, cached and audio counts
    (null) count as 0, a missing input or output count gives a null cost.

    >>> import polars as pl
    >>> from polars_gemini.cost.prices import load_prices
    >>> pro = load_prices().require("gemini-2.5-pro")
    >>> df = pl.DataFrame({"prompt": [100_000, 250_000], "answer": [1_000, 1_000]})
    >>> df.select(usd=cost_expr(pro, input_tokens="prompt", output_tokens="answer", batch=False))["usd"].to_list()
    [0.135, 0.64]
    """
    prompt, output = _as_expr(input_tokens), _as_expr(output_tokens)
    thinking, cached, audio = (_as_expr(x).fill_null(0) for x in (thinking_tokens, cached_tokens, audio_tokens))
    usd = _usd(prices.rates(batch=batch), prompt, output + thinking, cached, audio)
    if prices.long_context_above is not None:
        long = _usd(prices.rates(batch=batch, long_context=True), prompt, output + thinking, cached, audio)
        usd = pl.when(prompt > prices.long_context_above).then(long).otherwise(usd)
    return usd.round(DECIMALS)


def _as_expr(value: IntoTokens) -> pl.Expr:
    if isinstance(value, pl.Expr):
        expr = value
    elif isinstance(value, str):
        expr = pl.col(value)
    else:
        expr = pl.lit(value)
    return expr.cast(pl.Float64)
