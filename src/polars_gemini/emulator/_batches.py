"""The Batch API state: job creation, lazy evaluation on read, cancel, delete, list.

A job's results are computed the first time anyone observes it SUCCEEDED (a get, a list, or
`emu.jobs`), under the job's own lock so concurrent polls compute them once.

Generation jobs (`batchGenerateContent`) and embedding jobs (`asyncBatchEmbedContent`, `kind="embed"`) share
everything but their requests and answers: the namespace, states, clock, quotas, endings, faults and result layout.
Both put inline results under `output.inlinedResponses.inlinedResponses` (Google's discovery document names the
embedding output `EmbedContentBatchOutput.inlinedResponses` of type `InlinedEmbedContentResponses`); the SDK renames
it to `inlinedEmbedContentResponses` when a response carries an `embedding`
(`_transformers.t_recv_batch_job_destination`, google-genai 3.6.1), so `job.dest.inlined_embed_content_responses`
holds them. An embedding job whose every row failed therefore surfaces as `dest.inlined_responses` in the SDK, as it
would against the real service.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from typing import Any

from polars_gemini.emulator import _embed, _quota, _results
from polars_gemini.emulator._answers import AnswerLog
from polars_gemini.emulator._clock import Clock
from polars_gemini.emulator._config import Settings
from polars_gemini.emulator._corrupt import corrupt_file, corrupt_inline
from polars_gemini.emulator._faults import Faults, Timing
from polars_gemini.emulator._files import FileStore
from polars_gemini.emulator._ids import new_id
from polars_gemini.emulator._jobs import ACTIVE, TERMINAL, Ending, Entries, Entry, Job, chunked, operation
from polars_gemini.emulator._media import request_media
from polars_gemini.emulator._paging import page
from polars_gemini.emulator._results import OnError
from polars_gemini.emulator._status import EmulatedError, invalid_argument, operation_error
from polars_gemini.emulator._types import Outcome
from polars_gemini.emulator._validate import Check, FileEntries, check_request, inline_entries, require_object
from polars_gemini.emulator._webhooks import WebhookDispatcher, parse_config

ENDINGS = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")
DEFAULT_FAILURE = operation_error(13, "The batch job failed (emulated failure).")


def ending(state: str, error: dict[str, Any] | None = None) -> Ending:
    """How a job ends; FAILED jobs carry an `error` status in their operation."""
    state = state.upper().removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
    if state not in ENDINGS:
        raise ValueError(f"Unknown job ending {state!r}; expected one of {', '.join(ENDINGS)}.")
    return Ending(state, (error or DEFAULT_FAILURE) if state == "FAILED" else None)


class BatchService:
    def __init__(
        self,
        settings: Settings,
        files: FileStore,
        faults: Faults,
        on_error: OnError,
        clock: Clock,
        webhooks: WebhookDispatcher | None = None,
    ) -> None:
        self._settings, self._files, self._faults, self._on_error = settings, files, faults, on_error
        self._clock, self._webhooks = clock, webhooks
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self.answers = AnswerLog()  # `emu.answered()`: the requests of jobs whose results were computed

    @property
    def webhooks(self) -> WebhookDispatcher | None:
        """The webhook dispatcher (its `jwt` signer serves the JWKS route)."""
        return self._webhooks

    def create(self, model: str, body: dict[str, Any], kind: str = "generate") -> dict[str, Any]:
        """Creates a job from a `batchGenerateContent` body (`kind="embed"`: an `asyncBatchEmbedContent` body);
        answers the PENDING operation, as Google does.

        Over a quota (`max_active_jobs`, `enqueued_token_limit`) it answers 429 and creates nothing.
        """
        batch = require_object(body.get("batch"), "batch")
        input_config = require_object(batch.get("inputConfig"), "batch.input_config")
        file_name = input_config.get("fileName")
        if file_name is not None and "requests" in input_config:
            raise invalid_argument("batch.input_config: set either requests or file_name, not both.")
        webhook = parse_config(batch.get("webhookConfig", batch.get("webhook_config")))
        with _results.gc_paused():
            entries = self._entries(model, kind, input_config, file_name)
        timing = self._faults.pop_timing()
        job = self._new_job(model, batch.get("displayName"), file_name, entries, kind, timing)
        job.webhook_config = webhook
        if self._settings.enqueued_token_limit is not None:
            _quota.job_tokens(job)  # counted before taking the lock
        pending = operation(job, "PENDING")
        queued = self._faults.pop_ending()
        job.ending = queued or self._rule_ending(pending)
        refusal = self._admit(job)
        if refusal is not None:
            if queued is not None:
                self._faults.unpop_ending(queued)  # a refused create must not use up `end_next_job`
            if timing is not None:
                self._faults.unpop_timing(timing)  # nor `slow_next_jobs`
            raise refusal
        if self._webhooks is not None:
            self._webhooks.watch(job.name, job.state, lambda: self._view(job, poll=False), webhook or {})
        return pending

    def _admit(self, job: Job) -> EmulatedError | None:
        """Stores the job unless a quota refuses it; checked and stored under one lock, so that
        concurrent creates cannot both take the last slot."""
        with self._lock:
            active = [other for other in self._jobs.values() if other.state() in ACTIVE]
            refusal = _quota.refusal(self._settings, active, job)
            if refusal is None:
                self._jobs[job.id] = job
        return refusal

    def _entries(self, model: str, kind: str, input_config: dict[str, Any], file_name: Any) -> Entries:
        if kind != "embed":
            return self._file_input(str(file_name)) if file_name is not None else inline_entries(input_config)
        info = self._settings.embedding_models[model]
        if file_name is None:
            return _embed.inline_entries(input_config, info)
        return self._file_input(str(file_name), lambda value, where: _embed.check(value, info, where))

    def _file_input(self, file_name: str, check: Check = check_request) -> FileEntries:
        try:
            stored = self._files.get(file_name)
        except EmulatedError:
            raise invalid_argument(f"Input file {file_name} not found. Upload it with the Files API first.") from None
        return FileEntries(stored.data, file_name, check)

    def _new_job(
        self, model: str, display_name: Any, file_name: Any, entries: Entries, kind: str, timing: Timing | None
    ) -> Job:
        s = self._settings
        name = None if display_name is None else str(display_name)
        source = None if file_name is None else str(file_name)
        timing = timing or Timing(s.pending_seconds, s.running_seconds)
        return Job(new_id(36), model, name, source, entries, timing.pending_seconds, timing.running_seconds,
                   kind=kind, clock=self._clock)  # fmt: skip

    def _rule_ending(self, pending: dict[str, Any]) -> Ending:
        rule = self._settings.job_outcome
        state = rule(pending) if rule is not None else None
        return ending(state) if state else Ending()

    def report(self, error: BaseException) -> None:
        """Hands an exception raised inside the server (a broken responder or embedder) to `emu.errors`."""
        self._on_error(error)

    def get(self, job_id: str) -> dict[str, Any]:
        return self._view(self._job(job_id), poll=True)

    def list(self, page_size: Any, token: Any) -> dict[str, Any]:
        """Newest first, like Google's `batches.list`."""
        with self._lock:
            jobs = list(reversed(self._jobs.values()))
        chosen, next_token = page(jobs, page_size, token, default=50, maximum=1000)
        out: dict[str, Any] = {"operations": [self._view(job, poll=False) for job in chosen]}
        if next_token:
            out["nextPageToken"] = next_token
        return out

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            jobs = list(self._jobs.values())
        return {job.name: self._view(job, poll=False) for job in jobs}

    def cancel(self, job_id: str) -> None:
        job = self._job(job_id)
        with job.lock:
            state = job.state()
            if state in TERMINAL:
                raise EmulatedError(
                    400,
                    f"Batch {job.name} is already {state} and can no longer be cancelled.",
                    "FAILED_PRECONDITION",
                )
            job.cancelled_ns = self._clock.now_ns()
        if self._webhooks is not None:
            self._webhooks.poke()

    def delete(self, job_id: str) -> None:
        with self._lock:
            if self._jobs.pop(job_id, None) is None:
                raise _missing(job_id)
        if self._webhooks is not None:
            self._webhooks.forget(f"batches/{job_id}")

    def _job(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise _missing(job_id)
        return job

    def _view(self, job: Job, *, poll: bool) -> dict[str, Any]:
        state = job.state()
        if state != "SUCCEEDED":
            return operation(job, state)
        with job.lock, _results.gc_paused():
            self._materialize(job)
            hidden = job.hidden_polls > 0
            if hidden and poll:
                job.hidden_polls -= 1
        return operation(job, state, show_output=not hidden)

    def _materialize(self, job: Job) -> None:
        """Computes the results once (callers hold `job.lock`)."""
        if job.output is not None:
            return
        s = self._settings
        job.hidden_polls = s.results_file_delay_polls
        corruption = self._faults.pop_corruption(inline=job.input_file is None)
        if job.input_file is not None:
            data = self._result_file(job)
            if corruption is not None:
                data = corrupt_file(data, corruption, job.kind)
            name = f"files/batch-{job.id}"
            self._files.put(name, data, mime_type="application/jsonl", display_name=None, source="GENERATED")
            job.output = {"responsesFile": name}
            return
        entries = list(job.entries)
        outcomes = self._outcomes(job, entries)
        failed = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, EmulatedError)]
        self._count(job, failed)
        order = _results.result_order(len(outcomes), s.shuffle_results, job.id)
        output = _results.inline_output(entries, outcomes, order)
        job.output = corrupt_inline(output, corruption, job.kind) if corruption else output

    def _result_file(self, job: Job) -> bytes:
        """The results file, answered and encoded `CHUNK` requests at a time: a file job's requests are never all
        parsed at once (`FileEntries`), and the file is written as it goes (shuffled: its lines kept, then ordered)."""
        shuffle = self._settings.shuffle_results
        out, offset = io.BytesIO(), 0
        kept: list[str] = []
        failed: list[int] = []
        for chunk in chunked(job.entries):
            outcomes = self._outcomes(job, chunk)
            failed += [offset + i for i, outcome in enumerate(outcomes) if isinstance(outcome, EmulatedError)]
            offset += len(chunk)
            lines = _results.encoded_lines(chunk, outcomes)
            if shuffle:
                kept += lines
            else:
                out.write(("\n".join(lines) + "\n").encode())
        self._count(job, failed)
        if shuffle:
            return ("\n".join([kept[i] for i in _results.result_order(len(kept), True, job.id)]) + "\n").encode()
        return out.getvalue()  # `BytesIO` hands over its buffer: no second copy of the file

    def _count(self, job: Job, failed: Sequence[int]) -> None:
        job.failed = len(failed)
        job.succeeded = len(job.entries) - job.failed
        if job.kind == "generate":
            self.answers.add_job_failed(job.name, job.model, job.entries, failed)

    def _outcomes(self, job: Job, entries: Sequence[Entry] | None = None) -> Sequence[Outcome]:
        """The outcomes of `entries` (default: all the job's)."""
        s = self._settings
        entries = list(job.entries) if entries is None else entries
        if job.kind == "embed":
            model = s.embedding_models[job.model]
            return _embed.answer(model, entries, s.embedder, "batch", self._on_error, self._faults)
        return _results.answer_all(job.model, entries, s.responder, self._faults, self._on_error,
                                   lambda model, request: request_media(request, model, self._files))  # fmt: skip


def _missing(job_id: str) -> EmulatedError:
    return EmulatedError(404, f"Batch batches/{job_id} not found.", "NOT_FOUND")
