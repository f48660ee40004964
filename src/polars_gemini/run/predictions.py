"""Vertex AI prediction lines -> the results table, each line joined to its request by key. Vectorized.

A Vertex AI batch job writes one line per request to Cloud Storage, in no promised order:
`{<the input line's other fields>, "request": <the request, echoed>, "status": "" or an error message,
"processed_time": ..., "response": <a GenerateContentResponse>}`. Vertex documents no per-row key for Cloud Storage
input, so the library writes its key as a top-level field of each input line (`{"key": .., "request": ..}`) and joins
on it where the service echoes it. A line without it is matched by the digest of its echoed request's contents
(text, inline data, file URIs: the only parts of a run's requests that differ from row to row) against the digests
of the job's own request lines (`request_digests`), so the join holds whatever the order and whether or not the key
comes back. The echoed request may be re-serialized (camelCase or snake_case field names): both are read.

>>> import polars as pl
>>> line = ('{"request":{"contents":[{"role":"user","parts":[{"text":"Hi"}]}]},"status":"",'
...         '"response":{"candidates":[{"content":{"parts":[{"text":"Hello"}]},"finishReason":"STOP"}]}}')
>>> sent = pl.Series(['{"key":"k1","request":{"contents":[{"parts":[{"text":"Hi"}],"role":"user"}]}}'])
>>> results, unreadable = parse_predictions(pl.Series([line]), "job 1", request_digests(sent))
>>> results.select("key", "text").row(0), unreadable
(('k1', 'Hello'), 0)
"""

from __future__ import annotations

import re
from collections.abc import Callable

import polars as pl

from polars_gemini.core.json_columns import json_decode_tolerant, spread
from polars_gemini.core.result_columns import KEY, LINE
from polars_gemini.run.results import (
    LINE_DTYPE,
    RESPONSE_DTYPE,
    STATUS_DTYPE,
    UNREADABLE_CODE,
    result_fields,
    synthetic_errors,
)

DIGEST = "request_digest"

_BLOB = {"mimeType": pl.String, "mime_type": pl.String, "data": pl.String}
_FILE = {"mimeType": pl.String, "mime_type": pl.String, "fileUri": pl.String, "file_uri": pl.String}
_PART = pl.Struct(
    {
        "text": pl.String,
        "inlineData": pl.Struct(_BLOB),
        "inline_data": pl.Struct(_BLOB),
        "fileData": pl.Struct(_FILE),
        "file_data": pl.Struct(_FILE),
    }
)
_REQUEST = pl.Struct({"contents": pl.List(pl.Struct({"role": pl.String, "parts": pl.List(_PART)}))})
_VERTEX_LINE = pl.Struct({"key": pl.String, "status": pl.String, "response": RESPONSE_DTYPE, "request": _REQUEST})
_SENT_LINE = pl.Struct({"key": pl.String, "request": _REQUEST})

# An error status names its code in one of these ways: a JSON error body, an HTTP reason, or an RPC status name.
_CODE_IN_JSON = r'"code"\s*:\s*(\d+)'
_RPC_CODES = {
    "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
    "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "ABORTED": 10, "INTERNAL": 13,
    "UNAVAILABLE": 14, "UNAUTHENTICATED": 16,
}  # fmt: skip
_HTTP_REASONS = {"Bad Request": 400, "Forbidden": 403, "Not Found": 404, "Too Many Requests": 429,
                 "Internal Server Error": 500, "Service Unavailable": 503, "Gateway Timeout": 504}  # fmt: skip
_UNKNOWN_FAILURE = 13  # a failed row whose status names no code: the service's fault, retried like INTERNAL


def _digest(request: pl.Expr) -> pl.Expr:
    """A UInt64 digest of a decoded request's contents: each part's text, inline data and file URI, in order."""
    part = pl.element()
    data = pl.coalesce(part.struct.field("inlineData").struct.field("data"),
                       part.struct.field("inline_data").struct.field("data"))  # fmt: skip
    uri = pl.coalesce(part.struct.field("fileData").struct.field("fileUri"),
                      part.struct.field("file_data").struct.field("file_uri"))  # fmt: skip
    one = pl.concat_str(part.struct.field("text").fill_null(""), data.fill_null(""), uri.fill_null(""),
                        separator="\x1f")  # fmt: skip
    contents = request.struct.field("contents").list.eval(
        pl.element().struct.field("parts").list.eval(one).list.join("\x1e")
    )
    return contents.list.join("\x1d").hash(seed=0x5EED)


def request_digests(lines: pl.Series) -> pl.DataFrame:
    """`key` and `request_digest` of a job's own request lines (as written by `prepare.requests.encode_jsonl`);
    digests that two requests share are left out (such a line cannot be told apart: it is retried as missing)."""
    decoded = pl.DataFrame({"p": spread(lines)}).select(
        pl.col("p").str.json_decode(_SENT_LINE).alias("p")
    )  # fmt: skip
    table = decoded.select(
        pl.col("p").struct.field("key").alias(KEY), _digest(pl.col("p").struct.field("request")).alias(DIGEST)
    )
    return table.filter(pl.col(DIGEST).is_unique())


def _status_code(status: pl.Expr) -> pl.Expr:
    """The error code a non-empty status names (JSON `code`, an HTTP reason, an RPC status name), else INTERNAL."""
    named = [pl.when(status.str.contains(re.escape(n))).then(pl.lit(c)) for n, c in _RPC_CODES.items()]
    reasons = [pl.when(status.str.starts_with(r)).then(pl.lit(c)) for r, c in _HTTP_REASONS.items()]
    return pl.coalesce(
        status.str.extract(_CODE_IN_JSON, 1).cast(pl.Int64, strict=False), *reasons, *named, pl.lit(_UNKNOWN_FAILURE)
    ).cast(pl.Int64)


def parse_predictions(
    lines: pl.Series, where: str, digests: pl.DataFrame | Callable[[], pl.DataFrame] | None
) -> tuple[pl.DataFrame, int]:
    """Vertex prediction lines as results (`run.results.parse_lines`' columns): (results, lines left unread).

    A line's key is its echoed `key`, else the key whose request has the same digest (`digests`, from
    `request_digests`, or a function that makes them, called only when some line has no key; None: keys only).
    A line that is not JSON, or whose key cannot be found either way, is counted and left out: its request is then
    missing from the job's results and retried as such."""
    if lines.is_empty():
        return result_fields(pl.DataFrame({"p": [], LINE: []}, schema={"p": LINE_DTYPE, LINE: pl.String})), 0
    try:
        decoded = pl.DataFrame({LINE: spread(lines)}).with_columns(
            pl.col(LINE).str.json_decode(_VERTEX_LINE).alias("v")
        )
        bad = pl.Series("bad", [False] * lines.len())
    except pl.exceptions.PolarsError:
        values, problems = json_decode_tolerant(lines, _VERTEX_LINE)
        decoded = pl.DataFrame({LINE: lines, "v": values})
        bad = problems.is_not_null()
    v = pl.col("v")
    # A line that is JSON but not a prediction's shape keeps the key it names (its request gets an error).
    key = pl.coalesce(v.struct.field("key"), pl.when(pl.col("bad")).then(pl.col(LINE).str.json_path_match("$.key")))
    frame = decoded.with_columns(bad.alias("bad")).with_columns(key.alias(KEY))
    if digests is not None and frame.get_column(KEY).null_count():
        frame = frame.with_columns(_digest(v.struct.field("request")).alias(DIGEST))
        table = digests() if callable(digests) else digests
        frame = frame.join(table.rename({KEY: "by_digest"}), on=DIGEST, how="left", maintain_order="left")
        frame = frame.with_columns(pl.coalesce(KEY, "by_digest").alias(KEY))
    status = v.struct.field("status")
    failed = status.is_not_null() & (status.str.strip_chars() != "")
    error = pl.when(failed).then(pl.struct(_status_code(status).alias("code"), status.alias("message"),
                                           pl.lit(None, pl.String).alias("status")))  # fmt: skip
    p = pl.struct(
        pl.col(KEY).alias("key"),
        pl.lit(None, pl.Struct({"key": pl.String})).alias("metadata"),
        pl.when(~failed).then(v.struct.field("response")).alias("response"),
        error.cast(STATUS_DTYPE).alias("error"),
        pl.lit(None, STATUS_DTYPE).alias("status"),
    )
    unread = frame.get_column("bad") | frame.get_column(KEY).is_null()
    good = frame.filter(~unread).select(p.alias("p"), pl.col(LINE))
    shaped = frame.filter(pl.col("bad") & pl.col(KEY).is_not_null()).get_column(KEY)
    message = f"the prediction line for this request from {where} could not be read (it has no prediction's shape)"
    results = pl.concat([result_fields(good), synthetic_errors(shaped.unique(maintain_order=True), UNREADABLE_CODE,
                                                                message)])  # fmt: skip
    return results, int(unread.sum()) - shaped.len()
