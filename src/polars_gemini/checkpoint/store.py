"""`Store`: a run's jobs and results, kept in memory and, with a checkpoint directory, on disk (layout in `_store`)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import polars as pl

from polars_gemini.checkpoint import lock as _lock
from polars_gemini.checkpoint.files import JobRecord, jobs_frame, jobs_from_frame, read_parquet, write_parquet
from polars_gemini.checkpoint.location import Entry, Location, lease_seconds, open_location
from polars_gemini.core.result_columns import ERROR, ERROR_CODE, LINE, empty_results
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
_COMPACT = "__pg_k"
_SLICE = 2_000_000  # keys compared with the standing table at a time


def _compact(key: pl.Expr) -> pl.Expr:
    """A request key (32 hex digits) as one UInt128: exact, 16 bytes a key where Polars keeps the string in 48, and a
    single numeric join column (a join on it costs a fraction of one on strings or on two columns). A key of another
    form (none of the plan's) becomes null, which no join matches."""
    return key.str.to_integer(base=16, dtype=pl.UInt128, strict=False).alias(_COMPACT)


def _slices(keys: pl.Series) -> Iterator[tuple[int, pl.DataFrame]]:
    """`keys` compacted (`_compact`) a slice at a time, with each slice's offset."""
    for start in range(0, keys.len(), _SLICE):
        yield start, keys.slice(start, _SLICE).to_frame(KEY).select(_compact(pl.col(KEY)))


def _ranked(standing: pl.DataFrame) -> pl.DataFrame:
    """One row per key: its most recent answer if any, else its most recent error (rows oldest first)."""
    ordered = standing.with_row_index("__pg_order").sort("ok", "__pg_order")
    return ordered.unique(subset=_COMPACT, keep="last").drop("__pg_order")


class Store:
    """Jobs (in creation order) and their results; `root=None` keeps everything in memory only.

    `lean=True` keeps no result in memory: each finished job's results (without the raw lines) go to a Parquet file,
    under the checkpoint (`root`) or, without one, a temporary directory removed with the store, and are read back
    from there (`results`, `latest`, `scans`). That is how a run of millions of rows is assembled in bounded memory
    (`Run.sink_parquet`). `version` counts the results stored so far, for callers that cache what they derive.
    """

    def __init__(self, root: Location | Path | None = None, *, lean: bool = False) -> None:
        self.root: Location | None = None if root is None else open_location(root)
        self.lean = lean
        self.version = 0
        self.jobs: list[JobRecord] = []
        self._keys: dict[str, pl.Series] = {}
        self._results: list[pl.DataFrame] = []
        self._files: list[Path] = []  # lean: the results files (local copies of a remote checkpoint's), oldest first
        self._spill: Path | None = None
        # lean: per key (`_compact`) whether its standing result is an answer (`ok`) and its error code: what polls
        # and retry rounds ask of the results, in about 21 bytes a key.
        self._standing: pl.DataFrame | None = None
        self.media_files = pl.DataFrame(schema=MEDIA_FILES_SCHEMA)
        self._lock = threading.RLock()  # jobs are collected from several threads
        if self.root is not None:
            self.root.prepare()
            _lock.claim(self.root, self)  # busy from here until `opened()`
            try:
                self._load()
            except BaseException:
                _lock.release(self.root, self)
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
                if self.lean:
                    self._files.append(results.local())
                    self._stand(read_parquet(results).select(KEY, ERROR, ERROR_CODE))
                else:
                    self._results.append(read_parquet(results).drop(ANSWER, strict=False))
                job.collected = True
                self.version += 1
            elif job.collected:  # the results file was deleted: collect the job again (by name), never re-create it
                job.collected = False

    def opened(self) -> None:
        """The run is set up: another run in this process may now take the directory over while this one idles."""
        if self.root is not None:
            _lock.end(self.root, self)

    def operation(self) -> AbstractContextManager[None]:
        """Context of one unit of work (submit, poll, collect): refused once a newer run took the directory."""
        return _lock.operation(self.root, self) if self.root is not None else nullcontext()

    def before_create(self) -> None:
        """Refuse (CheckpointLockedError) unless this store still holds its checkpoint with time to spare: a remote
        checkpoint's lease must have half its term left before a job is created, so that no other worker can take
        the checkpoint over while the create call is under way."""
        if self.root is not None:
            _lock.check(self.root, self, lease_seconds() / 2 if self.root.remote else 0.0)

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
        if self.lean:  # the raw lines are the bulk of the results and nothing reads them back
            frame = frame.drop(LINE, strict=False)
        path = self._results_dir() / f"{job.display_name}.parquet" if self.lean or self.root else None
        if path is not None:
            write_parquet(path, frame if answer is None else frame.with_columns(answer.alias(ANSWER)))
        with self._lock:
            if self.lean:
                assert path is not None
                self._files.append(path.local() if isinstance(path, Entry) else path)
                self._stand(frame)
            else:
                self._results.append(frame)
            self.version += 1
        self.update(job, collected=True)

    def _stand(self, results: pl.DataFrame) -> None:
        """Fold a job's results into the standing table (callers hold the lock)."""
        new = results.select(_compact(pl.col(KEY)), pl.col(ERROR).is_null().alias("ok"),
                             pl.col(ERROR_CODE).cast(pl.Int32))  # fmt: skip
        if not new.select(pl.col(_COMPACT).is_unique().all()).item():
            new = _ranked(new)
        old = self._standing
        if old is None:
            self._standing = new
            return
        # Semi and anti joins hash their right side: the new job's keys, not the millions already standing.
        keys = new.select(_COMPACT)
        again = old.join(keys, on=_COMPACT, how="semi")
        if again.is_empty():  # no key seen before (every first round): appended, nothing sorted
            self._standing = pl.concat([old, new])
        else:  # a retry round: only the keys it answered again are ranked
            self._standing = pl.concat([old.join(keys, on=_COMPACT, how="anti"), _ranked(pl.concat([again, new]))])

    def counts(self, keys: pl.Series) -> tuple[int, int]:
        """Of `keys`, how many have an answer standing, and how many an error."""
        if not self.lean:
            latest = keys.to_frame(KEY).join(self.latest([KEY, ERROR]), on=KEY, how="inner")
            done = int(latest.get_column(ERROR).is_null().sum())
            return done, latest.height - done
        with self._lock:
            standing = self._standing
        if standing is None:
            return 0, 0
        done = found = 0
        for _, part in _slices(keys):
            hit = standing.join(part, on=_COMPACT, how="semi")
            done, found = done + int(hit.get_column("ok").sum()), found + hit.height
        return done, found - done

    def settled(self, keys: pl.Series, retryable: Sequence[int]) -> pl.Series:
        """Which of `keys` are settled: answered, or failed with an error no retry can fix (a code not in
        `retryable`)."""
        if not self.lean:
            latest = self.latest([KEY, ERROR, ERROR_CODE])
            done = latest.filter(pl.col(ERROR).is_null() | ~pl.col(ERROR_CODE).fill_null(0).is_in(list(retryable)))
            mask: pl.Series = keys.is_in(done.get_column(KEY).implode())
            return mask
        with self._lock:
            standing = self._standing
        none = pl.repeat(False, keys.len(), dtype=pl.Boolean, eager=True)
        if standing is None:
            return none
        final = pl.col("ok") | ~pl.col(ERROR_CODE).fill_null(0).is_in(list(retryable))
        hits = []
        for start, part in _slices(keys):
            done = standing.join(part, on=_COMPACT, how="semi").filter(final).select(_COMPACT)
            rows = part.with_row_index("__pg_row", offset=start).join(done, on=_COMPACT, how="semi")
            hits.append(rows.get_column("__pg_row"))
        return none.scatter(pl.concat(hits), True) if hits else none

    def _results_dir(self) -> Path | Entry:
        return self.root / "results" if self.root is not None else self._scratch_dir()

    def work_dir(self) -> Path | None:
        """Where large temporary files of the run go: inside a local checkpoint (same file system as its files), in
        a remote checkpoint's local cache, else the system's temporary directory (None)."""
        return None if self.root is None else self.root.staging_dir()

    def scratch(self, name: str) -> Path:
        """A path in a temporary directory of this store's (removed with it), for files a run needs until its end."""
        return self._scratch_dir() / name

    def _scratch_dir(self) -> Path:
        with self._lock:
            if self._spill is None:  # removed when the store is garbage-collected, or at exit
                self._spill = Path(tempfile.mkdtemp(prefix="polars-gemini-results-"))
                weakref.finalize(self, shutil.rmtree, self._spill, ignore_errors=True)
            return self._spill

    def scans(self) -> list[pl.LazyFrame]:
        """Every stored result as one LazyFrame per finished job, oldest first: read from its file in a lean store,
        so a caller that filters or projects reads only what it needs."""
        with self._lock:
            frames, files = list(self._results), list(self._files)
        if not self.lean:
            return [f.lazy() for f in frames]
        return [pl.scan_parquet(f).drop(ANSWER, strict=False) for f in files]

    def results(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """Every stored result, oldest first (a key retried later appears again, further down); with `columns`,
        only those."""
        with self._lock:
            frames, stored = list(self._results), bool(self._files)
        if not frames and not stored:
            schema = empty_results().schema
            empty = pl.DataFrame(schema={**schema, ATTEMPT: pl.Int32, JOB: pl.String})
            return empty if columns is None else empty.select(columns)
        if not self.lean:
            every = pl.concat(frames, how="diagonal_relaxed")  # embedding results add a column that errors lack
            return every if columns is None else every.select(columns)
        lazy = pl.concat(self.scans(), how="diagonal_relaxed")
        return (lazy if columns is None else lazy.select(columns)).collect()

    def job_results(self, name: str, columns: Sequence[str]) -> pl.DataFrame:
        """`columns` of the results stored for the job named `name` (none if it has none yet)."""
        with self._lock:
            files = [f for f in self._files if f.stem == name]
            frames = [f for f in self._results if f.height and f.item(0, JOB) == name]
        if files:
            return pl.concat([pl.read_parquet(f, columns=list(columns)) for f in files])
        if frames:
            return pl.concat([f.select(columns) for f in frames])
        empty = empty_results().with_columns(pl.lit(None, pl.Int32).alias(ATTEMPT), pl.lit(None, pl.String).alias(JOB))
        return empty.select(columns)

    def latest(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The result that stands per key: the most recent answer if there is one, else the most recent error.

        An answer, once in, is paid for and final: an error for that key from another job (an adopted job of an
        earlier call, or one that failed after the key was answered elsewhere) never replaces it.
        """
        results = self.results(None if columns is None else list(dict.fromkeys([KEY, "error", *columns])))
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
