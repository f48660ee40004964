"""SDK response objects back in the results-file line shape (`{"key":..,"response"|"error":..}`), so that inline and
synchronous results are parsed like a downloaded results file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import polars as pl
from google.genai import types

from polars_gemini.core.result_columns import EMBED_WIRE, KEY, LINE

_SDK_EXTRAS = {"sdk_http_response", "automatic_function_calling_history", "parsed"}


def inline_lines(responses: Sequence[types.InlinedResponse]) -> pl.Series:
    """Inline results in the file line shape. One dump per response: the SDK hands them over as objects."""
    lines = [
        json.dumps(
            {
                "key": (r.metadata or {}).get("key"),
                **({"response": response_json(r.response)} if r.response else {}),
                **({"error": r.error.model_dump(mode="json", exclude_none=True)} if r.error else {}),
            },
            ensure_ascii=False,
        )
        for r in responses
    ]
    return pl.Series(LINE, lines, dtype=pl.String)


def response_json(response: types.GenerateContentResponse) -> dict[str, Any]:
    """A response object back in its wire (camelCase) form, without the SDK's client-side extras."""
    return response.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=_SDK_EXTRAS)


def inline_embed_frame(
    responses: Sequence[types.InlinedEmbedContentResponse] | Sequence[types.InlinedResponse],
) -> pl.DataFrame:
    """Inline embedding results as a frame (`core.result_columns.EMBED_WIRE`): key (from the echoed `metadata`,
    null when the service echoed none), vector, token count, error. Built column by column from the SDK's objects:
    the inline transport is bounded, and the vectors go into Polars as one Float32 list column, not Python rows.

    The wire puts embedding results under `inlinedResponses` too; the SDK moves them to
    `dest.inlined_embed_content_responses` only when one of them carries an embedding, so a job whose every request
    failed arrives as `dest.inlined_responses` (errors and metadata alike): both are read here.
    """
    keys, values, tokens, codes, messages = [], [], [], [], []
    for r in responses:
        keys.append((r.metadata or {}).get(KEY))
        embedding = getattr(r.response, "embedding", None)
        values.append(embedding.values if embedding is not None else None)
        tokens.append(getattr(r.response, "token_count", None))
        codes.append(r.error.code if r.error else None)
        messages.append(r.error.message if r.error else None)
    data = {KEY: keys, "values": values, "tokens": tokens, "code": codes, "message": messages}
    return pl.DataFrame(data, schema=EMBED_WIRE)
