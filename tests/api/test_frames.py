"""Frames other than Polars at the edges (`api.frames`): pandas, PyArrow and DuckDB in, the same kind out, through the
real SDK against the emulator."""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import duckdb
import narwhals as nw
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import polars_gemini
from polars_gemini import ConfigurationError, RunTimeoutError
from polars_gemini.api import frames
from polars_gemini.emulator import EmulatedError, Emulator, ResponderRequest, responses
from testing_support import FAST

DEFAULT_STR = pd.Series(["x"]).dtype  # pandas' own default string dtype: `str` on pandas 3, object before
LABELS = ["pos", "neg", "neutral"]
SCHEMA = {
    "label": pl.Enum(LABELS),
    "score": pl.Float64,
    "stars": pl.Int64,
    "ok": pl.Boolean,
    "tags": pl.List(pl.String),
    "main": pl.Struct({"name": pl.String, "size": pl.Int64}),
}


def reviews_pd() -> pd.DataFrame:
    """A pandas frame as users have them: a non-default, repeated index and pandas' own dtypes."""
    return pd.DataFrame(
        {
            "review": ["great", "awful", None, "great", "FAIL"],
            "n": pd.array([1, None, 3, 4, 5], dtype="Int64"),
            "kind": pd.Categorical(["a", "b", "a", "b", "a"]),
            "when": pd.to_datetime(["2024-01-01"] * 5),
            "raw": [1.5, np.nan, 2.0, 3.0, 4.0],
        },
        index=pd.Index([10, 20, 10, 30, 40], name="row"),
    )


def failing(request: ResponderRequest) -> dict[str, Any]:
    if "FAIL" in request.text:
        raise EmulatedError(500, "backend exploded", "INTERNAL")
    if "Extract" in request.text:
        value = {"label": "pos" if "great" in request.text else "neg", "score": 0.5, "stars": 4, "ok": True,
                 "tags": ["t1"], "main": {"name": "m", "size": 2}}  # fmt: skip
        return responses.json_value(value)(request)
    return responses.text("echo: " + request.text)(request)


def assert_carried(out: pd.DataFrame, given: pd.DataFrame) -> None:
    """The caller's index and columns come back as they were: same values, same dtypes."""
    assert out.index.equals(given.index) and out.index.name == given.index.name
    pd.testing.assert_frame_equal(out[list(given.columns)], given)


def test_pandas_text_mode_keeps_index_dtypes_and_failed_rows(emu: Emulator) -> None:
    emu.settings.responder = failing
    given = reviews_pd()
    before = given.copy()
    out = polars_gemini.batch(given, "Rate: {review}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    assert isinstance(out, pd.DataFrame)
    assert out.columns.tolist() == [*given.columns, "response", "response_error"]
    assert_carried(out, given)
    pd.testing.assert_frame_equal(given, before)  # the caller's frame is not changed
    assert out["response"].dtype == DEFAULT_STR and out["response_error"].dtype == DEFAULT_STR
    assert out["response"].tolist()[:2] == ["echo: Rate: great", "echo: Rate: awful"]
    assert out["response"].isna().tolist() == [False, False, True, False, True]  # the null cell, the failed row
    errors = out["response_error"]
    assert errors.iloc[2] == "not sent: column 'review' is null in this row"
    assert "backend exploded" in errors.iloc[4] and errors.iloc[[0, 1, 3]].isna().all()


def test_pandas_schema_mode_dtypes_do_not_depend_on_the_data(emu: Emulator) -> None:
    emu.settings.responder = failing
    given = reviews_pd()
    out = polars_gemini.batch(given, "Extract: {review}", model="gemini-2.5-flash", schema=SCHEMA,
                              client=emu.client(), **FAST)  # fmt: skip
    assert_carried(out, given)
    label = out["label"]
    assert isinstance(label.dtype, pd.CategoricalDtype)
    assert label.cat.categories.tolist() == LABELS and label.dtype.ordered  # the Enum's categories, in its order
    assert label.tolist()[:2] == ["pos", "neg"] and label.isna().tolist() == [False, False, True, False, True]
    assert (out["score"].dtype, out["stars"].dtype, out["ok"].dtype) == (pd.Float64Dtype(), pd.Int64Dtype(),
                                                                         pd.BooleanDtype())  # fmt: skip
    assert out["stars"].tolist()[0] == 4 and out["stars"].isna().sum() == 2  # nulls as <NA>, ints stay ints
    assert out["tags"].dtype == pd.ArrowDtype(pa.large_list(pa.large_string()))
    assert out["main"].dtype == pd.ArrowDtype(pa.struct({"name": pa.large_string(), "size": pa.int64()}))
    assert out["main"].struct.field("size").tolist()[:2] == [2, 2] and out["main"].isna().sum() == 2
    assert out["tags"].list[0].tolist()[:2] == ["t1", "t1"]
    # A run without failures has the same dtypes: they come from the schema, never from the data.
    clean = polars_gemini.batch(given.iloc[:2], "Extract: {review}", model="gemini-2.5-flash", schema=SCHEMA,
                                client=emu.client(), **FAST)  # fmt: skip
    assert clean.dtypes.equals(out.dtypes)


def test_pyarrow_table_in_table_out(emu: Emulator) -> None:
    given = pa.table({"review": ["great", "awful"], "n": pa.array([1, 2], pa.int32())}, metadata={"source": "x"})
    out = polars_gemini.batch(given, "Rate: {review}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    assert isinstance(out, pa.Table)
    assert out.select(given.column_names).equals(given)  # the caller's columns and types, as they were
    assert out.schema.metadata == {b"source": b"x"}
    assert out.column("response").to_pylist() == ["echo: Rate: great", "echo: Rate: awful"]
    with pytest.warns(polars_gemini.GeminiBatchWarning, match="Re-attached"):  # the same work: its job is found
        reader = polars_gemini.batch(given.to_reader(), "Rate: {review}", model="gemini-2.5-flash",
                                     client=emu.client(), **FAST)  # fmt: skip
    assert isinstance(reader, pa.Table) and reader.equals(out)


def test_duckdb_relation_in_relation_out_on_the_same_connection(emu: Emulator) -> None:
    con = duckdb.connect()
    given = con.sql("select * from (values (1, 'great'), (2, 'awful')) t(id, review)")
    out = polars_gemini.batch(given, "Rate: {review}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    assert isinstance(out, duckdb.DuckDBPyRelation)
    assert out.columns == ["id", "review", "response", "response_error"]
    assert out.order("id").fetchall() == [(1, "great", "echo: Rate: great", None), (2, "awful", "echo: Rate: awful",
                                                                                   None)]  # fmt: skip
    joined = given.set_alias("g").join(out.set_alias("o"), "g.id = o.id").select("g.id, o.response").order("1")
    assert joined.fetchall() == [(1, "echo: Rate: great"), (2, "echo: Rate: awful")]  # one connection: they join
    tokens = polars_gemini.input_tokens(given, "Rate: {review}", model="gemini-2.5-flash", tokenizer="offline")
    assert isinstance(tokens, duckdb.DuckDBPyRelation) and tokens.columns == ["input_tokens"]


def test_duckdb_without_replacement_scans_still_gets_its_answers(emu: Emulator) -> None:
    con = duckdb.connect()
    con.execute("SET python_enable_replacements = false")
    given = con.sql("select 'great' as review")
    out = polars_gemini.batch(given, "Rate: {review}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    assert out.fetchall() == [("great", "echo: Rate: great", None)]


def test_estimate_and_input_tokens_on_pandas_equal_polars() -> None:
    given = reviews_pd()
    same = pl.from_pandas(given)
    opts: dict[str, Any] = {"model": "gemini-2.5-flash", "tokenizer": "offline", "schema": SCHEMA}
    assert polars_gemini.estimate(given, "Extract: {review}", **opts) == polars_gemini.estimate(
        same, "Extract: {review}", **opts)  # fmt: skip
    tokens = polars_gemini.input_tokens(given, "Extract: {review}", **opts)
    assert isinstance(tokens, pd.Series) and tokens.index.equals(given.index) and tokens.dtype == pd.Int64Dtype()
    expected = polars_gemini.input_tokens(same, "Extract: {review}", **opts)
    assert tokens.tolist() == [pd.NA if v is None else v for v in expected.to_list()]
    arrow = polars_gemini.input_tokens(pa.Table.from_pandas(given, preserve_index=False), "Extract: {review}", **opts)
    assert isinstance(arrow, pa.ChunkedArray) and arrow.to_pylist() == expected.to_list()
    embed = polars_gemini.estimate_embed(given, "review", tokenizer="offline")
    assert embed == polars_gemini.estimate_embed(same, "review", tokenizer="offline")


def test_checkpoint_and_resume_with_a_pandas_frame(emu: Emulator, tmp_path: Path) -> None:
    emu.settings.pending_seconds = 0.5
    given = reviews_pd().iloc[:2]
    opts: dict[str, Any] = {"model": "gemini-2.5-flash", "client": emu.client(), "checkpoint": tmp_path / "ck", **FAST}
    with pytest.raises(RunTimeoutError):
        polars_gemini.batch(given, "Rate: {review}", timeout=0.05, **opts)
    out = polars_gemini.batch(given, "Rate: {review}", **opts)  # re-attaches to the job: nothing paid twice
    assert emu.calls("batches.create") == 1
    assert_carried(out, given)
    assert out["response"].tolist() == ["echo: Rate: great", "echo: Rate: awful"]
    resumed = polars_gemini.resume(tmp_path / "ck", client=emu.client()).result()
    assert isinstance(resumed, pl.DataFrame)  # a Run's result is Polars; to_native gives the caller's kind
    pd.testing.assert_frame_equal(polars_gemini.to_native(resumed, like=given), out)


def test_submit_returns_a_run_and_to_native_converts_its_result(emu: Emulator) -> None:
    given = reviews_pd().iloc[:2]
    run = polars_gemini.submit(given, "Rate: {review}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    result = run.result()
    assert isinstance(result, pl.DataFrame) and result.columns[:2] == ["review", "n"]
    out = polars_gemini.to_native(result, like=given)
    assert_carried(out, given) and out["response"].dtype == DEFAULT_STR
    with pytest.raises(ConfigurationError, match="missing"):
        polars_gemini.to_native(result.drop("n"), like=given)


def test_embed_and_sink_parquet_with_pandas(emu: Emulator, tmp_path: Path) -> None:
    given = pd.DataFrame({"text": ["a red apple", "the stock market fell"]}, index=["x", "y"])
    out = polars_gemini.embed(given, "text", output_dimensionality=8, client=emu.client(), **FAST)
    assert_carried(out, given)
    assert out["embedding"].dtype == pd.ArrowDtype(pa.list_(pa.float32(), 8))
    vectors = np.stack(out["embedding"].to_numpy())  # how a pandas user gets the matrix
    assert vectors.shape == (2, 8) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    report = polars_gemini.sink_parquet(given, tmp_path / "o.parquet", "Rate: {text}", model="gemini-2.5-flash",
                                        client=emu.client(), **FAST)  # fmt: skip
    assert report.rows == 2
    written = pl.read_parquet(tmp_path / "o.parquet")
    assert written.get_column("response").to_list() == ["echo: Rate: a red apple", "echo: Rate: the stock market fell"]


def test_a_narwhals_frame_comes_back_as_one() -> None:
    given = nw.from_native(reviews_pd().iloc[:2], eager_only=True)
    with Emulator() as emu:
        out = polars_gemini.batch(given, "Rate: {review}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    assert isinstance(out, nw.DataFrame) and out.implementation.is_pandas()
    assert out.columns == ["review", "n", "kind", "when", "raw", "response", "response_error"]


def test_polars_frames_pass_through_untouched() -> None:
    df = pl.DataFrame({"a": [1]})
    assert frames.at_door(df).frame is df and frames.frame_out(frames.at_door(df), df) is df


BAD = [
    ([{"review": "x"}], "got a list"),
    ({"review": ["x"]}, r"got a dict.*pl\.DataFrame\(your_dict\)"),
    (object(), "got a object"),
    (pd.Series(["x"], name="review"), r"pandas\.Series.*to_frame"),
    (pd.DataFrame({0: ["x"], "review": ["y"]}), r"not strings: \[0\].*df\.columns\.map\(str\)"),
    (pd.DataFrame([["x", "y"]], columns=["review", "review"]), r"duplicate column names: \['review'\]"),
    (pd.DataFrame([["x"]], columns=pd.MultiIndex.from_tuples([("review", "a")])), "MultiIndex columns.*Flatten"),
]


@pytest.mark.parametrize(("frame", "message"), BAD, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize(
    "call",
    [
        lambda f, c: polars_gemini.batch(f, "{review}", model="gemini-2.5-flash", client=c),
        lambda f, c: polars_gemini.submit(f, "{review}", model="gemini-2.5-flash", client=c),
        lambda f, c: polars_gemini.estimate(f, "{review}", model="gemini-2.5-flash"),
        lambda f, c: polars_gemini.input_tokens(f, "{review}", model="gemini-2.5-flash"),
        lambda f, c: polars_gemini.sink_parquet(f, "o.parquet", "{review}", model="gemini-2.5-flash", client=c),
        lambda f, c: polars_gemini.embed(f, "review", client=c),
        lambda f, c: polars_gemini.submit_embed(f, "review", client=c),
        lambda f, c: polars_gemini.estimate_embed(f, "review"),
    ],
    ids=["batch", "submit", "estimate", "input_tokens", "sink_parquet", "embed", "submit_embed", "estimate_embed"],
)
def test_bad_frames_are_refused_before_anything_is_sent(emu: Emulator, call: Any, frame: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        call(frame, emu.client())
    assert emu.requests == []


def test_the_docstring_examples_run() -> None:
    from polars_gemini.api import pandas_accessor

    for module in (frames, pandas_accessor):
        result = doctest.testmod(module, extraglobs={"pl": pl, "polars_gemini": polars_gemini}, verbose=False)
        assert result.failed == 0 and result.attempted >= 3, module.__name__
