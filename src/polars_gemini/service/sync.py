"""Synchronous mode: the same contract as a batch run through `generateContent`, for iterating on a prompt.

Standard (not batch) prices apply. Concurrency is bounded; 429, 5xx, timeouts and lost connections are retried
(`_client.retrying`).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import polars as pl
from google import genai
from google.genai import types

from polars_gemini.core.errors import APIError
from polars_gemini.core.result_columns import LINE
from polars_gemini.prepare.media import sdk_parts
from polars_gemini.prepare.plan import Plan
from polars_gemini.prepare.requests import KEY, PROMPT
from polars_gemini.service import gemini as _client
from polars_gemini.service.responses import response_json

# Errors that would fail every row alike: raise them instead of recording one per row.
_FATAL = (401, 403, 404)


def run_sync(
    plan: Plan,
    client: genai.Client,
    max_concurrency: int,
    progress: bool,
    retry: types.HttpRetryOptions | None = None,
    parts: pl.DataFrame | None = None,
) -> pl.Series:
    """Result lines (the results-file shape, parsed by `run.results`) for every request of `plan`, one call each.
    `parts`: the wire form of the prompts' media (`prepare.media.PARTS_SCHEMA`), when they hold any."""
    from tqdm.auto import tqdm

    pairs = list(plan.requests.select(KEY, PROMPT).iter_rows())
    media = {m: (mime, data, uri) for m, mime, data, uri in parts.iter_rows()} if parts is not None else {}
    # With media, 403 is one file's ("... or it may not exist"): that row's error, not the whole call's.
    fatal = tuple(c for c in _FATAL if not (media and c == 403))

    def one(pair: tuple[str, str]) -> str:
        key, prompt = pair
        contents: str | list[types.Part] = sdk_parts(prompt, media) if media else prompt
        try:
            response = _client.generate(client, plan.spec.model, contents, plan.spec.config, retry)
        except APIError as exc:
            if exc.code in fatal:
                raise
            return json.dumps({"key": key, "error": {"code": exc.code, "message": str(exc)}})
        return json.dumps({"key": key, "response": response_json(response)}, ensure_ascii=False)

    with ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool:
        lines = list(tqdm(pool.map(one, pairs), total=len(pairs), desc="gemini sync", disable=not progress))
    return pl.Series(LINE, lines, dtype=pl.String)
