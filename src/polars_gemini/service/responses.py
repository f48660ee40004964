"""SDK response objects back in the results-file line shape (`{"key":..,"response"|"error":..}`), so that inline and
synchronous results are parsed like a downloaded results file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import polars as pl
from google.genai import types

from polars_gemini.core.result_columns import LINE

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
