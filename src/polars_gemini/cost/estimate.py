"""Tokens and dollars before anything is sent: the number a careful person would compute by hand, only faster.

Input tokens per request count everything billed: the rendered prompt, the system instruction and, in schema mode,
the response schema (assumed to be billed as prompt text: its JSON form is counted once per request). Output tokens
are an expected value and an upper bound: the expected answer (a typical JSON instance of the schema, or
`expected_output_tokens` for text), plus thinking (a dated per-model default, or the configured budget), bounded by
`max_output_tokens` (thinking included, as Gemini 2.5+ counts it) or the model's output limit.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import polars as pl
from google.genai import types

from polars_gemini.core.display import Row, html_block, html_fields, text_fields, usd
from polars_gemini.core.errors import ConfigurationError
from polars_gemini.core.models import AS_OF, ModelInfo, model_info
from polars_gemini.cost.arithmetic import cost, cost_expr
from polars_gemini.cost.prices import PriceTable
from polars_gemini.prepare.media import MEDIA_TOKENS, strip_markers
from polars_gemini.prepare.requests import PROMPT, RequestSpec
from polars_gemini.prepare.schema import Field
from polars_gemini.prepare.template import prompt_exprs
from polars_gemini.tokens.exact import ExactTokenizer
from polars_gemini.tokens.tokenizer import count_tokens, estimate_tokens

OFFLINE_METHOD = "offline estimator (tiktoken cl100k and character classes, fitted on real Gemini counts; see README)"

# A text answer's expected length when the caller does not say (about a short paragraph); dated guess, as of 2026-11.
DEFAULT_TEXT_ANSWER_TOKENS = 150
DEFAULT_MAX_OUTPUT_TOKENS = 65_536
INPUT_TOKENS = "input_tokens"


@dataclass(frozen=True)
class Estimate:
    """What a call will cost, before it is sent. Costs are USD, `None` when the model's price is unknown."""

    model: str
    rows: int
    requests: int
    input_tokens: int
    output_tokens: int
    output_tokens_max: int
    thinking_tokens: int
    cost: float | None
    cost_max: float | None
    sync_cost: float | None
    prices_as_of: str
    method: str
    assumptions: tuple[str, ...] = field(default=())
    media_tokens: int = 0  # of `input_tokens`: the media parts' (images, audio, video, documents)
    rows_not_sent: int = 0  # rows that will not be sent (a null cell, or media that cannot be sent)
    over_input_limit: int = 0  # requests longer than the model reads (embedding models cut them silently)
    # The expected cost in parts, USD: (input, output, thinking) at batch price, then the same at standard price;
    # empty when the price is unknown. `cost_breakdown()` gives them as a frame, `plot()` as a chart.
    cost_parts: tuple[float, ...] = field(default=())

    @property
    def price_known(self) -> bool:
        return self.cost is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"price_known": self.price_known}

    def cost_breakdown(self) -> pl.DataFrame:
        """The expected cost by price (`batch`, `standard`) and part (`input`, `output`, `thinking`), in USD: six rows,
        none when the model's price is unknown.

        >>> est.cost_breakdown().filter(price="batch")  # doctest: +SKIP
        """
        from polars_gemini.cost.charts import cost_breakdown

        return cost_breakdown(self)

    def plot(self) -> Any:
        """The expected cost as a chart: a stacked bar (input, output, thinking) at batch and at standard price, an
        `altair.Chart` (needs the `plot` extra: `pip install 'polars-gemini[plot]'`).

        >>> df.gemini.estimate("Classify: {review}", model="gemini-2.5-flash").plot()  # doctest: +SKIP
        """
        from polars_gemini.cost.charts import cost_chart

        return cost_chart(self)

    def _rows(self) -> list[Row]:
        """The estimate as rows of a field table (label, expected, at most), in the order people read it."""
        price = partial(usd, unknown="price unknown")
        rows: list[Row] = [("model", self.model), ("rows", f"{self.rows:,}"),
                           ("requests (distinct)", f"{self.requests:,}")]  # fmt: skip
        if self.rows_not_sent:
            rows.append(("rows not sent", f"{self.rows_not_sent:,}"))
        rows.append(("input tokens", f"{self.input_tokens:,}"))
        if self.media_tokens:
            rows.append(("of which media", f"{self.media_tokens:,}"))
        if self.output_tokens_max:
            rows += [("output tokens", f"{self.output_tokens:,}", f"{self.output_tokens_max:,}"),
                     ("of which thinking", f"{self.thinking_tokens:,}")]  # fmt: skip
        rows.append(("batch cost", price(self.cost), price(self.cost_max)))
        if len(self.cost_parts) == 6:  # (input, output, thinking) at batch price, then at standard price
            parts = zip(("input", "output", "thinking"), self.cost_parts[:3], strict=True)
            rows += [(f"{part} cost", usd(value)) for part, value in parts if part != "thinking" or value]
        rows.append(("standard price", price(self.sync_cost)))
        if self.cost is not None and self.sync_cost:
            saved = self.sync_cost - self.cost
            rows.append(("batch saves", f"{usd(saved)} ({saved / self.sync_cost:.0%})"))
        return [*rows, ("prices as of", self.prices_as_of), ("tokens counted by", self.method)]

    def __repr__(self) -> str:
        notes: list[Row] = [("assumes", note) for note in self.assumptions]
        return f"Estimate(\n{text_fields(self._rows() + notes, _HEADER)}\n)"

    def _repr_html_(self) -> str:
        notes = [f"assumes: {note}" for note in self.assumptions]
        return html_block("polars-gemini estimate", html_fields(self._rows(), _HEADER), notes=notes)


_HEADER = ("expected", "at most")


def input_token_exprs(spec: RequestSpec, exact: ExactTokenizer | None = None) -> tuple[pl.Expr, int]:
    """Per-request input tokens: an expression over the prompt column, and the constant part of every request
    (counted exactly with `exact`, else estimated)."""
    constant = [spec.tail["title"]] if spec.embeds and spec.tail.get("title") else []
    system = spec.tail.get("system_instruction")
    if system:
        constant += [p.get("text", "") for p in system.get("parts", [])]
    schema = spec.tail.get("generation_config", {}).get("response_schema")
    if schema is not None:
        constant.append(json.dumps(schema, separators=(",", ":")))
    if exact is not None:
        per_prompt = pl.col(PROMPT).map_batches(exact.count_series, return_dtype=pl.Int64, is_elementwise=False)
        return per_prompt, sum(exact.count(constant)) if constant else 0
    return estimate_tokens(pl.col(PROMPT)), sum(count_tokens(constant)) if constant else 0


def per_row_input_tokens(
    frame: pl.DataFrame, template: str | pl.Expr, spec: RequestSpec, exact: ExactTokenizer | None = None
) -> pl.Series:
    """Input tokens of each row's request (null where the row would not be sent): exact with `exact`."""
    prompt, _ = prompt_exprs(template, frame.collect_schema())
    per_prompt, constant = input_token_exprs(spec, exact)
    return frame.select(prompt.alias(PROMPT)).select((per_prompt + constant).alias(INPUT_TOKENS)).to_series()


def request_input_tokens(requests: pl.DataFrame, spec: RequestSpec, exact: ExactTokenizer | None = None) -> pl.Series:
    """Input tokens of each distinct request (a frame with `prompt`, and `media_tokens` when prompts hold media:
    the text without its media markers, plus the media's tokens)."""
    per_prompt, constant = input_token_exprs(spec, exact)
    if MEDIA_TOKENS not in requests.columns:
        return requests.select((per_prompt + constant).alias(INPUT_TOKENS)).to_series()
    text = requests.with_columns(strip_markers(pl.col(PROMPT)))
    return text.select((per_prompt + constant + pl.col(MEDIA_TOKENS)).alias(INPUT_TOKENS)).to_series()


def _typical(field: Field) -> Any:
    """A representative answer for `field`, to count the tokens a schema-conforming answer takes."""
    if field.is_struct:
        return {name: _typical(f) for name, f in field.children}
    if field.item is not None:
        return [_typical(field.item)] * 3
    dtype = field.dtype
    if isinstance(dtype, pl.Enum):
        cats = dtype.categories.to_list()
        return max(cats, key=len)
    if isinstance(dtype, pl.Boolean):
        return True
    if dtype.is_integer():
        return 42
    if dtype.is_float():
        return 0.87
    if isinstance(dtype, pl.Date):
        return "2024-05-17"
    if isinstance(dtype, pl.Datetime):
        return "2024-05-17T14:03:00Z"
    return "a short phrase of about six words"


@dataclass(frozen=True)
class OutputGuess:
    answer: int
    thinking: int
    maximum: int
    assumptions: tuple[str, ...]


def output_guess(spec: RequestSpec, expected_output_tokens: int | None, thinking_tokens: int | None) -> OutputGuess:
    """Expected answer and thinking tokens per request, and the per-request upper bound."""
    if spec.embeds:  # an embedding is billed by its input tokens alone
        return OutputGuess(0, 0, 0, ("embeddings: input tokens only (no output is billed)",))
    cfg: types.GenerateContentConfig = spec.config
    info = model_info(spec.model)
    notes: list[str] = []
    if expected_output_tokens is not None:
        answer = expected_output_tokens
    elif spec.field is not None:
        answer = count_tokens([json.dumps(_typical(spec.field))])[0]
        notes.append("answer: a typical JSON instance of the schema")
    else:
        answer = DEFAULT_TEXT_ANSWER_TOKENS
        notes.append(f"answer: {DEFAULT_TEXT_ANSWER_TOKENS} tokens per text answer (pass expected_output_tokens=)")
    thinking = _thinking(cfg, info, thinking_tokens, notes)
    limit = cfg.max_output_tokens or (info.max_output_tokens if info else DEFAULT_MAX_OUTPUT_TOKENS)
    if cfg.max_output_tokens is None:
        notes.append(f"upper bound: the model's output limit of {limit:,} tokens (set max_output_tokens to lower it)")
    answer = min(answer, limit)
    # max_output_tokens bounds answer and thinking together (Gemini 2.5+), so it is the per-request worst case.
    return OutputGuess(answer, min(thinking, max(limit - answer, 0)), limit, tuple(notes))


def _thinking(cfg: types.GenerateContentConfig, info: ModelInfo | None, override: int | None, notes: list[str]) -> int:
    """Expected thinking tokens per request."""
    thinking = cfg.thinking_config
    budget = thinking.thinking_budget if thinking else None
    level = _level(thinking)
    if override is not None:
        return override
    if level is not None and info is not None and info.thinking_levels:
        tokens = info.level_tokens(level)
        if tokens is None:
            known = [lv for lv, _ in info.thinking_levels]
            raise ConfigurationError(f"thinking_level {level!r} is not one of {known}.")
        notes.append(f"thinking: level {level} ~ {tokens:,} tokens per request (a dated guess as of {AS_OF}; "
                     "calibrate=N with calibrate_output=True measures it)")  # fmt: skip
        return tokens
    if info is None or budget == 0 or (not info.thinks_by_default and not budget):
        return 0
    if budget is not None and budget > 0:
        notes.append(
            f"thinking: the model's default of {info.default_thinking_tokens:,}, capped by the budget {budget:,}"
        )
        return min(info.default_thinking_tokens, int(budget))
    notes.append(f"thinking: {info.default_thinking_tokens:,} tokens per request, the model's dated default "
                 "(pass thinking_tokens= or calibrate=N to measure)")  # fmt: skip
    return int(info.default_thinking_tokens)


def _level(thinking: types.ThinkingConfig | None) -> str | None:
    level = thinking.thinking_level if thinking else None
    if level is None or level == types.ThinkingLevel.THINKING_LEVEL_UNSPECIFIED:
        return None
    return str(level.value if isinstance(level, types.ThinkingLevel) else level).lower()


def _thinking_advice(spec: RequestSpec, tokens: pl.DataFrame, price: Any, guess: OutputGuess, expected: float) -> str:
    """When thinking is over half the expected cost: say so, and what the cheapest thinking setting would cost."""
    if not expected or not guess.thinking:
        return ""
    without = _costs(tokens, price, dataclasses.replace(guess, thinking=0))[0]
    share = 1 - without / expected
    if share <= 0.5:
        return ""
    info = model_info(spec.model)
    if info is not None and info.thinking_levels:
        lowest, low_tokens = info.thinking_levels[0]
        cheaper = _costs(tokens, price, dataclasses.replace(guess, thinking=low_tokens))[0]
        setting = f"thinking_level='{lowest}' would cost about {usd(cheaper)}"
    elif info is not None and not info.can_stop_thinking:
        cheaper = _costs(tokens, price, dataclasses.replace(guess, thinking=128))[0]
        setting = f"it cannot stop thinking; thinking_budget=128 (its minimum) would cost about {usd(cheaper)}"
    else:
        setting = f"thinking_budget=0 would cost {usd(without)}"
    return f"thinking is {share:.0%} of the expected cost ({usd(expected)}): {setting}"


def estimate_requests(
    requests: pl.DataFrame,
    rows: int,
    spec: RequestSpec,
    prices: PriceTable,
    *,
    expected_output_tokens: int | None = None,
    thinking_tokens: int | None = None,
    input_scale: float = 1.0,
    prompt_tokens: pl.Series | None = None,
    method: str = OFFLINE_METHOD,
    exact: ExactTokenizer | None = None,
    rows_not_sent: int = 0,
    notes: tuple[str, ...] = (),
) -> Estimate:
    """An `Estimate` for distinct requests (a frame with the `prompt` column, and `media_tokens` when prompts hold
    media; `prompt_tokens` if already counted; with `exact`, every text is counted with the exact tokenizer and
    `method` says so). `notes`: further assumptions to state (the media's)."""
    media = pl.col(MEDIA_TOKENS) if MEDIA_TOKENS in requests.columns else pl.lit(0)
    if MEDIA_TOKENS in requests.columns:
        requests = requests.with_columns(strip_markers(pl.col(PROMPT)))
    per_prompt, constant = input_token_exprs(spec, exact)
    if exact is not None and prompt_tokens is None and method == OFFLINE_METHOD:
        method = exact.source
    if prompt_tokens is not None:
        per_prompt = pl.lit(prompt_tokens)
    tokens = requests.select(
        ((per_prompt * input_scale + constant).round() + media).cast(pl.Int64).alias(INPUT_TOKENS),
        media.cast(pl.Int64).alias(MEDIA_TOKENS),
    )
    guess = output_guess(spec, expected_output_tokens, thinking_tokens)
    over = _over_limit(spec, tokens)
    if over:
        limit = model_info(spec.model).input_token_limit  # type: ignore[union-attr]  # _over_limit checked it
        tokens = tokens.with_columns(pl.col(INPUT_TOKENS).clip(upper_bound=limit))
        notes = (f"{over:,} text(s) exceed the model's {limit:,}-token input limit: the service embeds only their "
                 f"first {limit:,} tokens, silently (counted at the limit; whether the rest is billed is not "
                 "documented)", *notes)  # fmt: skip
    n = requests.height
    out, out_max = n * (guess.answer + guess.thinking), n * guess.maximum
    price = prices.get(spec.model)
    totals: tuple[float | None, ...] = _costs(tokens, price, guess) if price is not None else (None, None, None)
    parts = _cost_parts(tokens, price, guess) if price is not None else ()
    notes = notes + guess.assumptions + (() if price else (f"price unknown for {spec.model}: pass prices=",))
    expected, worst, sync = totals
    advice = _thinking_advice(spec, tokens, price, guess, expected) if price is not None and expected else ""
    notes = (advice, *notes) if advice else notes
    return Estimate(spec.model, rows, n, int(tokens.get_column(INPUT_TOKENS).sum()), out, out_max, n * guess.thinking,
                    expected, worst, sync, prices.as_of, method, notes, int(tokens.get_column(MEDIA_TOKENS).sum()),
                    rows_not_sent, over, parts)  # fmt: skip


def _over_limit(spec: RequestSpec, tokens: pl.DataFrame) -> int:
    """How many embedding requests are longer than the model's input token limit (0 for generation)."""
    info = model_info(spec.model)
    if not spec.embeds or info is None or info.input_token_limit is None:
        return 0
    return int((tokens.get_column(INPUT_TOKENS) > info.input_token_limit).sum())


def _costs(tokens: pl.DataFrame, price: Any, guess: OutputGuess) -> tuple[float, float, float]:
    def total(output: int, batch: bool) -> float:
        usd = tokens.select(cost_expr(price, input_tokens=INPUT_TOKENS, output_tokens=output, batch=batch).sum())
        return float(usd.item() or 0.0)

    expected = guess.answer + guess.thinking
    return total(expected, True), total(guess.maximum, True), total(expected, False)


def _cost_parts(tokens: pl.DataFrame, price: Any, guess: OutputGuess) -> tuple[float, ...]:
    """The expected cost split into input, output (the answer) and thinking, at batch price and at standard price.
    Each request's tier is chosen by its prompt and applies to all of its tokens, so each part is the difference of
    two per-request totals: (input only), (input + answer) - (input only), (input + answer + thinking) - (input +
    answer)."""
    outputs = [(batch, out) for batch in (True, False) for out in (0, guess.answer, guess.answer + guess.thinking)]
    totals = tokens.select(
        cost_expr(price, input_tokens=INPUT_TOKENS, output_tokens=out, batch=batch).sum().alias(str(i))
        for i, (batch, out) in enumerate(outputs)
    ).row(0)
    parts: list[float] = []
    for at in (0, 3):
        bare, answered, thought = (float(v or 0.0) for v in totals[at : at + 3])
        parts += [round(bare, 10), round(answered - bare, 10), round(thought - answered, 10)]
    return tuple(parts)


def actual_cost(usage: pl.DataFrame, price: Any, *, batch: bool) -> float | None:
    """USD billed for result rows with `usageMetadata` (a struct column `usage`), every attempt included."""
    if price is None:
        return None
    u = pl.col("usage").struct
    expr = cost_expr(
        price,
        input_tokens=u.field("promptTokenCount").fill_null(0),
        output_tokens=u.field("candidatesTokenCount").fill_null(0),
        thinking_tokens=u.field("thoughtsTokenCount"),
        cached_tokens=u.field("cachedContentTokenCount"),
        batch=batch,
    )
    return float(usage.select(expr.sum()).item() or 0.0)


def usage_columns(output: str) -> list[pl.Expr]:
    """Per-row usage columns from a `usage` struct column."""
    u = pl.col("usage").struct
    return [
        u.field("promptTokenCount").alias(f"{output}_input_tokens"),
        u.field("candidatesTokenCount").alias(f"{output}_output_tokens"),
        u.field("thoughtsTokenCount").fill_null(0).alias(f"{output}_thinking_tokens"),
        u.field("cachedContentTokenCount").fill_null(0).alias(f"{output}_cached_tokens"),
    ]


__all__ = ["Estimate", "actual_cost", "cost", "estimate_requests", "per_row_input_tokens"]
