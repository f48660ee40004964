"""`pdf.gemini`: the operations of `df.gemini` on pandas DataFrames, registered on `import polars_gemini` when
pandas is installed (`pip install 'polars-gemini[pandas]'`).

A stateless shim, as `api.namespace` is: every method spells out the whole signature of the public function it calls
and passes the pandas frame on; the frame is converted to Polars at the door and the answers come back as pandas
columns after the caller's own, on the caller's index (`polars_gemini.api.frames` says which dtypes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import pandas as pd
import polars as pl
from google.genai import types

from polars_gemini.api import embed as _embed
from polars_gemini.api import functions as _api
from polars_gemini.api.embed import DEFAULT_MODEL
from polars_gemini.api.functions import ConfigLike, PricesLike
from polars_gemini.cost.estimate import Estimate
from polars_gemini.prepare.media import INLINE_MEDIA_BYTES, MediaLike
from polars_gemini.prepare.schema import SchemaLike
from polars_gemini.run.lifecycle import MAX_ACTIVE_JOBS, Run, SinkReport
from polars_gemini.tokens.exact import TokenizerLike

if TYPE_CHECKING:
    import google.cloud.storage as storage
    from google import genai


@pd.api.extensions.register_dataframe_accessor("gemini")
class GeminiPandas:
    """Gemini Batch API operations on a pandas DataFrame. See `polars_gemini.batch` for the arguments.

    >>> import pandas as pd
    >>> reviews = pd.DataFrame({"review": ["great", "awful", "great"]}, index=[3, 5, 8])
    >>> reviews.gemini.estimate("Rate: {review}", model="gemini-2.5-flash", tokenizer="offline").requests
    2
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def batch(
        self,
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
    ) -> pd.DataFrame:
        """Run `template` over every row at batch price: the frame comes back (its index, its columns as they were)
        with typed answer columns after them. See `polars_gemini.batch` for every option.

        >>> import pandas as pd
        >>> from polars_gemini.emulator import Emulator  # the Batch API on loopback, for this example
        >>> reviews = pd.DataFrame({"review": ["great", "awful"]}, index=[7, 9])
        >>> with Emulator() as emu:
        ...     out = reviews.gemini.batch("Rate: {review}", model="gemini-2.5-flash", client=emu.client(),
        ...                                poll_interval=0.01, progress=False)
        >>> out.index.tolist(), out.columns.tolist()
        ([7, 9], ['review', 'response', 'response_error'])
        """
        return cast("pd.DataFrame", _api.batch(
            self._frame, template, model=model, schema=schema, system_instruction=system_instruction, config=config,
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
            timeout=timeout,
        ))  # fmt: skip

    def sink_parquet(
        self,
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
        """`batch`, streamed end to end: the result goes to the Parquet file `path` chunk by chunk (the same columns,
        every row once, in order), never whole in memory. Returns a `SinkReport` (path, rows, failed rows, cost).

        See `polars_gemini.sink_parquet` for every option.

        >>> pdf = pd.read_csv("reviews.csv")  # doctest: +SKIP
        >>> pdf.gemini.sink_parquet("out.parquet", "Classify: {review}", model="gemini-2.5-flash")  # doctest: +SKIP
        """
        return _api.sink_parquet(
            self._frame, path, template, model=model, schema=schema, system_instruction=system_instruction,
            config=config, output=output, prefix=prefix, client=client, mode=mode,
            max_requests_per_job=max_requests_per_job, inline_limit_bytes=inline_limit_bytes,
            file_limit_bytes=file_limit_bytes, poll_interval=poll_interval,
            max_poll_interval=max_poll_interval, max_concurrency=max_concurrency, progress=progress,
            check_model=check_model, checkpoint=checkpoint, max_retries=max_retries, keep_files=keep_files,
            storage_options=storage_options,
            max_cost=max_cost, prices=prices, usage=usage, memory_budget=memory_budget, retry=retry,
            max_active_jobs=max_active_jobs, max_enqueued_tokens=max_enqueued_tokens, reuse_jobs=reuse_jobs,
            resubmit_lost=resubmit_lost, tokenizer=tokenizer, media=media, on_media_error=on_media_error,
            media_inline_bytes=media_inline_bytes, webhook=webhook, stuck_after=stuck_after, fallback=fallback,
            staging=staging, storage_client=storage_client,
            timeout=timeout,
        )  # fmt: skip

    def submit(
        self,
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
        """Submit the batch jobs and return at once with a `Run` (`status()`, `wait()`, `result()`, `cancel()`).
        `run.result()` is a Polars frame; `polars_gemini.to_native(run.result(), like=pdf)` makes it this pandas
        frame with the answers, as `batch` returns. See `polars_gemini.submit` for every option.

        >>> run = pdf.gemini.submit("Classify: {review}", model="gemini-2.5-flash")  # doctest: +SKIP
        >>> out = polars_gemini.to_native(run.result(), like=pdf)  # doctest: +SKIP
        """
        return _api.submit(
            self._frame, template, model=model, schema=schema, system_instruction=system_instruction, config=config,
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

    def estimate(
        self,
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
        """Tokens and dollars for running `template` over the frame at batch price, before anything is sent.

        >>> import pandas as pd
        >>> reviews = pd.DataFrame({"review": ["great", "awful", "great"]})
        >>> est = reviews.gemini.estimate("Classify: {review}", model="gemini-2.5-flash", tokenizer="offline")
        >>> est.rows, est.requests
        (3, 2)
        """
        return _api.estimate(
            self._frame, template, model=model, schema=schema, system_instruction=system_instruction, config=config,
            prices=prices, expected_output_tokens=expected_output_tokens, thinking_tokens=thinking_tokens,
            calibrate=calibrate, calibrate_output=calibrate_output, client=client, check_model=check_model,
            tokenizer=tokenizer, media=media, on_media_error=on_media_error,
        )  # fmt: skip

    def input_tokens(
        self,
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
    ) -> pd.Series:
        """Estimated input tokens of each row's request, as a nullable Int64 Series on the frame's index.

        >>> import pandas as pd
        >>> reviews = pd.DataFrame({"review": ["great", None]}, index=["a", "b"])
        >>> tokens = reviews.gemini.input_tokens("Rate: {review}", model="gemini-2.5-flash", tokenizer="offline")
        >>> tokens.index.tolist(), str(tokens.dtype), tokens.isna().tolist()
        (['a', 'b'], 'Int64', [False, True])
        """
        return cast("pd.Series", _api.input_tokens(
            self._frame, template, model=model, schema=schema, system_instruction=system_instruction, config=config,
            check_model=check_model, tokenizer=tokenizer, media=media, on_media_error=on_media_error,
        ))  # fmt: skip

    def embed(
        self,
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
        prices: PricesLike = None,
        usage: bool = False,
        retry: types.HttpRetryOptions | None = None,
        max_active_jobs: int = MAX_ACTIVE_JOBS,
        max_enqueued_tokens: int | None = None,
        reuse_jobs: bool = True,
        resubmit_lost: bool = False,
        tokenizer: TokenizerLike = "auto",
        timeout: float | None = None,
    ) -> pd.DataFrame:
        """Embed every row at batch price: the frame plus an `Array(Float32, dimensions)` column and its errors.

        See `polars_gemini.embed` for every option.

        >>> out = pdf.gemini.embed("{title}: {body}", output_dimensionality=768)  # doctest: +SKIP
        """
        return cast("pd.DataFrame", _embed.embed(
            self._frame, template, model=model, task_type=task_type, title=title,
            output_dimensionality=output_dimensionality, normalize=normalize, output=output, client=client, mode=mode,
            max_requests_per_job=max_requests_per_job, inline_limit_bytes=inline_limit_bytes,
            file_limit_bytes=file_limit_bytes, poll_interval=poll_interval, max_poll_interval=max_poll_interval,
            max_concurrency=max_concurrency, progress=progress, check_model=check_model, checkpoint=checkpoint,
            storage_options=storage_options,
            max_retries=max_retries, keep_files=keep_files, max_cost=max_cost, prices=prices, usage=usage,
            retry=retry, max_active_jobs=max_active_jobs, max_enqueued_tokens=max_enqueued_tokens,
            reuse_jobs=reuse_jobs, resubmit_lost=resubmit_lost, tokenizer=tokenizer, timeout=timeout,
        ))  # fmt: skip

    def submit_embed(
        self,
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
        prices: PricesLike = None,
        usage: bool = False,
        retry: types.HttpRetryOptions | None = None,
        max_active_jobs: int = MAX_ACTIVE_JOBS,
        max_enqueued_tokens: int | None = None,
        reuse_jobs: bool = True,
        resubmit_lost: bool = False,
        tokenizer: TokenizerLike = "auto",
    ) -> Run:
        """Submit the embedding jobs and return at once with a `Run` (see `polars_gemini.submit_embed`).

        >>> run = pdf.gemini.submit_embed("{body}", task_type="CLUSTERING")  # doctest: +SKIP
        """
        return _embed.submit_embed(
            self._frame, template, model=model, task_type=task_type, title=title,
            output_dimensionality=output_dimensionality, normalize=normalize, output=output, client=client, mode=mode,
            max_requests_per_job=max_requests_per_job, inline_limit_bytes=inline_limit_bytes,
            file_limit_bytes=file_limit_bytes, poll_interval=poll_interval, max_poll_interval=max_poll_interval,
            max_concurrency=max_concurrency, progress=progress, check_model=check_model, checkpoint=checkpoint,
            storage_options=storage_options,
            max_retries=max_retries, keep_files=keep_files, max_cost=max_cost, prices=prices, usage=usage,
            retry=retry, max_active_jobs=max_active_jobs, max_enqueued_tokens=max_enqueued_tokens,
            reuse_jobs=reuse_jobs, resubmit_lost=resubmit_lost, tokenizer=tokenizer,
        )  # fmt: skip

    def estimate_embed(
        self,
        template: str | pl.Expr,
        *,
        model: str = DEFAULT_MODEL,
        task_type: str | None = None,
        title: str | None = None,
        output_dimensionality: int | None = None,
        prices: PricesLike = None,
        check_model: bool = True,
        tokenizer: TokenizerLike = "auto",
    ) -> Estimate:
        """Tokens and USD of embedding every row at batch price, before anything is sent (see
        `polars_gemini.estimate_embed`).

        >>> pdf.gemini.estimate_embed("{title}: {body}")  # doctest: +SKIP
        """
        return _embed.estimate_embed(
            self._frame, template, model=model, task_type=task_type, title=title,
            output_dimensionality=output_dimensionality, prices=prices, check_model=check_model, tokenizer=tokenizer,
        )  # fmt: skip
