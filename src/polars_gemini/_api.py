"""The public functions. `df.gemini.*` delegates here; these are the typed, documented API."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import polars as pl
from google import genai
from google.genai import types

from polars_gemini import _client
from polars_gemini._errors import APIError, BudgetExceededError, ConfigurationError
from polars_gemini._estimate import Estimate, estimate_requests
from polars_gemini._estimating import PricesLike
from polars_gemini._plan import Limits, Plan, check_clash, make_plan, output_columns
from polars_gemini._prices import as_price_table
from polars_gemini._requests import RequestSpec, build_spec
from polars_gemini._resume import open_run
from polars_gemini._run import Run, RunOptions
from polars_gemini._schema import SchemaLike
from polars_gemini._store import JobRecord
from polars_gemini._stream import TOKENS, chunk_rows, stream_plan
from polars_gemini._sync import run_sync

FrameLike = pl.DataFrame | pl.LazyFrame
ConfigLike = types.GenerateContentConfig | Mapping[str, Any]


def submit(
    frame: FrameLike,
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
    max_retries: int = 2,
    keep_files: bool = False,
    max_cost: float | None = None,
    prices: PricesLike = None,
    usage: bool = False,
    memory_budget: int | None = None,
) -> Run:
    """Render one request per distinct row, submit them as batch jobs and return at once with a `Run`.

    Everything that can be checked locally (template, columns, model, schema, sizes) is checked before the first call.
    With `checkpoint=`, all state lives in that directory: calling again (or `polars_gemini.resume(dir)` from another
    process) re-attaches to the jobs, and only requests without a stored result are ever sent.
    With a LazyFrame and `memory_budget=` (bytes), requests are rendered in streamed chunks straight into sharded
    request files (under the checkpoint, else a temporary directory) instead of all at once in memory.

    >>> run = polars_gemini.submit(df, "Classify: {review}", model="gemini-2.5-flash")  # doctest: +SKIP
    >>> run.status(); out = run.result()  # doctest: +SKIP
    """
    if mode not in ("batch", "sync"):
        raise ConfigurationError(f"mode must be 'batch' or 'sync', got {mode!r}.")
    if mode == "sync" and checkpoint is not None:
        raise ConfigurationError("checkpoint= applies to batch runs; sync mode is for quick iterations on few rows.")
    if max_retries < 0:
        raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries}.")
    spec = build_spec(
        model, schema=schema, system_instruction=system_instruction, config=config, check_model=check_model
    )
    check_clash(frame.collect_schema().names(), output_columns(spec, output, prefix))
    limits = _limits(max_requests_per_job, inline_limit_bytes, file_limit_bytes)
    data, plan = _plan(frame, template, spec, limits, memory_budget, checkpoint)
    table = as_price_table(prices)
    est = estimate_requests(plan.requests, plan.rows.height, spec, table, prompt_tokens=_streamed_tokens(plan))
    _check_budget(est, max_cost)
    options = RunOptions(
        output, prefix, poll_interval, max_poll_interval, max_concurrency, progress, max_retries, keep_files, limits,
        usage, table,
    )  # fmt: skip
    if client is None and plan.requests.height == 0 and checkpoint is None:
        return Run(data, plan, None, options, estimate=est)  # nothing to send: no client needed
    client = client or _client.client_from_env()
    if checkpoint is not None:
        run = open_run(Path(checkpoint), data, plan, template, client, options, est)
    else:
        run = Run(data, plan, client, options, estimate=est)
    if mode == "sync":
        run.store.add_results(_sync_job(run), run_sync(plan, client, max_concurrency, progress))
        return run
    return _submit_or_explain(run)


def _plan(
    frame: FrameLike, template: str | pl.Expr, spec: RequestSpec, limits: Limits, memory_budget: int | None,
    checkpoint: str | os.PathLike[str] | None,
) -> tuple[FrameLike, Plan]:  # fmt: skip
    """The plan, in memory, or streamed into request files for a LazyFrame with a memory budget."""
    if not isinstance(frame, pl.LazyFrame) or memory_budget is None:
        df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
        return df, make_plan(df, template, spec, limits)
    if memory_budget <= 0:
        raise ConfigurationError(f"memory_budget is a number of bytes > 0, got {memory_budget}.")
    if checkpoint is not None:
        directory = Path(checkpoint) / "inputs" / spec.fingerprint[:16]
    else:
        directory = Path(tempfile.mkdtemp(prefix="polars-gemini-requests-"))
    chunk = chunk_rows(frame, template, memory_budget)
    return frame, stream_plan(frame, template, spec, limits, directory, chunk)


def _streamed_tokens(plan: Plan) -> pl.Series | None:
    return plan.requests.get_column(TOKENS) if plan.files else None


def _check_budget(est: Estimate, max_cost: float | None) -> None:
    """Refuse to submit when the worst case could cost more than `max_cost`, before any upload."""
    if max_cost is None:
        return
    if est.cost_max is None:
        raise BudgetExceededError(
            f"max_cost={max_cost} cannot be checked: no price is known for {est.model}. Pass prices={{...}}.\n{est!r}"
        )
    if est.cost_max > max_cost:
        raise BudgetExceededError(
            f"Not submitted: the estimate's upper bound ${est.cost_max:,.2f} exceeds max_cost=${max_cost:,.2f} "
            f"(expected ${est.cost:,.2f}). Lower the worst case with config max_output_tokens, send fewer rows, or "
            f"raise max_cost.\n{est!r}"
        )


def _sync_job(run: Run) -> JobRecord:
    """A stand-in job record so sync results are stored like a batch job's."""
    job = JobRecord(f"sync-{run.run_id}", run.run_id, 1, 0, "sync", run.plan.requests.height, "SUCCEEDED")
    run.store.add_job(job, run.plan.requests.get_column("key"))
    run.round = run.options.max_retries + 1  # sync mode retries inside each call (the SDK's retry options)
    return job


def _submit_or_explain(run: Run) -> Run:
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


def _limits(max_requests: int | None, inline: int | None, file: int | None) -> Limits:
    if max_requests is not None and max_requests < 1:
        raise ConfigurationError(f"max_requests_per_job must be at least 1, got {max_requests}.")
    base = Limits()
    return Limits(
        inline if inline is not None else base.inline_bytes,
        file if file is not None else base.file_bytes,
        max_requests,
    )


def batch(
    frame: FrameLike,
    template: str | pl.Expr,
    *,
    model: str,
    schema: SchemaLike | None = None,
    system_instruction: str | None = None,
    config: ConfigLike | None = None,
    output: str = "response",
    timeout: float | None = None,
    **options: Any,
) -> pl.DataFrame:
    """Run `template` over every row at batch price and return the frame with typed answer columns.

    Every input row comes back exactly once, in order, with its answer or a value in `{output}_error`.

    >>> out = polars_gemini.batch(df, "Classify: {review}", model="gemini-2.5-flash",
    ...                           schema={"label": pl.Enum(["pos", "neg"])})  # doctest: +SKIP
    """
    run = submit(
        frame,
        template,
        model=model,
        schema=schema,
        system_instruction=system_instruction,
        config=config,
        output=output,
        **options,
    )
    try:
        return run.result(timeout=timeout)
    finally:
        run.close()  # batch() owns its run: let other processes use the checkpoint once it returns or raises
