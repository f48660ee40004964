"""Exact Gemini text token counts with the Gemma 3 SentencePiece model that Gemini 2.x/3.x count text with.

Where the model comes from (`tokenizer=`):

* `"auto"` (default): google-genai's own copy when its loader has it cached (the SDK downloads it once from a pinned
  URL and checks its sha256), else the offline estimator (`tokens.tokenizer`). Never a download.
* `"exact"`: google-genai's copy, downloaded through the SDK's loader if it is not cached; a clear error if that fails.
* `"offline"`: the offline estimator, always.
* a path to a SentencePiece model file: loaded with sentencepiece, and its identity checked by encoding strings whose
  Gemma 3 ids are published.

sentencepiece is an optional dependency (`pip install "polars-gemini[exact]"`). It encodes about 45,000 texts of ~100
words a second on two cores, so a column of more than `EXACT_MAX` texts is counted exactly on a sample and the fast
estimator is scaled by the factor the sample measures (corpus totals stay within about 1% of exact).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from polars_gemini.core.errors import ConfigurationError
from polars_gemini.core.models import normalize_model
from polars_gemini.tokens.tokenizer import fast_linear

TokenizerLike = str | os.PathLike[str]
EXACT_MAX = 200_000  # texts counted one by one; above, a sample of SAMPLE texts sets the fast model's factor
SAMPLE = 20_000
# Published Gemma 3 ids (Hugging Face's tokenizer, keras-hub presets, llama.cpp): a model file must reproduce them.
_KNOWN_IDS = {"Hello, world!": [9259, 236764, 1902, 236888], "The quick brown fox": [818, 3823, 8864, 37423]}


@dataclass(frozen=True)
class ExactTokenizer:
    """A SentencePiece processor counting Gemini text tokens, and where it came from (for the `Estimate`)."""

    processor: Any  # sentencepiece.SentencePieceProcessor
    source: str

    def count(self, texts: list[str]) -> list[int]:
        """Exact token counts of `texts` (no BOS/EOS, as the API counts a text part)."""
        ids = self.processor.encode(texts, num_threads=os.cpu_count() or 1)
        # One length per text: sentencepiece hands back a list of ids per text; the encoding itself ran in C++.
        return [len(one) for one in ids]

    def count_series(self, texts: pl.Series) -> pl.Series:
        """Token counts of a String column (null stays null): exact, or sampled-exact above `EXACT_MAX` texts."""
        values = texts.cast(pl.String)
        present = values.drop_nulls()
        if present.len() > EXACT_MAX:
            return self._sampled(values)
        out = pl.Series(texts.name, [None] * values.len(), dtype=pl.Int64)
        return out.scatter(values.is_not_null().arg_true(), self.count(present.to_list()))

    def _sampled(self, values: pl.Series) -> pl.Series:
        fast = fast_linear(values)
        present = values.drop_nulls()
        sample = present.sample(min(SAMPLE, present.len()), seed=0)
        measured = sum(self.count(sample.to_list()))
        modelled = float(fast_linear(sample).sum() or 1.0)
        scaled = (fast * (measured / modelled)).round().cast(pl.Int64)
        frame = pl.DataFrame({"t": values, "n": scaled})
        return frame.select(
            pl.when(pl.col("t") == "").then(0).otherwise(pl.col("n").clip(lower_bound=1)).alias(values.name)
        ).to_series()


def load_tokenizer(tokenizer: TokenizerLike, model: str) -> ExactTokenizer | None:
    """The exact tokenizer `tokenizer=` asks for (see the module docstring), or None for the offline estimator."""
    if isinstance(tokenizer, os.PathLike) or (isinstance(tokenizer, str) and tokenizer not in _MODES):
        return _from_file(Path(tokenizer))
    if tokenizer == "offline":
        return None
    processor = _from_sdk(normalize_model(model), download=tokenizer == "exact")
    return None if processor is None else ExactTokenizer(processor, "exact (Gemma 3 tokenizer via google-genai)")


_MODES = ("auto", "exact", "offline")


def _sentencepiece() -> Any:
    try:
        import sentencepiece
    except ImportError:
        raise ConfigurationError(
            'Exact token counts need sentencepiece: pip install "polars-gemini[exact]", or pass tokenizer="offline".'
        ) from None
    return sentencepiece


def _from_file(path: Path) -> ExactTokenizer:
    if not path.is_file():
        raise ConfigurationError(
            f"tokenizer={str(path)!r} is neither 'auto', 'exact', 'offline' nor a SentencePiece model file."
        )
    try:
        processor = _sentencepiece().SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as exc:
        raise ConfigurationError(f"{path} is not a SentencePiece model file ({exc}).") from None
    got = dict(zip(_KNOWN_IDS, processor.encode(list(_KNOWN_IDS)), strict=True))
    if got != _KNOWN_IDS:
        raise ConfigurationError(
            f"{path} is not the Gemma 3 tokenizer Gemini counts with: it encodes {got}, the published ids are "
            f"{_KNOWN_IDS}. Pass tokenizer='exact' to use google-genai's copy."
        )
    return ExactTokenizer(processor, f"exact (Gemma 3 tokenizer from {path.name})")


def _from_sdk(model: str, *, download: bool) -> Any:
    """google-genai's own SentencePiece processor for `model`: from the SDK's cache, or (`download`) fetched by it."""
    from polars_gemini.tokens.tokenizer import exact_tokenizer

    if not download and exact_tokenizer(model) is None:  # not cached: "auto" never downloads
        return None
    _sentencepiece()
    try:
        from google.genai import _local_tokenizer_loader as loader

        return loader.get_sentencepiece(loader.get_tokenizer_name(model))
    except Exception as exc:  # the SDK's loader raises ValueError, OSError, urllib errors ...: all mean "not here"
        raise ConfigurationError(
            f"google-genai could not load the tokenizer for {model} ({type(exc).__name__}: {str(exc)[:200]}). "
            "Without network, pass the path of a copy of the Gemma 3 SentencePiece model as tokenizer=, or "
            "tokenizer='offline' for the estimator."
        ) from None
