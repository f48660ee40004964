"""Reports under hostile values and at scale: a run of hundreds of jobs keeps a one-line repr, values carrying
characters XML forbids (a NUL, an escape, a form feed, an undecodable path byte) still give well-formed HTML, a long
template does not swamp the table, and a dollar amount that is not a number prints instead of raising."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl

from polars_gemini.core.display import html_block, html_fields, html_grid, text_fields, usd
from polars_gemini.emulator import Emulator
from testing_support import FAST

HOSTILE = ["gemini\x00<b>", "\x1b[31mred", "form\x0cfeed", "path/\udcff.parquet", "\ufffe", "a&b\"c'd"]


def test_a_run_of_many_jobs_has_a_short_repr(emu: Emulator) -> None:
    df = pl.DataFrame({"t": [f"row {i}" for i in range(60)]})
    run = df.gemini.submit("Say {t}", model="gemini-2.5-flash", client=emu.client(), max_requests_per_job=1, **FAST)
    run.wait()
    status = run.status()
    assert len(status.jobs) == 60
    text = repr(status)
    assert "60 jobs: 60 succeeded" in text and "60/60 requests done, 0 failed" in text
    assert "batches/" not in text and len(text) < 200, text  # one line, not a name per job
    assert len(repr(run)) < 300 and "60 jobs: 60 succeeded" in repr(run)
    few = pl.DataFrame({"t": ["a", "b"]}).gemini.submit("Say {t}", model="gemini-2.5-flash", client=emu.client(),
                                                        max_requests_per_job=1, **FAST)  # fmt: skip
    few.wait()
    assert all(f"{name}: SUCCEEDED" in repr(few.status()) for name, _ in few.status().jobs)  # a few: named


def test_characters_xml_forbids_are_shown_escaped_and_the_html_stays_well_formed() -> None:
    rows = [(f"label {v}", v, v) for v in HOSTILE]
    for html in (
        html_block(HOSTILE[0], html_fields(rows, ("a", "b"), caption=HOSTILE[1]), notes=HOSTILE),
        html_block("jobs", html_grid(("job", HOSTILE[2]), [(v, v) for v in HOSTILE], caption=HOSTILE[3])),
    ):
        root = ET.fromstring(html)  # raises on a character XML 1.0 does not allow
        shown = "".join(root.itertext())
        assert "\\x00" in shown and "\\x1b[31mred" in shown and "form\\x0cfeed" in shown and "\\udcff" in shown
        assert "\\ufffe" in shown and "a&b\"c'd" in shown  # markup characters escaped, and read back as themselves
        html.encode("utf-8")  # a lone surrogate could not be sent to the notebook at all


def test_a_long_value_is_cut_in_the_table() -> None:
    template = "Classify this review. " * 500 + "{review}"
    html = html_fields([("template", template)])
    (cell,) = [td.text or "" for td in ET.fromstring(html).iter("td")]
    assert cell.startswith("Classify this review. ") and cell.endswith(f"({len(template):,} characters)")
    assert len(cell) < 600 and len(html) < 1_200
    text = text_fields([("template", template)])
    assert len(text) < 600 and text.endswith(f"({len(template):,} characters)")


def test_a_dollar_amount_that_is_not_a_number_prints() -> None:
    assert usd(float("nan")) == "$nan" and usd(float("inf")) == "$inf" and usd(float("-inf")) == "$-inf"


def test_a_checkpoint_status_with_a_hostile_template_is_well_formed(emu: Emulator, tmp_path: Path) -> None:
    import polars_gemini

    template = "Say\x0b {t} <i>" + "x" * 2_000
    pl.DataFrame({"t": ["a"]}).gemini.batch(template, model="gemini-2.5-flash", client=emu.client(),
                                            checkpoint=tmp_path / "c", **FAST)  # fmt: skip
    status = polars_gemini.checkpoint_status(tmp_path / "c")
    root = ET.fromstring(status._repr_html_())
    cells = {tr[0].text: tr[1].text or "" for tr in root.iter("tr") if len(tr) == 2 and tr[0].tag == "th"}
    assert cells["template"].startswith("Say\\x0b {t} <i>xxx") and cells["template"].endswith(
        f"({len(template):,} characters)"
    )
