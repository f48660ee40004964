"""The public functions. `df.gemini.*` delegates here; these are the typed, documented API."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from google.genai import types

from polars_gemini.api.frames import NativeFrame, at_door, frame_out, series_out, to_polars
from polars_gemini.api.options import check_options, check_staging, check_vertex, webhook_uris
from polars_gemini.api.resume import open_run
from polars_gemini.checkpoint.files import JobRecord
from polars_gemini.checkpoint.files import sink_parquet as _sink_file
from polars_gemini.checkpoint.location import LocalLocation, Location, open_location
from polars_gemini.checkpoint.store import Store
from polars_gemini.core.errors import APIError, BudgetExceededError, ConfigurationError, MediaError, RunTimeoutError
from polars_gemini.cost.estimate import (
    INPUT_TOKENS,
    OFFLINE_METHOD,
    Estimate,
    actual_cost,
    estimate_requests,
    per_row_input_tokens,
    request_input_tokens,
)
from polars_gemini.cost.prices import PriceTable, as_price_table
from polars_gemini.prepare.media import INLINE_MEDIA_BYTES, MediaColumns, MediaLike, media_columns
from polars_gemini.prepare.media import notes as media_notes
from polars_gemini.prepare.plan import (
    SKIP,
    Limits,
    Plan,
    check_clash,
    check_length,
    make_plan,
    output_columns,
    run_id_for,
)
from polars_gemini.prepare.requests import KEY, PROMPT, RequestSpec, build_spec, request_keys
from polars_gemini.prepare.schema import SchemaLike, check_names
from polars_gemini.prepare.stream import TOKENS, chunk_rows, stream_plan
from polars_gemini.prepare.template import prompt_exprs
from polars_gemini.run.lifecycle import MAX_ACTIVE_JOBS, Run, RunOptions, SinkReport, vertex_limits
from polars_gemini.run.results import parse_lines
from polars_gemini.run.sink import DEFAULT_SINK_BUDGET, sink_target
from polars_gemini.service import gemini as _client
from polars_gemini.service.sync import run_sync
from polars_gemini.tokens.exact import TokenizerLike, load_tokenizer
from polars_gemini.tokens.tokenizer import estimate_tokens

if TYPE_CHECKING:
    import google.cloud.storage as storage
    from google import genai

FrameLike = pl.DataFrame | pl.LazyFrame
# Set while `batch()` runs `submit()`: the checkpoint then stays busy from its opening to batch()'s end.
_BATCH_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("polars_gemini_batch_call", default=False)
ConfigLike = types.GenerateContentConfig | Mapping[str, Any]
PricesLike = PriceTable | Mapping[str, Any] | None


def submit(
    frame: FrameLike | NativeFrame,
    template: str | pl.Expr,
    *,
    model: str,
    schema: SchemaLike | None = None,
    system_instruction: str | None = None,
    config: ConfigLike | None = None,
    output: str = "response",
    prefix: str = "",
    client: genai.Client | None = None,
    mode: Literal["batch", "sync"] = "batch",
    max_requests_per_job: int | None = None,
    inline_limit_bytes: int | None = None,
    file_limit_bytes: int | None = None,
    poll_interval: float = 5.0,
    max_poll_interval: float = 60.0,
    max_concurrency: int = 8,
    progress: bool = True,
    check_model: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    max_retries: int = 2,
    keep_files: bool = False,
    max_cost: float | None = None,
    prices: PricesLike = None,
    usage: bool = False,
    memory_budget: int | None = None,
    retry: types.HttpRetryOptions | None = None,
    max_active_jobs: int = MAX_ACTIVE_JOBS,
    max_enqueued_tokens: int | None = None,
    reuse_jobs: bool = True,
    resubmit_lost: bool = False,
    tokenizer: TokenizerLike = "auto",
    media: MediaLike = None,
    on_media_error: Literal["skip", "raise"] = "skip",
    media_inline_bytes: int = INLINE_MEDIA_BYTES,
    webhook: str | Sequence[str] | None = None,
    stuck_after: float | None = None,
    fallback: Literal["batch", "flex"] = "batch",
    staging: str | None = None,
    storage_client: storage.Client | None = None,
) -> Run:
    """Render one request per distinct row, submit them as batch jobs and return at once with a `Run`.

    Everything that can be checked locally (template, columns, model, schema, sizes, options) is checked before the
    first call. With `checkpoint=`, all state lives in that directory: calling again (or `polars_gemini.resume(dir)`
    from another process) re-attaches to the jobs, and only requests without a stored result are ever sent.
    `checkpoint` may also be an object-storage URL (`s3://bucket/prefix`, `gs://...`, `az://...`), resumable from any
    machine, with its credentials from the environment or `storage_options` (the keys Polars takes, e.g.
    `{"aws_region": "eu-west-1"}`); see the checkpoints guide for its lease and atomic writes.
    Without one, the same work submitted again finds its jobs on the service (they are named after it) and
    re-attaches to them instead of paying twice (`reuse_jobs=False` to submit anew).
    With a LazyFrame and `memory_budget=` (bytes), requests are rendered in streamed chunks straight into sharded
    request files (under the checkpoint, else a temporary directory) instead of all at once in memory, and each
    job's results go to a Parquet file there instead of memory; `run.sink_parquet(path)` then writes the result
    chunk by chunk (`run.result()` reads them all back).

    Jobs that never get stuck: with `stuck_after=` (hours), a job still PENDING or RUNNING that long is cancelled, and
    its unanswered requests are sent again, like those of a job that EXPIRED (48 h) or failed, by `fallback`: a new
    batch job ("batch", the default) or synchronous calls at the Flex tier ("flex": the same 50% price, minutes not
    hours, `max_concurrency` calls at a time; chunks of 256 are stored as they finish). Whatever a job answered
    before it ended is kept and never sent again.

    `webhook=` (an https URL, or several) is each job's `webhook_config`: the service POSTs a signed event
    (`batch.succeeded`, `batch.failed`, `batch.expired`) there when the job ends, with the run id, the job and the
    checkpoint directory in its metadata, so `polars-gemini webhook serve` can resume the run. Developer API only.
    `webhook="registered"` sends the metadata only: the project's registered webhooks (`client.webhooks.create`)
    get the events, signed with their HMAC secret, where per-job URLs get a JWT signature.

    Service limits: at most `max_active_jobs` jobs run at once (the service allows 100 per project), and with
    `max_enqueued_tokens=` (your tier's enqueued-token limit) jobs are split to fit and queued so the running ones
    stay under it; a create the service refuses for quota (429) waits for running jobs to finish. Idempotent calls
    are retried under `retry` (the SDK's `HttpRetryOptions`; default 6 attempts from 1 s, capped at 60 s); job
    creation never is, blindly: it is looked up by name first.

    >>> run = polars_gemini.submit(df, "Classify: {review}", model="gemini-2.5-flash")  # doctest: +SKIP
    >>> run.status(); out = run.result()  # doctest: +SKIP

    `frame` may be a pandas DataFrame, a PyArrow Table, a DuckDB relation or another frame narwhals reads (see
    `polars_gemini.api.frames`); `run.result()` is Polars whatever it was: `polars_gemini.to_native(run.result(),
    like=frame)` gives it back in the frame's kind.
    """
    frame = to_polars(frame)  # pandas, Arrow, DuckDB, ...: as Polars at the door (api.frames), or a ConfigurationError
    check_options(dict(locals()))  # first statement: the arguments, exactly as given
    spec = build_spec(
        model, schema=schema, system_instruction=system_instruction, config=config, check_model=check_model
    )
    check_names(spec.field, output, prefix, usage=usage)
    check_clash(frame.collect_schema().names(), output_columns(spec, output, prefix, usage))
    limits = job_limits(max_requests_per_job, inline_limit_bytes, file_limit_bytes)
    if _client.is_vertex(client):  # a streamed plan's request files are the jobs' input files: cut to Vertex's limits
        limits = vertex_limits(limits)
    columns = media_columns(media, template, frame.collect_schema())
    if _client.is_vertex(client):  # gs:// cells are read by Vertex itself, and there is no Files API to upload to
        columns = dataclasses.replace(columns, cloud_storage=True)
    location = None if checkpoint is None else open_location(checkpoint, storage_options)  # a bad URL fails here
    data, plan = _plan(frame, template, spec, limits, memory_budget, location, columns, media_inline_bytes)
    _check_media(plan, on_media_error)
    table = as_price_table(prices)
    exact = None if plan.files else load_tokenizer(tokenizer, spec.model)  # a streamed plan counted as it went
    est = estimate_requests(plan.requests, plan.rows.height, spec, table, prompt_tokens=_streamed_tokens(plan),
                            exact=exact, rows_not_sent=not_sent(plan), notes=_media_notes(plan))  # fmt: skip
    check_budget(est, max_cost, sync=mode == "sync")
    options = RunOptions(
        output, prefix, poll_interval, max_poll_interval, max_concurrency, progress, max_retries, keep_files, limits,
        usage, table, retry, max_active_jobs, max_enqueued_tokens, reuse_jobs, resubmit_lost,
        webhook=webhook_uris(webhook), stuck_after=stuck_after, fallback=fallback,
        staging=None if staging is None else check_staging(staging),
    )  # fmt: skip
    if client is None and plan.requests.height == 0 and checkpoint is None:
        return Run(data, plan, None, options, estimate=est)  # nothing to send: no client needed
    client = client or _client.client_from_env()
    storage_client = check_vertex(client, plan, options, mode, storage_client)
    run_id = run_id_for(plan, limits) if reuse_jobs else uuid.uuid4().hex[:12]
    if location is not None:
        run = open_run(location, data, plan, template, client, options, est, lean=memory_budget is not None)
    else:
        run = Run(data, plan, client, options, Store(lean=memory_budget is not None), run_id=run_id, estimate=est)
    if resubmit_lost:
        run.extra_rounds = 1
    run.storage = storage_client
    if run.store.lean:  # a streamed plan of maybe millions of rows: what only the assembly needs waits on disk
        if TOKENS in plan.requests.columns:  # estimated and saved: not needed any more
            run.plan = dataclasses.replace(plan, requests=plan.requests.drop(TOKENS))
        run.spill_rows()
    try:
        if mode == "sync":
            parts = run.media_parts(plan.requests.select(KEY, PROMPT))
            lines = run_sync(plan.requests, plan.spec, client, max_concurrency, progress, retry, parts)
            run.store.add_results(sync_job(run), parse_lines(lines))
            run.cleanup_media()
            return run
        return submit_or_explain(run)
    except BaseException:
        run.close()  # a failed submit never keeps the checkpoint locked: resume() must work from anywhere
        raise
    finally:
        if not in_batch_call():  # batch() keeps the directory busy until it returns: no thread takes it between
            run.store.opened()


@contextlib.contextmanager
def batch_call() -> Iterator[None]:
    """Marks a `batch()`-style call (submit, then wait, in one call): its checkpoint stays busy from opening to end."""
    inside = _BATCH_CALL.set(True)
    try:
        yield
    finally:
        _BATCH_CALL.reset(inside)


def in_batch_call() -> bool:
    return _BATCH_CALL.get()


def _plan(
    frame: FrameLike, template: str | pl.Expr, spec: RequestSpec, limits: Limits, memory_budget: int | None,
    checkpoint: Location | None, media: MediaColumns | None = None,
    media_inline_bytes: int = INLINE_MEDIA_BYTES,
) -> tuple[FrameLike, Plan]:  # fmt: skip
    """The plan, in memory, or, with a memory budget, streamed into request files.

    A streamed frame is evaluated once, into `input.parquet` next to its request files, and read back from there:
    the planning pass, the checkpoint and the final join then see the same rows in the same order (a LazyFrame
    evaluated twice need not: a `group_by`, say, or a source file that changes in between).
    """
    if memory_budget is None:
        df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
        return df, make_plan(df, template, spec, limits, media, media_inline_bytes)
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or not 0 < memory_budget < 2**62:
        raise ConfigurationError(f"memory_budget is a number of bytes > 0, e.g. 2_000_000_000; got {memory_budget!r}.")
    if isinstance(checkpoint, LocalLocation):  # the request files are written in the checkpoint directory
        directory = checkpoint.path(f"inputs/{spec.fingerprint[:16]}")
    else:  # a remote checkpoint gets a copy of each once they are written (`api.resume`)
        directory = Path(tempfile.mkdtemp(prefix="polars-gemini-requests-"))
    prompt_exprs(template, frame.lazy().collect_schema())  # a bad template fails before the input is written out
    staged = directory / "input.parquet"
    _sink_file(staged, frame.lazy())
    lf = pl.scan_parquet(staged)
    chunk = chunk_rows(lf, template, memory_budget)
    return lf, stream_plan(lf, template, spec, limits, directory, chunk)


def _check_media(plan: Plan, on_media_error: str) -> None:
    """With `on_media_error="raise"`, media that cannot be sent stop the call before anything is sent."""
    if on_media_error != "raise" or plan.media is None:
        return
    bad = plan.rows.filter(pl.col(SKIP).str.starts_with("not sent: media column"))
    if bad.height:
        first = bad.with_row_index().head(3)
        where = "; ".join(f"{r[SKIP].removeprefix('not sent: ')}" for r in first.iter_rows(named=True))
        raise MediaError(
            f"{bad.height:,} row(s) hold media that cannot be sent: {where}. Fix or drop those rows, or pass "
            "on_media_error='skip' to send the others (each skipped row then says why in its error column)."
        )


def not_sent(plan: Plan) -> int:
    return int(plan.rows.get_column(KEY).null_count())


def _media_notes(plan: Plan) -> tuple[str, ...]:
    if plan.media is None:
        return ()
    skipped = plan.rows.filter(pl.col(SKIP).str.starts_with("not sent: media column"))
    first = f"{skipped.height:,} row(s) hold media that cannot be sent, e.g. {skipped.item(0, SKIP)}" if (
        skipped.height) else None  # fmt: skip
    return tuple(n for n in (first, *media_notes(plan.media)) if n)


def _streamed_tokens(plan: Plan) -> pl.Series | None:
    return plan.requests.get_column(TOKENS) if TOKENS in plan.requests.columns else None


def check_budget(est: Estimate, max_cost: float | None, *, sync: bool = False) -> None:
    """Refuse to submit when the worst case could cost more than `max_cost`, before any upload. `sync`: the calls
    are billed at standard price (the estimate's batch bound scaled by standard over batch)."""
    if max_cost is None:
        return
    if est.cost_max is None or est.cost is None:
        raise BudgetExceededError(
            f"max_cost={max_cost} cannot be checked: no price is known for {est.model}. Pass prices={{...}}.\n{est!r}"
        )
    worst, expected, price = est.cost_max, est.cost, "batch"
    if sync:
        scale = (est.sync_cost or 0.0) / est.cost if est.cost else 2.0
        worst, expected, price = worst * scale, est.sync_cost or 0.0, "standard (sync mode)"
    if worst > max_cost:
        lower = "with config max_output_tokens, " if est.output_tokens_max else ""
        raise BudgetExceededError(
            f"Not submitted: the estimate's upper bound {_dollars(worst)} at {price} price exceeds "
            f"max_cost={_dollars(max_cost)} (expected {_dollars(expected)}). Lower the worst case {lower}send fewer "
            f"rows, or raise max_cost.\n{est!r}"
        )


def _dollars(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:,.6f}"


def sync_job(run: Run) -> JobRecord:
    """A stand-in job record so sync results are stored like a batch job's."""
    job = JobRecord(f"sync-{run.run_id}", run.run_id, 1, 0, "sync", run.plan.requests.height, "SUCCEEDED")
    run.store.add_job(job, run.plan.requests.get_column("key"))
    run.round = run.options.max_retries + 1  # sync mode retries inside each call (the SDK's retry options)
    return job


def submit_or_explain(run: Run) -> Run:
    try:
        return run.submit()
    except APIError as exc:
        created = [j.name for j in run.store.jobs if j.name]
        if not created:
            raise
        raise APIError(
            f"{exc} Jobs already created (and running): {', '.join(created)}. Cancel them with "
            "client.batches.cancel(name=...) or keep their results; pass checkpoint= to make submission resumable.",
            code=exc.code,
        ) from exc


def job_limits(max_requests: int | None, inline: int | None, file: int | None) -> Limits:
    base = Limits()
    return Limits(
        inline if inline is not None else base.inline_bytes,
        file if file is not None else base.file_bytes,
        max_requests,
    )


def batch(
    frame: FrameLike | NativeFrame,
    template: str | pl.Expr,
    *,
    model: str,
    schema: SchemaLike | None = None,
    system_instruction: str | None = None,
    config: ConfigLike | None = None,
    output: str = "response",
    prefix: str = "",
    client: genai.Client | None = None,
    mode: Literal["batch", "sync"] = "batch",
    max_requests_per_job: int | None = None,
    inline_limit_bytes: int | None = None,
    file_limit_bytes: int | None = None,
    poll_interval: float = 5.0,
    max_poll_interval: float = 60.0,
    max_concurrency: int = 8,
    progress: bool = True,
    check_model: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    max_retries: int = 2,
    keep_files: bool = False,
    max_cost: float | None = None,
    prices: PricesLike = None,
    usage: bool = False,
    memory_budget: int | None = None,
    retry: types.HttpRetryOptions | None = None,
    max_active_jobs: int = MAX_ACTIVE_JOBS,
    max_enqueued_tokens: int | None = None,
    reuse_jobs: bool = True,
    resubmit_lost: bool = False,
    tokenizer: TokenizerLike = "auto",
    media: MediaLike = None,
    on_media_error: Literal["skip", "raise"] = "skip",
    media_inline_bytes: int = INLINE_MEDIA_BYTES,
    webhook: str | Sequence[str] | None = None,
    stuck_after: float | None = None,
    fallback: Literal["batch", "flex"] = "batch",
    staging: str | None = None,
    storage_client: storage.Client | None = None,
    timeout: float | None = None,
) -> pl.DataFrame | NativeFrame:
    """Run `template` over every row at batch price and return the frame with typed answer columns.

    Every input row comes back exactly once, in order, with its answer or a value in `{output}_error`. The options
    are `submit`'s (see there); `timeout` (seconds) bounds the wait, after which `RunTimeoutError` says how to pick
    the run up again.

    >>> out = polars_gemini.batch(df, "Classify: {review}", model="gemini-2.5-flash",
    ...                           schema={"label": pl.Enum(["pos", "neg"])})  # doctest: +SKIP

    A pandas DataFrame, PyArrow Table or DuckDB relation comes back as one (the caller's index and columns as they
    were, then the answers): see `polars_gemini.api.frames` for the dtypes.
    """
    check_options({"timeout": timeout})  # the others are checked by submit
    edge = at_door(frame)  # another library's frame: as Polars here, and the result back in its kind below
    with batch_call():
        run = submit(
            edge.frame, template, model=model, schema=schema, system_instruction=system_instruction, config=config,
            output=output, prefix=prefix, client=client, mode=mode, max_requests_per_job=max_requests_per_job,
            inline_limit_bytes=inline_limit_bytes, file_limit_bytes=file_limit_bytes, poll_interval=poll_interval,
            max_poll_interval=max_poll_interval, max_concurrency=max_concurrency, progress=progress,
            check_model=check_model, checkpoint=checkpoint, max_retries=max_retries, keep_files=keep_files,
            storage_options=storage_options,
            max_cost=max_cost, prices=prices, usage=usage, memory_budget=memory_budget, retry=retry,
            max_active_jobs=max_active_jobs, max_enqueued_tokens=max_enqueued_tokens, reuse_jobs=reuse_jobs,
            resubmit_lost=resubmit_lost, tokenizer=tokenizer, media=media, on_media_error=on_media_error,
            media_inline_bytes=media_inline_bytes, webhook=webhook, stuck_after=stuck_after, fallback=fallback,
            staging=staging, storage_client=storage_client,
        )  # fmt: skip
    try:
        result = run.result(timeout=timeout)  # still busy since submit: no other thread takes the checkpoint meanwhile
        return frame_out(edge, result)
    except RunTimeoutError:
        again = "call the same batch(...) again (it re-attaches to them: nothing is paid twice)"
        raise RunTimeoutError(run.timeout_message(timeout, again)) from None
    finally:
        run.close()  # batch() owns its run: let other processes use the checkpoint once it returns or raises


def sink_parquet(
    frame: FrameLike | NativeFrame,
    path: str | os.PathLike[str],
    template: str | pl.Expr,
    *,
    model: str,
    schema: SchemaLike | None = None,
    system_instruction: str | None = None,
    config: ConfigLike | None = None,
    output: str = "response",
    prefix: str = "",
    client: genai.Client | None = None,
    mode: Literal["batch", "sync"] = "batch",
    max_requests_per_job: int | None = None,
    inline_limit_bytes: int | None = None,
    file_limit_bytes: int | None = None,
    poll_interval: float = 5.0,
    max_poll_interval: float = 60.0,
    max_concurrency: int = 8,
    progress: bool = True,
    check_model: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    max_retries: int = 2,
    keep_files: bool = False,
    max_cost: float | None = None,
    prices: PricesLike = None,
    usage: bool = False,
    memory_budget: int | None = None,
    retry: types.HttpRetryOptions | None = None,
    max_active_jobs: int = MAX_ACTIVE_JOBS,
    max_enqueued_tokens: int | None = None,
    reuse_jobs: bool = True,
    resubmit_lost: bool = False,
    tokenizer: TokenizerLike = "auto",
    media: MediaLike = None,
    on_media_error: Literal["skip", "raise"] = "skip",
    media_inline_bytes: int = INLINE_MEDIA_BYTES,
    webhook: str | Sequence[str] | None = None,
    stuck_after: float | None = None,
    fallback: Literal["batch", "flex"] = "batch",
    staging: str | None = None,
    storage_client: storage.Client | None = None,
    timeout: float | None = None,
) -> SinkReport:
    """`batch`, streamed end to end: the result is written to the Parquet file `path` chunk by chunk instead of
    returned, so an input far larger than memory never needs to be in memory whole.

    The file holds exactly what `batch` would return (the same columns and dtypes, every input row once, in input
    order). Prompts are rendered in chunks into request files (`memory_budget`, bytes; default 512 MB: what planning
    and assembly each hold at a time), each job's results go to a Parquet file (under `checkpoint`, else a
    temporary directory) instead of memory, and the answers are joined to the rows a chunk at a time. With `media=`
    (planned in memory: media rows cannot be streamed yet) or `mode="sync"`, pass no memory_budget; the answers
    are still written chunk by chunk. The other options are `batch`'s. Returns a `SinkReport`: the path, the rows
    written, how many of them failed, and the run's cost.

    >>> report = polars_gemini.sink_parquet(pl.scan_parquet("reviews/*.parquet"), "labelled.parquet",
    ...                                     "Classify: {review}", model="gemini-2.5-flash",
    ...                                     schema={"label": pl.Enum(["pos", "neg"])})  # doctest: +SKIP
    >>> report.rows, report.failed  # doctest: +SKIP
    (10000000, 0)
    """
    check_options({"timeout": timeout, "memory_budget": memory_budget})  # the others are checked by submit
    sink_target(path)  # a path that cannot be written is said before anything is sent
    streamed = memory_budget is None and media is None and mode == "batch"
    with batch_call():
        run = submit(
            frame, template, model=model, schema=schema, system_instruction=system_instruction, config=config,
            output=output, prefix=prefix, client=client, mode=mode, max_requests_per_job=max_requests_per_job,
            inline_limit_bytes=inline_limit_bytes, file_limit_bytes=file_limit_bytes, poll_interval=poll_interval,
            max_poll_interval=max_poll_interval, max_concurrency=max_concurrency, progress=progress,
            check_model=check_model, checkpoint=checkpoint, max_retries=max_retries, keep_files=keep_files,
            storage_options=storage_options,
            max_cost=max_cost, prices=prices, usage=usage,
            memory_budget=DEFAULT_SINK_BUDGET if streamed else memory_budget, retry=retry,
            max_active_jobs=max_active_jobs, max_enqueued_tokens=max_enqueued_tokens, reuse_jobs=reuse_jobs,
            resubmit_lost=resubmit_lost, tokenizer=tokenizer, media=media, on_media_error=on_media_error,
            media_inline_bytes=media_inline_bytes, webhook=webhook, stuck_after=stuck_after, fallback=fallback,
            staging=staging, storage_client=storage_client,
        )  # fmt: skip
    try:
        return run.sink_parquet(path, timeout=timeout, memory_budget=memory_budget)
    except RunTimeoutError:
        again = "call the same sink_parquet(...) again (it re-attaches to them: nothing is paid twice)"
        raise RunTimeoutError(run.timeout_message(timeout, again)) from None
    finally:
        run.close()


def estimate(
    frame: FrameLike | NativeFrame,
    template: str | pl.Expr,
    *,
    model: str,
    schema: SchemaLike | None = None,
    system_instruction: str | None = None,
    config: ConfigLike | None = None,
    prices: PricesLike = None,
    expected_output_tokens: int | None = None,
    thinking_tokens: int | None = None,
    calibrate: int = 0,
    calibrate_output: bool = False,
    client: genai.Client | None = None,
    check_model: bool = True,
    tokenizer: TokenizerLike = "auto",
    media: MediaLike = None,
    on_media_error: Literal["skip", "raise"] = "skip",
) -> Estimate:
    """Tokens and USD for running `template` over `frame` at batch price, before anything is sent.

    `calibrate=N` counts N sample prompts with countTokens (not billed) and scales the input estimate by what they
    measure; with `calibrate_output=True` it also sends those N requests synchronously (billed at standard price)
    and measures answer and thinking tokens. The `Estimate`'s method says what was measured and what it cost.
    `tokenizer=` chooses exact or estimated counts (see `polars_gemini.tokens.exact`).

    >>> polars_gemini.estimate(df, "Classify: {review}", model="gemini-2.5-flash")  # doctest: +SKIP
    """
    frame = to_polars(frame)  # pandas, Arrow, DuckDB, ...: as Polars at the door (api.frames)
    check_options(dict(locals()))  # first statement: the arguments, exactly as given
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    spec = build_spec(
        model, schema=schema, system_instruction=system_instruction, config=config, check_model=check_model
    )
    columns = media_columns(media, template, df.collect_schema())
    if columns:
        plan = make_plan(df, template, spec, Limits(), columns)
        _check_media(plan, on_media_error)
        requests, unsent, notes = plan.requests, not_sent(plan), _media_notes(plan)
    else:
        prompt, _ = prompt_exprs(template, df.collect_schema())
        rendered = df.select(prompt.alias(PROMPT))
        check_length(rendered.height, df.height, template)
        requests, unsent, notes = rendered.drop_nulls().unique(maintain_order=True), rendered.null_count().item(), ()
    table = as_price_table(prices)
    kwargs: dict[str, Any] = {"expected_output_tokens": expected_output_tokens, "thinking_tokens": thinking_tokens}
    kwargs["exact"] = load_tokenizer(tokenizer, spec.model)
    if calibrate:
        api = client or _client.client_from_env()
        kwargs |= _calibrate(requests, spec, calibrate, api, kwargs, table, measure_output=calibrate_output)
    return estimate_requests(requests, df.height, spec, table, rows_not_sent=unsent, notes=notes, **kwargs)


def _calibrate(
    requests: pl.DataFrame, spec: RequestSpec, n: int, client: genai.Client, given: dict[str, Any], prices: PriceTable,
    *, measure_output: bool,
) -> dict[str, Any]:  # fmt: skip
    """Measure `n` sample requests: their prompts' tokens with countTokens (free), and with `measure_output` their
    answer and thinking tokens with billed synchronous calls."""
    if n < 0:
        raise ConfigurationError(f"calibrate must be a number of sample rows >= 0, got {n}.")
    sample = requests.sample(min(n, requests.height), seed=0) if requests.height > n else requests
    measured: dict[str, Any] = {}
    notes = []
    if given.get("exact") is None:  # exact counts need no correction
        scale = _counted_scale(sample, spec, client)
        measured["input_scale"] = scale
        notes.append(f"input tokens scaled x{scale:.3f} by countTokens on {sample.height} sample prompts (free)")
    if measure_output:
        answer, thinking, usd = _measured_output(sample, spec, client, prices)
        measured["expected_output_tokens"] = given["expected_output_tokens"] or round(answer)
        if given["thinking_tokens"] is None:
            measured["thinking_tokens"] = round(thinking)
        cost = "cost unknown" if usd is None else f"${usd:,.4f} at standard price"
        notes.append(f"answer and thinking measured on {sample.height} billed sync requests ({cost})")
    base = given["exact"].source if given.get("exact") is not None else OFFLINE_METHOD
    return measured | {"method": f"{base}; calibrated: " + "; ".join(notes or ["nothing to measure"])}


def _counted_scale(sample: pl.DataFrame, spec: RequestSpec, client: genai.Client) -> float:
    """Real prompt tokens (countTokens) of `sample` over their estimate: how much the estimator is off here."""
    prompts = sample.get_column(PROMPT).to_list()
    # One call per sample prompt: a handful of prompts, and countTokens takes one request at a time.
    with ThreadPoolExecutor(max_workers=4) as pool:
        counted = sum(pool.map(lambda p: _client.count_tokens(client, spec.model, p), prompts))
    estimated = int(sample.select(estimate_tokens(pl.col(PROMPT)).sum()).item() or 0)
    return counted / estimated if estimated else 1.0


def _measured_output(
    sample: pl.DataFrame, spec: RequestSpec, client: genai.Client, prices: PriceTable
) -> tuple[float, float, float | None]:
    """Mean answer and thinking tokens of `sample` answered synchronously, and what those calls cost."""
    keyed = sample.with_columns(request_keys(sample.get_column(PROMPT), spec).alias(KEY))
    lines = run_sync(keyed.select(KEY, PROMPT), spec, client, max_concurrency=4, progress=False)
    usage = parse_lines(lines).filter(pl.col("usage").is_not_null())
    if usage.is_empty():
        raise ConfigurationError("Calibration got no usable answer from the sample requests; see their errors.")
    u = pl.col("usage").struct
    row = usage.select(
        u.field("candidatesTokenCount").fill_null(0).mean().alias("answer"),
        u.field("thoughtsTokenCount").fill_null(0).mean().alias("thinking"),
    ).row(0, named=True)
    usd = actual_cost(usage, prices.get(spec.model), batch=False)
    return float(row["answer"] or 0.0), float(row["thinking"] or 0.0), usd


def input_tokens(
    frame: FrameLike | NativeFrame,
    template: str | pl.Expr,
    *,
    model: str,
    schema: SchemaLike | None = None,
    system_instruction: str | None = None,
    config: ConfigLike | None = None,
    check_model: bool = True,
    tokenizer: TokenizerLike = "auto",
    media: MediaLike = None,
    on_media_error: Literal["skip", "raise"] = "skip",
) -> pl.Series | NativeFrame:
    """Estimated input tokens of each row's request, as a column (`input_tokens`; null where a row is not sent).
    For a pandas frame a nullable Int64 Series on its index, for a PyArrow Table a ChunkedArray.

    >>> df.with_columns(polars_gemini.input_tokens(df, "Rate: {review}", model="gemini-2.5-flash"))  # doctest: +SKIP
    """
    edge = at_door(frame)  # another library's frame: as Polars here, and the column back in its kind
    frame = edge.frame
    check_options(dict(locals()))  # first statement: the arguments, exactly as given
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    spec = build_spec(
        model, schema=schema, system_instruction=system_instruction, config=config, check_model=check_model
    )
    exact = load_tokenizer(tokenizer, spec.model)
    columns = media_columns(media, template, df.collect_schema())
    if not columns:
        return series_out(edge, per_row_input_tokens(df, template, spec, exact))
    plan = make_plan(df, template, spec, Limits(), columns)
    _check_media(plan, on_media_error)
    per_request = plan.requests.select(KEY).with_columns(request_input_tokens(plan.requests, spec, exact))
    tokens = plan.rows.select(KEY).join(per_request, on=KEY, how="left", maintain_order="left").get_column(INPUT_TOKENS)
    return series_out(edge, tokens)
