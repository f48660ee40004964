"""Gemini prices as dated data: the shipped table (`data/prices.json`), inspectable and overridable.

Every number is USD per 1,000,000 tokens. The table carries its `as_of` date and `source`; entries that are
derived or assumed rather than read off the pricing page say so (`batch_source`, `cached_source`).

    >>> table = load_prices()
    >>> table.get("models/gemini-2.5-flash").batch.input
    0.15
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

from polars_gemini.core.errors import ConfigurationError, ModelError
from polars_gemini.core.models import normalize_model

__all__ = ["ModelPrice", "PriceTable", "Rates", "as_price_table", "load_prices"]

BATCH_DISCOUNT = 0.5  # "Batch Mode ... at 50% of the standard cost" (pricing page)


@dataclass(frozen=True)
class Rates:
    """USD per 1M tokens in one billing mode (standard or batch) and one prompt-size tier.

    `audio_input` is None where the table has no separate audio rate: audio is then priced as text input.
    """

    input: float
    output: float
    cached_input: float
    audio_input: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str) -> Rates:
        missing = {"input", "output"} - set(data)
        if missing:
            msg = f"price for {where} lacks {sorted(missing)} (USD per 1M tokens); got keys {sorted(data)}"
            raise ConfigurationError(msg)
        audio = data.get("audio_input")
        cached = data.get("cached_input", data["input"])  # no discount unless one is stated
        values = {name: _usd_rate(data[name] if name != "cached_input" else cached, f"{where}.{name}")
                  for name in ("input", "output", "cached_input")}  # fmt: skip
        return cls(**values, audio_input=None if audio is None else _usd_rate(audio, f"{where}.audio_input"))

    def scaled(self, factor: float) -> Rates:
        audio = None if self.audio_input is None else self.audio_input * factor
        return Rates(self.input * factor, self.output * factor, self.cached_input * factor, audio)


def _usd_rate(value: Any, where: str) -> float:
    """A price as a finite number >= 0 (USD per 1M tokens), or a `ConfigurationError` saying which one is wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(
            f"price {where} must be a finite number >= 0 (USD per 1M tokens), got {value!r}. "
            'Example: prices={"gemini-2.5-flash": {"input": 0.30, "output": 2.50}}.'
        )
    return float(value)


@dataclass(frozen=True)
class ModelPrice:
    """What one model costs: standard and batch rates, plus the long-context tier where the model has one.

    The long-context rates apply to every token of a request whose prompt exceeds `long_context_above`.
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

    def rates(self, *, batch: bool, long_context: bool = False) -> Rates:
        """The rates for one request: `long_context` is whether its prompt is above `long_context_above`."""
        long = self.batch_long if batch else self.standard_long
        if long_context and long is not None:
            return long
        return self.batch if batch else self.standard

    @classmethod
    def from_dict(cls, model: str, data: Mapping[str, Any]) -> ModelPrice:
        """From the JSON shape of `prices.json`, or the short form `{"input": .., "output": ..}`.

        In the short form batch rates default to 50% of standard and cached input to the full input rate.
        """
        if "standard" not in data:
            data = {"standard": data, **({"batch": data["batch"]} if "batch" in data else {})}
        standard = Rates.from_dict(data["standard"], where=f"{model!r} (standard)")
        batch = Rates.from_dict(data["batch"], where=f"{model!r} (batch)") if "batch" in data else None
        long = data.get("long_context")
        return cls(
            model=model,
            standard=standard,
            batch=batch or standard.scaled(BATCH_DISCOUNT),
            long_context_above=None if long is None else int(long["above_prompt_tokens"]),
            standard_long=None if long is None else Rates.from_dict(long["standard"], where=f"{model!r} (long)"),
            batch_long=None if long is None else Rates.from_dict(long["batch"], where=f"{model!r} (batch, long)"),
            source=data.get("source", ""),
            batch_source=data.get("batch_source", "" if batch else "derived: 50% of standard"),
            cached_source=data.get("cached_source", ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape `from_dict` reads back."""
        out: dict[str, Any] = {"standard": _rates_dict(self.standard), "batch": _rates_dict(self.batch)}
        if self.long_context_above is not None and self.standard_long and self.batch_long:
            out["long_context"] = {
                "above_prompt_tokens": self.long_context_above,
                "standard": _rates_dict(self.standard_long),
                "batch": _rates_dict(self.batch_long),
            }
        notes = {"source": self.source, "batch_source": self.batch_source, "cached_source": self.cached_source}
        return out | {key: value for key, value in notes.items() if value}


def _rates_dict(rates: Rates) -> dict[str, float]:
    return {key: value for key, value in asdict(rates).items() if value is not None}


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name, with the date and source they were read from.

    >>> "gemini-2.5-pro" in load_prices().models
    True
    """

    as_of: str
    source: str
    models: Mapping[str, ModelPrice] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", MappingProxyType(dict(self.models)))

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
            normalize_model(name): p if isinstance(p, ModelPrice) else ModelPrice.from_dict(normalize_model(name), p)
            for name, p in prices.items()
        }
        source = f"{self.source}; overridden by the caller for {', '.join(new)}" if new else self.source
        return PriceTable(self.as_of, source, {**self.models, **new})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        """From the shape of `prices.json`: `{"as_of", "source", "models": {name: price}}`."""
        models = {
            normalize_model(name): ModelPrice.from_dict(normalize_model(name), p) for name, p in data["models"].items()
        }
        return cls(str(data.get("as_of", "unknown")), str(data.get("source", "supplied by the caller")), models)

    def to_dict(self) -> dict[str, Any]:
        models = {name: price.to_dict() for name, price in self.models.items()}
        return {"as_of": self.as_of, "source": self.source, "models": models}


@cache
def load_prices() -> PriceTable:
    """The price table shipped with the library (see its `as_of` and `source`)."""
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
