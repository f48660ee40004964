"""The quick-start notebook's code still runs (offline, against the emulator)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # its checkpoint goes to runs/ under the working directory
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    namespace: dict[str, object] = {}
    for cell in cells:
        exec(compile("".join(cell["source"]), str(NOTEBOOK), "exec"), namespace)
    out = namespace["out"]
    assert out.height == 1_000 and out["response_error"].null_count() == 1_000  # type: ignore[attr-defined]
    assert (tmp_path / "runs" / "quickstart" / "manifest.json").exists()
