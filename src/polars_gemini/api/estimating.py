"""`estimate()`: the public entry point for tokens and dollars before submitting, with optional calibration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import polars as pl
from google.genai import types

from polars_gemini.core.errors import ConfigurationError
from polars_gemini.cost.estimate import Estimate, estimate_requests, per_row_input_tokens
from polars_gemini.cost.prices import PriceTable, as_price_table
from polars_gemini.prepare.plan import Plan
from polars_gemini.prepare.requests import KEY, PROMPT, RequestSpec, build_spec, request_keys
from polars_gemini.prepare.schema import SchemaLike
from polars_gemini.prepare.template import prompt_exprs
from polars_gemini.run.results import parse_lines
from polars_gemini.service import gemini as _client
from polars_gemini.service.sync import run_sync
from polars_gemini.tokens.tokenizer import estimate_tokens, exact_tokenizer

if TYPE_CHECKING:
    from google import genai

FrameLike = pl.DataFrame | pl.LazyFrame
ConfigLike = types.GenerateContentConfig | Mapping[str, Any]
PricesLike = PriceTable | Mapping[str, Any] | None


def estimate(
    frame: FrameLike,
    template: str | pl.Expr,
    *,
    model: str,
    schema: SchemaLike | None = None,
    system_instruction: str | None = None,
    config: ConfigLike | None = None,
    prices: PricesLike = None,
    expected_output_tokens: int | None = None,
    thinking_tokens: int | None = None,
    calibrate: int = 0,
    client: genai.Client | None = None,
    check_model: bool = True,
) -> Estimate:
    """Tokens and USD for running `template` over `frame` at batch price, before anything is sent.

    `calibrate=N` sends N sample requests synchronously (billed at standard price) and uses their real usage to
    correct the input estimate and measure answer and thinking tokens.

    >>> polars_gemini.estimate(df, "Classify: {review}", model="gemini-2.5-flash")  # doctest: +SKIP
    """
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    spec = build_spec(
        model, schema=schema, system_instruction=system_instruction, config=config, check_model=check_model
    )
    prompt, _ = prompt_exprs(template, df.collect_schema())
    requests = df.select(prompt.alias(PROMPT)).drop_nulls().unique(maintain_order=True)
    table = as_price_table(prices)
    kwargs: dict[str, Any] = {"expected_output_tokens": expected_output_tokens, "thinking_tokens": thinking_tokens}
    exact = exact_tokenizer(spec.model)
    if exact is not None:  # one call per distinct prompt: only when the SDK's exact tokenizer is available offline
        counts = [exact.count_tokens(p).total_tokens or 0 for p in requests.get_column(PROMPT).to_list()]
        kwargs |= {"prompt_tokens": pl.Series(counts), "method": "exact (google-genai LocalTokenizer)"}
    if calibrate:
        kwargs |= _calibrate(requests, spec, calibrate, client or _client.client_from_env(), kwargs)
    return estimate_requests(requests, df.height, spec, table, **kwargs)


def _calibrate(
    requests: pl.DataFrame, spec: RequestSpec, n: int, client: genai.Client, given: dict[str, Any]
) -> dict[str, Any]:
    """Measure usage on `n` sample requests: the input scale, mean answer tokens and mean thinking tokens."""
    if n < 0:
        raise ConfigurationError(f"calibrate must be a number of sample rows >= 0, got {n}.")
    sample = requests.sample(min(n, requests.height), seed=0) if requests.height > n else requests
    sample = sample.with_columns(request_keys(sample.get_column(PROMPT), spec).alias(KEY))
    plan = Plan(spec, sample.select(KEY), sample, ())
    usage = parse_lines(run_sync(plan, client, max_concurrency=4, progress=False)).filter(pl.col("usage").is_not_null())
    if usage.is_empty():
        raise ConfigurationError("Calibration got no usable answer from the sample requests; see their errors.")
    u = pl.col("usage").struct
    measured = (
        usage.join(sample, on=KEY)
        .select(
            (u.field("promptTokenCount").sum() / estimate_tokens(pl.col(PROMPT)).sum()).alias("scale"),
            u.field("candidatesTokenCount").fill_null(0).mean().alias("answer"),
            u.field("thoughtsTokenCount").fill_null(0).mean().alias("thinking"),
        )
        .row(0, named=True)
    )
    return {
        "input_scale": float(measured["scale"]) if given.get("prompt_tokens") is None else 1.0,
        "expected_output_tokens": given["expected_output_tokens"] or round(measured["answer"]),
        "thinking_tokens": given["thinking_tokens"]
        if given["thinking_tokens"] is not None
        else round(measured["thinking"]),
        "method": f"calibrated on {usage.height} sample requests (usageMetadata)",
    }


def input_tokens(
    frame: FrameLike,
    template: str | pl.Expr,
    *,
    model: str,
    schema: SchemaLike | None = None,
    system_instruction: str | None = None,
    config: ConfigLike | None = None,
    check_model: bool = True,
) -> pl.Series:
    """Estimated input tokens of each row's request, as a column (`input_tokens`; null where a row is not sent).

    >>> df.with_columns(polars_gemini.input_tokens(df, "Rate: {review}", model="gemini-2.5-flash"))  # doctest: +SKIP
    """
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    spec = build_spec(
        model, schema=schema, system_instruction=system_instruction, config=config, check_model=check_model
    )
    return per_row_input_tokens(df, template, spec)
