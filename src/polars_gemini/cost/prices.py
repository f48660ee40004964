"""Gemini prices as dated data: the shipped table (`data/prices.json`), inspectable and overridable.

Every number is USD per 1,000,000 tokens (cache storage: per 1,000,000 tokens per hour). A model has rates per
service tier: `standard` and `batch` always, `flex` and `priority` where a rate is known, each with its >200k-prompt
variant where the model has that tier. Every set of rates carries the date it was read (`as_of`) and where from
(`source`: a key of the table's `sources`, or a note such as "derived: 50% of standard").

    >>> table = load_prices()
    >>> table.get("models/gemini-2.5-flash").batch.input
    0.15
    >>> table.require("gemini-2.5-flash").tier_rates("priority").input
    0.54
    >>> table.override({"my-model": {"input": 1.0, "output": 2.0}}).get("my-model").batch.output
    1.0
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import polars as pl

from polars_gemini.core.errors import ConfigurationError, ModelError
from polars_gemini.core.models import normalize_model

__all__ = ["SERVICE_TIERS", "ModelPrice", "PriceTable", "Rates", "as_price_table", "load_prices"]

BATCH_DISCOUNT = 0.5  # "Batch API usage is priced at 50% of the standard interactive API cost" (batch docs)
DERIVED_BATCH = "derived: 50% of standard"
_DERIVED_BATCH_RATES = f"{DERIVED_BATCH}; cached input as standard (batch-docs)"
SERVICE_TIERS = ("standard", "batch", "flex", "priority")
_NUMBERS = ("input", "output", "cached_input", "audio_input", "cached_audio_input", "cache_storage")
_PROVENANCE = ("as_of", "source")
_MODEL_KEYS = {*SERVICE_TIERS, "long_context", *_PROVENANCE, "batch_source", "cached_source"}
_EXAMPLE = 'Example: prices={"gemini-2.5-flash": {"input": 0.30, "output": 2.50, "flex": {"input": 0.15, ...}}}.'


@dataclass(frozen=True)
class Rates:
    """USD per 1M tokens in one service tier (standard, batch, flex, priority) and one prompt-size tier.

    `audio_input` / `cached_audio_input` are None where no separate audio rate is known: audio is then priced as text.
    `cache_storage` is the explicit-cache storage price per 1M tokens per hour (None where not published).
    `as_of` and `source` say when and where these rates were read.
    """

    input: float
    output: float
    cached_input: float
    audio_input: float | None = None
    cached_audio_input: float | None = None
    cache_storage: float | None = None
    as_of: str = ""
    source: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str, as_of: str = "", source: str = "") -> Rates:
        """From `{"input", "output", ...}`; cached input defaults to the input rate (no discount unless stated)."""
        _check_keys(data, {*_NUMBERS, *_PROVENANCE}, where)
        missing = {"input", "output"} - set(data)
        if missing:
            msg = f"price for {where} lacks {sorted(missing)} (USD per 1M tokens); got keys {sorted(data)}. {_EXAMPLE}"
            raise ConfigurationError(msg)
        rate = {name: _usd_rate(data[name], f"{where}.{name}") for name in _NUMBERS if data.get(name) is not None}
        return cls(
            rate["input"], rate["output"], rate.get("cached_input", rate["input"]), rate.get("audio_input"),
            rate.get("cached_audio_input"), rate.get("cache_storage"),
            as_of=str(data.get("as_of", as_of)), source=str(data.get("source", source)),
        )  # fmt: skip

    def scaled(self, factor: float) -> Rates:
        """Every token rate times `factor` (storage and provenance unchanged)."""
        audio, cached_audio = (None if r is None else r * factor for r in (self.audio_input, self.cached_audio_input))
        return Rates(self.input * factor, self.output * factor, self.cached_input * factor, audio, cached_audio,
                     self.cache_storage, self.as_of, self.source)  # fmt: skip


def _check_keys(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = set(data) - known
    if unknown:
        raise ConfigurationError(f"price for {where} has unknown keys {sorted(unknown)}; known: {sorted(known)}")


def _usd_rate(value: Any, where: str) -> float:
    """A price as a finite number >= 0 (USD per 1M tokens), or a `ConfigurationError` saying which one is wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(
            f"price {where} must be a finite number >= 0 (USD per 1M tokens), got {value!r}. {_EXAMPLE}"
        )
    return float(value)


def _derived_batch(standard: Rates) -> Rates:
    """Batch rates where none are given: half of standard, but cache hits as in standard (the batch docs), never above
    the batch input rate."""
    half = standard.scaled(BATCH_DISCOUNT)
    cached_audio = standard.cached_audio_input
    if cached_audio is not None and half.audio_input is not None:
        cached_audio = min(cached_audio, half.audio_input)
    return Rates(half.input, half.output, min(standard.cached_input, half.input), half.audio_input, cached_audio,
                 standard.cache_storage, standard.as_of, _DERIVED_BATCH_RATES)  # fmt: skip


@dataclass(frozen=True)
class ModelPrice:
    """What one model costs per service tier, plus the long-context tier where the model has one.

    The long-context rates apply to every token of a request whose prompt exceeds `long_context_above`.
    `flex` and `priority` (and their long variants) are None where no rate is known.
    """

    model: str
    standard: Rates
    batch: Rates
    long_context_above: int | None = None
    standard_long: Rates | None = None
    batch_long: Rates | None = None
    source: str = ""
    batch_source: str = ""
    cached_source: str = ""
    flex: Rates | None = None
    priority: Rates | None = None
    flex_long: Rates | None = None
    priority_long: Rates | None = None

    def rates(self, *, batch: bool, long_context: bool = False) -> Rates:
        """The rates for one request: `long_context` is whether its prompt is above `long_context_above`."""
        long = self.batch_long if batch else self.standard_long
        if long_context and long is not None:
            return long
        return self.batch if batch else self.standard

    def tier_rates(self, tier: str, *, long_context: bool = False) -> Rates | None:
        """The rates of a service tier (`SERVICE_TIERS`), or None where the table has none for this model.

        >>> load_prices().require("gemini-2.5-pro").tier_rates("priority", long_context=True).output
        27.0
        """
        short, long = self._tier(tier)
        if tier in ("standard", "batch"):
            return self.rates(batch=tier == "batch", long_context=long_context)
        if short is None or not (long_context and self.long_context_above is not None):
            return short
        return long

    @property
    def tiers(self) -> tuple[str, ...]:
        """The service tiers this model has rates for."""
        return tuple(tier for tier in SERVICE_TIERS if self._tier(tier)[0] is not None)

    def _tier(self, tier: str) -> tuple[Rates | None, Rates | None]:
        pairs = {"standard": (self.standard, self.standard_long), "batch": (self.batch, self.batch_long),
                 "flex": (self.flex, self.flex_long), "priority": (self.priority, self.priority_long)}  # fmt: skip
        if tier not in pairs:
            raise ConfigurationError(f"unknown service tier {tier!r}; expected one of {', '.join(SERVICE_TIERS)}")
        return pairs[tier]

    @classmethod
    def from_dict(cls, model: str, data: Mapping[str, Any], *, as_of: str = "", source: str = "") -> ModelPrice:
        """From the JSON shape of `prices.json`, or the short form `{"input": .., "output": .., "flex": {..}}`.

        Batch rates default to 50% of standard (cache hits as standard); `flex` and `priority` are rates dicts of
        the same shape, absent where unknown. `as_of` and `source` are the defaults for rates that name none.
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"price for {model!r} must be a mapping of rates, got {data!r}. {_EXAMPLE}")
        if "standard" not in data:
            rate_keys = {*_NUMBERS, *_PROVENANCE}
            data = {"standard": {k: v for k, v in data.items() if k in rate_keys}} | {
                k: v for k, v in data.items() if k not in rate_keys or k in _PROVENANCE
            }
        _check_keys(data, _MODEL_KEYS, repr(model))
        as_of, source = str(data.get("as_of", as_of)), str(data.get("source", source))
        tiers = _tiers(model, data, as_of, source, "")
        long = data.get("long_context")
        above, long_tiers = (None, {}) if long is None else _long_tiers(model, long, as_of, source)
        return cls(
            model=model, standard=tiers["standard"], batch=tiers["batch"], long_context_above=above,
            standard_long=long_tiers.get("standard"), batch_long=long_tiers.get("batch"), source=source,
            batch_source=str(data.get("batch_source", "" if "batch" in data else DERIVED_BATCH)),
            cached_source=str(data.get("cached_source", "")), flex=tiers.get("flex"), priority=tiers.get("priority"),
            flex_long=long_tiers.get("flex"), priority_long=long_tiers.get("priority"),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape `from_dict` reads back."""
        out: dict[str, Any] = {tier: _rates_dict(rates) for tier in self.tiers if (rates := self._tier(tier)[0])}
        if self.long_context_above is not None:
            long = {tier: _rates_dict(rates) for tier in self.tiers if (rates := self._tier(tier)[1])}
            out["long_context"] = {"above_prompt_tokens": self.long_context_above, **long}
        notes = {"source": self.source, "batch_source": self.batch_source, "cached_source": self.cached_source}
        return out | {key: value for key, value in notes.items() if value}


def _tiers(model: str, data: Mapping[str, Any], as_of: str, source: str, long: str) -> dict[str, Rates]:
    """The rates of every tier given in `data`, batch derived from standard when absent."""
    if "standard" not in data:
        raise ConfigurationError(f"price for {model!r}{long} lacks 'standard' rates. {_EXAMPLE}")
    where = {tier: f"{model!r} ({tier}{long})" for tier in SERVICE_TIERS}
    tiers = {tier: Rates.from_dict(_mapping(data[tier], where[tier]), where=where[tier], as_of=as_of, source=source)
             for tier in SERVICE_TIERS if data.get(tier) is not None}  # fmt: skip
    return {"batch": _derived_batch(tiers["standard"])} | tiers


def _long_tiers(model: str, long: Any, as_of: str, source: str) -> tuple[int, dict[str, Rates]]:
    where = f"{model!r} (long_context)"
    long = _mapping(long, where)
    _check_keys(long, {"above_prompt_tokens", *SERVICE_TIERS}, where)
    above = long.get("above_prompt_tokens")
    if isinstance(above, bool) or not isinstance(above, int) or above <= 0:
        raise ConfigurationError(f"{where}.above_prompt_tokens must be a whole number > 0, got {above!r}")
    return above, _tiers(model, long, as_of, source, ", long context")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"price for {where} must be a mapping, got {value!r}. {_EXAMPLE}")
    return value


def _rates_dict(rates: Rates) -> dict[str, Any]:
    return {key: value for key, value in asdict(rates).items() if value is not None and value != ""}


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name, with the date and source they were read from (`sources`: citations by key).

    >>> "gemini-2.5-pro" in load_prices().models
    True
    """

    as_of: str
    source: str
    models: Mapping[str, ModelPrice] = field(hash=False)
    sources: Mapping[str, str] = field(default_factory=dict, hash=False)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", MappingProxyType(dict(self.models)))
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))
        object.__setattr__(self, "notes", tuple(self.notes))

    def get(self, model: str) -> ModelPrice | None:
        """The price of `model` ("models/" prefix allowed), or None when the table does not know it."""
        return self.models.get(normalize_model(model))

    def require(self, model: str) -> ModelPrice:
        """Like `get`, but an unknown model raises `ModelError` saying how to supply its price."""
        price = self.get(model)
        if price is None:
            example = f"{{{normalize_model(model)!r}: {{'input': ..., 'output': ...}}}}"
            msg = (
                f"no price for model {model!r} in the price table of {self.as_of} (known: {', '.join(self.models)}). "
                f"Hint: pass prices={example} (USD per 1M tokens)."
            )
            raise ModelError(msg)
        return price

    def override(self, prices: Mapping[str, ModelPrice | Mapping[str, Any]]) -> PriceTable:
        """A copy with `prices` added or replacing entries (dicts as in `ModelPrice.from_dict`)."""
        new = {
            normalize_model(name): p
            if isinstance(p, ModelPrice)
            else ModelPrice.from_dict(normalize_model(name), p, source="supplied by the caller (prices=)")
            for name, p in prices.items()
        }
        source = f"{self.source}; overridden by the caller for {', '.join(new)}" if new else self.source
        return PriceTable(self.as_of, source, {**self.models, **new}, self.sources, self.notes)

    def rows(self, model: str | None = None) -> list[dict[str, Any]]:
        """One row per model, service tier and prompt-size tier (all models, or `model`, which must be known).

        >>> [(r["tier"], r["prompt"]) for r in load_prices().rows("gemini-2.5-flash")][:2]
        [('standard', 'any'), ('batch', 'any')]
        """
        prices = list(self.models.values()) if model is None else [self.require(model)]
        return [row for price in prices for row in _price_rows(price)]

    def to_frame(self, model: str | None = None) -> pl.DataFrame:
        """`rows` as a DataFrame, to filter and compare in Polars."""
        columns = ["model", "tier", "prompt", *_NUMBERS, *_PROVENANCE]
        schema = {c: pl.Float64 if c in _NUMBERS else pl.String for c in columns}
        return pl.DataFrame(self.rows(model), schema=schema)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        """From the shape of `prices.json`: `{"as_of", "source", "sources", "notes", "models": {name: price}}`."""
        as_of, source = str(data.get("as_of", "unknown")), str(data.get("source", "supplied by the caller"))
        models = {
            normalize_model(name): ModelPrice.from_dict(normalize_model(name), p, as_of=as_of, source=source)
            for name, p in _mapping(data["models"], "the table's models").items()
        }
        return cls(as_of, source, models, dict(data.get("sources", {})), tuple(data.get("notes", ())))

    def to_dict(self) -> dict[str, Any]:
        models = {name: price.to_dict() for name, price in self.models.items()}
        out = {"as_of": self.as_of, "source": self.source, "models": models}
        return out | {"sources": dict(self.sources), "notes": list(self.notes)}


def _price_rows(price: ModelPrice) -> list[dict[str, Any]]:
    above = price.long_context_above
    prompts = [("any", False)] if above is None else [(f"<={above // 1000}k", False), (f">{above // 1000}k", True)]
    rows = []
    for long_context in (False, True)[: len(prompts)]:
        for tier in price.tiers:
            rates = price.tier_rates(tier, long_context=long_context)
            if rates is not None:
                row = asdict(rates)
                rows.append({"model": price.model, "tier": tier, "prompt": prompts[long_context][0], **row})
    return rows


@cache
def load_prices() -> PriceTable:
    """The price table shipped with the library (see its `as_of`, `sources` and `notes`)."""
    text = (resources.files("polars_gemini") / "data" / "prices.json").read_text("utf-8")
    return PriceTable.from_dict(json.loads(text))


def as_price_table(prices: PriceTable | Mapping[str, Any] | None) -> PriceTable:
    """What a `prices=` argument means: None is the shipped table; a mapping with "models" is a whole table;
    any other mapping overrides single models of the shipped table.

    >>> as_price_table({"gemini-2.5-flash": {"input": 0.5, "output": 3.0}}).get("gemini-2.5-flash").standard.input
    0.5
    """
    if prices is None:
        return load_prices()
    if isinstance(prices, PriceTable):
        return prices
    return PriceTable.from_dict(prices) if "models" in prices else load_prices().override(prices)
