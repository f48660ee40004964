"""`Store`: a run's jobs and results, kept in memory and, with a checkpoint directory, on disk (layout in `_store`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import polars as pl

from polars_gemini.checkpoint import lock as _lock
from polars_gemini.checkpoint.files import JobRecord, jobs_frame, jobs_from_frame, read_parquet, write_parquet
from polars_gemini.core.result_columns import empty_results
from polars_gemini.prepare.requests import KEY

MEDIA_FILES = "media_files.parquet"
# Media files uploaded for a run: which media id (MIME type and content hash) is which Files API file, till when.
MEDIA_FILES_SCHEMA: dict[str, pl.DataType] = {
    "media_id": pl.String(), "name": pl.String(), "uri": pl.String(), "expires_at": pl.Float64(),
    "run_id": pl.String(), "ours": pl.Boolean(),
}  # fmt: skip
ATTEMPT = "attempt"
ANSWER = "answer"
JOB = "job"


class Store:
    """Jobs (in creation order) and their results; `root=None` keeps everything in memory only."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.jobs: list[JobRecord] = []
        self._keys: dict[str, pl.Series] = {}
        self._results: list[pl.DataFrame] = []
        self.media_files = pl.DataFrame(schema=MEDIA_FILES_SCHEMA)
        self._lock = threading.RLock()  # jobs are collected from several threads
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
            _lock.claim(root, self)  # busy from here until `opened()`
            try:
                self._load()
            except BaseException:
                _lock.release(root, self)
                raise

    def _load(self) -> None:
        assert self.root is not None
        path = self.root / "jobs.parquet"
        self.jobs = jobs_from_frame(read_parquet(path)) if path.exists() else []
        if (self.root / MEDIA_FILES).exists():
            self.media_files = read_parquet(self.root / MEDIA_FILES).select(list(MEDIA_FILES_SCHEMA))
        for job in self.jobs:
            results = self.root / "results" / f"{job.display_name}.parquet"
            if results.exists():  # a crash after writing results but before updating jobs.parquet
                self._results.append(read_parquet(results).drop(ANSWER, strict=False))
                job.collected = True
            elif job.collected:  # the results file was deleted: collect the job again (by name), never re-create it
                job.collected = False

    def opened(self) -> None:
        """The run is set up: another run in this process may now take the directory over while this one idles."""
        if self.root is not None:
            _lock.end(self.root, self)

    def operation(self) -> AbstractContextManager[None]:
        """Context of one unit of work (submit, poll, collect): refused once a newer run took the directory."""
        return _lock.operation(self.root, self) if self.root is not None else nullcontext()

    def close(self) -> None:
        if self.root is not None:
            _lock.release(self.root, self)

    # -- media files ------------------------------------------------------------------------------------------

    def set_media_files(self, rows: pl.DataFrame, drop: list[str] | tuple[str, ...] = ()) -> None:
        """Record uploaded media files (`MEDIA_FILES_SCHEMA`; a media id recorded again replaces its old file) and
        forget those named in `drop`, persisting at once."""
        with self._lock:
            kept = self.media_files.filter(~pl.col("name").is_in(list(drop)))
            kept = kept.join(rows.select("media_id"), on="media_id", how="anti")
            self.media_files = pl.concat([kept, rows.select(list(MEDIA_FILES_SCHEMA))])
            if self.root is not None:
                write_parquet(self.root / MEDIA_FILES, self.media_files)

    # -- jobs -----------------------------------------------------------------------------------------------

    def save_jobs(self) -> None:
        with self._lock:
            now = time.time()
            for job in self.jobs:
                job.created_at = job.created_at or now
            if self.root is not None:
                write_parquet(self.root / "jobs.parquet", jobs_frame(self.jobs))

    def update(self, job: JobRecord, **changes: object) -> None:
        """Change a job's fields and persist the jobs table at once."""
        with self._lock:
            for name, value in changes.items():
                setattr(job, name, value)
            job.updated_at = time.time()
            self.save_jobs()

    def add_job(self, job: JobRecord, keys: pl.Series) -> None:
        """Record a job and its keys before it is created: the keys file first, so a job row always has keys."""
        with self._lock:
            self._keys[job.display_name] = keys
            if self.root is not None:
                write_parquet(self.root / "jobkeys" / f"{job.display_name}.parquet", keys.to_frame(KEY))
            self.jobs.append(job)
            self.save_jobs()

    def job_keys(self, job: JobRecord) -> pl.Series:
        if job.display_name not in self._keys and self.root is not None:
            path = self.root / "jobkeys" / f"{job.display_name}.parquet"
            self._keys[job.display_name] = read_parquet(path).get_column(KEY)
        return self._keys[job.display_name]

    def active_jobs(self) -> list[JobRecord]:
        return [j for j in self.jobs if not j.collected]

    # -- results ----------------------------------------------------------------------------------------------

    def add_results(self, job: JobRecord, results: pl.DataFrame, answer: pl.Series | None = None) -> None:
        """Store a finished job's results, then mark it collected (in that order: crash-safe).

        `answer` (the decoded, typed answers) goes to the file only: its dtype differs from one schema to another.
        """
        frame = results.with_columns(pl.lit(job.attempt, pl.Int32).alias(ATTEMPT), pl.lit(job.display_name).alias(JOB))
        if self.root is not None:
            saved = frame if answer is None else frame.with_columns(answer.alias(ANSWER))
            write_parquet(self.root / "results" / f"{job.display_name}.parquet", saved)
        with self._lock:
            self._results.append(frame)
        self.update(job, collected=True)

    def results(self) -> pl.DataFrame:
        """Every stored result, oldest first (a key retried later appears again, further down)."""
        with self._lock:
            frames = list(self._results)
        if not frames:
            schema = empty_results().schema
            return pl.DataFrame(schema={**schema, ATTEMPT: pl.Int32, JOB: pl.String})
        return pl.concat(frames, how="diagonal_relaxed")  # embedding results add a column that errors lack

    def latest(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The result that stands per key: the most recent answer if there is one, else the most recent error.

        An answer, once in, is paid for and final: an error for that key from another job (an adopted job of an
        earlier call, or one that failed after the key was answered elsewhere) never replaces it.
        """
        results = self.results()
        wanted = results if columns is None else results.select(columns)  # only what the caller reads is gathered
        winners: pl.DataFrame = wanted[self.latest_rows(results)]
        return winners

    @staticmethod
    def latest_rows(results: pl.DataFrame) -> pl.Series:
        """Positions in `results` of the result that stands per key (see `latest`), in order, ranked on two narrow
        columns: the wide ones (raw lines, vectors) are never sorted."""
        slim = results.select(pl.col(KEY), pl.col("error").is_null().alias("ok")).with_row_index("__pg_order")
        ranked = slim.sort("ok", "__pg_order").unique(subset=KEY, keep="last", maintain_order=True)
        order: pl.Series = ranked.get_column("__pg_order").sort()
        return order
