"""What a run reports: its status (`RunStatus`), its cost (`RunCost`) and what `sink_parquet` wrote (`SinkReport`),
each as one line (`repr`), as a small text table (`str`) and as an HTML table in a notebook (`_repr_html_`), all drawn
with `core.display` so that they look like the estimate and the checkpoint's status."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from polars_gemini.core.display import (
    Row,
    html_block,
    html_fields,
    html_grid,
    state_counts,
    text_fields,
    text_grid,
    text_sections,
    usd,
)
from polars_gemini.cost.estimate import Estimate

COUNTS = ("total", "done", "failed", "pending")
JOBS_NAMED = 5  # jobs named one by one in a status's repr; past that, counted by state
_JOB_COLUMNS = ("job", "state")
_VERSUS = ("estimated", "actual")


@dataclass(frozen=True)
class RunStatus:
    """A snapshot of a run: job states and request counts."""

    jobs: tuple[tuple[str, str], ...]  # (job name or display name, state)
    requests: int
    done: int
    failed: int
    estimated_cost: float | None = None
    actual_cost: float | None = None
    unreadable_lines: int = 0

    @property
    def pending(self) -> int:
        return self.requests - self.done - self.failed

    @property
    def queued(self) -> int:
        """Jobs waiting for room under the service's limits (concurrent jobs, enqueued tokens) to be created."""
        created = ("batches/", "projects/")  # a Vertex AI job QUEUED on the service's side is created already
        return sum(state == "QUEUED" and not name.startswith(created) for name, state in self.jobs)

    def _counts(self) -> list[Row]:
        return [("requests", *(f"{n:,}" for n in (self.requests, self.done, self.failed, self.pending)))]

    def _costs(self) -> list[Row]:
        return [("cost", usd(self.estimated_cost), usd(self.actual_cost))]

    def _notes(self) -> list[str]:
        return [f"{self.unreadable_lines:,} result line(s) unreadable"] if self.unreadable_lines else []

    def __repr__(self) -> str:
        if len(self.jobs) > JOBS_NAMED:  # a run of thousands of jobs: one line still
            states = f"{len(self.jobs):,} jobs: {state_counts([s for _, s in self.jobs])}"
        else:
            states = ", ".join(f"{n}: {s}" for n, s in self.jobs) or "no jobs"
        costs = f"; cost {usd(self.estimated_cost)} estimated, {usd(self.actual_cost)} so far"
        unread = f"; {self.unreadable_lines} result line(s) unreadable" if self.unreadable_lines else ""
        return f"RunStatus({self.done}/{self.requests} requests done, {self.failed} failed; {states}{costs}{unread})"

    def __str__(self) -> str:
        return "RunStatus\n" + self.text()

    def sections(self) -> list[tuple[list[Row], tuple[str, ...]]]:
        """The status's field tables (rows, header): counts, cost, job states."""
        jobs: list[Row] = [("jobs", state_counts([s for _, s in self.jobs]) or "none yet")]
        return [(self._counts(), COUNTS), (self._costs(), ("estimated", "so far")), (jobs, ())]

    def text(self, before: list[tuple[list[Row], tuple[str, ...]]] | None = None, indent: str = "  ") -> str:
        """The status as aligned text lines (what `str()` shows under its title), after the fields of `before`."""
        lines = [text_sections(*(before or []), *self.sections(), indent=indent)]
        if self.jobs:
            lines.append(text_grid(_JOB_COLUMNS, list(self.jobs), indent * 2))
        return "\n".join(lines + [indent + n for n in self._notes()])

    def html_parts(self) -> list[str]:
        """The status's tables as HTML (counts, cost, jobs), to show alone or inside a run's report."""
        parts = [html_fields(self._counts(), COUNTS), html_fields(self._costs(), ("estimated", "so far"))]
        if self.jobs:
            caption = f"jobs: {state_counts([s for _, s in self.jobs])}"
            parts.append(html_grid(_JOB_COLUMNS, list(self.jobs), caption=caption))
        return parts

    def _repr_html_(self) -> str:
        return html_block("polars-gemini run status", *self.html_parts(), notes=self._notes())


def run_text(run_id: str, model: str, checkpoint: object | None, status: RunStatus) -> str:
    """A run as text: its id, model and checkpoint, then its status."""
    where = str(checkpoint) if checkpoint is not None else "none (in memory)"
    return f"Run {run_id}\n" + status.text([([("model", model), ("checkpoint", where)], ())])


def run_html(run_id: str, model: str, checkpoint: object | None, status: RunStatus) -> str:
    """A run as HTML: its id, model and checkpoint, then its status's tables."""
    where = str(checkpoint) if checkpoint is not None else "none (in memory)"
    head = html_fields([("model", model), ("checkpoint", where)])
    return html_block(f"polars-gemini run {run_id}", head, *status.html_parts(), notes=status._notes())


@dataclass(frozen=True)
class RunCost:
    """Estimate and actual side by side. `actual` is USD from usageMetadata (None when the price is unknown)."""

    estimate: Estimate | None
    actual: float | None
    tokens: dict[str, int]

    def _rows(self) -> list[Row]:
        est, got = self.estimate, self.tokens
        if est is None:
            rows: list[Row] = [("cost", "no estimate", usd(self.actual))]
            return rows + [(f"{kind} tokens", "", f"{n:,}") for kind, n in got.items()]
        guessed = {"input": est.input_tokens, "output": est.output_tokens - est.thinking_tokens,
                   "thinking": est.thinking_tokens}  # fmt: skip
        return [
            ("cost", usd(est.cost), usd(self.actual)),
            ("upper bound", usd(est.cost_max), ""),
            *((f"{kind} tokens", f"{guessed[kind]:,}" if kind in guessed else "", f"{n:,}") for kind, n in got.items()),
        ]

    def __repr__(self) -> str:
        est = self.estimate
        expected = f"{usd(est.cost)} expected, {usd(est.cost_max)} at most" if est else "no estimate"
        tokens = ", ".join(f"{k} {v:,}" for k, v in self.tokens.items())
        return f"RunCost(estimate: {expected}; actual so far: {usd(self.actual)}; tokens: {tokens})"

    def __str__(self) -> str:
        return "RunCost\n" + text_fields(self._rows(), _VERSUS)

    def html_part(self) -> str:
        """The estimate-against-actual table, to show alone or inside a sink report."""
        return html_fields(self._rows(), _VERSUS)

    def _repr_html_(self) -> str:
        notes = ["output tokens: the answers' (thinking apart); actual: every attempt, as billed"]
        return html_block("polars-gemini run cost", self.html_part(), notes=notes)


@dataclass(frozen=True)
class SinkReport:
    """What `Run.sink_parquet` wrote: the file, its rows, how many of them have an error, and the run's cost."""

    path: Path
    rows: int
    failed: int
    cost: RunCost

    def _rows(self) -> list[Row]:
        return [("file", str(self.path)), ("rows", f"{self.rows:,}"), ("failed", f"{self.failed:,}")]

    def __repr__(self) -> str:
        return f"SinkReport({self.rows:,} rows to {self.path}, {self.failed:,} failed; {self.cost!r})"

    def __str__(self) -> str:
        return "SinkReport\n" + text_sections((self._rows(), ()), (self.cost._rows(), _VERSUS))

    def _repr_html_(self) -> str:
        return html_block("polars-gemini sink report", html_fields(self._rows()), self.cost.html_part())


__all__ = ["RunCost", "RunStatus", "SinkReport", "run_html", "run_text"]
