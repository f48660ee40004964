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

# The two corpora the shipped model was fitted on, texts with their exact Gemini token counts (sha256 of each in
# src/polars_gemini/data/tokenizer_model.json). Part of the repository, so a fresh clone runs every test below.
# Calibration: 4,124 texts (English, Python, German, Spanish, Russian, Chinese). Scripts: 17,770 gettext messages
# and source-code chunks in 52 languages of 9 scripts (tests/data/token-scripts.README.md says how it was built).
CALIBRATION = Path(__file__).parents[1] / "data" / "token-calibration.jsonl"
SCRIPTS = Path(__file__).parents[1] / "data" / "token-scripts.jsonl"
MODEL_FILE = Path(tok.__file__).parents[1] / "data" / "tokenizer_model.json"

# (max |corpus-total error| %, max p95 absolute relative error %) on the held-out half, for what
# `estimate_tokens` returns on a column of at most MAX_ENCODED texts: the cl100k model. Measured (2026-12-01,
# fitted on both corpora): ALL +0.0%/12.5, en -1.6/10.5, py_code +0.2/8.6, py_docstrings +1.0/12.5,
# de +1.3/12.5, es -0.8/18.2, ru +0.3/16.0, zh -1.9/16.0 (with a cl100k term for Han: ALL +0.0/11.8; before the
# scripts corpus, 2026-11-25: ALL +0.2/10.3, en -0.9/9.8, py_docstrings +0.6/9.7, zh +1.4/16.3). 40-70 short
# held-out texts per non-English language, where one token is 5-15%, so their p95 misses the 15% target (p95
# for texts of >= 20 tokens: 12.5, 13.2, 16.0, 16.0).
BOUNDS = {
    "ALL": (1.5, 12.5),
    "en": (2.0, 12.0),
    "py_code": (2.0, 10.0),
    "py_docstrings": (2.0, 13.5),
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


@pytest.mark.parametrize("path", [CALIBRATION, SCRIPTS], ids=lambda p: p.name)
def test_corpus_files_are_the_ones_the_model_was_fitted_on(path: Path) -> None:
    corpora = json.loads(MODEL_FILE.read_text(encoding="utf-8"))["training_corpora"]
    recorded = {Path(c["name"]).name: c for c in corpora}[path.name]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == recorded["sha256"]
    assert pl.read_ndjson(path).height == recorded["texts"]


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
    assert _errors(held_out)["p95_ge20"] <= 11.0  # measured 10.2 (9.7 with a cl100k term for Han, 9.1 before)


def test_shipped_error_figures_are_the_measured_ones(held_out: pl.DataFrame) -> None:
    model, name = tok.fitted_model(), CALIBRATION.name
    shipped, shipped_cl100k = model["held_out_error"][name], model["cl100k_model"]["held_out_error"][name]
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


# The scripts corpus, held out: whole languages the fit never saw (cs da fi hu ro hr lt et gl eu; sr be mk mn; fa ps;
# ne mai; zh_TW zh_HK; Perl, SQL) and, in the other languages, messages whose English msgid hashes even (Greek,
# Japanese and Korean have one language each on Debian: they are measured on unseen messages only). Texts are
# short UI messages (median 12 tokens, so one token is ~8%): per-text p95 is 10-45%, far above prose's.
# (max |corpus-total error| %, max p95 %) per script, on the small-column path. Measured (2026-12-01):
# latin -2.8%/21.4, cyrillic -6.7/28.6, greek -0.7/26.3, arabic +2.2/33.3, devanagari -8.2/40.0, han +1.9/41.7,
# kana +0.7/33.3, hangul -1.2/25.0, code -0.4/10.3 (with a cl100k term for Han and zero-width joiners counted as
# punctuation: latin -2.2, arabic +2.7, han +7.0; fitted on the calibration file alone: latin -1.4/22.2,
# cyrillic -9.8, greek -29.8, arabic -37.6, devanagari -14.0, han +9.4, kana +27.1/100, hangul +11.4, code -1.5).
# The +-3% target is missed for Cyrillic and Devanagari: their unseen languages are tokenized more (Belarusian,
# Macedonian, Mongolian, Serbian; Nepali, Maithili) than the fitted ones (Ukrainian, Russian; Hindi), and no count
# of characters, marks, word lengths or cl100k tokens tried could tell them apart; Persian is tokenized less.
SCRIPT_BOUNDS = {
    "latin": (3.0, 24.0),
    "cyrillic": (7.5, 32.0),
    "greek": (3.0, 30.0),
    "arabic": (3.0, 37.0),
    "devanagari": (9.0, 44.0),
    "han": (3.0, 44.0),
    "kana": (3.0, 36.0),
    "hangul": (3.0, 28.0),
    "code": (3.0, 12.0),
}
# The large-column path (character-class model times the factor the cl100k model measures on the column), each
# language's held-out texts as one column: the same totals within ~0.4 points, per-text p95 up to ~12 points higher.
# Measured: latin -2.9/33.3, cyrillic -7.0/33.3, greek -0.6/30.0, arabic +2.0/37.5, devanagari -7.8/40.0,
# han +2.2/37.5, kana +0.7/33.3, hangul -1.4/27.3, code -0.4/15.0.
LARGE_SCRIPT_P95 = {
    "latin": 36.0,
    "cyrillic": 36.0,
    "greek": 33.0,
    "arabic": 44.0,
    "devanagari": 44.0,
    "han": 41.0,
    "kana": 36.0,
    "hangul": 30.0,
    "code": 18.0,
}
# Unseen languages alone, small-column path, max |corpus-total error| %. Measured: latin -3.4 (per language
# -9.9 eu .. +1.8 cs), cyrillic -9.0 (mk -11.9, mn -10.7, be -9.8, sr -5.0), arabic +6.9 (fa +12.1, ps -0.9),
# devanagari -14.4 (mai -17.3, ne -11.4), han +0.4 (zh_TW +3.0, zh_HK -4.7), code +1.4 (Perl +3.0, SQL -0.4).
# Before (cl100k term for Han, joiners as punctuation): latin -2.7, cyrillic -9.4, arabic +9.0 (fa +16.1),
# devanagari -14.2, han +11.3 (zh_TW +11.5, zh_HK +11.0), code +1.7.
UNSEEN_BOUNDS = {"latin": 3.5, "cyrillic": 10.0, "arabic": 8.0, "devanagari": 16.0, "han": 3.0, "code": 3.0}


@pytest.fixture(scope="module")
def scripts_held_out() -> pl.DataFrame:
    """Held-out texts of the scripts corpus with `est` (small-column path) and `est_large` (one column per language)."""
    frame = pl.read_ndjson(SCRIPTS)
    fitted = frame.filter(pl.col("split") == "fit")["lang"].unique().implode()
    held = frame.filter(pl.col("split") == "held_out").with_columns(unseen=~pl.col("lang").is_in(fitted))
    held = held.with_columns(est=tok.estimate_series(held["text"]))
    columns = held.group_by("lang", maintain_order=True)
    return pl.concat(
        [part.with_columns(est_large=tok.estimate_series(part["text"], max_encoded=0)) for _, part in columns]
    )


@pytest.mark.parametrize(("script", "bounds"), SCRIPT_BOUNDS.items())
def test_held_out_accuracy_per_script(scripts_held_out: pl.DataFrame, script: str, bounds: tuple[float, float]) -> None:
    errors = _errors(scripts_held_out.filter(pl.col("script") == script))
    assert abs(errors["total"]) <= bounds[0], errors
    assert errors["p95"] <= bounds[1], errors


@pytest.mark.parametrize(("script", "p95"), LARGE_SCRIPT_P95.items())
def test_held_out_accuracy_per_script_on_the_large_column_path(
    scripts_held_out: pl.DataFrame, script: str, p95: float
) -> None:
    rows = scripts_held_out.filter(pl.col("script") == script)
    errors = _errors(rows.with_columns(est="est_large"))
    assert abs(errors["total"]) <= SCRIPT_BOUNDS[script][0], errors
    assert abs(errors["total"] - _errors(rows)["total"]) <= 1.0, errors
    assert errors["p95"] <= p95, errors


@pytest.mark.parametrize(("script", "bound"), UNSEEN_BOUNDS.items())
def test_languages_the_fit_never_saw(scripts_held_out: pl.DataFrame, script: str, bound: float) -> None:
    unseen = scripts_held_out.filter(pl.col("unseen") & (pl.col("script") == script))
    assert unseen["lang"].n_unique() >= 2
    assert abs(_errors(unseen)["total"]) <= bound


def test_every_script_family_holds_out_whole_languages(scripts_held_out: pl.DataFrame) -> None:
    unseen = scripts_held_out.filter("unseen").group_by("script").agg(pl.col("lang").unique().sort())
    families = dict(zip(unseen["script"], unseen["lang"].to_list(), strict=True))
    assert families == {
        "latin": ["cs", "da", "et", "eu", "fi", "gl", "hr", "hu", "lt", "ro"],
        "cyrillic": ["be", "mk", "mn", "sr"],
        "arabic": ["fa", "ps"],
        "devanagari": ["mai", "ne"],
        "han": ["zh_HK", "zh_TW"],  # kana (Japanese) and Hangul (Korean) are the same CJK family
        "code": ["perl", "sql"],
    }


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
    names = [Path(c["name"]).name for c in model["training_corpora"]]
    assert model["as_of"] and names == [CALIBRATION.name, SCRIPTS.name]
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


def test_scripts_without_any_data_get_plausible_counts() -> None:
    # Neither corpus has Hebrew, Thai, Georgian, Tamil or emoji: only sanity bounds (chars per token between 0.5
    # and 6) for the classes they borrow.
    texts = {
        "he": "בבוקר העיר מתעוררת לאט, והאופים פותחים את דלתותיהם לפני עלות השחר.",
        "th": "ในตอนเช้า เมืองค่อยๆ ตื่นขึ้น และคนทำขนมปังก็เปิดร้านก่อนรุ่งสาง",
        "ka": "დილით ქალაქი ნელა იღვიძებს და მცხობლები კარებს გათენებამდე აღებენ.",
        "ta": "காலையில் நகரம் மெதுவாக விழிக்கிறது, ரொட்டி கடைகள் விடியும் முன் திறக்கின்றன.",
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
