"""The embeddings notebook's code still runs (offline, against the emulator) and finds what it claims to find."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "embeddings.ipynb"


def frame(namespace: dict[str, object], name: str) -> pl.DataFrame:
    value = namespace[name]
    assert isinstance(value, pl.DataFrame), name
    return value


def test_embeddings_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)  # the notebook starts the emulator only without a key
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in cells)
    assert "Emulator" in "".join(cells[0]["source"])  # the first cell is the one that starts it
    namespace: dict[str, object] = {}
    for cell in cells:
        exec(compile("".join(cell["source"]), str(NOTEBOOK), "exec"), namespace)
    products, emb, docs = (frame(namespace, name) for name in ("products", "emb", "docs"))
    for out in (emb, docs):  # every row once, in order, with its vector and no error
        assert out.schema["embedding"] == pl.Array(pl.Float32, 768)
        assert out.select("product_id", "description").equals(products)
        assert out["embedding_error"].null_count() == out.height == 3_000
        assert out["embedding"].null_count() == 0
    norms = emb.select((pl.col("embedding") * pl.col("embedding")).arr.sum().sqrt()).to_series()
    assert norms.min() > 0.9999 and norms.max() < 1.0001  # type: ignore[operator]
    est = namespace["est"]
    assert est.requests == est.rows == 3_000 and est.input_tokens > 0  # type: ignore[attr-defined]
    assert "actual" in str(namespace["run"].cost())  # type: ignore[attr-defined]

    planted, pairs, candidates = (frame(namespace, name) for name in ("planted", "pairs", "candidates"))
    assert planted.height == 300 and candidates.height < 100_000  # far fewer than the 4.5M pairs
    found = pairs.join(planted, on=["a", "b"], how="semi").height
    assert found / planted.height >= 0.9  # recall of the planted pairs
    assert found / pairs.height >= 0.9  # precision
    assert (pairs["a"] < pairs["b"]).all() and not pairs.select("a", "b").is_duplicated().any()

    top = frame(namespace, "neighbours").group_by("query", maintain_order=True).first()
    assert top.height == 3
    for query, description in top.select("query", "description").iter_rows():
        kind = {"backpack", "mug", "wallet"} & set(query.split())
        assert len(kind) == 1 and kind.pop() in description.lower(), (query, description)
