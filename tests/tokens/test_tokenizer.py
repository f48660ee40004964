"""The offline token estimator: held-out accuracy on real Gemini counts, determinism, and API agreement."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polars_gemini.tokens import tokenizer as tok
from polars_gemini.tokens.tokenizer import count_tokens, estimate_tokens, exact_tokenizer

# 4,124 texts with their exact Gemini token counts: the corpus the shipped model was fitted on (its sha256 is in
# src/polars_gemini/data/tokenizer_model.json). Part of the repository, so a fresh clone runs every test below.
CALIBRATION = Path(__file__).parents[1] / "data" / "token-calibration.jsonl"
MODEL_FILE = Path(tok.__file__).parents[1] / "data" / "tokenizer_model.json"

# (max |corpus-total error| %, max p95 absolute relative error %) on the held-out half, for what
# `estimate_tokens` returns on a column of at most MAX_ENCODED texts: the cl100k model. Measured (2026-11-25):
# ALL +0.2%/10.3, en -0.9/9.8, py_code +0.3/8.0, py_docstrings +0.6/9.7, de +1.7/12.5, es +1.8/16.7,
# ru -1.5/15.8, zh +1.4/16.3. The p95 of Spanish, Russian and Chinese misses the 15% target: 45-70 short
# held-out texts per language, where one token is 5-15% (p95 for texts of >= 20 tokens: 12.1, 15.0, 15.5).
BOUNDS = {
    "ALL": (1.5, 12.0),
    "en": (2.0, 12.0),
    "py_code": (2.0, 10.0),
    "py_docstrings": (2.0, 12.0),
    "de": (3.0, 15.0),
    "es": (3.0, 20.0),
    "ru": (3.0, 18.0),
    "zh": (3.0, 18.0),
}


@pytest.fixture(scope="module")
def held_out() -> pl.DataFrame:
    if not CALIBRATION.is_file():
        pytest.fail(f"calibration file {CALIBRATION} is missing: it is part of the repository (git checkout it)")
    frame = pl.read_ndjson(CALIBRATION)
    keep = pl.Series([hashlib.sha256(t.encode()).digest()[0] % 2 == 0 for t in frame["text"]])
    label = pl.when(pl.col("corpus") == "fortunes_en").then(pl.lit("en")).otherwise(pl.col("corpus"))
    label = pl.when(pl.col("corpus") == "fortunes_multilingual").then(pl.col("group")).otherwise(label)
    frame = frame.filter(keep).with_columns(label=label)
    return frame.with_columns(est=estimate_tokens(pl.col("text")))


def test_calibration_file_is_the_corpus_the_model_was_fitted_on() -> None:
    recorded = json.loads(MODEL_FILE.read_text(encoding="utf-8"))["training_corpus"]
    assert hashlib.sha256(CALIBRATION.read_bytes()).hexdigest() == recorded["sha256"]
    assert pl.read_ndjson(CALIBRATION).height == recorded["texts"]


def _errors(frame: pl.DataFrame) -> dict[str, float]:
    rel = ((pl.col("est") - pl.col("gemini_tokens")) / pl.col("gemini_tokens")).abs() * 100
    row = frame.select(
        total=(pl.col("est").sum() / pl.col("gemini_tokens").sum() - 1) * 100,
        p95=rel.quantile(0.95),
        p95_ge20=rel.filter(pl.col("gemini_tokens") >= 20).quantile(0.95),
    )
    return row.to_dicts()[0]


@pytest.mark.parametrize(("group", "bounds"), BOUNDS.items())
def test_held_out_accuracy(held_out: pl.DataFrame, group: str, bounds: tuple[float, float]) -> None:
    rows = held_out if group == "ALL" else held_out.filter(pl.col("label") == group)
    errors = _errors(rows)
    assert abs(errors["total"]) <= bounds[0], errors
    assert errors["p95"] <= bounds[1], errors


def test_texts_of_twenty_tokens_or_more_are_within_eleven_percent(held_out: pl.DataFrame) -> None:
    assert _errors(held_out)["p95_ge20"] <= 11.0  # measured 9.1


def test_shipped_error_figures_are_the_measured_ones(held_out: pl.DataFrame) -> None:
    model = tok.fitted_model()
    shipped, shipped_cl100k = model["held_out_error"], model["cl100k_model"]["held_out_error"]
    assert shipped["ALL"]["n"] == shipped_cl100k["ALL"]["n"] == held_out.height
    assert shipped_cl100k["ALL"]["total_error_pct"] == pytest.approx(_errors(held_out)["total"], abs=0.01)
    fast = held_out.with_columns(est=tok._tokens(held_out["text"], tok.fast_linear(held_out["text"])))
    assert shipped["ALL"]["total_error_pct"] == pytest.approx(_errors(fast)["total"], abs=0.01)


@pytest.mark.parametrize("group", [None, "en", "py_code", "py_docstrings", "de", "es", "ru", "zh"])
def test_large_column_path_tracks_the_cl100k_model_on_corpus_totals(held_out: pl.DataFrame, group: str | None) -> None:
    # A mixed column (all groups, tiled and shuffled) and single-language columns, through the large-column path
    # with a small sample (every k-th text) so that the sampled factor, not the whole column, sets the total.
    rows = held_out if group is None else held_out.filter(pl.col("label") == group)
    if group is None:
        rows = rows.sample(n=6_000, with_replacement=True, seed=7)
    texts = rows["text"]
    small = tok.estimate_series(texts).sum()
    large = tok.estimate_series(texts, max_encoded=0, sample_size=max(20, texts.len() // 10)).sum()
    assert large == pytest.approx(small, rel=0.03 if group is None else 0.05)
    assert tok.estimate_series(texts, max_encoded=0, sample_size=50).equals(
        tok.estimate_series(texts, max_encoded=0, sample_size=50)
    )


def test_large_column_factor_is_one_per_column_and_clamped() -> None:
    texts = pl.Series(["Hello, world! " * 3, "Привет, мир! " * 3, "你好，世界！" * 3, None, ""] * 3)
    fast = tok.fast_linear(texts)
    factor = tok.column_factor(texts, fast, sample_size=4)
    assert tok.FACTOR_RANGE[0] <= factor <= tok.FACTOR_RANGE[1]
    expected = tok._tokens(texts, fast * factor).to_list()
    assert tok.estimate_series(texts, max_encoded=0, sample_size=4).to_list() == expected
    assert expected[3:5] == [None, 0]


def test_a_column_above_the_threshold_gives_the_same_numbers_eagerly_lazily_and_as_a_list() -> None:
    words = ["alpha", "beta", "gamma", "Привет", "世界", "x = f(1)", "delta,", "epsilon."]
    texts = [" ".join(words[(i + j * 3) % len(words)] for j in range(1 + i % 7)) for i in range(tok.MAX_ENCODED + 5)]
    df = pl.DataFrame({"t": texts})
    eager = df.select(estimate_tokens(pl.col("t")))["t"].to_list()
    assert df.lazy().select(estimate_tokens(pl.col("t"))).collect()["t"].to_list() == eager
    assert count_tokens(texts) == eager


def test_shipped_fit_says_when_and_on_what_it_was_fitted() -> None:
    model = tok.fitted_model()
    assert model["as_of"] and model["training_corpus"]["name"].endswith("token-calibration.jsonl")
    assert all(c >= 0 for c in model["coefficients"].values())


def test_empty_is_zero_and_null_is_null() -> None:
    assert count_tokens(["", "a", " "]) == [0, 1, 1]
    out = pl.DataFrame({"t": ["", None, "Hello, world!"]}).select(estimate_tokens(pl.col("t")))
    assert out["t"].to_list()[:2] == [0, None]
    assert count_tokens([]) == []


def test_count_tokens_and_expression_agree(held_out: pl.DataFrame) -> None:
    assert count_tokens(held_out["text"].to_list()) == held_out["est"].to_list()


def test_estimate_of_a_text_does_not_depend_on_its_neighbours(held_out: pl.DataFrame) -> None:
    texts = held_out["text"].head(300).to_list()
    alone = [count_tokens([t])[0] for t in texts[:50]]
    assert count_tokens(texts[::-1])[::-1][:50] == alone
    assert count_tokens(texts) == count_tokens(texts)


def test_computed_input_lazy_and_grouped_contexts_give_the_same_numbers() -> None:
    df = pl.DataFrame(
        {"t": ["Hello, world!", "Привет, мир!", "你好，世界！", "x = f(1)\n    return x"], "g": [1, 1, 2, 2]}
    )
    expected = count_tokens([t.upper() for t in df["t"]])
    upper = estimate_tokens(pl.col("t").str.to_uppercase())
    assert df.select(upper.alias("n"))["n"].to_list() == expected
    assert df.lazy().select(upper.alias("n")).collect()["n"].to_list() == expected
    grouped = df.group_by("g", maintain_order=True).agg(estimate_tokens(pl.col("t")).sum())
    assert grouped["t"].to_list() == [
        sum(count_tokens(df["t"][:2].to_list())),
        sum(count_tokens(df["t"][2:].to_list())),
    ]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=8))
def test_estimates_are_deterministic_integers_at_least_one_for_non_empty_text(texts: list[str]) -> None:
    counts = count_tokens(texts)
    assert counts == count_tokens(texts)
    assert all((n == 0) if t == "" else (isinstance(n, int) and n >= 1) for t, n in zip(texts, counts, strict=True))


def test_scripts_without_calibration_data_get_plausible_counts() -> None:
    # No ground truth: only sanity bounds (chars per token between 0.5 and 6) for the assumed class mapping.
    texts = {
        "fr": "Le matin, la ville se réveille lentement et l'odeur du pain chaud se répand dans les rues.",
        "ja": "朝になると、町はゆっくりと目を覚まします。パン屋は夜明け前に店を開けます。",
        "ko": "아침이 되면 도시는 천천히 깨어납니다. 빵집은 해가 뜨기 전에 문을 엽니다.",
        "ar": "في الصباح تستيقظ المدينة ببطء ويفتح الخبازون أبوابهم قبل الفجر.",
        "hi": "सुबह होते ही शहर धीरे-धीरे जागता है और बेकरी वाले अपनी दुकानें खोल देते हैं।",
        "emoji": "Great job 🎉🎉 see you soon 👋",
    }
    for lang, text in texts.items():
        n = count_tokens([text])[0]
        assert 0.5 <= len(text) / n <= 6, (lang, n)


def test_exact_tokenizer_is_none_without_a_cached_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # an empty SDK cache directory
    assert exact_tokenizer("gemini-2.5-flash") is None
    assert exact_tokenizer("models/no-such-model") is None


def test_cache_detection_checks_the_sdk_path_and_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    url, content = "https://example.invalid/tokenizer.model", b"model bytes"
    cache_dir = tmp_path / "vertexai_tokenizer_model"
    cache_dir.mkdir()
    (cache_dir / hashlib.sha1(url.encode()).hexdigest()).write_bytes(content)
    assert tok._is_cached(url, hashlib.sha256(content).hexdigest())
    assert not tok._is_cached(url, hashlib.sha256(b"other").hexdigest())
    assert not tok._is_cached("https://example.invalid/other.model", hashlib.sha256(content).hexdigest())
