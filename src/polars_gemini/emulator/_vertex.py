"""Vertex AI batch prediction: `projects/{p}/locations/{l}/batchPredictionJobs` over Cloud Storage (and BigQuery).

Created from a `BatchPredictionJob` body as google-genai sends it (`inputConfig.gcsSource.uris` or
`bigquerySource.inputUri`, `outputConfig.gcsDestination.outputUriPrefix` or `bigqueryDestination.outputUri`).
At create the input is read: over `vertex_request_limit` requests (200,000) or an object over
`vertex_file_limit_bytes` (1 GB) is 400 INVALID_ARGUMENT and creates nothing; an input that cannot be read or parsed
(a missing object, a line that is not JSON) still creates the job, which then FAILS with that error after its PENDING
time, as the real service validates its input asynchronously (its exact wording is not documented).

Jobs share the Developer API emulator's clock and fault machinery: `pending_seconds`, `running_seconds`,
`slow_next_jobs`, `end_next_job` (FAILED, CANCELLED, EXPIRED; and PARTIALLY_SUCCEEDED, Vertex only), `fail_keys`
(rows by their input line's `"key"`), `shuffle_results`, `corrupt_results` (of the prediction files), `advance_time`,
`emu.jobs` and `emu.answered()`. Predictions are written once, when a job is first seen ended (a get, a list,
`emu.jobs`), to `<outputUriPrefix>/prediction-model-<create time>/predictions.jsonl` (the directory naming seen in
real output, e.g. `prediction-model-2025-09-19T21:26:51.569037Z`), split by `vertex_output_files`.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from polars_gemini.emulator import _results
from polars_gemini.emulator._answers import AnswerLog
from polars_gemini.emulator._batches import ending
from polars_gemini.emulator._clock import Clock
from polars_gemini.emulator._config import Settings
from polars_gemini.emulator._corrupt import corrupt_file
from polars_gemini.emulator._faults import Faults
from polars_gemini.emulator._jobs import Ending
from polars_gemini.emulator._paging import page
from polars_gemini.emulator._results import OnError
from polars_gemini.emulator._status import EmulatedError, invalid_argument, not_found
from polars_gemini.emulator._types import Outcome
from polars_gemini.emulator._validate import require_object
from polars_gemini.emulator._vertex_io import (
    CloudStorage,
    InputUnreadable,
    bigquery,
    jsonl_files,
    prediction,
    row_of,
    rows_from_jsonl,
)
from polars_gemini.emulator._vertex_jobs import (
    TERMINAL,
    Row,
    VertexEnding,
    VertexJob,
    job_json,
    processed_time,
    timestamp,
)

_FILTER = re.compile(r'\s*(display_name|displayName|state)\s*=\s*"?([^"]*?)"?\s*')
_PARTIAL_ROW = "The request could not be processed (emulated partial failure)."


def vertex_ending(ending: Ending) -> VertexEnding:
    """A Developer API ending (`end_next_job`) for a Vertex job: the error as a `google.rpc.Status` (code, message)."""
    error: dict[str, Any] | None = None
    if ending.error is not None:
        error = {k: ending.error[k] for k in ("code", "message") if k in ending.error}
    return VertexEnding(ending.state, error)


class VertexService:
    def __init__(self, settings: Settings, faults: Faults, clock: Clock, answers: AnswerLog, on_error: OnError) -> None:
        self._settings, self._faults, self._clock, self._answers = settings, faults, clock, answers
        self._on_error = on_error
        self._storage = CloudStorage(settings)
        self._lock = threading.Lock()
        self._jobs: dict[str, VertexJob] = {}
        self._partials: deque[VertexEnding] = deque()

    def push_partial(self, count: int, failed_rows: int, message: str | None) -> None:
        """The next `count` Vertex jobs end PARTIALLY_SUCCEEDED, their first `failed_rows` rows failed."""
        summary = message or f"{failed_rows} request(s) of the batch prediction job failed."
        ending = VertexEnding("PARTIALLY_SUCCEEDED", {"code": 13, "message": summary}, failed_rows, _PARTIAL_ROW)
        with self._lock:
            self._partials.extend([ending] * count)

    # -- create -------------------------------------------------------------------------------------------------

    def create(self, project: str, location: str, body: dict[str, Any]) -> dict[str, Any]:
        model = _model(body, self._settings)
        input_config = require_object(body.get("inputConfig"), "batch_prediction_job.input_config")
        output_config = require_object(body.get("outputConfig"), "batch_prediction_job.output_config")
        _check_output(output_config)
        failure: str | None = None
        try:
            rows = self._rows(input_config)
        except InputUnreadable as exc:
            rows, failure = [], str(exc)
        self._check_count(len(rows))
        job = self._new_job(location, model, body, rows)
        if failure is not None:
            job.never_runs, job.queued_s, job.running_s = True, 0.0, 0.0
            job.ending = VertexEnding("FAILED", {"code": 3, "message": failure})
        with self._lock:
            self._jobs[job.id] = job
        return job_json(job, "PENDING")  # as the real create answers, however fast the job runs

    def _rows(self, input_config: dict[str, Any]) -> list[Row]:
        fmt = input_config.get("instancesFormat")
        if "bigquerySource" in input_config:
            uri = require_object(input_config["bigquerySource"], "input_config.bigquery_source").get("inputUri")
            records = bigquery().read_table(self._settings, str(uri))
            return [row_of(_bq_record(r), f"{uri} row {i}") for i, r in enumerate(records, 1)]
        source = require_object(input_config.get("gcsSource"), "input_config.gcs_source")
        uris = source.get("uris")
        if fmt != "jsonl" or not isinstance(uris, list) or not uris:
            raise invalid_argument("input_config: give instances_format 'jsonl' and gcs_source.uris (gs://...), or "
                                   "instances_format 'bigquery' and bigquery_source.input_uri (bq://...).")  # fmt: skip
        for uri in uris:
            if not str(uri).startswith("gs://"):
                raise invalid_argument(f"input_config.gcs_source.uris: {uri!r} is not a gs:// URI.")
        with _results.gc_paused():
            return [row for name, data in self._storage.read_inputs([str(u) for u in uris])
                    for row in rows_from_jsonl(data, name)]  # fmt: skip

    def _check_count(self, count: int) -> None:
        limit = self._settings.vertex_request_limit
        if count > limit:
            raise invalid_argument(
                f"The batch prediction input holds {count} requests; a batch prediction job for Gemini takes at most "
                f"{limit}. Split the requests into several jobs."
            )

    def _new_job(self, location: str, model: str, body: dict[str, Any], rows: list[Row]) -> VertexJob:
        s = self._settings
        timing = self._faults.pop_timing()
        pending, running = (timing.pending_seconds, timing.running_seconds) if timing else (
            s.pending_seconds, s.running_seconds)  # fmt: skip
        parent = f"projects/{s.vertex_project_number}/locations/{location}"
        job_id = str(secrets.randbelow(9 * 10**18) + 10**18)  # 19 digits, as real job ids
        job = VertexJob(job_id, parent, location, model, body, rows, pending, s.vertex_queued_seconds, running,
                        s.vertex_cancelling_seconds, clock=self._clock)  # fmt: skip
        job.ending = self._ending(job)
        return job

    def _ending(self, job: VertexJob) -> VertexEnding:
        with self._lock:
            partial = self._partials.popleft() if self._partials else None
        if partial is not None:
            return partial
        queued = self._faults.pop_ending()
        if queued is not None:
            return vertex_ending(queued)
        rule = self._settings.job_outcome
        state = rule(job_json(job, "PENDING")) if rule is not None else None
        if state:
            return vertex_ending(ending(state))
        return VertexEnding()

    # -- read -----------------------------------------------------------------------------------------------------

    def get(self, location: str, job_id: str) -> dict[str, Any]:
        return self._view(self._job(location, job_id))

    def list_jobs(self, location: str, page_size: Any, token: Any, filter_: Any) -> dict[str, Any]:
        """Newest first; `filter` may name `display_name="..."` and `state="JOB_STATE_..."`, joined by AND."""
        wanted = _filters(filter_)
        with self._lock:
            jobs = [job for job in reversed(self._jobs.values()) if job.location == location]
        views = [self._view(job) for job in jobs]
        views = [v for v in views if all(str(v.get(f, "")) == value for f, value in wanted.items())]
        chosen, next_token = page(views, page_size, token, default=100, maximum=1000)
        out: dict[str, Any] = {"batchPredictionJobs": chosen}
        if next_token:
            out["nextPageToken"] = next_token
        return out

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            jobs = list(self._jobs.values())
        return {job.name: self._view(job) for job in jobs}

    def _job(self, location: str, job_id: str) -> VertexJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.location != location:
            raise not_found(f"BatchPredictionJob projects/{self._settings.vertex_project_number}/locations/{location}/"
                            f"batchPredictionJobs/{job_id} does not exist.")  # fmt: skip
        return job

    def _view(self, job: VertexJob) -> dict[str, Any]:
        with job.lock:
            state = job.state()
            if state in TERMINAL and job.done_rows is None:
                self._finish(job, state)
            return job_json(job, job.state())

    # -- cancel, delete -------------------------------------------------------------------------------------------

    def cancel(self, location: str, job_id: str) -> None:
        job = self._job(location, job_id)
        with job.lock:
            state = job.state()
            if state in TERMINAL or state == "CANCELLING":
                raise EmulatedError(400, f"BatchPredictionJob {job.name} is in state JOB_STATE_{state} and cannot be "
                                         "cancelled.", "FAILED_PRECONDITION")  # fmt: skip
            job.cancelled_at = job.elapsed()

    def delete(self, location: str, job_id: str) -> dict[str, Any]:
        """Only ended jobs may be deleted (`batchPredictionJobs.delete`); answers the finished delete Operation."""
        job = self._job(location, job_id)
        state = job.state()
        if state not in TERMINAL:
            raise EmulatedError(400, f"BatchPredictionJob {job.name} is in state JOB_STATE_{state}: only ended jobs "
                                     "can be deleted. Cancel it first.", "FAILED_PRECONDITION")  # fmt: skip
        with self._lock:
            self._jobs.pop(job_id, None)
        now = timestamp(self._clock.now_ns())
        meta = {"@type": "type.googleapis.com/google.cloud.aiplatform.v1beta1.DeleteOperationMetadata",
                "genericMetadata": {"createTime": now, "updateTime": now}}  # fmt: skip
        return {"name": f"{job.parent}/operations/{secrets.randbelow(9 * 10**18) + 10**18}", "metadata": meta,
                "done": True, "response": {"@type": "type.googleapis.com/google.protobuf.Empty"}}  # fmt: skip

    # -- results --------------------------------------------------------------------------------------------------

    def _finish(self, job: VertexJob, state: str) -> None:
        """Answers the rows the job got to and writes their predictions (callers hold `job.lock`)."""
        done = job.rows_done(state)
        if done == 0:
            job.done_rows = 0
            return
        with _results.gc_paused():
            outcomes = self._outcomes(job, done)
            records = self._records(job, outcomes)
        try:
            job.output = self._write(job, records)
        except EmulatedError as exc:  # the destination cannot be written: the job fails, its rows are not billed
            job.ending = VertexEnding("FAILED", {"code": 3, "message": exc.message})
            job.cancelled_at, job.running_s, job.done_rows = None, 0.0, 0
            return
        except Exception as exc:
            job.ending = VertexEnding("FAILED", {"code": 13, "message": f"Writing the predictions failed: {exc}"})
            job.cancelled_at, job.running_s, job.done_rows = None, 0.0, 0
            return
        job.done_rows = done
        job.failed = sum(isinstance(o, EmulatedError) for o in outcomes)
        job.succeeded = done - job.failed
        entries = [row.entry for row in job.rows[:done]]
        self._answers.add_job(job.name, job.model, entries, outcomes)

    def _outcomes(self, job: VertexJob, done: int) -> list[Outcome]:
        rows = job.rows[:done]
        failing = job.ending.failed_rows if job.ending.state == "PARTIALLY_SUCCEEDED" else 0
        fixed: dict[int, Outcome] = {i: row.error for i, row in enumerate(rows) if row.error is not None}
        fixed |= {i: EmulatedError(13, job.ending.row_message, "INTERNAL") for i in range(min(failing, done))}
        todo = [i for i in range(done) if i not in fixed]
        answered = _results.answer_all(job.model, [rows[i].entry for i in todo], self._settings.responder,
                                       self._faults, self._on_error)  # fmt: skip
        fixed |= dict(zip(todo, answered, strict=True))
        return [fixed[i] for i in range(done)]

    def _records(self, job: VertexJob, outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
        when = processed_time(job.created_ns + int(job.end_s(job.state()) * 1e9))
        order = _results.result_order(len(outcomes), self._settings.shuffle_results, job.id)
        return [prediction(job.rows[i], outcomes[i], self._settings, when) for i in order]

    def _write(self, job: VertexJob, records: list[dict[str, Any]]) -> dict[str, Any]:
        output = job.body["outputConfig"]
        stamp = timestamp(job.created_ns)
        if "bigqueryDestination" in output:
            return _write_bigquery(self._settings, str(output["bigqueryDestination"].get("outputUri")), stamp, records)
        prefix = str(output["gcsDestination"]["outputUriPrefix"]).rstrip("/")
        directory = f"{prefix}/prediction-model-{stamp}"
        files = jsonl_files(records, self._settings.vertex_output_files)
        corruption = self._faults.pop_corruption(inline=False)
        if corruption is not None:
            files = {name: corrupt_file(data, corruption, "generate") for name, data in files.items()}
        self._storage.write(directory, files)
        return {"gcsOutputDirectory": directory}


def _model(body: dict[str, Any], settings: Settings) -> str:
    model = str(body.get("model") or "")
    bare = model.removeprefix("publishers/google/models/").rsplit("/", 1)[-1]
    if bare not in settings.models:
        raise not_found(f"Publisher Model `{model}` was not found or your project does not have access to it.")
    return bare


def _check_output(output_config: dict[str, Any]) -> None:
    if "bigqueryDestination" in output_config:
        destination = require_object(output_config["bigqueryDestination"], "output_config.bigquery_destination")
        uri = destination.get("outputUri")
        if not str(uri).startswith("bq://"):
            raise invalid_argument(f"output_config.bigquery_destination.output_uri: {uri!r} is not a bq:// URI.")
        bigquery()
        return
    gcs = require_object(output_config.get("gcsDestination"), "output_config.gcs_destination")
    prefix = gcs.get("outputUriPrefix")
    if not isinstance(prefix, str) or not prefix.startswith("gs://") or len(prefix) <= len("gs://"):
        raise invalid_argument(f"output_config.gcs_destination.output_uri_prefix: {prefix!r} is not a gs:// URI.")


def _bq_record(record: dict[str, Any]) -> dict[str, Any]:
    request = record.get("request")
    if isinstance(request, str):
        request = json.loads(request)
    return {**record, "request": request if isinstance(request, dict) else {}}


def _write_bigquery(settings: Settings, uri: str, stamp: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Writes the rows to `bq://p.d.t` (or a `predictions_<time>` table of dataset `bq://p.d`); the outputInfo."""
    parts = uri.removeprefix("bq://").split(".")
    table = parts[2] if len(parts) > 2 else "predictions_" + re.sub(r"\D", "_", stamp).strip("_")
    dataset = f"bq://{parts[0]}.{parts[1]}" if len(parts) > 1 else uri
    rows = [{**{k: v for k, v in r.items() if k not in ("status", "processed_time", "request", "response")},
             "request": r["request"], "response": r.get("response"), "status": r["status"],
             "processed_time": r["processed_time"]} for r in records]  # fmt: skip
    bigquery().write_table(settings, f"{dataset}.{table}", rows)
    return {"bigqueryOutputDataset": dataset, "bigqueryOutputTable": table}


def _filters(filter_: Any) -> dict[str, str]:
    if not filter_:
        return {}
    wanted = {}
    for clause in re.split(r"\s+AND\s+", str(filter_)):
        match = _FILTER.fullmatch(clause)
        if match is None:
            raise invalid_argument(f"Unsupported filter {filter_!r}: use display_name=\"...\" and state=JOB_STATE_...")
        field = "displayName" if match[1] != "state" else "state"
        wanted[field] = match[2]
    return wanted

