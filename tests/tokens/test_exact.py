"""Exact token counts with the Gemma 3 SentencePiece model (a rebuilt copy in tests/data: see its README)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini import ConfigurationError
from polars_gemini.tokens import exact
from polars_gemini.tokens.exact import load_tokenizer

DATA = Path(__file__).parents[1] / "data"
MODEL = DATA / "gemma3.spiece.model"


@pytest.fixture(scope="module")
def corpus() -> pl.DataFrame:
    """4,124 real texts (English, Python docstrings and code, German, Spanish, Russian, Chinese) with the counts the
    Gemini API reported for them."""
    return pl.read_ndjson(DATA / "token-calibration.jsonl")


def test_exact_counts_equal_the_api_on_a_mixed_corpus(corpus: pl.DataFrame) -> None:
    tok = load_tokenizer(MODEL, "gemini-2.5-flash")
    assert tok is not None and "gemma3.spiece.model" in tok.source
    counts = tok.count_series(corpus.get_column("text"))
    assert (counts == corpus.get_column("gemini_tokens")).all()


def test_large_columns_are_counted_on_a_sample_within_one_percent(
    corpus: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above EXACT_MAX texts, an exact sample scales the fast model: each corpus total within 1% of the truth."""
    monkeypatch.setattr(exact, "EXACT_MAX", 100)
    monkeypatch.setattr(exact, "SAMPLE", 300)
    tok = load_tokenizer(MODEL, "gemini-2.5-flash")
    assert tok is not None
    for (name,), group in corpus.group_by("corpus"):
        total = int(tok.count_series(group.get_column("text")).sum())
        truth = int(group.get_column("gemini_tokens").sum())
        assert abs(total / truth - 1) < 0.01, (name, total, truth)


def test_nulls_and_empty_texts() -> None:
    tok = load_tokenizer(MODEL, "gemini-2.5-flash")
    assert tok is not None
    got = tok.count_series(pl.Series("t", ["Hello, world!", None, "", "The quick brown fox"]))
    assert got.to_list() == [4, None, 0, 4]


@pytest.mark.parametrize("content", [b"not a model", b""])
def test_a_file_that_is_not_the_gemma_tokenizer_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "other.model"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=r"SentencePiece model|Gemma 3"):
        load_tokenizer(path, "gemini-2.5-flash")


def test_a_missing_path_or_mode_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="neither 'auto', 'exact', 'offline'"):
        load_tokenizer("exakt", "gemini-2.5-flash")


def test_offline_and_auto_without_a_cached_model_use_the_estimator() -> None:
    assert load_tokenizer("offline", "gemini-2.5-flash") is None
    # google-genai's cache holds no model on these machines: "auto" never downloads.
    assert load_tokenizer("auto", "gemini-2.5-flash") is None


def test_estimate_with_the_exact_tokenizer_says_so_and_counts_exactly(corpus: pl.DataFrame) -> None:
    df = corpus.head(200).select("text", "gemini_tokens")
    est = df.gemini.estimate("{text}", model="gemini-2.5-flash", tokenizer=MODEL)
    assert est.method.startswith("exact")
    assert est.input_tokens == int(df.unique("text").get_column("gemini_tokens").sum())
    offline = df.gemini.estimate("{text}", model="gemini-2.5-flash", tokenizer="offline")
    assert offline.method.startswith("offline") and offline.input_tokens != est.input_tokens
    per_row = df.gemini.input_tokens("{text}", model="gemini-2.5-flash", tokenizer=MODEL)
    assert (per_row == df.get_column("gemini_tokens")).all()


def test_batch_budget_uses_the_exact_count(corpus: pl.DataFrame) -> None:
    """The budget guard sees exact counts too (refused before anything is sent: no client is needed)."""
    df = corpus.head(50).select("text")
    with pytest.raises(polars_gemini.BudgetExceededError, match="exact"):
        df.gemini.batch("{text}", model="gemini-2.5-flash", tokenizer=MODEL, max_cost=0.0)
