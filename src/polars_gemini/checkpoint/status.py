"""`checkpoint_status(dir)` and `polars-gemini status DIR`: a run's state from its checkpoint alone.

Reading takes no lock (every write is atomic: a rename, or a new object and a conditional write of the index), so it
works while another process is running the batch, in a directory or in object storage.
With a client, job states are refreshed from the API (read-only: nothing in the directory changes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from polars_gemini.checkpoint.files import read_json, read_parquet
from polars_gemini.checkpoint.location import LocalLocation, Location, open_location
from polars_gemini.core.display import JOBS_SHOWN, Row, html_block, html_fields, html_grid, state_counts, text_grid, usd
from polars_gemini.core.errors import CheckpointCorruptedError, CheckpointError
from polars_gemini.cost.estimate import actual_cost
from polars_gemini.cost.prices import load_prices
from polars_gemini.prepare.requests import KEY
from polars_gemini.service import gemini as _client

if TYPE_CHECKING:
    from google import genai

COUNTS = ("total", "done", "failed", "pending")
_JOB_COLUMNS = ["display_name", "name", "state", "attempt", "requests", "transport", "collected"]


@dataclass(frozen=True)
class CheckpointStatus:
    """Rows done, failed and pending, each job's state, and estimated and actual cost of a checkpointed run."""

    directory: str
    model: str
    template: str | None
    rows: int
    done: int
    failed: int
    pending: int
    jobs: pl.DataFrame
    estimated_cost: float | None
    actual_cost: float | None

    def _counts(self) -> list[Row]:
        return [("rows", *(f"{n:,}" for n in (self.rows, self.done, self.failed, self.pending)))]

    def _costs(self) -> list[Row]:
        return [("cost", usd(self.estimated_cost), usd(self.actual_cost))]

    def _jobs(self) -> tuple[list[str], list[Row]]:
        """The first `JOBS_SHOWN` jobs as text cells (null as empty), under their column names."""
        shown = self.jobs.head(JOBS_SHOWN).select(pl.all().cast(pl.String).fill_null(""))
        return self.jobs.columns, list(shown.iter_rows())

    def _states(self) -> str:
        states = self.jobs.get_column("state").to_list() if "state" in self.jobs.columns else []
        return state_counts(states) or "none yet"

    def __repr__(self) -> str:
        return (f"CheckpointStatus({self.directory}: {self.rows:,} rows = {self.done:,} done + {self.failed:,} failed "
                f"+ {self.pending:,} pending; cost {usd(self.estimated_cost)} estimated, {usd(self.actual_cost)} so "
                f"far; jobs: {self._states()})")  # fmt: skip

    def __str__(self) -> str:
        jobs = text_grid(*self._jobs(), total=self.jobs.height) if self.jobs.height else "  (no jobs yet)"
        return (
            f"checkpoint {self.directory}\n  model {self.model}, template {self.template!r}\n"
            f"  rows: {self.rows:,} = {self.done:,} done + {self.failed:,} failed + {self.pending:,} pending\n"
            f"  cost: estimated {usd(self.estimated_cost)} (batch, expected), actual so far {usd(self.actual_cost)}\n"
            f"  jobs: {self._states()}\n{jobs}"
        )

    def _repr_html_(self) -> str:
        head = html_fields([("model", self.model), ("template", "" if self.template is None else self.template)])
        parts = [head, html_fields(self._counts(), COUNTS), html_fields(self._costs(), ("estimated", "so far"))]
        if self.jobs.height:
            parts.append(html_grid(*self._jobs(), caption=f"jobs: {self._states()}", total=self.jobs.height))
        return html_block(f"polars-gemini checkpoint {self.directory}", *parts)


def checkpoint_status(
    checkpoint: str | os.PathLike[str],
    *,
    client: genai.Client | None = None,
    storage_options: dict[str, Any] | None = None,
) -> CheckpointStatus:
    """The state of the run saved in `checkpoint`, from its files (and job states from the API with `client`).

    `checkpoint` is a directory or an object-storage URL (`s3://bucket/prefix`, ...), with `storage_options` as
    Polars takes them (else the environment's credentials).

    >>> print(polars_gemini.checkpoint_status("runs/reviews"))  # doctest: +SKIP
    """
    root = open_location(checkpoint, storage_options)
    if root.remote:
        root.prepare()  # a bucket that is missing or unreachable is named as such, not as "no checkpoint"
    manifest = _manifest(root)
    try:
        return _status(root, manifest, client)
    except (FileNotFoundError, pl.exceptions.PolarsError) as exc:  # a file or a column the run always writes
        raise CheckpointCorruptedError(
            f"Checkpoint {root} is incomplete or corrupted ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "Hint: was it copied only in part? Restore the whole directory, or start the run again elsewhere."
        ) from exc


def _manifest(root: Location) -> dict[str, Any]:
    """The manifest of the checkpoint at `root`, or a CheckpointError saying why there is none."""
    a_file = isinstance(root, LocalLocation) and root.root.is_file()
    if a_file or not root.exists():
        what = "is a file, not a directory" if a_file else "does not exist"
        raise CheckpointError(
            f"Checkpoint {root} {what}. Hint: pass the directory given as checkpoint= to batch() or submit()."
        )
    odd = isinstance(root, LocalLocation) and root.path("manifest.json").is_dir()
    if odd or not (root / "manifest.json").exists():
        raise CheckpointError(
            f"{root} is not a polars-gemini checkpoint (no manifest.json). Hint: pass the directory given as "
            "checkpoint= to batch() or submit()."
        )
    manifest = read_json(root / "manifest.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("model"), str):
        raise CheckpointCorruptedError(
            f"Checkpoint file {root / 'manifest.json'} is not a polars-gemini manifest (no model recorded). "
            "Hint: restore it from a backup, or start the run again elsewhere."
        )
    return manifest


def _status(root: Location, manifest: dict[str, Any], client: genai.Client | None) -> CheckpointStatus:
    jobs = read_parquet(root / "jobs.parquet") if (root / "jobs.parquet").exists() else pl.DataFrame()
    if client is not None and jobs.height:
        jobs = _refresh(jobs, client)
    results = _results(root, jobs)
    rows = read_parquet(root / "rows.parquet")
    done, failed = _row_counts(rows, results)
    price = load_prices().get(manifest["model"])
    estimate = (manifest.get("estimate") or {}).get("cost")
    actual = actual_cost(results, price, batch=True) if results.height else (0.0 if price else None)
    shown = jobs.select(c for c in _JOB_COLUMNS if c in jobs.columns) if jobs.height else jobs
    return CheckpointStatus(str(root), manifest["model"], manifest.get("template"), rows.height, done, failed,
                            rows.height - done - failed, shown, estimate, actual)  # fmt: skip


def _refresh(jobs: pl.DataFrame, client: genai.Client) -> pl.DataFrame:
    states = {
        name: _client.get_job(client, name).state
        for name, collected in jobs.select("name", "collected").iter_rows()
        if name and not collected
    }
    return jobs.with_columns(pl.col("name").replace_strict(states, default=pl.col("state")).alias("state"))


def _results(root: Location, jobs: pl.DataFrame) -> pl.DataFrame:
    names = jobs.get_column("display_name").to_list() if jobs.height else []
    paths = [root / "results" / f"{n}.parquet" for n in names]
    frames = [read_parquet(p).select(KEY, "error", "usage") for p in paths if p.exists()]
    return pl.concat(frames) if frames else pl.DataFrame(schema={KEY: pl.String, "error": pl.String})


def _row_counts(rows: pl.DataFrame, results: pl.DataFrame) -> tuple[int, int]:
    latest = results.unique(subset=KEY, keep="last", maintain_order=True).select(KEY, "error")
    joined = rows.join(latest, on=KEY, how="left")
    done = joined.filter(pl.col(KEY).is_not_null() & pl.col(KEY).is_in(latest.get_column(KEY).implode()))
    ok = int(done.get_column("error").is_null().sum())
    not_sent = int(rows.get_column(KEY).is_null().sum())
    return ok, done.height - ok + not_sent
