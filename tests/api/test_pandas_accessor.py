"""`pdf.gemini` (`api.pandas_accessor`): the operations of `df.gemini` on pandas frames, through the real SDK against
the emulator."""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import polars_gemini
from polars_gemini import ConfigurationError, Estimate, Run
from polars_gemini.api.pandas_accessor import GeminiPandas
from polars_gemini.emulator import Emulator
from testing_support import FAST

METHODS = ["batch", "submit", "estimate", "input_tokens", "sink_parquet", "embed", "submit_embed", "estimate_embed"]


def reviews() -> pd.DataFrame:
    return pd.DataFrame({"review": ["great", "awful", "great"], "n": [1, 2, 3]}, index=["a", "b", "c"])


def test_registered_on_import_and_stateless() -> None:
    given = reviews()
    assert isinstance(given.gemini, GeminiPandas)
    assert given.gemini._frame is given  # holds the frame it was reached from, nothing else
    assert vars(given.gemini) == {"_frame": given}


@pytest.mark.parametrize("name", METHODS)
def test_every_method_has_the_full_signature_of_its_function(name: str) -> None:
    """No **kwargs; the same options, defaults and order as `polars_gemini.<name>` (the frame aside)."""
    method = inspect.signature(getattr(GeminiPandas, name)).parameters
    function = inspect.signature(getattr(polars_gemini, name)).parameters
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in method.values())
    assert [(p.name, p.default) for p in list(method.values())[1:]] == [
        (p.name, p.default) for p in function.values() if p.name != "frame"
    ]


def test_batch_and_submit(emu: Emulator) -> None:
    given = reviews()
    out = given.gemini.batch("Rate: {review}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    assert isinstance(out, pd.DataFrame) and out.index.equals(given.index)
    pd.testing.assert_frame_equal(out[["review", "n"]], given)
    assert out["response"].tolist() == ["echo: Rate: great", "echo: Rate: awful", "echo: Rate: great"]
    with pytest.warns(polars_gemini.GeminiBatchWarning, match="Re-attached"):  # the same work: nothing paid twice
        run = given.gemini.submit("Rate: {review}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    assert isinstance(run, Run) and emu.calls("batches.create") == 1
    pd.testing.assert_frame_equal(polars_gemini.to_native(run.result(), like=given), out)


def test_estimate_and_input_tokens() -> None:
    given = reviews()
    est = given.gemini.estimate("Rate: {review}", model="gemini-2.5-flash", tokenizer="offline")
    assert isinstance(est, Estimate) and (est.rows, est.requests) == (3, 2)
    assert est == pl.from_pandas(given).gemini.estimate("Rate: {review}", model="gemini-2.5-flash",
                                                        tokenizer="offline")  # fmt: skip
    tokens = given.gemini.input_tokens("Rate: {review}", model="gemini-2.5-flash", tokenizer="offline")
    assert tokens.index.equals(given.index) and tokens.dtype == pd.Int64Dtype() and tokens.iloc[0] == tokens.iloc[2]


def test_embeddings_and_sink(emu: Emulator, tmp_path: Path) -> None:
    given = reviews()
    out = given.gemini.embed("review", output_dimensionality=8, client=emu.client(), **FAST)
    assert out.index.equals(given.index) and out["embedding"].list.len().tolist() == [8, 8, 8]
    run = given.gemini.submit_embed("review", output_dimensionality=8, client=emu.client(), reuse_jobs=False, **FAST)
    assert run.result().get_column("embedding").to_list()[1] == list(out["embedding"].iloc[1])
    assert given.gemini.estimate_embed("review", tokenizer="offline").requests == 2
    report = given.gemini.sink_parquet(tmp_path / "o.parquet", "Rate: {review}", model="gemini-2.5-flash",
                                       client=emu.client(), **FAST)  # fmt: skip
    assert (report.rows, report.failed) == (3, 0)
    assert pl.read_parquet(tmp_path / "o.parquet").get_column("n").to_list() == [1, 2, 3]


def test_a_bad_frame_is_refused_before_anything_is_sent(emu: Emulator) -> None:
    bad = pd.DataFrame({"review": ["x"], 3: ["y"]})
    with pytest.raises(ConfigurationError, match="not strings"):
        bad.gemini.batch("{review}", model="gemini-2.5-flash", client=emu.client())
    assert emu.requests == []
