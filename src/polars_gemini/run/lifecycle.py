"""A run: its jobs in rounds (first attempt, then retries), polling with capped backoff and a progress bar,
result collection, and assembly. State lives in a `Store` (in memory, or a checkpoint directory)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import polars as pl
from google.genai import types

from polars_gemini.checkpoint.files import JobRecord, read_parquet, write_parquet
from polars_gemini.checkpoint.location import Entry, LocalLocation
from polars_gemini.checkpoint.store import Store
from polars_gemini.core.errors import (
    APIError,
    CheckpointError,
    ConfigurationError,
    GeminiBatchWarning,
    MissingAPIKeyError,
    RunTimeoutError,
)
from polars_gemini.core.models import model_info
from polars_gemini.core.progress import Progress, Snapshot, live_progress
from polars_gemini.core.result_columns import ERROR, LINE, TEXT, USAGE
from polars_gemini.cost.estimate import Estimate, actual_cost, usage_columns
from polars_gemini.cost.prices import PriceTable, load_prices
from polars_gemini.prepare.plan import Limits, Plan, shard
from polars_gemini.prepare.requests import KEY, NBYTES, encode_jsonl, inline_embed_requests, inline_requests
from polars_gemini.run import media as _media
from polars_gemini.run import sink as _sink
from polars_gemini.run.assemble import answer_columns, embedding_columns, join_rows, per_request, per_row
from polars_gemini.run.decode import decode_answers
from polars_gemini.run.predictions import parse_predictions, request_digests
from polars_gemini.run.reports import RunCost as RunCost
from polars_gemini.run.reports import RunStatus as RunStatus
from polars_gemini.run.reports import SinkReport as SinkReport
from polars_gemini.run.reports import run_html, run_text
from polars_gemini.run.results import (
    GONE_CODE,
    JOB_STATE_CODES,
    MISSING_CODE,
    RETRYABLE_CODES,
    embed_results,
    keyed_by_position,
    parse_embed_file,
    parse_results,
    parse_results_file,
    split_lines,
    synthetic_errors,
)
from polars_gemini.service import bigquery as _bigquery
from polars_gemini.service import gemini as _client
from polars_gemini.service import storage as _storage
from polars_gemini.service.responses import inline_embed_frame, inline_lines
from polars_gemini.service.sync import run_sync

if TYPE_CHECKING:
    from google import genai

# At most this many request files are encoded and uploaded at once: each is up to `Limits.file_bytes` in memory.
_UPLOADS = threading.BoundedSemaphore(2)
# A lean store's jobs are collected one at a time: each holds a job's parsed results (millions of rows) meanwhile.
_LEAN_COLLECTS = threading.BoundedSemaphore(1)
# How often to look for a job whose create call may have landed before a crash, before creating it again.
_LOOKUPS = 3
_LOOKUP_PAUSE = 2.0
# The first poll waits at most this long (the job may be done at once); later polls back off to the cap.
_FIRST_POLL = 0.5
MAX_ACTIVE_JOBS = 100  # the service's limit on concurrent batch jobs per project
_PAYLOAD_TOO_LARGE = ("payload size", "too large", "exceeds the limit")
FLEX_CHUNK = 256  # requests per Flex record: stored together, so a crash re-sends at most this many
_TOKEN_MARGIN = 0.7  # jobs are cut at 70% of the enqueued-token budget: token counts here are estimates
VERTEX_MAX_REQUESTS = 200_000  # Vertex AI: requests per batch prediction job
VERTEX_FILE_BYTES = 1_000_000_000  # Vertex AI: bytes per input file (cut at 90%: the sizes here are estimates)


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
    retry: types.HttpRetryOptions | None = None  # None: `_client.RETRY`
    max_active_jobs: int = MAX_ACTIVE_JOBS
    max_enqueued_tokens: int | None = None
    reuse_jobs: bool = True
    resubmit_lost: bool = False
    normalize: bool = True  # embedding runs: vectors scaled to unit length
    webhook: tuple[str, ...] = ()  # URIs the service notifies when each job ends (its `webhook_config`)
    stuck_after: float | None = None  # hours a job may stay PENDING/RUNNING before it is cancelled and sent another way
    fallback: str = "batch"  # how a stuck or expired job's requests (and other retries) go again: "batch" or "flex"
    staging: str | None = None  # Vertex AI: where requests and predictions go, a gs:// prefix or a bq:// dataset


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
    extra_rounds: int = 0  # rounds allowed beyond max_retries (re-submitting requests whose jobs were lost)
    _refused_since: float | None = field(default=None, repr=False)  # quota refusals while none of ours ran
    _tokens: dict[str, int] = field(default_factory=dict, repr=False)  # estimated input tokens per job
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)  # set by cancel(): no more calls
    _flex_lines: dict[str, list[str]] = field(default_factory=dict, repr=False)  # Flex answers, without a checkpoint
    _counted: tuple[int, int, int] = field(default=(-1, 0, 0), repr=False)  # (store version, done, failed)
    _rows_counted: tuple[int, int, int] = field(default=(-1, 0, 0), repr=False)  # the same, of the input rows
    _billed: tuple[tuple[int, int], RunCost | None] = field(default=((0, -1), None), repr=False)  # (store, version)
    _job_bills: dict[str, RunCost] = field(default_factory=dict, repr=False)  # lean store: each collected job's
    _rows_file: Path | None = field(default=None, repr=False)  # the plan's rows while spilled (`spill_rows`)
    storage: Any = field(default=None, repr=False)  # Vertex AI: the staging client (Cloud Storage or BigQuery)

    # -- submission -------------------------------------------------------------------------------------------

    def submit(self) -> Run:
        """Recover jobs a crash interrupted, then create jobs for every request without a usable result."""
        with self.store.operation(), _submitting(self.run_id):
            self._recover()
            fresh = not any(j.run_id == self.run_id for j in self.store.jobs)
            # A checkpoint's own run id is in its manifest: its jobs are this run's, whatever reuse_jobs says.
            adopt = self.options.reuse_jobs or self.store.root is not None
            if adopt and fresh and not self._todo().is_empty():
                self._adopt()
            if self.round == 0 or self._may_retry():  # a finished run called again buys no further round
                self._submit_round()
        return self

    def _adopt(self) -> None:
        """A run with no job of its own yet (a new call, or a lost jobs.parquet) takes over the jobs that the same
        work left on the service, of every round, and collects those that finished: only what none of them
        answered is sent again. Their keys are not known until their results are in, so until then every key of
        the plan counts as busy, and their results are taken as they are (no 'missing' errors)."""
        found = [s for s in self._on_service().values() if _reusable(s)]
        for snap in sorted(found, key=lambda s: s.display_name or ""):
            round_no, shard_no = _round_and_shard(snap.display_name or "")
            job = JobRecord(snap.display_name or "", self.run_id, round_no, shard_no, "adopted", 0, snap.state,
                            snap.name, adopted=True)  # fmt: skip
            self.store.add_job(job, self.plan.requests.get_column(KEY))
            self.round = max(self.round, round_no)
        if found:
            names = ", ".join(s.name for s in found[:3]) + (" ..." if len(found) > 3 else "")
            warnings.warn(
                f"Re-attached to {len(found)} batch job(s) already on the service for this same work ({names}), "
                "instead of paying for them again. Pass reuse_jobs=False to submit the requests anew.",
                GeminiBatchWarning,
                stacklevel=3,
            )
            self._each(self._refresh_one, [j for j in self.store.active_jobs() if j.name])

    def _api(self) -> genai.Client:
        if self.client is None:
            raise MissingAPIKeyError("This run has no client: pass client= (or set GEMINI_API_KEY) to continue it.")
        return self.client

    def _recover(self) -> None:
        """Jobs left PREPARED or CREATING by a crash: find the ones the service has, then finish creating the rest."""
        orphans = [j for j in self.store.active_jobs() if j.name is None]
        creating = [j for j in orphans if j.state == "CREATING"]
        for attempt in range(_LOOKUPS if creating else 0):
            found = {n: snap for n, snap in self._on_service().items() if _reusable(snap)}
            for job in [j for j in creating if j.display_name in found]:  # created before the crash: attach
                self.store.update(job, name=found[job.display_name].name, state=found[job.display_name].state)
            creating = [j for j in creating if j.name is None]
            if not creating or attempt == _LOOKUPS - 1:
                break
            time.sleep(min(self._retry_delay(), _LOOKUP_PAUSE))  # a create sent just before may still be landing
        self._launch([j for j in orphans if j.name is None])

    def _on_service(self, prefix: str | None = None) -> dict[str, _client.JobSnapshot]:
        """This run's jobs on the service by display name (one `list`), the usable one where a name repeats."""
        jobs = _client.find_jobs(self._api(), prefix or f"{self._prefix_base()}-", self.options.retry)
        by_name: dict[str, list[_client.JobSnapshot]] = {}
        for snap in jobs:
            by_name.setdefault(snap.display_name or "", []).append(snap)
        return {name: _client.best_match(snaps) for name, snaps in by_name.items()}

    def _todo(self) -> pl.Series:
        """Keys of this plan that are neither settled (answered, or failed for good) nor in a job still running."""
        codes = list(RETRYABLE_CODES) + ([GONE_CODE] if self.options.resubmit_lost else [])
        keys = self.plan.requests.get_column(KEY)
        open_keys = ~self.store.settled(keys, codes)
        busy = [self.store.job_keys(j) for j in self.store.active_jobs()]
        if busy:
            open_keys = open_keys & ~keys.is_in(pl.concat(busy).implode())
        todo: pl.Series = keys.filter(open_keys)
        return todo

    def _submit_round(self) -> None:
        keys = self._todo()
        if keys.is_empty():
            return
        self.round += 1
        if self.plan.files and self.round == 1 and keys.len() == self.plan.requests.height:
            self._submit_streamed()
            return
        if self.round > 1 and self.options.fallback == "flex" and not self.plan.spec.embeds:
            self._submit_flex(keys)
            return
        requests = self.plan.requests.join(keys.to_frame(KEY), on=KEY, how="semi", maintain_order="left")
        requests, shards = shard(requests, self._limits())
        jobs = []
        for s in shards:
            name = f"{self._prefix()}-{s.index:04d}"
            job = JobRecord(name, self.run_id, self.round, s.index, s.transport, s.requests)
            self.store.add_job(job, requests.filter(pl.col("shard") == s.index).get_column(KEY))
            jobs.append(job)
        self._start(jobs)

    def _submit_flex(self, keys: pl.Series) -> None:
        """A retry round through the Flex tier: synchronous calls at batch price, recorded in chunks of
        `FLEX_CHUNK` requests, each stored as it finishes (a crash re-sends at most the chunk under way)."""
        jobs = []
        for index, start in enumerate(range(0, keys.len(), FLEX_CHUNK)):
            chunk = keys.slice(start, FLEX_CHUNK)
            job = JobRecord(f"{self._prefix()}-flex-{index:04d}", self.run_id, self.round, index, "flex", chunk.len())
            self.store.add_job(job, chunk)
            jobs.append(job)
        self._launch(jobs)

    def _run_flex(self, job: JobRecord) -> None:
        """Send one flex record's requests (each once, with the SDK's retries for 429/503) and store the answers.

        With a checkpoint, each answer is appended to a journal (`flex/<record>.jsonl`) as its call returns, so a
        crash re-sends only the calls under way; a resumed record sends only what its journal does not hold."""
        self.store.update(job, state="RUNNING")
        keys = self.store.job_keys(job)
        journal = None if self.store.root is None else self.store.root / "flex" / f"{job.display_name}.jsonl"
        memory = self._flex_lines.setdefault(job.display_name, [])  # without a checkpoint, the journal is here
        kept = _journal_lines(journal) if journal is not None else pl.Series(LINE, memory, dtype=pl.String)
        if not kept.is_empty():
            answered, _ = parse_results(kept, f"the journal {journal}")
            keys = keys.filter(~keys.is_in(answered.get_column(KEY).implode()))
        prompts = self.plan.prompts(keys)
        with _Journal(journal, memory) as write:
            lines = run_sync(prompts, self.plan.spec, self._api(), self.options.max_concurrency, False,
                             self.options.retry, self.media_parts(prompts), "flex", write,
                             self._stop.is_set)  # fmt: skip
        results, _ = parse_results(pl.concat([kept, lines]), f"the Flex calls of {job.display_name}")
        results = results.filter(pl.col(KEY).is_first_distinct())
        some = bool(results.get_column(ERROR).null_count())  # some call got an answer
        cancelled = self._stop.is_set() or job.state == "CANCELLED"
        self.store.update(job, state="CANCELLED" if cancelled else "SUCCEEDED" if some else "FAILED")
        self.store.add_results(job, results, self._decoded(results) if self.store.root else None)
        self._flex_lines.pop(job.display_name, None)
        if journal is not None:
            journal.unlink(missing_ok=True)

    def _limits(self) -> Limits:
        """The split limits, with every job (inline or file) small enough to fit the enqueued-token budget alone.

        Sizes are bytes, tokens an estimate from the bytes: a margin keeps a shard of denser-than-average text under
        the budget too."""
        limits, budget = self.options.limits, self.options.max_enqueued_tokens
        if self.vertex:
            limits = vertex_limits(limits)
        if budget is None:
            return limits
        cap = max(int(budget * _TOKEN_MARGIN / max(self._tokens_per_byte(), 1e-9)), 1)
        return dataclasses.replace(
            limits, file_bytes=min(limits.file_bytes, cap), inline_bytes=min(limits.inline_bytes, cap)
        )

    def _prefix_base(self) -> str:
        return f"polars-gemini-{self.plan.spec.fingerprint[:8]}-{self.run_id}"

    def _prefix(self) -> str:
        return f"{self._prefix_base()}-r{self.round}"

    def _submit_streamed(self) -> None:
        """First round of a streamed plan: its request files are the jobs' input files, uploaded as they are."""
        jobs, start, keys = [], 0, self.plan.requests.get_column(KEY)
        for s, path in zip(self.plan.shards, self.plan.files, strict=True):
            job = JobRecord(f"{self._prefix()}-{s.index:04d}", self.run_id, 1, s.index, "file", s.requests,
                            input_path=self._stored_path(path))  # fmt: skip
            # A streamed plan's shards are contiguous runs of its requests: a slice is a view, where a filter
            # would copy every key once more (about 0.5 GB at 10M requests).
            self.store.add_job(job, keys.slice(start, s.requests))
            start += s.requests
            jobs.append(job)
        self._start(jobs)

    def _stored_path(self, path: Path) -> str:
        """A request file's path as saved: relative to the checkpoint, so the run resumes from any directory."""
        if self.store.root is None:
            return str(path.resolve())
        relative = self.store.root.relative_of(path)
        if relative is None:
            raise CheckpointError(f"Request file {path} is not in checkpoint {self.store.root}.")
        return relative

    def _start(self, jobs: list[JobRecord]) -> None:
        """Create `jobs` (new records: none of them can be on the service yet; jobs an earlier call left there
        were adopted by `_adopt`, jobs a crash left half-created are found by `_recover`)."""
        self._launch(jobs)

    def _launch(self, jobs: list[JobRecord]) -> None:
        """Create those of `jobs` that fit under the concurrent-job and enqueued-token limits; queue the rest.
        Flex records are sent at once, one after the other (each runs `max_concurrency` calls at a time)."""
        for job in [j for j in jobs if j.transport == "flex"]:
            if self._stop.is_set() or job.collected:  # cancel() came first: nothing more is sent
                continue
            self._run_flex(job)
        jobs = [j for j in jobs if j.transport != "flex"]
        active = [j for j in self.store.active_jobs() if j.name is not None]
        room = self.options.max_active_jobs - len(active)
        tokens = sum(self._job_tokens(j) for j in active)
        ready: list[JobRecord] = []
        for job in jobs:
            need = self._job_tokens(job)
            budget = self.options.max_enqueued_tokens
            if len(ready) < room and (budget is None or tokens + need <= budget or not (active or ready)):
                ready.append(job)
                tokens += need
            elif job.state != "QUEUED":
                self.store.update(job, state="QUEUED")
        self._each(self._create, ready)
        self._check_refusals(active)

    def _check_refusals(self, active: list[JobRecord]) -> None:
        """A create refused for quota waits for our own jobs to finish. With none of ours running (other jobs of the
        project hold the quota, or one job is larger than it), it waits as long as the retry policy would for any
        call (attempts x max_delay: 6 minutes by default), then says what to do."""
        queued = [j for j in self.store.active_jobs() if j.state == "QUEUED" and j.name is None]
        if not queued or active or any(j.name for j in self.store.active_jobs()):
            self._refused_since = None
            return
        now = time.monotonic()
        self._refused_since = self._refused_since or now
        policy = self.options.retry or _client.RETRY
        patience = max(policy.attempts or 1, 1) * (60.0 if policy.max_delay is None else policy.max_delay)
        if now - self._refused_since > patience:
            budget = self.options.max_enqueued_tokens
            hint = (f"lower max_enqueued_tokens (now {budget:,})" if budget else
                    "pass max_enqueued_tokens=<your tier's limit> (jobs are then split to fit)")  # fmt: skip
            raise APIError(
                f"The service kept refusing to create {queued[0].display_name} for quota (HTTP 429 "
                f"RESOURCE_EXHAUSTED) for {patience:.0f} s while none of this run's jobs were running: other jobs of "
                f"the project use the quota, or one job is larger than your tier's enqueued-token limit. Wait, or "
                f"{hint} or max_requests_per_job=, then call again: nothing was lost.",
                code=429,
            )

    def _retry_delay(self) -> float:
        delay = (self.options.retry or _client.RETRY).initial_delay
        return 1.0 if delay is None else delay

    def _tokens_per_byte(self) -> float:
        est, total = self.estimate, int(self.plan.requests.get_column(NBYTES).sum() or 0)
        if est is None or not total:
            return 0.25  # about four bytes a token for English text
        return est.input_tokens / total

    def _job_tokens(self, job: JobRecord) -> int:
        """A job's estimated input tokens (what the enqueued-token quota counts), once per job."""
        if self.options.max_enqueued_tokens is None:
            return 0
        if job.display_name not in self._tokens:
            keys = self.store.job_keys(job)
            sizes = self.plan.requests.filter(pl.col(KEY).is_in(keys.implode())).get_column(NBYTES)
            self._tokens[job.display_name] = int(int(sizes.sum() or 0) * self._tokens_per_byte())
        return self._tokens[job.display_name]

    @property
    def vertex(self) -> bool:
        """Whether this run's jobs are Vertex AI batch prediction jobs (over Cloud Storage)."""
        return _client.is_vertex(self.client)

    def _storage(self) -> Any:
        if self.storage is None:
            if self._in_bigquery:
                self.storage = _bigquery.bigquery_client(self._api(), None)
            else:
                self.storage = _storage.storage_client(self._api(), None)
        return self.storage

    @property
    def _in_bigquery(self) -> bool:
        return (self.options.staging or "").startswith("bq://")

    def _stage(self, job: JobRecord) -> None:
        """A Vertex AI job's request shard written to Cloud Storage, and where its predictions will go: both names
        fixed by the job's display name and recorded before the create call, so a crash re-uploads the same object
        and the job found on the service is known by its output location too."""
        assert self.options.staging is not None
        if self._in_bigquery:  # a table of the request lines (key, request), and one for the predictions
            uri = f"{self.options.staging}.{_bigquery.table_name(job.display_name, 'input')}"
            out = f"{self.options.staging}.{_bigquery.table_name(job.display_name, 'output')}"
        else:
            where = _storage.staging_uri(self.options.staging, self._prefix_base(), job.display_name)
            uri, out = f"{where}/input.jsonl", f"{where}/predictions"
        what = f"Writing the requests of {job.display_name} to {uri}"
        with _UPLOADS:  # bounds the request files held in memory at once
            data: bytes | Path
            if job.input_path is not None:
                data = self._request_file(job.input_path)
            else:
                prompts = self.plan.prompts(self.store.job_keys(job))
                data = encode_jsonl(prompts, self.plan.spec, self.media_parts(prompts))
            if self._in_bigquery:
                _bigquery.load_requests(self._storage(), uri, data, what)
            else:
                _storage.upload(self._storage(), uri, data, what)
        self.store.update(job, input_file=uri, result_file=out)

    def _create(self, job: JobRecord) -> None:
        src: Any
        dest: str | None = None
        spec = self.plan.spec
        if self.vertex:
            if job.input_file is None:
                self._stage(job)
            assert job.input_file is not None
            gcs = types.BatchJobSource(format="jsonl", gcs_uri=[job.input_file])
            src, dest = job.input_file if self._in_bigquery else gcs, job.result_file
        elif job.transport == "inline":
            prompts = self.plan.prompts(self.store.job_keys(job))
            if spec.embeds:
                src = inline_embed_requests(prompts, spec)
            else:
                src = inline_requests(prompts, spec, self.media_parts(prompts))
        else:
            if job.input_file is None:
                with _UPLOADS:  # bounds the request files held in memory at once
                    self.store.update(job, input_file=self._upload(job))
            src = job.input_file
        self.store.before_create()  # a remote checkpoint's lease has time to spare: no one takes it over meanwhile
        self.store.update(job, state="CREATING")  # from here on, a crash means: look the job up before re-creating
        try:
            if spec.embeds:
                snap = _client.create_embed_job(self._api(), spec.model, src, job.display_name, self.options.retry)
            else:
                snap = _client.create_job(self._api(), spec.model, src, job.display_name, self.options.retry,
                                          self._webhook(job), dest)  # fmt: skip
        except _client.CreateOutcomeUnknown:
            return  # stays CREATING: the next step looks it up again (`_recover`), never creates it blindly
        except APIError as exc:
            if exc.code == 429:  # refused, so not created: wait for room (`advance` tries again)
                self.store.update(job, state="QUEUED")
                return
            if exc.code == 400 and job.transport == "inline" and _too_large(exc):
                self.store.update(job, transport="file", state="PREPARED")  # refused, so not created: send a file
                self._create(job)
                return
            raise
        self.store.update(job, name=snap.name, state=snap.state)

    def _webhook(self, job: JobRecord) -> types.WebhookConfig | None:
        """The job's `webhook_config`: the run's URIs, and in the metadata what a receiver needs to resume it."""
        if not self.options.webhook:
            return None
        metadata = {"polars_gemini_run_id": self.run_id, "polars_gemini_job": job.display_name}
        if self.store.root is not None:  # a directory's absolute path, or an object-storage URL
            metadata["polars_gemini_checkpoint"] = self.store.root.key
        uris = [u for u in self.options.webhook if u != "registered"]  # "registered": the project's own webhooks
        return types.WebhookConfig(uris=uris or None, user_metadata=metadata)

    def _upload(self, job: JobRecord) -> str:
        name = f"{job.display_name}-input"
        if job.input_path is not None:
            path = self._request_file(job.input_path)
            return _client.upload_jsonl(self._api(), path, name, self.options.retry)
        prompts = self.plan.prompts(self.store.job_keys(job))
        data = encode_jsonl(prompts, self.plan.spec, self.media_parts(prompts))
        return _client.upload_jsonl(self._api(), data, name, self.options.retry)

    def _request_file(self, input_path: str) -> Path:
        """A request file of a streamed plan, as a local file: saved relative to the checkpoint (in object storage:
        downloaded once), else absolute."""
        path = Path(input_path)
        if path.is_absolute() or self.store.root is None:
            return path
        return self.store.root.local(input_path)

    def media_parts(self, prompts: pl.DataFrame) -> pl.DataFrame | None:
        """The wire form of the media these prompts hold (uploading those that must be), or None."""
        if self.plan.media is None:
            return None
        o = self.options
        return _media.stage(self.plan, prompts.get_column("prompt"), self.store, self.client, self.run_id, o.retry,
                            o.max_concurrency, o.progress)  # fmt: skip

    def cleanup_media(self) -> int:
        """Delete the media files this run uploaded (done at the end of a run unless `keep_files`); how many."""
        if self.plan.media is None or self.options.keep_files:
            return 0
        return _media.cleanup(self.store, self.client, self.run_id, self.options.retry, self.options.max_concurrency)

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
        with self.store.operation():
            self._each(self._refresh_one, [j for j in self.store.active_jobs() if j.name])

    def _refresh_one(self, job: JobRecord) -> None:
        assert job.name is not None
        try:
            snap = _client.get_job(self._api(), job.name, self.options.retry)
        except APIError as exc:
            if exc.code != 404:
                raise
            self._gone(job, f"job {job.name} is no longer on the service (jobs are kept 48 hours)")
            return
        self.store.update(job, state=snap.state, error=snap.error or job.error, error_code=snap.error_code)
        if snap.state == "SUCCEEDED" and not snap.results_ready:
            return  # the service can report SUCCEEDED before the results file is attached: poll again
        if snap.done:
            self._collect(job, snap)
        elif snap.state in ("PENDING", "RUNNING", "QUEUED") and self._is_stuck(job, snap):
            self._unstick(job, snap)  # again at each poll until the cancel lands

    def _is_stuck(self, job: JobRecord, snap: _client.JobSnapshot) -> bool:
        """The job has been PENDING/RUNNING for longer than `stuck_after` hours (since the service created it)."""
        if self.options.stuck_after is None:
            return False
        created = snap.created.timestamp() if snap.created is not None else job.created_at
        return created is not None and time.time() - created > self.options.stuck_after * 3600

    def _unstick(self, job: JobRecord, snap: _client.JobSnapshot) -> None:
        """Cancel a stuck job, so that it cannot bill later, and mark it: once it has ended (CANCELLED, or whatever it
        reached first), whatever it answered is kept and the rest is sent again by the fallback (a retry round)."""
        assert job.name is not None and self.options.stuck_after is not None
        hours = _hours(self.options.stuck_after)
        if not job.stuck:
            flex = self.options.fallback == "flex" and not self.plan.spec.embeds
            how = "at the Flex tier" if flex else "in a new batch job"
            then = f"sent again {how}" if self._may_retry() else "not sent again (no retry round is left: max_retries)"
            why = f"stuck {snap.state} for more than {hours} (stuck_after); cancelled, its requests {then}"
            # Marked before the cancel is sent: a crash in between must not leave it looking cancelled by the user.
            self.store.update(job, stuck=True, error=why)
            warnings.warn(f"Batch job {job.name} has been {snap.state} for more than {hours}: cancelling it; its "
                          f"{job.requests:,} request(s) are {then}.", GeminiBatchWarning, stacklevel=3)  # fmt: skip
        try:
            _client.cancel_job(self._api(), job.name, self.options.retry)
        except APIError as exc:
            if exc.code not in (400, 409):  # 400 FAILED_PRECONDITION: it ended meanwhile; the next poll collects it
                warnings.warn(f"Cancelling the stuck job {job.name} failed ({exc}); trying again at the next poll.",
                              GeminiBatchWarning, stacklevel=3)  # fmt: skip

    def _gone(self, job: JobRecord, why: str) -> None:
        """The service lost a job or its results: every request of it gets an error saying so, and how to buy it
        again (`resume(dir, resubmit_lost=True)`: that costs money a second time, so it is the caller's choice)."""
        message = (
            f"{why}; its results are lost. To pay for these requests again: polars_gemini.resume(checkpoint, "
            "resubmit_lost=True), or call batch(..., resubmit_lost=True)"
        )
        self.store.update(job, state="GONE", error=why)
        self.store.add_results(job, synthetic_errors(self.store.job_keys(job), GONE_CODE, message))

    def _collect(self, job: JobRecord, snap: _client.JobSnapshot) -> None:
        keys = self.store.job_keys(job)
        if snap.state != "SUCCEEDED" and job.adopted:  # an earlier call's job: its keys are not known, nor needed
            results = synthetic_errors(keys.head(0), 13, "")
        elif snap.state != "SUCCEEDED" and not snap.results_ready:
            why = snap.error or job.error
            message = f"job {job.name} ended {snap.state}" + (f": {why}" if why else "")
            code = snap.error_code if snap.state == "FAILED" and snap.error_code else None
            if job.stuck and snap.state == "CANCELLED":
                code = JOB_STATE_CODES["EXPIRED"]  # cancelled by the run itself: sent again, like an expired job's
            results = synthetic_errors(keys, code or JOB_STATE_CODES.get(snap.state, 13), message)
        else:
            try:
                results = self._download(job, snap)
            except APIError as exc:
                if exc.code not in (403, 404):  # the service answers 403 "... or it may not exist" for a lost file
                    raise
                if self.vertex:  # in the run's staging, which a finished run with the same work deleted
                    where = snap.output_dir or job.result_file
                    self._gone(job, f"the predictions of job {job.name} are no longer at {where} (deleted with the "
                                    "staging of an earlier run of this same work, or by a lifecycle rule)")  # fmt: skip
                else:
                    self._gone(job, f"the results file {snap.result_file} of job {job.name} is no longer on the "
                                    "service")  # fmt: skip
                return
            # This job's keys, each once (the first answer): decided on the key column, and the rows copied only
            # when some must go (results can be gigabytes of vectors).
            keep = results.select(pl.col(KEY).is_in(keys.implode()) & pl.col(KEY).is_first_distinct()).to_series()
            if not keep.all():
                results = results.filter(keep)
            missing = keys.head(0) if job.adopted else keys.filter(~keys.is_in(results.get_column(KEY).implode()))
            message = f"no result was returned for this request by job {job.name}"
            code = MISSING_CODE
            if snap.state != "SUCCEEDED":  # ended early with part of its results: the rest is not answered
                message = f"job {job.name} ended {snap.state} before answering this request"
                user_cancel = snap.state == "CANCELLED" and not job.stuck
                code = JOB_STATE_CODES["CANCELLED"] if user_cancel else JOB_STATE_CODES["EXPIRED"]
            results = pl.concat([results, synthetic_errors(missing, code, message)], how="diagonal_relaxed")
        self.store.add_results(job, results, self._decoded(results) if self.store.root else None)
        if job.input_file and not self.options.keep_files:
            if self._in_bigquery:  # its predictions stay until the run is done (`cleanup_staging`)
                _bigquery.delete_table(self._storage(), job.input_file)
            elif self.vertex:  # its predictions stay until the run is done (`cleanup_staging`): they are its results
                _storage.delete(self._storage(), job.input_file)
            else:
                _client.delete_file(self._api(), job.input_file, self.options.retry)

    def _decoded(self, results: pl.DataFrame) -> pl.Series | None:
        """The answers as the caller will get them: typed values in schema mode (null where invalid), else text."""
        text = results.get_column(TEXT)
        if self.plan.spec.embeds:
            return None  # the vectors are in the results themselves
        if self.plan.spec.field is None:
            return text
        decoded = decode_answers(text, self.plan.spec.field)
        return decoded.select(pl.when(pl.col("problem").is_null()).then(pl.col("value"))).to_series()

    def _download(self, job: JobRecord, snap: _client.JobSnapshot) -> pl.DataFrame:
        if self.plan.spec.embeds:
            return self._download_embeddings(job, snap)
        if self.vertex:
            results, unreadable = self._download_predictions(job, snap)
        elif snap.inlined is not None:
            results, unreadable = parse_results(inline_lines(snap.inlined), f"job {job.name}")
        elif self.store.lean:
            results, unreadable = self._download_lean(job, snap)
        else:
            assert snap.result_file is not None
            self.store.update(job, result_file=snap.result_file)
            data = _client.download(self._api(), snap.result_file, job.name or job.display_name, self.options.retry)
            results, unreadable = parse_results(split_lines(data), f"job {job.name}")
        if unreadable:
            self.store.update(job, unreadable_lines=unreadable)
            warnings.warn(
                f"{unreadable} result line(s) of job {job.name} could not be read (truncated or not JSON); their "
                "requests get an error and are retried like any missing result.",
                GeminiBatchWarning,
                stacklevel=2,
            )
        return results

    def _download_predictions(self, job: JobRecord, snap: _client.JobSnapshot) -> tuple[pl.DataFrame, int]:
        """A Vertex AI job's prediction files, read from Cloud Storage one at a time (streamed to disk and parsed in
        chunks by a lean store; whole otherwise, with their lines kept), each line joined to its request by key
        or, where the key did not come back, by the digest of its echoed request (`run.predictions`)."""
        where = snap.output_dir or job.result_file
        assert where is not None
        cache: list[pl.DataFrame] = []

        def digests() -> pl.DataFrame:  # the job's own request lines, encoded again only if some key is missing
            if not cache:
                prompts = self.plan.prompts(self.store.job_keys(job))
                cache.append(request_digests(split_lines(encode_jsonl(prompts, self.plan.spec,
                                                                      self.media_parts(prompts)))))  # fmt: skip
            return cache[0]

        def parse(lines: pl.Series, what: str) -> tuple[pl.DataFrame, int]:
            return parse_predictions(lines, what, digests)

        if where.startswith("bq://"):  # the output table: input columns (the key among them) and the predictions
            with _LEAN_COLLECTS:  # one output table in memory at a time, as one job's prediction files below
                lines = _bigquery.read_predictions(self._storage(), where, f"Reading {where}")
            return parse(lines, f"job {job.name}")
        if not where.startswith("gs://"):
            raise APIError(f"Job {job.name} wrote its predictions to {where}, in neither Cloud Storage nor BigQuery.")
        files = _storage.list_objects(self._storage(), where, ".jsonl")
        if not files:
            raise APIError(f"Job {job.name} ended {snap.state} but no prediction file is under {where}.", code=404)
        done: list[tuple[pl.DataFrame, int]] = []
        work = self.store.work_dir()
        with _LEAN_COLLECTS, tempfile.TemporaryDirectory(prefix="polars-gemini-results-", dir=work) as tmp:
            for index, uri in enumerate(files):
                path = Path(tmp) / f"predictions-{index}.jsonl"
                _storage.download_to(self._storage(), uri, path, f"Reading the predictions of {job.name} ({uri})")
                if self.store.lean:
                    done.append(parse_results_file(path, f"job {job.name}", parse))
                else:
                    done.append(parse(split_lines(path.read_bytes()), f"job {job.name}"))
                path.unlink()
        results = pl.concat([r for r, _ in done], how="diagonal_relaxed")
        return results, sum(u for _, u in done)

    def cleanup_staging(self, predictions: bool | None = None) -> int:
        """Delete what this run wrote under `staging` once the run is done, unless `keep_files`; how many objects or
        tables. A Developer API run has none.

        Request shards go as soon as their job's results are in. Predictions go here when the run has a checkpoint
        (its results are stored there); without one they stay (`predictions=None`), so that the same call made again
        re-attaches to the finished job and reads them instead of paying twice, as the Developer API's results files
        allow for 48 hours. `predictions=True` deletes them anyway (then a repeated call finds them gone)."""
        if not self.vertex or self.options.staging is None or self.options.keep_files:
            return 0
        if not (self.store.root is not None if predictions is None else predictions):
            return 0
        if self._in_bigquery:
            return _bigquery.delete_tables(self._storage(), self.options.staging,
                                           _bigquery.table_name(self._prefix_base(), ""))  # fmt: skip
        prefix = _storage.staging_uri(self.options.staging, self._prefix_base())
        return _storage.delete_prefix(self._storage(), prefix)

    def _download_lean(self, job: JobRecord, snap: _client.JobSnapshot) -> tuple[pl.DataFrame, int]:
        """A results file streamed to disk and parsed from there a chunk at a time, without its raw lines (a lean
        store keeps none): one such job at a time, so memory holds one job's parsed results, never several jobs'
        files of gigabytes."""
        assert snap.result_file is not None
        self.store.update(job, result_file=snap.result_file)
        work = self.store.work_dir()
        with _LEAN_COLLECTS, tempfile.TemporaryDirectory(prefix="polars-gemini-results-", dir=work) as tmp:
            path = Path(tmp) / "results.jsonl"
            _client.download_to(self._api(), snap.result_file, path, job.name or job.display_name, self.options.retry)
            return parse_results_file(path, f"job {job.name}")

    def _download_embeddings(self, job: JobRecord, snap: _client.JobSnapshot) -> pl.DataFrame:
        """An embedding job's vectors: inline responses (keyed by their echoed metadata), or the results file
        streamed to disk and read from there, never whole in memory as text."""
        dims = self.dimensions()
        inlined = snap.inlined_embed if snap.inlined_embed is not None else snap.inlined
        if inlined is not None:
            wire = keyed_by_position(inline_embed_frame(inlined), self.store.job_keys(job))
            return embed_results(wire, dims)
        assert snap.result_file is not None
        self.store.update(job, result_file=snap.result_file)
        with tempfile.TemporaryDirectory(prefix="polars-gemini-results-", dir=self.store.work_dir()) as tmp:
            path = Path(tmp) / "results.jsonl"
            _client.download_to(self._api(), snap.result_file, path, job.name or job.display_name, self.options.retry)
            results, unreadable = parse_embed_file(path, f"job {job.name}", dims)
        if unreadable:
            self.store.update(job, unreadable_lines=unreadable)
            warnings.warn(
                f"{unreadable} result line(s) of job {job.name} could not be read (truncated or not JSON); their "
                "requests get an error and are retried like any missing result.",
                GeminiBatchWarning,
                stacklevel=2,
            )
        return results

    def dimensions(self) -> int | None:
        """An embedding run's vector size: the one asked for, else the model's full size (None if unknown)."""
        spec = self.plan.spec
        if spec.dimensions is not None:
            return spec.dimensions
        info = model_info(spec.model)
        return info.embedding_dimensions if info is not None and info.embeds else None

    @property
    def done(self) -> bool:
        return not self.store.active_jobs() and (not self._may_retry() or self._todo().is_empty())

    def _may_retry(self) -> bool:
        return self.round <= self.options.max_retries + self.extra_rounds

    def advance(self) -> bool:
        """One polling step: refresh, and once a round is complete submit the retry round. True when finished."""
        with self.store.operation():
            if any(j.name is None and j.state != "QUEUED" for j in self.store.active_jobs()):
                self._recover()
            self.refresh()
            # Ours, never created (a Vertex AI job of that state is created and waits on the service's side).
            queued = [j for j in self.store.active_jobs() if j.state == "QUEUED" and j.name is None]
            if queued:
                self._launch(queued)
            if self.store.active_jobs():
                return False
            if self._may_retry():
                self._submit_round()
            if self.done:
                self.cleanup_media()
                self.cleanup_staging()
            return self.done

    def status(self) -> RunStatus:
        """Job states, request counts and costs as last seen (from the checkpoint alone when resumed from one);
        `refresh()` or `wait()` ask the service."""
        counts = self._counts()
        est = self.estimate.cost if self.estimate else None
        unread = sum(j.unreadable_lines for j in self.store.jobs if j.run_id == self.run_id)
        return RunStatus(counts.jobs, counts.requests, counts.done, counts.failed, est, self.cost().actual, unread)

    def _snapshot(self, shown: Progress) -> Snapshot:
        """What the progress display shows now: counts and states always, rows and spend only where shown
        (each is counted again only when results came in)."""
        if not self.options.progress:
            return Snapshot()
        counts = self._counts()
        mine = [j for j in self.store.jobs if j.run_id == self.run_id]
        jobs = tuple((j.name or j.display_name, j.state, j.requests) for j in mine)
        rows = self._row_counts() if shown.detailed else None
        return Snapshot(counts.done, counts.failed, jobs, rows, self.estimate.cost if self.estimate else None,
                        self.cost().actual)  # fmt: skip

    def _row_counts(self) -> tuple[int, int, int] | None:
        """Input rows answered, failed (a row not sent counts as failed) and pending; None while they are spilled."""
        if self._rows_file is not None:
            return None
        keys = self.plan.rows.get_column(KEY)
        if self._rows_counted[0] != self.store.version:
            version = self.store.version
            done, failed = self.store.counts(keys.drop_nulls())
            self._rows_counted = (version, done, failed + keys.null_count())
        _, done, failed = self._rows_counted
        return done, failed, keys.len() - done - failed

    def _counts(self) -> RunStatus:
        version = self.store.version
        if self._counted[0] != version:  # counted again only when results came in, not at every poll
            self._counted = (version, *self.store.counts(self.plan.requests.get_column(KEY)))
        jobs = tuple((j.name or j.display_name, j.state) for j in self.store.jobs if j.run_id == self.run_id)
        return RunStatus(jobs, self.plan.requests.height, self._counted[1], self._counted[2])

    def wait(self, timeout: float | None = None) -> Run:
        """Poll until every job has finished and its results are in: at once, then with backoff (from
        `min(poll_interval, 0.5)` s, x1.5 each time, capped at `max_poll_interval`). With `progress`, one live
        display (`core.progress`): HTML in a notebook, a tqdm bar elsewhere."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(self.options.poll_interval, _FIRST_POLL)
        with live_progress("gemini batch", self.plan.requests.height, "req", self.options.progress) as shown:
            while True:
                finished = self.advance()
                shown.update(self._snapshot(shown))
                if finished:
                    return self
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise RunTimeoutError(self.timeout_message(timeout))
                time.sleep(delay)
                delay = min(max(delay * 1.5, 0.01), max(self.options.max_poll_interval, self.options.poll_interval))

    def timeout_message(self, timeout: float | None, again: str = "call run.wait() again (or run.result())") -> str:
        """What a `RunTimeoutError` says: the jobs still running and how to pick them up (`again`, or resume)."""
        running = ", ".join(j.name or j.display_name for j in self.store.active_jobs())
        where = (
            f"polars_gemini.resume({str(self.store.root)!r}) from any process, or {again}"
            if self.store.root
            else f"{again}; pass checkpoint= to resume from another process"
        )
        return f"The run was not finished after {timeout} s; jobs still running: {running}. To pick them up: {where}."

    def result(self, timeout: float | None = None) -> pl.DataFrame:
        """The input frame with the answer and error columns; waits for the jobs first."""
        if not self.done:
            self.wait(timeout)
        frame = self.frame.collect() if isinstance(self.frame, pl.LazyFrame) else self.frame
        plan = self.full_plan()
        if plan.spec.embeds:  # vectors: gathered once into row order, then cast and normalized
            results = self.store.results()
            rows = per_row(plan, results, self.store.latest_rows(results))
            del results
            vectors = embedding_columns(rows, self.options.output, self.dimensions(), self.options.normalize)
            if self.options.usage:
                vectors = vectors.hstack(rows.select(usage_columns(self.options.output)[:1]))
            return pl.concat([frame, vectors.drop(vectors.columns[0])], how="horizontal")
        by_request = per_request(plan, self.store.latest())
        answers = answer_columns(plan, by_request, self.options.output, self.options.prefix)
        if self.options.usage:
            tokens = usage_columns(self.options.output)
            answers = answers.hstack(by_request.select(tokens))
        return join_rows(frame, plan, answers, self.options.output)

    def spill_rows(self) -> None:
        """Keep the plan's rows (a key per input row: about 0.6 GB at 10M rows) in a file of the store's until the
        result is assembled, instead of in memory while the jobs run (a lean store's runs)."""
        if self._rows_file is None:
            path = self.store.scratch("rows.parquet")
            write_parquet(path, self.plan.rows)
            self._rows_file = path
            self.plan = dataclasses.replace(self.plan, rows=self.plan.rows.head(0))

    def full_plan(self) -> Plan:
        """The plan, with its rows read back if they were spilled (`spill_rows`)."""
        if self._rows_file is None:
            return self.plan
        return dataclasses.replace(self.plan, rows=read_parquet(self._rows_file))

    def sink_parquet(
        self, path: str | os.PathLike[str], *, timeout: float | None = None, memory_budget: int | None = None
    ) -> SinkReport:
        """Write what `result()` returns to the Parquet file `path`, chunk by chunk: the same columns and dtypes,
        every input row once, in input order, never the whole frame in memory (about `memory_budget` bytes at a
        time; default 512 MB). Waits for the jobs first, like `result()`. Returns where it wrote, how many rows and
        how many of them failed, and what the run cost. The file appears complete or not at all.

        Memory stays bounded when the run's results are on disk (`batch`'s `sink_parquet`, and any checkpointed
        run); an embedding run is assembled whole and then written.

        >>> run = polars_gemini.resume("runs/reviews", client=client)  # doctest: +SKIP
        >>> run.sink_parquet("reviews-labelled.parquet")  # doctest: +SKIP
        SinkReport(1,000,000 rows to reviews-labelled.parquet, 12 failed; RunCost(...))
        """
        budget = _sink.DEFAULT_SINK_BUDGET if memory_budget is None else memory_budget
        if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
            raise ConfigurationError(f"memory_budget is a number of bytes > 0, e.g. 512_000_000; got {budget!r}.")
        target = _sink.sink_target(path)
        if not self.done:
            self.wait(timeout)
        if self.plan.spec.embeds:  # vectors: not chunked yet
            write_parquet(target, self.result())
        else:
            o = self.options
            rows = self._rows_file if self._rows_file is not None else self.plan.rows
            assembly = _sink.Assembly(self.plan, rows, self.store.scans(), o.output, o.prefix, o.usage)
            _sink.sink_result(self.frame, assembly, target, _sink.sink_chunk_rows(self.frame, budget))
        error = f"{self.options.output}_error"
        rows, failed = pl.scan_parquet(target).select(pl.len(), pl.col(error).is_not_null().sum()).collect().row(0)
        return SinkReport(target, int(rows), int(failed), self.cost())

    def cost(self) -> RunCost:
        """The estimate made before submitting, next to what the finished requests actually cost (all attempts).

        Worked out again only when results came in (the store's version), so polling it costs nothing."""
        seen, billed = self._billed
        if billed is None or seen != (id(self.store), self.store.version):
            seen = (id(self.store), self.store.version)  # read first: results landing meanwhile make it stale
            billed = self._bill()
            self._billed = (seen, billed)
        return RunCost(self.estimate, billed.actual, dict(billed.tokens))

    def _bill(self) -> RunCost:
        mine = {j.display_name: j.transport for j in self.store.jobs if j.run_id == self.run_id}
        if not self.store.lean:
            return self._cost_of(self.store.results(["job", USAGE]).filter(pl.col("job").is_in(list(mine))), mine)
        # One job's usage at a time: every request's of a streamed run at once would be about 1 GB at 10M requests.
        # A collected job's results never change: its part is read once.
        collected = {j.display_name for j in self.store.jobs if j.collected}
        parts = []
        for name in [*mine, ""]:
            part = self._job_bills.get(name) or self._cost_of(self.store.job_results(name, ["job", USAGE]), mine)
            if name in collected:
                self._job_bills[name] = part
            parts.append(part)
        actual = None if any(p.actual is None for p in parts) else sum(p.actual or 0.0 for p in parts)
        tokens = {k: sum(p.tokens[k] for p in parts) for k in parts[0].tokens}
        return RunCost(self.estimate, actual, tokens)

    def _cost_of(self, results: pl.DataFrame, mine: dict[str, str]) -> RunCost:
        """What `results` (job and usage columns) cost, given each job's transport (`mine`)."""
        price = self.options.prices.get(self.plan.spec.model)
        transport = pl.col("job").replace_strict(mine, default="batch")
        sync = results.filter(transport == "sync")
        flex = results.filter(transport == "flex")
        batch = results.filter(~transport.is_in(["sync", "flex"]))
        actual = actual_cost(batch, price, batch=True)
        if not sync.is_empty() and actual is not None:
            actual += actual_cost(sync, price, batch=False) or 0.0
        if not flex.is_empty() and actual is not None and price is not None:  # Flex rates where known, else batch's
            flex_price = dataclasses.replace(price, batch=price.flex or price.batch,
                                             batch_long=price.flex_long or price.batch_long)  # fmt: skip
            actual += actual_cost(flex, flex_price, batch=True) or 0.0
        if self.plan.spec.embeds and sync.get_column(USAGE).null_count():
            actual = None  # batchEmbedContents reports no token counts: what sync embeddings cost is not known here
        return RunCost(self.estimate, actual, _usage_totals(results))

    def cancel(self) -> None:
        """Cancel every job that has not finished and drop the ones not created yet (queued for quota), so that
        nothing more is created or billed. Requests already answered are still billed by Google; a job that
        finished before the cancel reached it keeps its results."""
        self._stop.set()  # a Flex round under way sends nothing more (its calls in flight still land)
        with self.store.operation():
            failures = []
            for job in self.store.active_jobs():
                if job.name:
                    try:
                        _client.cancel_job(self._api(), job.name, self.options.retry)
                    except APIError as exc:
                        if exc.code not in (400, 409):  # 400 FAILED_PRECONDITION: it has already finished
                            failures.append(exc)
                elif job.state in ("QUEUED", "PREPARED") or job.transport == "flex":  # never created: not billed
                    message = "cancelled before its job was created"
                    self.store.update(job, state="CANCELLED")
                    self.store.add_results(job, synthetic_errors(self.store.job_keys(job), 1, message))
            if failures:
                raise failures[0]

    def close(self) -> None:
        """Release the checkpoint lock (also released when the process exits)."""
        self.store.close()

    def __repr__(self) -> str:
        return f"Run(id={self.run_id!r}, model={self.plan.spec.model!r}, {self.status()!r})"

    def __str__(self) -> str:
        return run_text(self.run_id, self.plan.spec.model, self.store.root, self.status())

    def _repr_html_(self) -> str:
        return run_html(self.run_id, self.plan.spec.model, self.store.root, self.status())


_SUBMISSIONS: dict[str, threading.Lock] = {}
_SUBMISSIONS_GUARD = threading.Lock()


class _Journal:
    """Appends result lines to a checkpoint file as they arrive, from any thread (to `memory` when there is none).

    In a directory: one write and flush per line (in the OS's hands: a killed process loses nothing written). In
    object storage, which cannot append: the lines go to a local file, and a background thread publishes it whole (a
    new object) whenever lines were added, every `_JOURNAL_FLUSH` seconds, and once more at the end; a killed worker
    loses the answers of its last fraction of a second at most."""

    def __init__(self, entry: Entry | None, memory: list[str]) -> None:
        self.entry, self.memory, self._lock = entry, memory, threading.Lock()
        self._handle: TextIO | None = None
        self._local: Path | None = None
        self._lines = self._published = 0  # lines written, and published (remote)
        self._remote = False
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def __enter__(self) -> Callable[[str], None]:
        if self.entry is None:
            return self.write
        location = self.entry.location
        if isinstance(location, LocalLocation):
            self._local = location.path(self.entry.relative)
        else:
            self._remote = True
            self._local = location.staging_dir() / f"journal-{uuid.uuid4().hex}.jsonl"
            if self.entry.exists():
                shutil.copyfile(self.entry.local(), self._local)
            self._flusher = threading.Thread(target=self._flush_loop, name="polars-gemini-journal", daemon=True)
        self._local.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self._local.open("a", encoding="utf-8")
        if self._flusher is not None:
            self._flusher.start()
        return self.write

    def write(self, line: str) -> None:
        with self._lock:
            if self._handle is None:
                self.memory.append(line)  # no checkpoint: kept by the Run, so a failed wait() re-sends none of it
                return
            self._handle.write(line + "\n")
            self._handle.flush()
            self._lines += 1

    def _flush_loop(self) -> None:
        while not self._stop.wait(_JOURNAL_FLUSH):
            try:
                self._publish()
            except Exception:  # a storage error or a lost lease: the calls go on, the end says it
                continue

    def _publish(self) -> None:
        """A copy of the journal so far, published to the remote checkpoint if lines were added since the last."""
        assert self.entry is not None and self._local is not None
        with self._lock:
            lines = self._lines
            if lines == self._published:
                return
            copy = self._local.with_name(f"{self._local.name}.{uuid.uuid4().hex[:8]}")
            shutil.copyfile(self._local, copy)
        try:
            self.entry.location.publish(self.entry.relative, copy)
        finally:
            copy.unlink(missing_ok=True)
        with self._lock:
            self._published = max(self._published, lines)

    def __exit__(self, *exc: object) -> None:
        if self._handle is None:
            return
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        with self._lock:
            self._handle.close()
        if self._remote:
            self._publish()
            assert self._local is not None
            self._local.unlink(missing_ok=True)


def _hours(hours: float) -> str:
    """A duration given in hours, as people write it: "12 h", "90 min", "2 s"."""
    if hours >= 1:
        return f"{hours:g} h"
    if hours * 60 >= 1:
        return f"{hours * 60:g} min"
    return f"{hours * 3600:.3g} s"


_JOURNAL_FLUSH = 0.5  # seconds between publications of a Flex journal to a remote checkpoint (if it grew)


def _journal_lines(entry: Entry | None) -> pl.Series:
    """The lines a Flex journal kept (a last line cut short by a crash is read as unreadable, and sent again)."""
    if entry is None or not entry.exists():
        return pl.Series(LINE, [], dtype=pl.String)
    return split_lines(entry.local().read_bytes())


def _submitting(run_id: str) -> threading.Lock:
    """One submission at a time per run id in this process: two threads sending the same work at once (ids come
    from the work) take turns, so the second finds the first one's jobs instead of creating them again."""
    with _SUBMISSIONS_GUARD:
        return _SUBMISSIONS.setdefault(run_id, threading.Lock())


def _round_and_shard(display_name: str) -> tuple[int, int]:
    """Round and shard numbers from a display name `...-r<round>-<shard>` (0, 0 if it has another form)."""
    parts = display_name.rsplit("-", 2)
    try:
        return int(parts[-2].removeprefix("r")), int(parts[-1])
    except (IndexError, ValueError):
        return 0, 0


def vertex_limits(limits: Limits) -> Limits:
    """`limits` within Vertex AI's: Cloud Storage files only, at most 200,000 requests and 0.9 GB each."""
    most = min(limits.max_requests or VERTEX_MAX_REQUESTS, VERTEX_MAX_REQUESTS)
    files = min(limits.file_bytes, int(VERTEX_FILE_BYTES * 0.9))
    return dataclasses.replace(limits, inline_bytes=0, inline_requests=0, max_requests=most, file_bytes=files)


def _reusable(snap: _client.JobSnapshot) -> bool:
    """A job found on the service worth re-attaching to: running, or (partially) succeeded: its results are paid
    for."""
    return snap.active or snap.state in ("SUCCEEDED", "PARTIALLY_SUCCEEDED")


def _too_large(exc: APIError) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _PAYLOAD_TOO_LARGE)


def _usage_totals(results: pl.DataFrame) -> dict[str, int]:
    u = pl.col("usage").struct
    names = {"input": "promptTokenCount", "output": "candidatesTokenCount", "thinking": "thoughtsTokenCount",
             "cached": "cachedContentTokenCount"}  # fmt: skip
    row = results.select(u.field(f).fill_null(0).sum().alias(k) for k, f in names.items()).row(0, named=True)
    return {k: int(v or 0) for k, v in row.items()}
