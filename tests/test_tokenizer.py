"""The offline token estimator: held-out accuracy on real Gemini counts, determinism, and API agreement."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polars_gemini import _tokenizer as tok
from polars_gemini._tokenizer import count_tokens, estimate_tokens, exact_tokenizer

CALIBRATION = Path(__file__).parents[2] / "shared" / "gemini-api" / "token-calibration.jsonl"

# (max |corpus-total error| %, max p95 absolute relative error %) on the held-out half.
# English prose, docstrings and code meet the ±3% / 15% targets. The small single-language groups do not:
# with no vocabulary, German and Spanish look like English with accents (German totals run 6-10% low), and
# 40-70 short held-out texts per language make the p95 coarse. Even a cl100k-based fit stays above 15% there.
BOUNDS = {
    "ALL": (3.0, 15.0),
    "en": (3.0, 15.0),
    "py_code": (3.0, 15.0),
    "py_docstrings": (3.0, 15.0),
    "de": (8.0, 25.0),
    "es": (5.0, 30.0),
    "ru": (5.0, 25.0),
    "zh": (6.0, 22.0),
}


@pytest.fixture(scope="module")
def held_out() -> pl.DataFrame:
    if not CALIBRATION.exists():
        pytest.skip(f"calibration file not found at {CALIBRATION} (it lives outside the repository)")
    frame = pl.read_ndjson(CALIBRATION)
    keep = pl.Series([hashlib.sha256(t.encode()).digest()[0] % 2 == 0 for t in frame["text"]])
    label = pl.when(pl.col("corpus") == "fortunes_en").then(pl.lit("en")).otherwise(pl.col("corpus"))
    label = pl.when(pl.col("corpus") == "fortunes_multilingual").then(pl.col("group")).otherwise(label)
    frame = frame.filter(keep).with_columns(label=label)
    return frame.with_columns(est=estimate_tokens(pl.col("text")))


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


def test_texts_of_twenty_tokens_or_more_are_within_fifteen_percent(held_out: pl.DataFrame) -> None:
    assert _errors(held_out)["p95_ge20"] <= 15.0


def test_shipped_error_figures_are_the_measured_ones(held_out: pl.DataFrame) -> None:
    shipped = tok.fitted_model()["held_out_error"]
    assert shipped["ALL"]["n"] == held_out.height
    assert shipped["ALL"]["total_error_pct"] == pytest.approx(_errors(held_out)["total"], abs=0.01)


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
