"""A submitted run: its jobs, polling with capped backoff and a progress bar, result collection and assembly.

State is plain data (a plan, job records, a results frame); the accessor never holds any of it.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl
from google import genai

from polars_gemini import _client
from polars_gemini._assemble import JOB_ERROR, answer_columns, join_rows, per_request
from polars_gemini._errors import RunTimeoutError
from polars_gemini._plan import SHARD, Plan
from polars_gemini._requests import KEY, encode_jsonl, inline_requests
from polars_gemini._results import empty_results, inline_lines, parse_lines, split_lines


@dataclass(frozen=True)
class RunOptions:
    output: str = "response"
    prefix: str = ""
    poll_interval: float = 5.0
    max_poll_interval: float = 60.0
    max_concurrency: int = 8
    progress: bool = True


@dataclass
class JobRecord:
    """One batch job of a run: which shard it carries and what is known about it."""

    shard: int
    display_name: str
    transport: str
    name: str | None = None
    state: str = "UNSUBMITTED"
    error: str | None = None
    input_file: str | None = None
    result_file: str | None = None
    collected: bool = False


@dataclass(frozen=True)
class RunStatus:
    """A snapshot of a run: job states and request counts."""

    jobs: tuple[tuple[str, str], ...]  # (job name or display name, state)
    requests: int
    done: int
    failed: int

    @property
    def pending(self) -> int:
        return self.requests - self.done

    def __repr__(self) -> str:
        states = ", ".join(f"{n}: {s}" for n, s in self.jobs) or "no jobs"
        return f"RunStatus({self.done}/{self.requests} requests done, {self.failed} failed; {states})"


@dataclass
class Run:
    """A batch run. `status()` reports, `wait()` polls until done, `result()` returns the frame, `cancel()` stops.

    >>> run = df.gemini.submit("Summarize: {text}", model="gemini-2.5-flash")  # doctest: +SKIP
    >>> out = run.result()  # doctest: +SKIP
    """

    frame: pl.DataFrame
    plan: Plan
    client: genai.Client = field(repr=False)
    options: RunOptions
    jobs: list[JobRecord] = field(default_factory=list)
    results: pl.DataFrame = field(default_factory=empty_results, repr=False)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def submit(self) -> Run:
        """Create one job per shard, concurrently. Creating a job is the step that costs money."""
        prefix = f"polars-gemini-{self.plan.spec.fingerprint[:8]}-{self.run_id}"
        self.jobs = [JobRecord(s.index, f"{prefix}-{s.index:04d}", s.transport) for s in self.plan.shards]
        self._each(self._submit_one, [j for j in self.jobs if j.name is None])
        return self

    def _submit_one(self, job: JobRecord) -> None:
        requests = self.plan.shard_requests(job.shard)
        model = self.plan.spec.model
        if job.transport == "inline":
            src: Any = inline_requests(requests, self.plan.spec)
        else:
            data = encode_jsonl(requests, self.plan.spec)
            job.input_file = src = _client.upload_jsonl(self.client, data, f"{job.display_name}-input")
        snap = _client.create_job(self.client, model, src, job.display_name)
        job.name, job.state = snap.name, snap.state

    def _each(self, fn: Any, jobs: list[JobRecord]) -> None:
        if len(jobs) <= 1:
            for job in jobs:
                fn(job)
            return
        with ThreadPoolExecutor(max_workers=min(self.options.max_concurrency, len(jobs))) as pool:
            list(pool.map(fn, jobs))  # list() re-raises the first exception of any job

    def refresh(self) -> None:
        """Poll every unfinished job once and collect the results of those that finished."""
        self._each(self._refresh_one, [j for j in self.jobs if j.name and not j.collected])

    def _refresh_one(self, job: JobRecord) -> None:
        assert job.name is not None
        snap = _client.get_job(self.client, job.name)
        job.state, job.error = snap.state, snap.error
        if snap.state == "SUCCEEDED" and not snap.results_ready:
            return  # the service can report SUCCEEDED before the results file is attached: poll again
        if snap.done:
            self._collect(job, snap)

    def _collect(self, job: JobRecord, snap: _client.JobSnapshot) -> None:
        if snap.inlined is not None:
            lines = inline_lines(snap.inlined)
        elif snap.result_file is not None:
            job.result_file = snap.result_file
            lines = split_lines(_client.download(self.client, snap.result_file))
        else:
            lines = pl.Series("line", [], dtype=pl.String)
        parsed = parse_lines(lines)
        with self._lock:  # jobs are collected from several threads
            self.results = pl.concat([self.results, parsed], how="vertical_relaxed")
            job.collected = True

    @property
    def done(self) -> bool:
        return all(j.collected for j in self.jobs)

    def status(self) -> RunStatus:
        """Job states and request counts, as last seen (call `refresh()` or `wait()` to poll)."""
        total = self.plan.requests.height
        done = sum(self._shard_size(j) for j in self.jobs if j.collected)
        failed = int(self.results.get_column("error").is_not_null().sum())
        failed += sum(self._shard_size(j) for j in self.jobs if j.collected and j.state != "SUCCEEDED")
        return RunStatus(tuple((j.name or j.display_name, j.state) for j in self.jobs), total, done, failed)

    def _shard_size(self, job: JobRecord) -> int:
        return next(s.requests for s in self.plan.shards if s.index == job.shard)

    def wait(self, timeout: float | None = None) -> Run:
        """Poll with capped exponential backoff until every job has finished and its results are in."""
        from tqdm.auto import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        delay = self.options.poll_interval
        with tqdm(
            total=self.plan.requests.height,
            unit="req",
            desc="gemini batch",
            disable=not self.options.progress,
        ) as bar:
            while True:
                self.refresh()
                status = self.status()
                bar.update(status.done - bar.n)
                bar.set_postfix_str(_states(self.jobs), refresh=False)
                if self.done:
                    return self
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise RunTimeoutError(self._timeout_message(timeout))
                time.sleep(delay)
                delay = min(delay * 1.5, self.options.max_poll_interval)

    def _timeout_message(self, timeout: float | None) -> str:
        running = ", ".join(j.name or j.display_name for j in self.jobs if not j.collected)
        return (
            f"The run was not finished after {timeout} s; jobs still running: {running}. They keep running on "
            "Google's side: call run.wait() again (or run.result()) to pick them up."
        )

    def result(self, timeout: float | None = None) -> pl.DataFrame:
        """The input frame with the answer and error columns; waits for the jobs first."""
        if not self.done:
            self.wait(timeout)
        by_request = per_request(self.plan, self.results, self._job_errors())
        answers = answer_columns(self.plan, by_request, self.options.output, self.options.prefix)
        return join_rows(self.frame, self.plan, answers, self.options.output)

    def _job_errors(self) -> pl.DataFrame:
        bad = {
            j.shard: f"job {j.name} ended {j.state}" + (f": {j.error}" if j.error else "")
            for j in self.jobs
            if j.collected and j.state != "SUCCEEDED"
        }
        return (
            self.plan.requests.select(KEY, SHARD)
            .filter(pl.col(SHARD).is_in(list(bad)))
            .select(KEY, pl.col(SHARD).replace_strict(bad, return_dtype=pl.String).alias(JOB_ERROR))
        )

    def cancel(self) -> None:
        """Cancel every job that has not finished. Requests already answered are still billed by Google."""
        for job in self.jobs:
            if job.name and not job.collected:
                _client.cancel_job(self.client, job.name)

    def __repr__(self) -> str:
        return f"Run(id={self.run_id!r}, model={self.plan.spec.model!r}, {self.status()!r})"


def _states(jobs: list[JobRecord]) -> str:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    return ", ".join(f"{n} {s.lower()}" for s, n in counts.items())


def with_options(run: Run, **changes: Any) -> Run:
    return replace(run, options=replace(run.options, **changes))
