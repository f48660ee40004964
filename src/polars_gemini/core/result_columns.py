"""The results table's vocabulary, shared by the stages that write, store and read it: one row per request, with its
key, answer text, error message and code, finish reason, usage and raw result line."""

from __future__ import annotations

import polars as pl

KEY = "key"
LINE = "line"
TEXT = "text"
ERROR = "error"
ERROR_CODE = "error_code"
FINISH = "finish_reason"
USAGE = "usage"
EMBEDDING = "embedding"  # embedding runs only: the vector, List(Float32) (an Array once its size is known)

USAGE_DTYPE = pl.Struct(
    {
        "promptTokenCount": pl.Int64,
        "candidatesTokenCount": pl.Int64,
        "thoughtsTokenCount": pl.Int64,
        "cachedContentTokenCount": pl.Int64,
        "toolUsePromptTokenCount": pl.Int64,
        "totalTokenCount": pl.Int64,
    }
)
RESULT_SCHEMA: pl.Schema = pl.Schema(
    {  # type: ignore[arg-type]  # mypy infers dict[str, object] for mixed dtype instances
        KEY: pl.String,
        TEXT: pl.String,
        ERROR: pl.String,
        ERROR_CODE: pl.Int64,
        FINISH: pl.String,
        USAGE: USAGE_DTYPE,
        LINE: pl.String,
    }
)


def empty_results() -> pl.DataFrame:
    return pl.DataFrame(schema=RESULT_SCHEMA)


EMBED_WIRE: pl.Schema = pl.Schema(
    {  # type: ignore[arg-type]
        KEY: pl.String, "values": pl.List(pl.Float32), "tokens": pl.Int64, "code": pl.Int64, "message": pl.String,
    }
)
"""Embedding results as the service layer hands them over (inline responses, sync calls): per request its key,
vector or error (code and message), and token count."""
