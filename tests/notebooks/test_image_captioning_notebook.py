"""The image-captioning notebook's code still runs (offline, against the emulator) and its outputs are stripped."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "image_captioning.ipynb"


def test_image_captioning_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)  # the notebook starts the emulator only without a key
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in cells)
    namespace: dict[str, object] = {}
    for cell in cells:
        exec(compile("".join(cell["source"]), str(NOTEBOOK), "exec"), namespace)
    out = namespace["out"]
    assert isinstance(out, pl.DataFrame)
    assert out.height == 300 and out["response_error"].null_count() == 300
    assert out.schema["dominant_colour"] == pl.Enum(["red", "green", "blue", "yellow", "purple", "grey"])
    assert out.schema["has_text"] == pl.Boolean
    est = namespace["est"]
    assert est.media_tokens > 0 and est.requests < est.rows  # type: ignore[attr-defined]
    # A renamed copy carries the same image, so it gets its original's answer.
    copy, original = out.filter(pl.col("image_id").is_in([10, 5])).sort("image_id", descending=True)["caption"]
    assert copy == original and copy.startswith("[media ")
