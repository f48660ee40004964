"""Charts with what users actually hand them: the token column `input_tokens` gives for a pandas, Arrow or DuckDB
input, counts no tokenizer gives (negative, past Int64), an empty column, and the estimate of a run resumed from a
checkpoint written before estimates kept their cost parts."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import polars_gemini
from polars_gemini import ConfigurationError
from polars_gemini.emulator import Emulator


def bars(chart: object) -> list[dict[str, object]]:
    (rows,) = chart.to_dict()["datasets"].values()  # type: ignore[attr-defined]
    return list(rows)


@pytest.mark.parametrize("kind", ["pandas", "pyarrow", "duckdb"])
def test_the_token_column_of_a_pandas_arrow_or_duckdb_input_is_charted(kind: str) -> None:
    words = ["a b c", "hello there", None, "one two three four five"]
    table = pa.table({"t": words})
    native = {"pandas": lambda: pd.DataFrame({"t": words}), "pyarrow": lambda: table,
              "duckdb": lambda: duckdb.from_arrow(table)}[kind]()  # fmt: skip
    tokens = polars_gemini.input_tokens(native, "{t}", model="gemini-2.5-flash")
    assert not isinstance(tokens, pl.Series)  # a pandas Series, an Arrow ChunkedArray, a relation: as the input was
    expected = polars_gemini.input_tokens(pl.DataFrame({"t": words}), "{t}", model="gemini-2.5-flash")
    chart = polars_gemini.tokens_histogram(tokens)  # type: ignore[arg-type]
    assert bars(chart) == bars(polars_gemini.tokens_histogram(expected))
    assert sum(int(b["rows"]) for b in bars(chart)) == 3  # type: ignore[call-overload]
    assert "1 rows not sent" in chart.to_dict()["title"]["subtitle"]


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (pl.Series([3, -1, 5]), "negative"),
        (pl.Series([1, 2**64 - 1], dtype=pl.UInt64), "more tokens than"),
        (pl.Series([], dtype=pl.Int64), "The column is empty"),
        (pd.Series([1.5, 2.0]), "a Series of Float64"),
        (pl.LazyFrame({"t": [1]}), "got LazyFrame"),
    ],
)
def test_counts_no_tokenizer_gives_are_a_library_error(tokens: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        polars_gemini.tokens_histogram(tokens)  # type: ignore[arg-type]


def test_an_estimate_saved_without_its_parts_says_so(tmp_path: Path) -> None:
    with Emulator(running_seconds=5) as emu:
        df = pl.DataFrame({"t": ["a", "b"]})
        run = df.gemini.submit("Say {t}", model="gemini-2.5-flash", client=emu.client(), checkpoint=tmp_path / "c",
                               progress=False, poll_interval=0.01)  # fmt: skip
        run.close()
        manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
        del manifest["estimate"]["cost_parts"]  # as an older polars-gemini wrote it
        (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
        again = polars_gemini.resume(tmp_path / "c", client=emu.client(), progress=False)
        try:
            est = again.estimate
            assert est is not None and est.cost is not None and est.cost_parts == ()
            assert est.cost_breakdown().is_empty()
            with pytest.raises(ConfigurationError, match="has no cost breakdown") as raised:
                est.plot()
            assert "No price is known" not in str(raised.value) and "estimate(" in str(raised.value)
        finally:
            again.close()
