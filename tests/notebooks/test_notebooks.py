"""Every notebook under notebooks/ runs in a real Jupyter kernel, offline against the emulator, and finds what it says.

Each notebook is executed by nbclient with the kernel spec "python3" (this interpreter's ipykernel), in a temporary
working directory, without GEMINI_API_KEY (so its first cell starts the emulator). A cell that raises fails the test.
Then one more cell, run in the same kernel after the notebook's own (it is not part of the committed notebook), prints
the numbers behind the notebook's claims as a JSON line, which the test checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
MARK = "NOTEBOOK-PROBE "
Facts = dict[str, Any]


def execute(name: str, probe: str, workdir: Path) -> Facts:
    """Runs notebook `name` in a fresh kernel in `workdir`, then `probe` (an expression giving a JSON-able dict)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(f"import json as _json\nprint({MARK!r} + _json.dumps({probe}))"))
    client = NotebookClient(nb, timeout=90, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute()
    lines = [line for o in nb.cells[-1].outputs if o.output_type == "stream" for line in o.text.splitlines()]
    found = [line.removeprefix(MARK) for line in lines if line.startswith(MARK)]
    assert len(found) == 1, lines
    facts: Facts = json.loads(found[0])
    facts["_outputs"] = [o for cell in nb.cells[:-1] if cell.cell_type == "code" for o in cell.outputs]
    return facts


def shown(facts: Facts) -> str:
    """Everything the notebook's cells printed or displayed as text."""
    texts = [o.get("text", "") if o["output_type"] == "stream" else o.get("data", {}).get("text/plain", "")
             for o in facts["_outputs"]]  # fmt: skip
    return "\n".join(texts)


# -- quickstart ---------------------------------------------------------------------------------------------------

QUICKSTART = """{
    "rows": out.height, "answered": out["response_error"].null_count(),
    "ids": out["review_id"].to_list() == df["review_id"].to_list(),
    "dtypes": {c: str(out.schema[c]) for c in ("sentiment", "confidence", "topics")},
    "distinct": df.select("review", "stars").n_unique(), "est_rows": est.rows, "est_requests": est.requests,
    "sent": len(emu.answered()), "jobs": emu.calls("batches.create"),
    "actual": run.cost().actual, "cost_max": est.cost_max,
    "checkpoint_done": polars_gemini.checkpoint_status("runs/quickstart").done,
}"""


def check_quickstart(f: Facts) -> None:
    assert f["rows"] == f["answered"] == f["est_rows"] == 1_000 and f["ids"]
    assert f["dtypes"] == {"sentiment": "Enum(categories=['positive', 'negative', 'neutral'])",
                           "confidence": "Float64", "topics": "List(String)"}  # fmt: skip
    assert f["est_requests"] == f["distinct"] == f["sent"] < 1_000  # duplicates sent once
    assert f["jobs"] == 1 and f["checkpoint_done"] == 1_000
    assert 0 < f["actual"] <= f["cost_max"]
    assert "RunStatus" in shown(f) and "1,000 of 1,000 rows answered" in shown(f)


# -- structured extraction ----------------------------------------------------------------------------------------

EXTRACTION = """{
    "rows": out.height, "failed": failed.height, "ids": fixed["doc_id"].to_list() == docs["doc_id"].to_list(),
    "reasons": dict(failed.group_by(reason).len().iter_rows()),
    "half_kept": out.filter(pl.col("response_error").is_not_null() & pl.col("vendor").is_not_null()).height,
    "answered_complete": out.filter(pl.col("response_error").is_null()).select(
        pl.col("vendor").struct.field("address").is_null().sum() + pl.col("lines").is_null().sum()).item(),
    "vendor_dtype": str(out.schema["vendor"]), "lines_dtype": str(out.schema["lines"]),
    "dates": [str(out.schema[c]) for c in ("issued_on", "due_on")],
    "retried": todo.height, "still_failing": fixed["response_error"].is_not_null().sum(),
    "unchanged": fixed.filter(pl.col("doc_id").is_in(failed["doc_id"].implode()).not_()).equals(
        out.filter(pl.col("response_error").is_null())),
    "est_requests": est.requests,
    "jobs": [sum(1 for a in emu.answered() if a.job == job) for job in dict.fromkeys(a.job for a in emu.answered())],
}"""


def check_extraction(f: Facts) -> None:
    assert f["rows"] == f["est_requests"] == 240 and f["ids"]
    assert f["vendor_dtype"].startswith("Struct({'name': String, 'vat_id': String, 'address': Struct(")
    assert f["lines_dtype"] == "List(Struct({'description': String, 'quantity': Int64, 'unit_price': Float64}))"
    assert f["dates"] == ["Date", "Date"]
    # About one answer in ten is spoilt, of all three kinds, and every failed row has nulls, not half an answer.
    assert 10 <= f["failed"] <= 45 and f["half_kept"] == 0 and f["answered_complete"] == 0
    assert set(f["reasons"]) == {"truncated", "invalid JSON", "off-schema"} and min(f["reasons"].values()) >= 2
    # The retry sent exactly the failed rows, fixed most of them and left the good rows alone.
    assert f["jobs"] == [240, f["failed"]] and f["retried"] == f["failed"]
    assert f["still_failing"] < f["failed"] / 2 and f["unchanged"]
    assert "field '" in shown(f) and "still failing" in shown(f)


# -- image captioning ---------------------------------------------------------------------------------------------

CAPTIONING = """{
    "rows": out.height, "answered": out["response_error"].null_count(),
    "colour": str(out.schema["dominant_colour"]), "has_text": str(out.schema["has_text"]),
    "media_tokens": est.media_tokens, "est_rows": est.rows, "est_requests": est.requests, "sent": len(emu.answered()),
    "copy": out.filter(pl.col("image_id") == 10)["caption"].item(),
    "original": out.filter(pl.col("image_id") == 5)["caption"].item(),
    "distinct_captions": out["caption"].n_unique(),
}"""


def check_captioning(f: Facts) -> None:
    assert f["rows"] == f["answered"] == f["est_rows"] == 300
    assert f["colour"] == "Enum(categories=['red', 'green', 'blue', 'yellow', 'purple', 'grey'])"
    assert f["has_text"] == "Boolean" and f["media_tokens"] > 0
    assert f["sent"] == f["est_requests"] < 300  # a renamed copy is the same image: sent and paid once
    # The emulator quotes each request's image digest: a copy gets its original's answer, the others their own.
    assert f["copy"] == f["original"] and f["copy"].startswith("[media ")
    assert f["distinct_captions"] == f["est_requests"]


# -- embeddings ---------------------------------------------------------------------------------------------------

EMBEDDINGS = """{
    "dtypes": [str(frame.schema["embedding"]) for frame in (emb, docs)],
    "same_rows": [frame.select("product_id", "description").equals(products) for frame in (emb, docs)],
    "no_error": [frame["embedding_error"].null_count() for frame in (emb, docs)],
    "vectors": [frame["embedding"].null_count() for frame in (emb, docs)],
    "norms": emb.select((pl.col("embedding") * pl.col("embedding")).arr.sum().sqrt().alias("n"))
        .select(pl.col("n").min().alias("low"), pl.col("n").max().alias("high")).row(0),
    "est": [est.requests, est.rows, est.input_tokens], "cost": str(run.cost()), "planted": planted.height,
    "candidates": candidates.height, "pairs": pairs.height,
    "found": pairs.join(planted, on=["a", "b"], how="semi").height,
    "ordered": bool((pairs["a"] < pairs["b"]).all()), "duplicates": int(pairs.select("a", "b").is_duplicated().sum()),
    "top": neighbours.group_by("query", maintain_order=True).first().select("query", "description").rows(),
}"""


def check_embeddings(f: Facts) -> None:
    assert f["dtypes"] == ["Array(Float32, shape=(768,))"] * 2  # every row once, in order, a vector and no error
    assert f["same_rows"] == [True, True] and f["no_error"] == [3_000, 3_000] and f["vectors"] == [0, 0]
    low, high = f["norms"]
    assert low > 0.9999 and high < 1.0001
    assert f["est"][0] == f["est"][1] == 3_000 and f["est"][2] > 0 and "actual" in f["cost"]
    assert f["planted"] == 300 and f["candidates"] < 100_000  # far fewer than the 4.5M pairs
    assert f["found"] / f["planted"] >= 0.9  # recall of the planted pairs
    assert f["found"] / f["pairs"] >= 0.9  # precision
    assert f["ordered"] and f["duplicates"] == 0
    assert len(f["top"]) == 3
    for query, description in f["top"]:
        kind = {"backpack", "mug", "wallet"} & set(query.split())
        assert len(kind) == 1 and kind.pop() in description.lower(), (query, description)


# -- resumable ETL ------------------------------------------------------------------------------------------------

ETL = """{
    "after_crash": [after_crash.rows, after_crash.done, after_crash.pending, after_crash.jobs.height],
    "day1": [out1.height, out1["response_error"].null_count()], "est": [est1.requests, est2.requests],
    "new_rows": new_rows.height, "jobs": emu.calls("batches.create"),
    "per_job": [sum(1 for a in emu.answered() if a.job == job) for job in dict.fromkeys(a.job for a in emu.answered())],
    "day2": [out2.height, out2["response_error"].null_count()],
    "ids": out2["ticket_id"].to_list() == day2["ticket_id"].to_list() == list(range(520)),
    "kept": out2.head(out1.height).equals(out1), "costs": [cost1.actual, cost2.actual],
    "final": [polars_gemini.checkpoint_status(CHECKPOINT).done, polars_gemini.checkpoint_status(CHECKPOINT).pending],
}"""


def check_etl(f: Facts) -> None:
    assert f["after_crash"] == [400, 0, 400, 1]  # the crash left a job running and nothing answered
    assert f["day1"] == [400, 400] and f["est"] == [400, 120] and f["new_rows"] == 120
    # Resuming created no job; day two created one, holding only the new requests.
    assert f["jobs"] == 2 and f["per_job"] == [400, 120]
    assert f["day2"] == [520, 520] and f["ids"] and f["kept"]
    day1, day2 = f["costs"]
    assert 0 < day2 < day1 / 2 and f["final"] == [520, 0]
    assert "400 done" in shown(f) or "400/520" in shown(f)


CASES: dict[str, tuple[str, Callable[[Facts], None]]] = {
    "quickstart.ipynb": (QUICKSTART, check_quickstart),
    "structured_extraction.ipynb": (EXTRACTION, check_extraction),
    "image_captioning.ipynb": (CAPTIONING, check_captioning),
    "embeddings.ipynb": (EMBEDDINGS, check_embeddings),
    "resumable_etl.ipynb": (ETL, check_etl),
}


@pytest.mark.parametrize("name", list(CASES))
def test_notebook_runs_and_finds_what_it_says(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)  # the kernel inherits this environment: emulator only
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    probe, check = CASES[name]
    facts = execute(name, probe, tmp_path)
    check(facts)
    # Nothing on stderr: no warning an analyst would have to read up on, no text progress bar in a kernel.
    assert [o.text for o in facts["_outputs"] if o["output_type"] == "stream" and o["name"] == "stderr"] == []


def test_every_notebook_is_executed_here() -> None:
    found = [p for p in NOTEBOOKS.glob("**/*.ipynb") if ".ipynb_checkpoints" not in p.parts]  # Jupyter's autosaves
    assert sorted(p.relative_to(NOTEBOOKS).as_posix() for p in found) == sorted(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_notebook_is_committed_stripped(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)  # cell ids included
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert nb.metadata.kernelspec.name == "python3"
    # The real service when GEMINI_API_KEY is set, else the emulator: decided in one cell.
    assert any("GEMINI_API_KEY" in cell.source and "Emulator(" in cell.source for cell in code)
