"""Synchronous mode: the same contract as a batch run through `generateContent`, for iterating on a prompt.

Standard (not batch) prices apply. Concurrency is bounded; 429, 5xx, timeouts and lost connections are retried
(`_client.retrying`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import polars as pl
from google import genai
from google.genai import types

from polars_gemini.core.errors import APIError
from polars_gemini.core.progress import live_progress
from polars_gemini.core.result_columns import EMBED_WIRE, LINE
from polars_gemini.prepare.media import sdk_parts
from polars_gemini.prepare.requests import KEY, PROMPT, RequestSpec
from polars_gemini.service import gemini as _client
from polars_gemini.service.responses import response_json

# A Flex call may wait minutes for capacity: each gets this long (15 minutes) whatever the client's timeout, so that
# a slow answer is not cut short, sent again and billed twice.
FLEX_TIMEOUT_MS = 15 * 60 * 1000
# Errors that would fail every row alike: raise them instead of recording one per row.
_FATAL = (401, 403, 404)


def _fatal(exc: APIError, codes: tuple[int, ...] = _FATAL) -> bool:
    """An error every call would get: a refused key (400 API_KEY_INVALID on the Developer API), permission, model."""
    return exc.code in codes or (exc.code == 400 and "API key" in str(exc))


def run_sync(
    requests: pl.DataFrame,
    spec: RequestSpec,
    client: genai.Client,
    max_concurrency: int,
    progress: bool,
    retry: types.HttpRetryOptions | None = None,
    parts: pl.DataFrame | None = None,
    service_tier: str | None = None,
    on_line: Callable[[str], None] | None = None,
    stopped: Callable[[], bool] | None = None,
) -> pl.Series:
    """Result lines (the results-file shape, parsed by `run.results`) for every request (`key`, `prompt`), one call
    each. `parts`: the wire form of the prompts' media (`prepare.media.PARTS_SCHEMA`), when they hold any;
    `service_tier="flex"` sends them at the Flex tier (batch price, may be shed: 503s are retried). `on_line` is
    called with each line as soon as its call returns (from the worker threads), to keep it before the others end;
    once `stopped()` is true, the requests not sent yet are not sent (each gets a "cancelled" error line)."""
    pairs = list(requests.select(KEY, PROMPT).iter_rows())
    media = {m: (mime, data, uri) for m, mime, data, uri in parts.iter_rows()} if parts is not None else {}
    # With media, 403 is one file's ("... or it may not exist"): that row's error, not the whole call's.
    fatal = tuple(c for c in _FATAL if not (media and c == 403))
    config = spec.config if service_tier is None else spec.config.model_copy(update={"service_tier": service_tier})
    label = "gemini sync" if service_tier is None else f"gemini {service_tier}"
    timeout = FLEX_TIMEOUT_MS if service_tier == "flex" else None

    def one(pair: tuple[str, str]) -> tuple[str, bool]:
        """The result line of one request, and whether it is an error."""
        key, prompt = pair
        if stopped is not None and stopped():
            return json.dumps({"key": key, "error": {"code": 1, "message": "cancelled before it was sent"}}), True
        contents: str | list[types.Part] = sdk_parts(prompt, media) if media else prompt
        try:
            response = _client.generate(client, spec.model, contents, config, retry, timeout)
        except APIError as exc:
            if _fatal(exc, fatal):
                raise
            line, failed = json.dumps({"key": key, "error": {"code": exc.code, "message": str(exc)}}), True
        else:
            line, failed = json.dumps({"key": key, "response": response_json(response)}, ensure_ascii=False), False
        if on_line is not None:
            on_line(line)
        return line, failed

    lines: list[str] = []
    shown = live_progress(label, len(pairs), "req", progress)
    with ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool, shown:
        for line, failed in pool.map(one, pairs):
            lines.append(line)
            shown.advance(0 if failed else 1, 1 if failed else 0)
    return pl.Series(LINE, lines, dtype=pl.String)


EMBED_CALL_TEXTS = 100  # texts per batchEmbedContents call (the API's limit per call)


def run_embed_sync(
    requests: pl.DataFrame,
    spec: RequestSpec,
    client: genai.Client,
    max_concurrency: int,
    progress: bool,
    retry: types.HttpRetryOptions | None = None,
) -> pl.DataFrame:
    """Embeddings of `requests` (`key`, `prompt`) as `EMBED_WIRE`, `EMBED_CALL_TEXTS` texts per call, calls in
    parallel. A call refused for its content (400) is made again text by text, so one bad text fails only its own
    row; a call that fails for good otherwise records its error on each of its texts. The Developer API reports no
    token counts here (`tokens` is null)."""
    requests = requests.select(KEY, PROMPT)
    chunks = [requests.slice(i, EMBED_CALL_TEXTS) for i in range(0, requests.height, EMBED_CALL_TEXTS)]

    def one(chunk: pl.DataFrame) -> pl.DataFrame:
        keys = chunk.get_column(KEY)
        try:
            vectors = _client.embed_contents(client, spec.model, chunk.get_column(PROMPT).to_list(), spec.tail, retry)
        except APIError as exc:
            if _fatal(exc):
                raise
            if exc.code == 400 and chunk.height > 1:  # which text? each one alone says
                return pl.concat([one(chunk.slice(i, 1)) for i in range(chunk.height)], how="diagonal_relaxed")
            data = {KEY: keys, "code": [exc.code] * len(keys), "message": [str(exc)] * len(keys)}
            return pl.DataFrame(data).with_columns(pl.lit(None, pl.List(pl.Float32)).alias("values"))
        if len(vectors) != len(keys):  # the service's fault: these texts get no vector, and are retried
            message = f"the service returned {len(vectors)} embeddings for {len(keys)} texts"
            return pl.DataFrame({KEY: keys, "code": [13] * len(keys), "message": [message] * len(keys)})
        return pl.DataFrame({KEY: keys, "values": pl.Series(vectors, dtype=pl.List(pl.Float32))})

    parts: list[pl.DataFrame] = []
    shown = live_progress("gemini embed", requests.height, "req", progress)
    with ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool, shown:
        for part in pool.map(one, chunks):
            parts.append(part)
            vectors = int(part.get_column("values").is_not_null().sum()) if "values" in part.columns else 0
            shown.advance(vectors, part.height - vectors)
    empty = pl.DataFrame(schema=EMBED_WIRE)
    return pl.concat([empty, *parts], how="diagonal_relaxed").select(EMBED_WIRE.names()).cast(EMBED_WIRE)
