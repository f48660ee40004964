"""Result lines -> one row per key: answer text, error, finish reason and usage. Vectorized over whole files.

Both transports end up here in one shape, a JSONL line per request: `{"key":..,"response":{..}}` or
`{"key":..,"error"|"status":{"code":..,"message":..}}` (the file format; inline results are converted to it).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import polars as pl

from polars_gemini.core.json_columns import json_decode_tolerant, spread
from polars_gemini.core.result_columns import (
    EMBEDDING,
    ERROR,
    ERROR_CODE,
    FINISH,
    KEY,
    LINE,
    TEXT,
    USAGE,
    USAGE_DTYPE,
    empty_results,
)

_STATUS = pl.Struct({"code": pl.Int64, "message": pl.String, "status": pl.String})
_PART = pl.Struct({"text": pl.String, "thought": pl.Boolean})
RESPONSE_DTYPE = pl.Struct(
    {
        "candidates": pl.List(
            pl.Struct(
                {
                    "content": pl.Struct({"parts": pl.List(_PART)}),
                    "finishReason": pl.String,
                    "finishMessage": pl.String,
                }
            )
        ),
        "promptFeedback": pl.Struct({"blockReason": pl.String, "blockReasonMessage": pl.String}),
        "usageMetadata": USAGE_DTYPE,
    }
)
"""The parts of a GenerateContentResponse that the results table is made of."""
STATUS_DTYPE = _STATUS
_LINE_DTYPE = pl.Struct(
    {
        "key": pl.String,
        "metadata": pl.Struct({"key": pl.String}),
        "response": RESPONSE_DTYPE,
        "error": _STATUS,
        "status": _STATUS,
    }
)
LINE_DTYPE = _LINE_DTYPE
"""A result line of the Gemini Developer API, decoded: what `result_fields` reads from a struct column `p`."""
# Codes a retry can fix: gRPC UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE, and their
# HTTP forms. CANCELLED (1) is deliberately absent: a job the user cancelled is not resubmitted behind their back.
RETRYABLE_CODES = (2, 4, 8, 10, 13, 14, 408, 429, 500, 502, 503, 504)
MISSING_CODE = 2  # a key absent from a finished job's results
UNREADABLE_CODE = 13  # a result line with the request's key but a shape no response has: the service's fault
GONE_CODE = 404  # the job or its results file is no longer on the service: re-sent only when the caller asks
JOB_STATE_CODES = {"FAILED": 13, "EXPIRED": 4, "CANCELLED": 1, "PARTIALLY_SUCCEEDED": 2}


def split_lines(data: bytes) -> pl.Series:
    """The non-empty lines of a JSONL file as a String column.

    Read as a one-column CSV whose separator is a control byte: valid JSON escapes control characters inside strings,
    so \\x01 never occurs and each physical line is one field.
    """
    if not data or data.isspace():  # not `data.strip()`: that copies a file of a gigabyte
        return pl.Series(LINE, [], dtype=pl.String)
    # Bytes a crash or a full disk can leave (a cut UTF-8 sequence, a stray \x01) make that line unreadable (it is
    # then retried like a missing result), never the whole file: invalid UTF-8 is replaced, extra fields dropped.
    frame = pl.read_csv(io.BytesIO(data), has_header=False, separator="\x01", quote_char=None, schema={LINE: pl.String},
                        encoding="utf8-lossy", truncate_ragged_lines=True)  # fmt: skip
    # A line is kept when it has a non-whitespace character; the regex stops at the first one instead of copying
    # every line stripped.
    return frame.filter(pl.col(LINE).str.contains(r"\S")).get_column(LINE)


def parse_lines(lines: pl.Series) -> pl.DataFrame:
    """One row per line: key, answer text (thought parts skipped), error message and code, finish reason, usage.
    Every line must decode (`parse_results` is the tolerant form)."""
    frame = pl.DataFrame({LINE: spread(lines)}).with_columns(pl.col(LINE).str.json_decode(_LINE_DTYPE).alias("p"))
    return _fields(frame)


def parse_results(lines: pl.Series, where: str) -> tuple[pl.DataFrame, int]:
    """`parse_lines`, tolerant of bad lines: (results, number of lines that could not be read at all).

    A line with the shape of no response but a readable key becomes an error for that key; a line with no readable
    key (truncated, not JSON) is counted and left out, so its key is missing and retried as such. A clean file costs
    what `parse_lines` costs; only a file that fails is decoded again, tolerantly (`_json.json_decode_tolerant`).
    """
    try:
        return parse_lines(lines), 0
    except pl.exceptions.PolarsError:
        decoded, problems = json_decode_tolerant(lines, _LINE_DTYPE)
    frame = pl.DataFrame({LINE: lines, "p": decoded, "bad": problems.is_not_null()})
    broken = frame.filter(pl.col("bad")).select(
        pl.coalesce(pl.col(LINE).str.json_path_match("$.key"), pl.col(LINE).str.json_path_match("$.metadata.key"))
    ).to_series()
    message = f"the result line for this request from {where} could not be read (it has no response's shape)"
    shaped = synthetic_errors(broken.drop_nulls().unique(maintain_order=True), UNREADABLE_CODE, message)
    good = _fields(frame.filter(~pl.col("bad")).drop("bad"))
    return pl.concat([good, shaped]), int(broken.null_count())


_RESULTS_CHUNK_BYTES = 32 * 2**20  # a results file is parsed this much at a time by `parse_results_file`


def parse_results_file(
    path: Path, where: str, parser: Callable[[pl.Series, str], tuple[pl.DataFrame, int]] | None = None
) -> tuple[pl.DataFrame, int]:
    """`parse_results` (or `parser`, for another service's lines) over a results file on disk, 32 MB of lines at a
    time (two chunks in flight), each chunk's raw lines dropped once parsed: memory holds the parsed results and a
    chunk or two of text, never the whole file (gigabytes for a job of millions of requests) nor its lines."""
    parse_lines_of = parser or parse_results

    def parse(chunk: bytes) -> tuple[pl.DataFrame, int]:
        results, unreadable = parse_lines_of(split_lines(chunk), where)
        return results.drop(LINE), unreadable

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(_bounded_map(pool, parse, _line_chunks(path, _RESULTS_CHUNK_BYTES), 2))
    if not done:
        return empty_results().drop(LINE), 0
    return pl.concat([d for d, _ in done], rechunk=False), sum(b for _, b in done)


def _fields(frame: pl.DataFrame) -> pl.DataFrame:
    """The result columns from the decoded lines (struct column `p`, `LINE_DTYPE`) and the raw ones (`line`)."""
    p = pl.col("p")
    cand = p.struct.field("response").struct.field("candidates").list.first()
    parts = cand.struct.field("content").struct.field("parts")
    text = parts.list.eval(
        pl.when(pl.element().struct.field("thought").fill_null(False).not_()).then(pl.element().struct.field("text"))
    ).list.drop_nulls()
    status = pl.coalesce(p.struct.field("error"), p.struct.field("status"))
    block = p.struct.field("response").struct.field("promptFeedback").struct.field("blockReason")
    finish = cand.struct.field("finishReason")
    # A candidate with neither content nor a finish reason is no answer (the service's fault: retried), while one
    # that has either but no text is the empty answer ("" in text mode; an invalid JSON object in schema mode):
    # never a row with neither an answer nor an error.
    hollow = cand.is_not_null() & cand.struct.field("content").is_null() & finish.is_null()
    error = pl.when(hollow).then(pl.lit("response candidate has neither content nor a finishReason")).otherwise(
        _error_message(status, block, finish, p.struct.field("response"))
    )
    answer = pl.when(text.list.len() > 0).then(text.list.join("")).when(error.is_null()).then(pl.lit(""))
    return frame.select(
        pl.coalesce(p.struct.field("key"), p.struct.field("metadata").struct.field("key")).alias(KEY),
        answer.alias(TEXT),
        error.alias(ERROR),
        pl.coalesce(
            status.struct.field("code"),
            pl.when(block.is_not_null()).then(pl.lit(3)),
            pl.when(hollow).then(pl.lit(UNREADABLE_CODE)),
        ).alias(ERROR_CODE),
        finish.alias(FINISH),
        p.struct.field("response").struct.field("usageMetadata").alias(USAGE),
        pl.col(LINE),
    )


def _error_message(status: pl.Expr, block: pl.Expr, finish: pl.Expr, response: pl.Expr) -> pl.Expr:
    code = status.struct.field("code").cast(pl.String).fill_null("?")
    return (
        pl.when(status.is_not_null())
        .then(pl.format("request failed (code {}): {}", code, status.struct.field("message").fill_null("")))
        .when(block.is_not_null())
        .then(pl.format("prompt blocked (blockReason {}); rephrase it or adjust safety_settings", block))
        .when(finish == "MAX_TOKENS")
        .then(pl.lit("answer truncated (finishReason MAX_TOKENS); raise max_output_tokens or the thinking budget"))
        .when(finish.is_in(["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "OTHER"]))
        .then(pl.format("no usable answer (finishReason {})", finish))
        .when(response.is_null())
        .then(pl.lit("result line has neither a response nor an error"))
        .when(response.struct.field("candidates").list.len().fill_null(0) == 0)
        .then(pl.lit("response has no candidates"))
    )


result_fields = _fields


def synthetic_errors(keys: pl.Series, code: int, message: str) -> pl.DataFrame:
    """Result rows (in `parse_lines`' shape) recording an error for `keys` that got no answer of their own."""
    tail = f'","error":{{"code":{code},"message":{json.dumps(message, ensure_ascii=False)}}}}}'
    line = pl.concat_str([pl.lit('{"key":"'), pl.col(KEY), pl.lit(tail)])
    return pl.DataFrame({KEY: keys}).select(
        pl.col(KEY).cast(pl.String),
        pl.lit(None, pl.String).alias(TEXT),
        pl.lit(message).alias(ERROR),
        pl.lit(code, pl.Int64).alias(ERROR_CODE),
        pl.lit(None, pl.String).alias(FINISH),
        pl.lit(None, USAGE_DTYPE).alias(USAGE),
        line.alias(LINE),
    )


# -- embeddings ---------------------------------------------------------------------------------------------------

_EMBED_LINE: dict[str, pl.DataType] = {
    "key": pl.String(),
    "metadata": pl.Struct({"key": pl.String}),
    # tokenCount is an int64, which proto JSON writes as a string ("1"); read as text, it takes both forms.
    "response": pl.Struct({"tokenCount": pl.String, "embedding": pl.Struct({"values": pl.List(pl.Float32)})}),
    "error": _STATUS,
    "status": _STATUS,
}


def _embed_line(dimensions: int) -> dict[str, pl.DataType]:
    vector = pl.Struct({"values": pl.Array(pl.Float32, dimensions)})
    return _EMBED_LINE | {"response": pl.Struct({"tokenCount": pl.String, "embedding": vector})}


_CHUNK_BYTES = 16 * 2**20  # an embedding results file is read this much at a time


def parse_embed_file(path: Path, where: str, dimensions: int | None) -> tuple[pl.DataFrame, int]:
    """An embedding job's results file: (results with an `embedding` column, lines that could not be read).

    Read by Polars' NDJSON reader into Float32 lists, 64 MB of lines at a time: no line is ever a Python string, no
    value a Python float, and memory holds the vectors plus one chunk of text, never the whole file (several GB
    for a large job). A chunk with a broken line is read again line by line, tolerantly (`parse_results`' rules: a
    readable key gets an error, a line without one is counted and its key retried).
    """

    # With the size known, the reader builds the fixed-size arrays itself (fewer copies, less memory than lists); a
    # chunk with a vector of another size fails that read and is read again with lists, which say which row.
    schemas = [_embed_line(dimensions), _EMBED_LINE] if dimensions else [_EMBED_LINE]

    def parse(chunk: bytes) -> tuple[pl.DataFrame, int]:
        for schema in schemas:
            try:
                return embed_results(_wire(pl.read_ndjson(io.BytesIO(chunk), schema=schema)), dimensions), 0
            except pl.exceptions.PolarsError:
                continue
        return _parse_embed_tolerant(split_lines(chunk), where, dimensions)

    workers = max(1, min(os.cpu_count() or 1, 8))
    with ThreadPoolExecutor(max_workers=workers) as pool:  # Polars parses without the GIL: one chunk per core
        done = list(_bounded_map(pool, parse, _line_chunks(path), workers))
    if not done:
        return empty_embed_results(), 0
    return pl.concat([d for d, _ in done], how="diagonal_relaxed", rechunk=False), sum(b for _, b in done)


def _bounded_map(
    pool: ThreadPoolExecutor, fn: Callable[[bytes], tuple[pl.DataFrame, int]], items: Iterable[bytes], ahead: int
) -> Iterator[tuple[pl.DataFrame, int]]:
    """`pool.map(fn, items)` in order, with at most `ahead` items read and in flight at once (a file's chunks are
    read only as fast as they are parsed)."""
    pending: list[Future[tuple[pl.DataFrame, int]]] = []
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


def _line_chunks(path: Path, size: int = _CHUNK_BYTES) -> Iterator[bytes]:
    """The file in pieces of about `size` bytes, each ending at a line end (a line longer than `size` whole)."""
    with path.open("rb") as handle:
        rest = b""
        while block := handle.read(size):
            block = rest + block
            end = block.rfind(b"\n")
            if end < 0:
                rest = block
                continue
            rest = block[end + 1 :]
            yield block[: end + 1]
        if rest.strip():
            yield rest


def _wire(lines: pl.DataFrame) -> pl.DataFrame:
    """Decoded result lines (`_EMBED_LINE`) in the service layer's embedding shape (`EMBED_WIRE`)."""
    status = pl.coalesce(pl.col("error"), pl.col("status"))
    response = pl.col("response")
    return lines.select(
        pl.coalesce(pl.col("key"), pl.col("metadata").struct.field("key")).alias(KEY),
        response.struct.field("embedding").struct.field("values").alias("values"),
        response.struct.field("tokenCount").cast(pl.Int64, strict=False).alias("tokens"),
        status.struct.field("code").alias("code"),
        status.struct.field("message").alias("message"),
    )


def _parse_embed_tolerant(lines: pl.Series, where: str, dimensions: int | None) -> tuple[pl.DataFrame, int]:
    decoded, problems = json_decode_tolerant(lines, pl.Struct(_EMBED_LINE))
    frame = pl.DataFrame({LINE: lines, "p": decoded, "bad": problems.is_not_null()})
    broken = frame.filter(pl.col("bad")).select(
        pl.coalesce(pl.col(LINE).str.json_path_match("$.key"), pl.col(LINE).str.json_path_match("$.metadata.key"))
    ).to_series()
    message = f"the result line for this request from {where} could not be read (it has no response's shape)"
    shaped = synthetic_errors(broken.drop_nulls().unique(maintain_order=True), UNREADABLE_CODE, message)
    good = _wire(frame.filter(~pl.col("bad")).select(pl.col("p").struct.unnest()))
    return pl.concat([embed_results(good, dimensions), shaped], how="diagonal_relaxed"), int(broken.null_count())


def embed_results(wire: pl.DataFrame, dimensions: int | None) -> pl.DataFrame:
    """Embedding results (`EMBED_WIRE`) as the results table plus `embedding`: the vector where there is one, else
    an error. A vector of the wrong size (`dimensions`, when known) or with no values is the service's fault: an
    error with a retryable code, never a short vector in the output."""
    values = pl.col("values").cast(pl.List(pl.Float32))
    size = values.list.len()
    wrong = (size != dimensions) if dimensions is not None else pl.lit(False)
    failure = pl.format("request failed (code {}): {}", pl.col("code").cast(pl.String).fill_null("?"),
                        pl.col("message").fill_null(""))  # fmt: skip
    error = (
        pl.when(pl.col("code").is_not_null() | pl.col("message").is_not_null())
        .then(failure)
        .when(values.is_null())
        .then(pl.lit("result line has neither an embedding nor an error"))
        .when(size == 0)
        .then(pl.lit("the embedding has no values"))
        .when(wrong)
        .then(pl.format("the embedding has {} values, {} were asked for", size, pl.lit(dimensions)))
    )
    failed = error.is_not_null()
    code = pl.coalesce(pl.col("code"), pl.when(failed).then(pl.lit(UNREADABLE_CODE)))
    usage = pl.struct(
        pl.col("tokens").alias("promptTokenCount"),
        *(pl.lit(None, pl.Int64).alias(f) for f in ("candidatesTokenCount", "thoughtsTokenCount",
                                                     "cachedContentTokenCount", "toolUsePromptTokenCount")),
        pl.col("tokens").alias("totalTokenCount"),
    )  # fmt: skip
    out = wire.select(
        pl.col(KEY),
        pl.lit(None, pl.String).alias(TEXT),
        error.alias(ERROR),
        code.cast(pl.Int64).alias(ERROR_CODE),
        pl.lit(None, pl.String).alias(FINISH),
        pl.when(pl.col("tokens").is_not_null()).then(usage).alias(USAGE),
        pl.lit(None, pl.String).alias(LINE),  # the raw line would repeat the vector as text: not kept
        values.cast(pl.List(pl.Float32)).alias(EMBEDDING),  # zero-copy from an Array read
    )
    # A failed row keeps no vector. Masking copies every value, so only when some failed row has one (rare).
    if out.select((pl.col(ERROR).is_not_null() & pl.col(EMBEDDING).is_not_null()).any()).item():
        out = out.with_columns(pl.when(pl.col(ERROR).is_null()).then(pl.col(EMBEDDING)).alias(EMBEDDING))
    return out.cast({USAGE: USAGE_DTYPE})


def keyed_by_position(wire: pl.DataFrame, keys: pl.Series) -> pl.DataFrame:
    """Inline embedding results that came back without their `metadata` (a service that echoes none) keyed by
    position, which only the count can vouch for: with any key echoed, or a different count, they stay as they are
    (keyless rows match nothing, so their requests are reported missing and retried)."""
    if wire.height != keys.len() or wire.get_column(KEY).null_count() != wire.height:
        return wire
    return wire.with_columns(keys.alias(KEY))


def empty_embed_results() -> pl.DataFrame:
    return empty_results().with_columns(pl.lit(None, pl.List(pl.Float32)).alias(EMBEDDING))

