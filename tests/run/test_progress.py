"""One live progress display: in a real Jupyter kernel a single HTML output updated in place (no ipywidgets, no
stream of tqdm lines), in a terminal or a log a single tqdm bar with the job states and the spend, and nothing with
progress=False."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient

import polars_gemini
from polars_gemini.core.display import usd
from polars_gemini.core.progress import Snapshot, in_kernel, live_progress, progress_html
from polars_gemini.emulator import Emulator

KEY = "AIzaFAKE-progress-test-key-52c1"

CELL = f"""
import polars as pl, polars_gemini
from polars_gemini.emulator import Emulator
with Emulator(api_key={KEY!r}) as emu:
    df = pl.DataFrame({{"t": [f"row {{i % 7}}" for i in range(20)] + [None]}})
    run = df.gemini.submit("Say {{t}}", model="gemini-2.5-flash", client=emu.client(), max_requests_per_job=3,
                           poll_interval=0.01, max_poll_interval=0.05, tokenizer="offline")
    out = run.result()
    facts = {{"rows": out.height, "answered": out["response_error"].null_count(), "actual": run.cost().actual,
              "estimated": run.estimate.cost, "jobs": [[j.name, j.state, j.requests] for j in run.store.jobs]}}
print("FACTS " + __import__("json").dumps(facts))
"""


def fields(root: ET.Element) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for tr in root.iter("tr"):
        cells = list(tr)
        if cells and cells[0].tag == "th" and len(cells) > 1 and all(c.tag == "td" for c in cells[1:]):
            found[cells[0].text or ""] = [c.text or "" for c in cells[1:]]
    return found


def test_a_notebook_shows_one_html_display_updated_in_place(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    displays = [o for o in outputs if o.output_type in ("display_data", "update_display_data")]
    streams = [o for o in outputs if o.output_type == "stream"]
    assert not [o for o in outputs if o.output_type == "error"]
    assert len(displays) == 1, outputs  # nbclient applied every update to the one output it created
    assert [s.name for s in streams] == ["stdout"], streams  # no stderr: no tqdm lines, no ImportError, no warnings
    facts = json.loads(streams[0].text.split("FACTS ", 1)[1])
    assert facts["rows"] == 21 and facts["answered"] == 20

    html = displays[0].data["text/html"]
    root = ET.fromstring(html)  # well-formed
    heading = root.findtext("div") or ""
    assert heading.startswith("gemini batch: finished · 100% · 7 of 7 requests · ")  # the final update, not the first
    cells = fields(root)
    assert cells["requests"] == ["7", "0", "0"]  # done, failed, pending
    assert cells["rows"] == ["20", "1", "0"]  # the null row is not sent: failed
    assert cells["cost"] == [usd(facts["actual"]), usd(facts["estimated"])]
    table = next(t for t in root.iter("table") if (t.findtext("caption") or "").startswith("jobs: "))
    rows = [[c.text or "" for c in tr] for tr in table.iter("tr")]
    assert rows[0] == ["job", "state", "requests"]
    assert rows[1:] == [[name, state, str(n)] for name, state, n in facts["jobs"]] and len(rows) == 4
    assert table.findtext("caption") == "jobs: 3 succeeded"
    assert "IProgress" not in html and KEY not in json.dumps(nb.cells[0].outputs)
    assert displays[0].data["text/plain"].startswith("gemini batch: finished · 100%")


def test_a_terminal_gets_one_bar_with_states_and_spend(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert not in_kernel()
    df = pl.DataFrame({"t": [f"row {i % 5}" for i in range(12)]})
    run = df.gemini.submit("Say {t}", model="gemini-2.5-flash", client=emu.client(), max_requests_per_job=2,
                           poll_interval=0.01, max_poll_interval=0.05)  # fmt: skip
    run.wait()
    out, err = capsys.readouterr()
    assert out == ""
    lines = [line for line in err.split("\n") if line.strip()]
    assert len(lines) == 1, lines  # one bar, redrawn in place with carriage returns
    last = lines[0].split("\r")[-1]
    spent = usd(run.cost().actual)
    assert re.search(r"gemini batch: 100%.*\| 5/5 ", last), last
    assert f"3 succeeded; {spent} spent of ~{usd(run.estimate.cost if run.estimate else None)}" in last, last


def test_sync_calls_and_media_uploads_show_one_bar_each(emu: Emulator, capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:  # fmt: skip
    from testing_support import make_png

    photos = []
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(make_png(64, 64, i))
        photos.append(str(tmp_path / f"{i}.png"))
    df = pl.DataFrame({"photo": photos})
    out = polars_gemini.batch(df, "Caption {photo}", model="gemini-2.5-flash", client=emu.client(), media="photo",
                              mode="sync", media_inline_bytes=0, poll_interval=0.01)  # fmt: skip
    assert out.get_column("response_error").null_count() == 3
    lines = [line.split("\r")[-1] for line in capsys.readouterr().err.split("\n") if line.strip()]
    assert len(lines) == 2, lines
    assert re.search(r"^uploading media: 100%.*\| 3/3 ", lines[0]), lines
    assert re.search(r"^gemini sync: 100%.*\| 3/3 ", lines[1]), lines


def test_progress_false_shows_nothing(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    df = pl.DataFrame({"t": ["a", "b"]})
    df.gemini.batch("{t}", model="gemini-2.5-flash", client=emu.client(), progress=False, poll_interval=0.01)
    df.gemini.batch("{t}", model="gemini-2.5-flash", client=emu.client(), progress=False, mode="sync")
    assert capsys.readouterr() == ("", "")


def test_the_notebook_display_lists_at_most_twenty_jobs() -> None:
    jobs = tuple((f"batches/{i}", "RUNNING" if i % 2 else "SUCCEEDED", 10) for i in range(25))
    snap = Snapshot(done=120, failed=10, jobs=jobs, rows=(300, 12, 288), estimated_cost=1.5, actual_cost=0.25)
    root = ET.fromstring(progress_html("gemini batch", 250, "req", snap, 185.0))
    assert root.findtext("div") == "gemini batch: running · 52% · 130 of 250 requests · 3 min 05 s"
    cells = fields(root)
    assert cells["requests"] == ["120", "10", "120"] and cells["rows"] == ["300", "12", "288"]
    assert cells["cost"] == ["$0.25", "$1.50"]
    table = next(t for t in root.iter("table") if (t.findtext("caption") or "").startswith("jobs: "))
    rows = [[c.text or "" for c in tr] for tr in table.iter("tr")]
    assert len(rows) == 22 and rows[-1] == ["... 5 more"] and rows[1] == ["batches/0", "SUCCEEDED", "10"]
    assert table.findtext("caption") == "jobs: 13 succeeded, 12 running"
    bar = [d for d in root.iter("div") if "width:" in (d.get("style") or "") and not list(d)]
    assert [d.get("style", "").split(";")[0] for d in bar] == ["width:48.0%", "width:4.0%"]  # done, failed


def test_a_silent_progress_counts_but_shows_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with live_progress("uploading media", total=3, unit="file", enabled=False) as shown:
        shown.advance()
        shown.advance(1, failed=1)
    assert shown.snapshot == Snapshot(done=2, failed=1) and capsys.readouterr() == ("", "")
