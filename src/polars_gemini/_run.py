"""A run: its jobs in rounds (first attempt, then retries), polling with capped backoff and a progress bar,
result collection, and assembly. State lives in a `Store` (in memory, or a checkpoint directory)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from google import genai

from polars_gemini import _client
from polars_gemini._assemble import answer_columns, join_rows, per_request
from polars_gemini._checkpoint import Store
from polars_gemini._decode import decode_answers
from polars_gemini._errors import MissingAPIKeyError, RunTimeoutError
from polars_gemini._estimate import Estimate, actual_cost, usage_columns
from polars_gemini._plan import Limits, Plan, shard
from polars_gemini._prices import PriceTable, load_prices
from polars_gemini._requests import KEY, encode_jsonl, inline_requests
from polars_gemini._results import (
    ERROR,
    ERROR_CODE,
    JOB_STATE_CODES,
    MISSING_CODE,
    RETRYABLE_CODES,
    TEXT,
    inline_lines,
    parse_lines,
    split_lines,
    synthetic_errors,
)
from polars_gemini._store import JobRecord

# At most this many request files are encoded and uploaded at once: each is up to `Limits.file_bytes` in memory.
_UPLOADS = threading.BoundedSemaphore(2)
# How often to look for a job whose create call may have landed before a crash, before creating it again.
_LOOKUPS = 3
_LOOKUP_PAUSE = 2.0


@dataclass(frozen=True)
class RunOptions:
    output: str = "response"
    prefix: str = ""
    poll_interval: float = 5.0
    max_poll_interval: float = 60.0
    max_concurrency: int = 8
    progress: bool = True
    max_retries: int = 2
    keep_files: bool = False
    limits: Limits = field(default_factory=Limits)
    usage: bool = False
    prices: PriceTable = field(default_factory=load_prices)


@dataclass(frozen=True)
class RunStatus:
    """A snapshot of a run: job states and request counts."""

    jobs: tuple[tuple[str, str], ...]  # (job name or display name, state)
    requests: int
    done: int
    failed: int
    estimated_cost: float | None = None
    actual_cost: float | None = None

    @property
    def pending(self) -> int:
        return self.requests - self.done - self.failed

    def __repr__(self) -> str:
        states = ", ".join(f"{n}: {s}" for n, s in self.jobs) or "no jobs"
        costs = f"; cost {_usd(self.estimated_cost)} estimated, {_usd(self.actual_cost)} so far"
        return f"RunStatus({self.done}/{self.requests} requests done, {self.failed} failed; {states}{costs})"


@dataclass
class Run:
    """A batch run. `status()` reports, `wait()` polls until done, `result()` returns the frame, `cancel()` stops.

    >>> run = df.gemini.submit("Summarize: {text}", model="gemini-2.5-flash")  # doctest: +SKIP
    >>> out = run.result()  # doctest: +SKIP
    """

    frame: pl.DataFrame | pl.LazyFrame  # lazy for a streamed plan: collected only when the result is assembled
    plan: Plan
    client: genai.Client | None = field(repr=False)
    options: RunOptions
    store: Store = field(default_factory=Store, repr=False)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    round: int = 0
    estimate: Estimate | None = None

    # -- submission -------------------------------------------------------------------------------------------

    def submit(self) -> Run:
        """Recover jobs a crash interrupted, then create jobs for every request without a usable result."""
        self._recover()
        self._submit_round()
        return self

    def _api(self) -> genai.Client:
        if self.client is None:
            raise MissingAPIKeyError("This run has no client: pass client= (or set GEMINI_API_KEY) to continue it.")
        return self.client

    def _recover(self) -> None:
        """Jobs left PREPARED or CREATING by a crash: find the ones the service has, then finish creating the rest."""
        orphans = [j for j in self.store.active_jobs() if j.name is None]
        creating = [j for j in orphans if j.state == "CREATING"]
        for attempt in range(_LOOKUPS if creating else 0):
            found = {s.display_name: s for s in _client.find_jobs(self._api(), "polars-gemini-")}
            for job in [j for j in creating if j.display_name in found]:  # created before the crash: attach
                self.store.update(job, name=found[job.display_name].name, state=found[job.display_name].state)
            creating = [j for j in creating if j.name is None]
            if not creating or attempt == _LOOKUPS - 1:
                break
            time.sleep(_LOOKUP_PAUSE)  # a create sent just before the crash may still be landing
        self._each(self._create, [j for j in orphans if j.name is None])

    def _todo(self) -> pl.Series:
        """Keys of this plan that are neither settled (answered, or failed for good) nor in a job still running."""
        latest = self.store.latest()
        settled = latest.filter(pl.col(ERROR).is_null() | ~pl.col(ERROR_CODE).fill_null(0).is_in(RETRYABLE_CODES))
        busy = [settled.get_column(KEY)] + [self.store.job_keys(j) for j in self.store.active_jobs()]
        keys = self.plan.requests.get_column(KEY)
        todo: pl.Series = keys.filter(~keys.is_in(pl.concat(busy).implode()))
        return todo

    def _submit_round(self) -> None:
        keys = self._todo()
        if keys.is_empty():
            return
        self.round += 1
        if self.plan.files and self.round == 1 and keys.len() == self.plan.requests.height:
            self._submit_streamed()
            return
        requests = self.plan.requests.join(keys.to_frame(KEY), on=KEY, how="semi", maintain_order="left")
        requests, shards = shard(requests, self.options.limits)
        jobs = []
        for s in shards:
            name = f"{self._prefix()}-{s.index:04d}"
            job = JobRecord(name, self.run_id, self.round, s.index, s.transport, s.requests)
            self.store.add_job(job, requests.filter(pl.col("shard") == s.index).get_column(KEY))
            jobs.append(job)
        self._each(self._create, jobs)

    def _prefix(self) -> str:
        return f"polars-gemini-{self.plan.spec.fingerprint[:8]}-{self.run_id}-r{self.round}"

    def _submit_streamed(self) -> None:
        """First round of a streamed plan: its request files are the jobs' input files, uploaded as they are."""
        jobs = []
        for s, path in zip(self.plan.shards, self.plan.files, strict=True):
            job = JobRecord(f"{self._prefix()}-{s.index:04d}", self.run_id, 1, s.index, "file", s.requests,
                            input_path=str(path))  # fmt: skip
            self.store.add_job(job, self.plan.shard_requests(s.index).get_column(KEY))
            jobs.append(job)
        self._each(self._create, jobs)

    def _create(self, job: JobRecord) -> None:
        src: Any
        if job.transport == "inline":
            src = inline_requests(self.plan.prompts(self.store.job_keys(job)), self.plan.spec)
        else:
            if job.input_file is None:
                with _UPLOADS:  # bounds the request files held in memory at once
                    self.store.update(job, input_file=self._upload(job))
            src = job.input_file
        self.store.update(job, state="CREATING")  # from here on, a crash means: look the job up before re-creating
        snap = _client.create_job(self._api(), self.plan.spec.model, src, job.display_name)
        self.store.update(job, name=snap.name, state=snap.state)

    def _upload(self, job: JobRecord) -> str:
        name = f"{job.display_name}-input"
        if job.input_path is not None:
            return _client.upload_jsonl(self._api(), Path(job.input_path), name)
        data = encode_jsonl(self.plan.prompts(self.store.job_keys(job)), self.plan.spec)
        return _client.upload_jsonl(self._api(), data, name)

    def _each(self, fn: Callable[[JobRecord], None], jobs: list[JobRecord]) -> None:
        if len(jobs) <= 1:
            for job in jobs:
                fn(job)
            return
        with ThreadPoolExecutor(max_workers=min(self.options.max_concurrency, len(jobs))) as pool:
            list(pool.map(fn, jobs))  # list() re-raises the first exception of any job

    # -- polling and collection ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Poll every unfinished job once and collect the results of those that finished."""
        self._each(self._refresh_one, [j for j in self.store.active_jobs() if j.name])

    def _refresh_one(self, job: JobRecord) -> None:
        assert job.name is not None
        snap = _client.get_job(self._api(), job.name)
        self.store.update(job, state=snap.state, error=snap.error)
        if snap.state == "SUCCEEDED" and not snap.results_ready:
            return  # the service can report SUCCEEDED before the results file is attached: poll again
        if snap.done:
            self._collect(job, snap)

    def _collect(self, job: JobRecord, snap: _client.JobSnapshot) -> None:
        keys = self.store.job_keys(job)
        if snap.state != "SUCCEEDED":
            message = f"job {job.name} ended {snap.state}" + (f": {snap.error}" if snap.error else "")
            results = synthetic_errors(keys, JOB_STATE_CODES.get(snap.state, 13), message)
        else:
            results = self._download(job, snap).filter(pl.col(KEY).is_in(keys.implode()))
            results = results.unique(subset=KEY, keep="first", maintain_order=True)
            missing = keys.filter(~keys.is_in(results.get_column(KEY).implode()))
            message = f"no result was returned for this request by job {job.name}"
            results = pl.concat([results, synthetic_errors(missing, MISSING_CODE, message)])
        self.store.add_results(job, results, self._decoded(results) if self.store.root else None)
        if job.input_file and not self.options.keep_files:
            _client.delete_file(self._api(), job.input_file)

    def _decoded(self, results: pl.DataFrame) -> pl.Series:
        """The answers as the caller will get them: typed values in schema mode (null where invalid), else text."""
        text = results.get_column(TEXT)
        if self.plan.spec.field is None:
            return text
        decoded = decode_answers(text, self.plan.spec.field)
        return decoded.select(pl.when(pl.col("problem").is_null()).then(pl.col("value"))).to_series()

    def _download(self, job: JobRecord, snap: _client.JobSnapshot) -> pl.DataFrame:
        if snap.inlined is not None:
            return parse_lines(inline_lines(snap.inlined))
        assert snap.result_file is not None
        self.store.update(job, result_file=snap.result_file)
        return parse_lines(split_lines(_client.download(self._api(), snap.result_file)))

    @property
    def done(self) -> bool:
        return not self.store.active_jobs() and (self.round > self.options.max_retries or self._todo().is_empty())

    def advance(self) -> bool:
        """One polling step: refresh, and once a round is complete submit the retry round. True when finished."""
        if any(j.name is None for j in self.store.active_jobs()):
            self._recover()
        self.refresh()
        if self.store.active_jobs():
            return False
        if self.round <= self.options.max_retries:
            self._submit_round()
        return self.done

    def status(self) -> RunStatus:
        """Job states, request counts and costs as last seen (from the checkpoint alone when resumed from one);
        `refresh()` or `wait()` ask the service."""
        counts = self._counts()
        est = self.estimate.cost if self.estimate else None
        return RunStatus(counts.jobs, counts.requests, counts.done, counts.failed, est, self.cost().actual)

    def _counts(self) -> RunStatus:
        latest = self.plan.requests.select(KEY).join(self.store.latest(), on=KEY, how="inner")
        done = int(latest.get_column(ERROR).is_null().sum())
        jobs = tuple((j.name or j.display_name, j.state) for j in self.store.jobs if j.run_id == self.run_id)
        return RunStatus(jobs, self.plan.requests.height, done, latest.height - done)

    def wait(self, timeout: float | None = None) -> Run:
        """Poll with capped exponential backoff until every job has finished and its results are in."""
        from tqdm.auto import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        delay = self.options.poll_interval
        total = self.plan.requests.height
        with tqdm(total=total, unit="req", desc="gemini batch", disable=not self.options.progress) as bar:
            while True:
                finished = self.advance()
                status = self._counts()
                bar.update(status.done + status.failed - bar.n)
                bar.set_postfix_str(_states(self.store.jobs, self.run_id), refresh=False)
                if finished:
                    return self
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise RunTimeoutError(self._timeout_message(timeout))
                time.sleep(delay)
                delay = min(delay * 1.5, self.options.max_poll_interval)

    def _timeout_message(self, timeout: float | None) -> str:
        running = ", ".join(j.name or j.display_name for j in self.store.active_jobs())
        where = (
            f"polars_gemini.resume({str(self.store.root)!r}) from any process, or call run.wait() again"
            if self.store.root
            else "call run.wait() again (or run.result()); pass checkpoint= to resume from another process"
        )
        return f"The run was not finished after {timeout} s; jobs still running: {running}. To pick them up: {where}."

    def result(self, timeout: float | None = None) -> pl.DataFrame:
        """The input frame with the answer and error columns; waits for the jobs first."""
        if not self.done:
            self.wait(timeout)
        by_request = per_request(self.plan, self.store.latest())
        answers = answer_columns(self.plan, by_request, self.options.output, self.options.prefix)
        if self.options.usage:
            answers = answers.hstack(by_request.select(usage_columns(self.options.output)))
        frame = self.frame.collect() if isinstance(self.frame, pl.LazyFrame) else self.frame
        return join_rows(frame, self.plan, answers, self.options.output)

    def cost(self) -> RunCost:
        """The estimate made before submitting, next to what the finished requests actually cost (all attempts)."""
        mine = {j.display_name: j.transport for j in self.store.jobs if j.run_id == self.run_id}
        results = self.store.results().filter(pl.col("job").is_in(list(mine)))
        price = self.options.prices.get(self.plan.spec.model)
        sync = results.filter(pl.col("job").replace_strict(mine, default="batch") == "sync")
        batch = results.filter(pl.col("job").replace_strict(mine, default="batch") != "sync")
        actual = actual_cost(batch, price, batch=True)
        if not sync.is_empty() and actual is not None:
            actual += actual_cost(sync, price, batch=False) or 0.0
        return RunCost(self.estimate, actual, _usage_totals(results))

    def cancel(self) -> None:
        """Cancel every job that has not finished. Requests already answered are still billed by Google."""
        for job in self.store.active_jobs():
            if job.name:
                _client.cancel_job(self._api(), job.name)

    def close(self) -> None:
        """Release the checkpoint lock (also released when the process exits)."""
        self.store.close()

    def __repr__(self) -> str:
        return f"Run(id={self.run_id!r}, model={self.plan.spec.model!r}, {self._counts()!r})"


@dataclass(frozen=True)
class RunCost:
    """Estimate and actual side by side. `actual` is USD from usageMetadata (None when the price is unknown)."""

    estimate: Estimate | None
    actual: float | None
    tokens: dict[str, int]

    def __repr__(self) -> str:
        est = self.estimate
        expected = f"{_usd(est.cost)} expected, {_usd(est.cost_max)} at most" if est else "no estimate"
        tokens = ", ".join(f"{k} {v:,}" for k, v in self.tokens.items())
        return f"RunCost(estimate: {expected}; actual so far: {_usd(self.actual)}; tokens: {tokens})"


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}"


def _usage_totals(results: pl.DataFrame) -> dict[str, int]:
    u = pl.col("usage").struct
    names = {"input": "promptTokenCount", "output": "candidatesTokenCount", "thinking": "thoughtsTokenCount",
             "cached": "cachedContentTokenCount"}  # fmt: skip
    row = results.select(u.field(f).fill_null(0).sum().alias(k) for k, f in names.items()).row(0, named=True)
    return {k: int(v or 0) for k, v in row.items()}


def _states(jobs: list[JobRecord], run_id: str) -> str:
    counts: dict[str, int] = {}
    for job in jobs:
        if job.run_id == run_id:
            counts[job.state] = counts.get(job.state, 0) + 1
    return ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
