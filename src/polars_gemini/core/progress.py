"""The live progress of a run, of sync calls or of media uploads: one display, updated in place.

In a Jupyter kernel it is one HTML output (`IPython.display.display(..., display_id=True)`) redrawn through its
handle, at most `NOTEBOOK_UPDATES` times a second plus once at the end: a bar, requests (and rows) done, failed and
pending, each job's state, the spend so far next to the estimate, the time taken. It needs no ipywidgets (tqdm's
notebook bar does, and fails without them). Anywhere else (a terminal, a log) it is a single tqdm bar on stderr with
the job states and the spend in its postfix. `enabled=False` shows nothing.

IPython is never imported here: a kernel has imported it already, so its absence from `sys.modules` means there is
no kernel.

>>> with live_progress("uploading media", total=3, unit="file", enabled=False) as shown:
...     shown.advance()
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from polars_gemini.core.display import html_block, html_fields, html_grid, state_counts, usd

NOTEBOOK_UPDATES = 4.0  # redraws of the notebook display per second, at most (each sends the whole HTML)
_BAR = "display:flex;width:360px;height:10px;background:#e6e6e6;border-radius:3px;overflow:hidden;margin:3px 0 5px 0"


@dataclass(frozen=True)
class Snapshot:
    """What the display shows. `jobs`: (name, state, requests or None); `rows`: (done, failed, pending) when known."""

    done: int = 0
    failed: int = 0
    jobs: tuple[tuple[str, str, int | None], ...] = ()
    rows: tuple[int, int, int] | None = None
    estimated_cost: float | None = None
    actual_cost: float | None = None


class Progress:
    """A display of `total` units of work (`unit`: "req", "file"); this base class shows nothing.

    `update(snapshot)` replaces what is shown, `advance(done, failed)` counts more units settled; `close()` (or
    leaving the `with` block) draws the last state. `detailed`: whether rows and jobs are shown (worth counting)."""

    detailed = False

    def __init__(self, title: str, total: int, unit: str) -> None:
        self.title, self.total, self.unit = title, total, unit
        self.snapshot = Snapshot()
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def update(self, snapshot: Snapshot) -> None:
        with self._lock:
            self.snapshot = snapshot
            self._draw(final=False)

    def advance(self, done: int = 1, failed: int = 0) -> None:
        with self._lock:
            s = self.snapshot
            self.snapshot = replace(s, done=s.done + done, failed=s.failed + failed)
            self._draw(final=False)

    def close(self) -> None:
        with self._lock:
            self._draw(final=True)

    def _draw(self, final: bool) -> None:
        """Show `self.snapshot` (callers hold the lock)."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Bar(Progress):
    """One tqdm bar (the standard one: tqdm.auto would pick the notebook bar, which needs ipywidgets)."""

    def __init__(self, title: str, total: int, unit: str) -> None:
        from tqdm.std import tqdm

        super().__init__(title, total, unit)
        self._bar = tqdm(total=total, unit=unit, desc=title)

    def _draw(self, final: bool) -> None:
        s = self.snapshot
        self._bar.update(s.done + s.failed - self._bar.n)
        postfix = postfix_text(s)
        if postfix:
            self._bar.set_postfix_str(postfix, refresh=False)
        if final:
            self._bar.close()


class _Notebook(Progress):
    """One HTML output of the kernel, redrawn in place through its display handle."""

    detailed = True

    def __init__(self, title: str, total: int, unit: str) -> None:
        ipython: Any = importlib.import_module("IPython.display")  # untyped: imported only inside a kernel

        super().__init__(title, total, unit)
        self._closed, self._drawn = False, time.monotonic()
        self._handle = ipython.display(self._bundle(final=False), raw=True, display_id=True)

    def _draw(self, final: bool) -> None:
        now = time.monotonic()
        if self._closed or (not final and now - self._drawn < 1 / NOTEBOOK_UPDATES):
            return
        self._closed, self._drawn = final, now
        if self._handle is not None:
            self._handle.update(self._bundle(final), raw=True)

    def _bundle(self, final: bool) -> dict[str, str]:
        """The display's MIME bundle: the HTML, and a line of text for frontends without HTML."""
        elapsed = time.monotonic() - self.started
        html = progress_html(self.title, self.total, self.unit, self.snapshot, elapsed, final)
        return {"text/html": html, "text/plain": progress_line(self.title, self.total, self.unit, self.snapshot,
                                                               elapsed, final)}  # fmt: skip


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (an IPython shell with a kernel: JupyterLab, VS Code, Colab)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def live_progress(title: str, total: int, unit: str = "req", enabled: bool = True) -> Progress:
    """The progress display for this process: HTML in a notebook, a tqdm bar elsewhere, nothing when not `enabled`.

    >>> with live_progress("gemini sync", total=2, enabled=False) as shown:
    ...     shown.advance(2)
    """
    if not enabled:
        return Progress(title, total, unit)
    if in_kernel():
        return _Notebook(title, total, unit)
    return _Bar(title, total, unit)


def postfix_text(s: Snapshot) -> str:
    """The terminal bar's postfix: job states, then the spend ("2 succeeded, 1 running; $0.012 spent of ~$0.030")."""
    parts = [state_counts([state for _, state, _ in s.jobs])] if s.jobs else []
    if s.actual_cost is not None or s.estimated_cost is not None:
        estimated = f" of ~{usd(s.estimated_cost)}" if s.estimated_cost is not None else ""
        parts.append(f"{usd(s.actual_cost)} spent{estimated}")
    return "; ".join(p for p in parts if p)


def elapsed_text(seconds: float) -> str:
    """A duration for people: "8 s", "3 min 05 s", "2 h 04 min".

    >>> elapsed_text(8.2), elapsed_text(185), elapsed_text(7440)
    ('8 s', '3 min 05 s', '2 h 04 min')
    """
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _heading(title: str, total: int, unit: str, s: Snapshot, elapsed: float, final: bool) -> str:
    """The title line: "gemini batch: running · 40% · 4 of 10 requests · 12 s"."""
    settled = s.done + s.failed
    share = settled / total if total else 1.0
    state = "finished" if final and settled >= total else "stopped" if final else "running"
    return f"{title}: {state} · {share:.0%} · {settled:,} of {total:,} {_units(unit)} · {elapsed_text(elapsed)}"


def _units(unit: str) -> str:
    return {"req": "requests", "file": "files"}.get(unit, unit)


def progress_line(title: str, total: int, unit: str, s: Snapshot, elapsed: float, final: bool = False) -> str:
    """The notebook display as one line of text (for frontends that show no HTML)."""
    postfix = postfix_text(s)
    return _heading(title, total, unit, s, elapsed, final) + (f"; {postfix}" if postfix else "")


def progress_html(title: str, total: int, unit: str, s: Snapshot, elapsed: float, final: bool = False) -> str:
    """The notebook display: a bar, counts, spend, and the jobs' states (see `Progress`)."""
    settled, units = s.done + s.failed, _units(unit)
    heading = _heading(title, total, unit, s, elapsed, final)
    done_w, failed_w = (100 * s.done / total, 100 * s.failed / total) if total else (100.0, 0.0)
    bar = (f'<div style="{_BAR}"><div style="width:{done_w:.1f}%;background:#3f8f4f"></div>'
           f'<div style="width:{failed_w:.1f}%;background:#c0392b"></div></div>')  # fmt: skip
    rows: list[tuple[str, ...]] = [(units, f"{s.done:,}", f"{s.failed:,}", f"{total - settled:,}")]
    if s.rows is not None:
        rows.append(("rows", *(f"{n:,}" for n in s.rows)))
    parts = [bar, html_fields(rows, header=("done", "failed", "pending"))]
    if s.actual_cost is not None or s.estimated_cost is not None:
        cost = [("cost", usd(s.actual_cost), usd(s.estimated_cost, "no estimate"))]
        parts.append(html_fields(cost, header=("spent so far", "estimated")))
    if s.jobs:
        jobs = [(name, job_state, "" if n is None else f"{n:,}") for name, job_state, n in s.jobs]
        states = state_counts([j[1] for j in jobs])
        parts.append(html_grid(("job", "state", "requests"), jobs, caption=f"jobs: {states}"))
    return html_block(heading, *parts)


__all__ = ["Progress", "Snapshot", "in_kernel", "live_progress", "progress_html", "progress_line"]
