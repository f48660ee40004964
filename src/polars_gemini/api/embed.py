"""Embeddings at batch price: `embed`, `submit_embed` and `estimate_embed`, the embedding twins of `batch`, `submit`
and `estimate`.

The same contract as generation: one request per distinct text, keyed by a hash of the request, every row back once
and in order, with its vector in an `Array(Float32, dimensions)` column or a value in `{output}_error`. Jobs go
through the Batch API's `asyncBatchEmbedContent` (inline or an uploaded JSONL file), are created once, resumed from
checkpoints and retried in rounds; `mode="sync"` embeds small frames at once through `batchEmbedContents` at
standard price.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
import warnings
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from google.genai import types

from polars_gemini.api import functions as _functions
from polars_gemini.api.frames import NativeFrame, at_door, frame_out, to_polars
from polars_gemini.api.options import check_options
from polars_gemini.api.resume import open_run
from polars_gemini.checkpoint.location import open_location
from polars_gemini.core.errors import GeminiBatchWarning, ModelError, RunTimeoutError, TemplateError
from polars_gemini.core.models import model_info
from polars_gemini.cost.estimate import Estimate, estimate_requests
from polars_gemini.cost.prices import as_price_table
from polars_gemini.prepare.plan import Limits, Plan, check_clash, check_length, make_plan, output_columns, run_id_for
from polars_gemini.prepare.requests import KEY, PROMPT, RequestSpec, build_embed_spec
from polars_gemini.prepare.template import column, parse_template, prompt_exprs
from polars_gemini.run.lifecycle import MAX_ACTIVE_JOBS, Run, RunOptions
from polars_gemini.run.results import RETRYABLE_CODES, embed_results
from polars_gemini.service import gemini as _client
from polars_gemini.service.sync import run_embed_sync
from polars_gemini.tokens.exact import TokenizerLike, load_tokenizer

if TYPE_CHECKING:
    from google import genai

FrameLike = pl.DataFrame | pl.LazyFrame
DEFAULT_MODEL = "gemini-embedding-001"
# Inline embedding jobs are capped by the size of their answer: every vector comes back inside one `batches.get`
# reply, which the SDK turns into Python objects (about 3.5 s a million values on a 2-core VM, where a results file
# of the same vectors is read by Polars in a fraction of that). 250,000 values is 81 full-size (3,072) vectors or
# 325 of 768: small frames still skip the upload and download, larger ones go as files.
INLINE_EMBED_VALUES = 250_000


def submit_embed(
    frame: FrameLike | NativeFrame,
    template: str | pl.Expr,
    *,
    model: str = DEFAULT_MODEL,
    task_type: str | None = None,
    title: str | None = None,
    output_dimensionality: int | None = None,
    normalize: bool = True,
    output: str = "embedding",
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
    prices: _functions.PricesLike = None,
    usage: bool = False,
    retry: types.HttpRetryOptions | None = None,
    max_active_jobs: int = MAX_ACTIVE_JOBS,
    max_enqueued_tokens: int | None = None,
    reuse_jobs: bool = True,
    resubmit_lost: bool = False,
    tokenizer: TokenizerLike = "auto",
) -> Run:
    """Embed `template` rendered for every distinct row as batch jobs, and return at once with a `Run`.

    `template` is a template string (`"{title}: {body}"`), a column name (`"body"`) or an expression, as for
    `submit`. `task_type` is one of the API's task types (`RETRIEVAL_DOCUMENT`, `RETRIEVAL_QUERY`,
    `SEMANTIC_SIMILARITY`, `CLASSIFICATION`, `CLUSTERING`, `QUESTION_ANSWERING`, `FACT_VERIFICATION`,
    `CODE_RETRIEVAL_QUERY`); `title` goes with `RETRIEVAL_DOCUMENT` only. `output_dimensionality` truncates the
    vectors (768, 1536 or 3072 for gemini-embedding-001, its default being 3072); `normalize=True` scales every vector
    to unit length, which the service does for full-size vectors only. The other options are `submit`'s.

    >>> run = polars_gemini.submit_embed(df, "{title}: {body}", output_dimensionality=768)  # doctest: +SKIP
    >>> out = run.result()  # doctest: +SKIP

    `run.result()` is Polars whatever `frame` was: `polars_gemini.to_native(run.result(), like=frame)` converts it.
    """
    frame = to_polars(frame)  # pandas, Arrow, DuckDB, ...: as Polars at the door (api.frames), or a ConfigurationError
    check_options(dict(locals()))  # first statement: the arguments, exactly as given
    spec = build_embed_spec(model, task_type=task_type, title=title, output_dimensionality=output_dimensionality,
                            check_model=check_model)  # fmt: skip
    info = model_info(spec.model)
    if mode == "batch" and check_model and info is not None and not info.supports_batch:
        raise ModelError(
            f"{spec.model} has no Batch API rate (the pricing page lists batch as not available): embed with "
            "mode='sync' (standard price), use gemini-embedding-001 for batch, or pass check_model=False to try."
        )
    check_clash(frame.collect_schema().names(), output_columns(spec, output, "", usage))
    limits = _limits(spec, max_requests_per_job, inline_limit_bytes, file_limit_bytes)
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    template = _as_template(template, df.collect_schema())
    plan = make_plan(df, template, spec, limits, skip_empty=True)
    table = as_price_table(prices)
    est = estimate_requests(plan.requests, plan.rows.height, spec, table, exact=load_tokenizer(tokenizer, spec.model),
                            rows_not_sent=_functions.not_sent(plan))  # fmt: skip
    _functions.check_budget(est, max_cost, sync=mode == "sync")
    if est.over_input_limit:
        warnings.warn(
            f"{est.over_input_limit:,} text(s) are longer than {spec.model}'s input limit; the service embeds only "
            "their beginning (silently). Split long texts into chunks (e.g. by paragraph) to embed all of them.",
            GeminiBatchWarning,
            stacklevel=2,
        )
    options = RunOptions(
        output, "", poll_interval, max_poll_interval, max_concurrency, progress, max_retries, keep_files, limits,
        usage, table, retry, max_active_jobs, max_enqueued_tokens, reuse_jobs, resubmit_lost, normalize,
    )  # fmt: skip
    if client is None and plan.requests.height == 0 and checkpoint is None:
        return Run(df, plan, None, options, estimate=est)  # nothing to send: no client needed
    client = client or _client.client_from_env()
    if checkpoint is not None:
        run = open_run(open_location(checkpoint, storage_options), df, plan, template, client, options, est)
    else:
        run_id = run_id_for(plan, limits) if reuse_jobs else uuid.uuid4().hex[:12]
        run = Run(df, plan, client, options, run_id=run_id, estimate=est)
    if resubmit_lost:
        run.extra_rounds = 1
    try:
        if mode == "sync":
            wire = _embed_sync(plan, client, max_concurrency, progress, retry, max_retries)
            run.store.add_results(_functions.sync_job(run), embed_results(wire, run.dimensions()))
            return run
        return _functions.submit_or_explain(run)
    except BaseException:
        run.close()  # a failed submit never keeps the checkpoint locked
        raise
    finally:
        if not _functions.in_batch_call():
            run.store.opened()


def embed(
    frame: FrameLike | NativeFrame,
    template: str | pl.Expr,
    *,
    model: str = DEFAULT_MODEL,
    task_type: str | None = None,
    title: str | None = None,
    output_dimensionality: int | None = None,
    normalize: bool = True,
    output: str = "embedding",
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
    prices: _functions.PricesLike = None,
    usage: bool = False,
    retry: types.HttpRetryOptions | None = None,
    max_active_jobs: int = MAX_ACTIVE_JOBS,
    max_enqueued_tokens: int | None = None,
    reuse_jobs: bool = True,
    resubmit_lost: bool = False,
    tokenizer: TokenizerLike = "auto",
    timeout: float | None = None,
) -> pl.DataFrame | NativeFrame:
    """Embed every row at batch price: the frame comes back with an `Array(Float32, dimensions)` column `output`
    and its errors in `{output}_error` (every row once, in order). Options as for `submit_embed`; `timeout`
    (seconds) bounds the wait, as for `batch`.

    >>> out = polars_gemini.embed(df, "{title}: {body}", task_type="RETRIEVAL_DOCUMENT",
    ...                           output_dimensionality=768)  # doctest: +SKIP
    >>> out.get_column("embedding").dtype  # doctest: +SKIP
    Array(Float32, shape=(768,))
    """
    check_options({"timeout": timeout})  # the others are checked by submit_embed
    edge = at_door(frame)  # another library's frame: as Polars here, and the result back in its kind below
    with _functions.batch_call():
        run = submit_embed(
            edge.frame, template, model=model, task_type=task_type, title=title,
            output_dimensionality=output_dimensionality, normalize=normalize, output=output, client=client, mode=mode,
            max_requests_per_job=max_requests_per_job, inline_limit_bytes=inline_limit_bytes,
            file_limit_bytes=file_limit_bytes, poll_interval=poll_interval, max_poll_interval=max_poll_interval,
            max_concurrency=max_concurrency, progress=progress, check_model=check_model, checkpoint=checkpoint,
            storage_options=storage_options,
            max_retries=max_retries, keep_files=keep_files, max_cost=max_cost, prices=prices, usage=usage,
            retry=retry, max_active_jobs=max_active_jobs, max_enqueued_tokens=max_enqueued_tokens,
            reuse_jobs=reuse_jobs, resubmit_lost=resubmit_lost, tokenizer=tokenizer,
        )  # fmt: skip
    try:
        return frame_out(edge, run.result(timeout=timeout))
    except RunTimeoutError:
        again = "call the same embed(...) again (it re-attaches to them: nothing is paid twice)"
        raise RunTimeoutError(run.timeout_message(timeout, again)) from None
    finally:
        run.close()


def estimate_embed(
    frame: FrameLike | NativeFrame,
    template: str | pl.Expr,
    *,
    model: str = DEFAULT_MODEL,
    task_type: str | None = None,
    title: str | None = None,
    output_dimensionality: int | None = None,
    prices: _functions.PricesLike = None,
    check_model: bool = True,
    tokenizer: TokenizerLike = "auto",
) -> Estimate:
    """Tokens and USD for embedding `template` over `frame` at batch price, before anything is sent (embeddings
    bill input tokens only).

    >>> polars_gemini.estimate_embed(df, "{title}: {body}")  # doctest: +SKIP
    """
    frame = to_polars(frame)  # pandas, Arrow, DuckDB, ...: as Polars at the door (api.frames)
    check_options(dict(locals()))  # first statement: the arguments, exactly as given
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    spec = build_embed_spec(model, task_type=task_type, title=title, output_dimensionality=output_dimensionality,
                            check_model=check_model)  # fmt: skip
    prompt, _ = prompt_exprs(_as_template(template, df.collect_schema()), df.collect_schema())
    rendered = df.select(prompt.alias(PROMPT))
    check_length(rendered.height, df.height, template)
    rendered = rendered.select(pl.when(pl.col(PROMPT) != "").then(pl.col(PROMPT)).alias(PROMPT))  # not sent, as nulls
    requests = rendered.drop_nulls().unique(maintain_order=True)
    exact = load_tokenizer(tokenizer, spec.model)
    return estimate_requests(requests, df.height, spec, as_price_table(prices), exact=exact,
                             rows_not_sent=int(rendered.null_count().item()))  # fmt: skip


def _embed_sync(
    plan: Plan, client: genai.Client, max_concurrency: int, progress: bool, retry: types.HttpRetryOptions | None,
    max_retries: int,
) -> pl.DataFrame:  # fmt: skip
    """Sync embeddings of the plan's requests, with up to `max_retries` rounds for the texts whose calls failed in a
    way a retry can fix (as batch runs retry in rounds)."""
    wire = run_embed_sync(plan.requests, plan.spec, client, max_concurrency, progress, retry)
    for _ in range(max_retries):
        again = wire.filter(pl.col("code").is_in(list(RETRYABLE_CODES))).select(KEY)
        if again.is_empty():
            break
        redo = run_embed_sync(plan.requests.join(again, on=KEY, how="semi"), plan.spec, client, max_concurrency,
                              progress, retry)  # fmt: skip
        wire = pl.concat([wire.join(again, on=KEY, how="anti"), redo])
    return wire


def _as_template(template: str | pl.Expr, schema: pl.Schema) -> str | pl.Expr:
    """A bare column name embeds that column as it is; anything else is a template or an expression. A template
    with no placeholder would embed one constant text on every row: a misspelt column name, refused."""
    if isinstance(template, str) and template not in schema.names() and not parse_template(template).columns:
        names = ", ".join(repr(n) for n in schema.names()[:10])
        raise TemplateError(
            f"template {template!r} names no column and has no {{placeholder}}: every row would embed the same text. "
            f"Pass a column name ({names}) or a template such as '{{title}}: {{body}}'."
        )
    if not isinstance(template, str) or template not in schema.names():
        return template
    if "{" in template or "}" in template:
        return column(template, schema)  # a name a template cannot spell
    return "{" + template + "}"  # as a template: a null cell's error then names the column


def _limits(spec: RequestSpec, max_requests: int | None, inline: int | None, file: int | None) -> Limits:
    """`submit`'s limits, with inline jobs capped by their answer's size (see `INLINE_EMBED_VALUES`)."""
    limits = _functions.job_limits(max_requests, inline, file)
    dims = spec.dimensions or 3_072
    return dataclasses.replace(limits, inline_requests=min(limits.inline_requests, max(1, INLINE_EMBED_VALUES // dims)))
