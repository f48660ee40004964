"""Reports in notebooks and logs: each object's HTML is well-formed XML with the right numbers in the right cells,
its text says the same numbers, and the API key is in none of them. Every object comes from a real run against the
emulator (a recognizable fake key demanded by it) and a real checkpoint."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini.core.display import usd
from polars_gemini.emulator import Emulator, responses
from testing_support import FAST, echo

KEY = "AIzaFAKE-repr-test-key-7f3a91"  # what a real key looks like; demanded by the emulator below
TEMPLATE = "Say <b>{t}</b> & 'quote'"  # markup and quotes: escaped in HTML, shown as they are
FRAME = pl.DataFrame({"t": ["a", "bad", None, "a", "c", "d"]})  # 4 distinct requests, 1 row not sent


@pytest.fixture
def keyed() -> Iterator[Emulator]:
    """An emulator that demands `KEY`, echoing prompts and refusing the prompt about 'bad'."""
    bad = responses.when(lambda r: "bad" in r.text, responses.error(400, "refused"), echo)
    with Emulator(responder=bad, api_key=KEY, models=["gemini-9-preview"]) as emulator:
        yield emulator


def parse(html: str) -> ET.Element:
    return ET.fromstring(html)  # raises on anything that is not well-formed XML


def fields(html: str) -> dict[str, list[str]]:
    """Every field-table row of `html`: its label (the row's `th`) -> the texts of its `td` cells."""
    found: dict[str, list[str]] = {}
    for tr in parse(html).iter("tr"):
        cells = list(tr)
        if cells and cells[0].tag == "th" and len(cells) > 1 and all(c.tag == "td" for c in cells[1:]):
            found[cells[0].text or ""] = [c.text or "" for c in cells[1:]]
    return found


def grid(html: str, caption_starts: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the table whose caption starts with `caption_starts`."""
    table = next(t for t in parse(html).iter("table") if (t.findtext("caption") or "").startswith(caption_starts))
    rows = [[c.text or "" for c in tr] for tr in table.iter("tr")]
    return rows[0], rows[1:]


def no_key(*objects: object) -> None:
    for obj in objects:
        for shown in (repr(obj), str(obj), obj._repr_html_()):  # type: ignore[attr-defined]
            assert KEY not in shown and KEY[:12] not in shown, type(obj).__name__


def test_estimate(keyed: Emulator) -> None:
    est = FRAME.gemini.estimate(TEMPLATE, model="gemini-2.5-flash")
    cells = fields(est._repr_html_())
    assert est.cost is not None and est.cost_max is not None and est.sync_cost is not None
    assert cells["model"] == ["gemini-2.5-flash"]
    assert cells["rows"] == ["6"] and cells["requests (distinct)"] == ["4"] and cells["rows not sent"] == ["1"]
    assert cells["input tokens"] == [f"{est.input_tokens:,}"]
    assert cells["output tokens"] == [f"{est.output_tokens:,}", f"{est.output_tokens_max:,}"]
    assert cells["of which thinking"] == [f"{est.thinking_tokens:,}"]
    assert cells["batch cost"] == [usd(est.cost), usd(est.cost_max)]
    assert cells["input cost"] == [usd(est.cost_parts[0])] and cells["output cost"] == [usd(est.cost_parts[1])]
    assert cells["thinking cost"] == [usd(est.cost_parts[2])] and est.cost_parts[2] > 0
    assert cells["standard price"] == [usd(est.sync_cost)]
    saved = est.sync_cost - est.cost
    assert cells["batch saves"] == [f"{usd(saved)} ({saved / est.sync_cost:.0%})"] and "50%" in cells["batch saves"][0]
    assert cells["prices as of"] == [est.prices_as_of] and cells["tokens counted by"] == [est.method]
    notes = [d.text for d in parse(est._repr_html_()).iter("div") if (d.text or "").startswith("assumes: ")]
    assert notes == [f"assumes: {n}" for n in est.assumptions] and notes
    text = repr(est)
    assert re.search(rf"^  batch cost +{re.escape(usd(est.cost))} expected, {re.escape(usd(est.cost_max))} at most$",
                     text, re.MULTILINE)  # fmt: skip
    assert re.search(rf"^  output tokens +{est.output_tokens:,} expected, {est.output_tokens_max:,} at most$", text,
                     re.MULTILINE)  # fmt: skip
    assert text.startswith("Estimate(\n") and text.endswith("\n)")


def test_estimate_with_an_unknown_price() -> None:
    est = FRAME.gemini.estimate("{t}", model="gemini-9-preview", check_model=False)
    cells = fields(est._repr_html_())
    assert est.cost is None and cells["batch cost"] == ["price unknown", "price unknown"]
    assert "batch saves" not in cells and "input cost" not in cells
    assert "price unknown" in repr(est)


def test_run_status_run_cost_and_sink_report(keyed: Emulator, tmp_path: Path) -> None:
    run = FRAME.gemini.submit(TEMPLATE, model="gemini-2.5-flash", client=keyed.client(), checkpoint=tmp_path / "c",
                              max_retries=0, **FAST)  # fmt: skip
    run.wait()
    status, bill = run.status(), run.cost()
    assert (status.requests, status.done, status.failed, status.pending) == (4, 3, 1, 0)
    assert status.actual_cost is not None and status.estimated_cost is not None and bill.estimate is not None

    cells = fields(status._repr_html_())
    assert cells["requests"] == ["4", "3", "1", "0"]
    assert cells["cost"] == [usd(status.estimated_cost), usd(status.actual_cost)]
    header, jobs = grid(status._repr_html_(), "jobs: ")
    assert header == ["job", "state"] and [tuple(j) for j in jobs] == list(status.jobs)
    assert "4 total, 3 done, 1 failed, 0 pending" in str(status)
    assert "3/4 requests done, 1 failed" in repr(status) and "estimated" in repr(status)

    run_cells = fields(run._repr_html_())
    assert run_cells["model"] == ["gemini-2.5-flash"] and run_cells["checkpoint"] == [str(tmp_path / "c")]
    assert run_cells["requests"] == cells["requests"] and run_cells["cost"] == cells["cost"]
    assert parse(run._repr_html_()).findtext("div") == f"polars-gemini run {run.run_id}"
    assert re.search(rf"^  checkpoint +{re.escape(str(tmp_path / 'c'))}$", str(run), re.MULTILINE)

    est = bill.estimate
    cost = fields(bill._repr_html_())
    assert cost["cost"] == [usd(est.cost), usd(bill.actual)] and cost["upper bound"] == [usd(est.cost_max), ""]
    assert cost["input tokens"] == [f"{est.input_tokens:,}", f"{bill.tokens['input']:,}"]
    assert cost["output tokens"] == [f"{est.output_tokens - est.thinking_tokens:,}", f"{bill.tokens['output']:,}"]
    assert cost["thinking tokens"] == [f"{est.thinking_tokens:,}", f"{bill.tokens['thinking']:,}"]
    assert bill.tokens["input"] > 0 and bill.tokens["thinking"] > 0
    assert f"thinking tokens  {est.thinking_tokens:,} estimated, {bill.tokens['thinking']:,} actual" in str(bill)

    report = run.sink_parquet(tmp_path / "out.parquet")
    sink = fields(report._repr_html_())
    assert sink["file"] == [str(tmp_path / "out.parquet")] and sink["rows"] == ["6"] and sink["failed"] == ["2"]
    assert sink["cost"] == cost["cost"]
    assert re.search(r"^  failed +2$", str(report), re.MULTILINE) and "6 rows to" in repr(report)
    no_key(status, bill, report, run)
    run.close()


def test_checkpoint_status_escapes_and_cuts_long_job_lists(keyed: Emulator, tmp_path: Path) -> None:
    frame = pl.DataFrame({"t": [f"text {i}" for i in range(23)] + ["bad", None]})
    frame.gemini.batch(TEMPLATE, model="gemini-2.0-flash", client=keyed.client(), checkpoint=tmp_path,
                       max_requests_per_job=1, max_retries=0, **FAST)  # fmt: skip
    status = polars_gemini.checkpoint_status(tmp_path)
    assert (status.rows, status.done, status.failed, status.pending) == (25, 23, 2, 0) and status.jobs.height == 24
    html = status._repr_html_()
    cells = fields(html)
    assert cells["template"] == [TEMPLATE] and "&lt;b&gt;" in html  # escaped in the markup, itself in the text
    assert cells["rows"] == ["25", "23", "2", "0"]
    assert cells["cost"] == [usd(status.estimated_cost), usd(status.actual_cost)]
    header, rows = grid(html, "jobs: ")
    assert header == status.jobs.columns and len(rows) == 21 and rows[-1] == ["... 4 more"]
    first = status.jobs.row(0, named=True)
    assert rows[0][header.index("name")] == first["name"] and rows[0][header.index("requests")] == "1"
    assert rows[0][header.index("state")] == "SUCCEEDED"
    assert parse(html).findtext("div") == f"polars-gemini checkpoint {tmp_path}"
    text = str(status)
    assert "rows: 25 = 23 done + 2 failed + 0 pending" in text and "  ... 4 more" in text
    assert text.count("SUCCEEDED") == 20 and "jobs: 24 succeeded" in text
    assert repr(status).startswith(f"CheckpointStatus({tmp_path}: 25 rows = 23 done + 2 failed + 0 pending")
    no_key(status)


def test_reports_of_a_run_without_a_checkpoint_or_a_known_price(keyed: Emulator) -> None:
    run = FRAME.gemini.submit("{t}", model="gemini-9-preview", check_model=False, client=keyed.client(), **FAST)
    out = run.result()
    assert out.height == 6
    status, bill = run.status(), run.cost()
    assert fields(status._repr_html_())["cost"] == ["unknown", "unknown"] and bill.actual is None
    assert fields(run._repr_html_())["checkpoint"] == ["none (in memory)"]
    assert fields(bill._repr_html_())["cost"] == ["unknown", "unknown"]
    no_key(status, bill, run)
