"""Planning a call, all local and pure: render prompts, dedup to requests with keys, split into job shards.

Nothing here touches the network, so every error a plan can find is raised before any money is spent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from polars_gemini.core.errors import ColumnClashError, RequestTooLargeError, TemplateError
from polars_gemini.core.json_columns import spread
from polars_gemini.prepare.media import (
    ID,
    INLINE_MEDIA_BYTES,
    MEDIA_BYTES,
    MEDIA_TOKENS,
    MediaColumns,
    choose_transport,
    empty_table,
    media_uses,
    per_prompt,
    resolve,
)
from polars_gemini.prepare.requests import (
    KEY,
    NBYTES,
    PROMPT,
    RequestSpec,
    escaped_size,
    line_overhead,
    request_keys,
)
from polars_gemini.prepare.shards import shard_ids
from polars_gemini.prepare.template import NULL_COLUMN, prompt_exprs

_CONTENTS = pl.List(pl.Struct({"parts": pl.List(pl.Struct({"text": pl.String}))}))
_LINE_SCHEMA: dict[str, pl.DataType] = {"key": pl.String(), "request": pl.Struct({"contents": _CONTENTS})}
SKIP = "__pg_skip"
_EMPTY = "__pg_empty"
SHARD = "shard"

INLINE_LIMIT_BYTES = 20_000_000  # the API's limit on an inline batch request body
FILE_LIMIT_BYTES = 2_000_000_000  # the API's limit on an input file
SAFETY = 0.8  # stay well under both: the wire form of inline requests is a little larger than our estimate


@dataclass(frozen=True)
class Limits:
    """Where requests are split: inline under `inline_bytes` and `inline_requests`, files under `file_bytes`,
    `max_requests` per job.

    `inline_requests`: the SDK converts each inline request to its wire form in Python (about 2 ms each), so beyond
    a thousand requests an uploaded file is much faster, although the payload would fit inline.
    """

    inline_bytes: int = int(INLINE_LIMIT_BYTES * SAFETY)
    file_bytes: int = int(FILE_LIMIT_BYTES * 0.9)
    max_requests: int | None = None
    inline_requests: int = 1_000


@dataclass(frozen=True)
class Shard:
    index: int
    transport: str  # "inline" | "file"
    requests: int
    bytes: int


@dataclass(frozen=True)
class Plan:
    """`rows`: one per input row (key, or the reason it is not sent); `requests`: one per distinct request.

    A plan streamed from a LazyFrame (`_stream`) keeps its prompts in JSONL request `files`, one per shard, not in
    `requests`; `prompts()` reads them back for the keys a retry needs.
    """

    spec: RequestSpec
    rows: pl.DataFrame
    requests: pl.DataFrame
    shards: tuple[Shard, ...]
    files: tuple[Path, ...] = ()
    media: pl.DataFrame | None = None  # the media table (`prepare.media.MEDIA_SCHEMA`) when prompts hold media

    def media_of(self, prompts: pl.Series) -> pl.DataFrame:
        """The media table's rows that `prompts` hold."""
        if self.media is None or self.media.is_empty():
            return empty_table()
        return self.media.join(media_uses(prompts).select(ID), on=ID, how="semi")

    def shard_requests(self, index: int) -> pl.DataFrame:
        return self.requests.filter(pl.col(SHARD) == index)

    def prompts(self, keys: pl.Series) -> pl.DataFrame:
        """`key` and `prompt` of the requests with these keys, in plan order."""
        wanted = keys.to_frame(KEY)
        if PROMPT in self.requests.columns:
            return self.requests.join(wanted, on=KEY, how="semi", maintain_order="left").select(KEY, PROMPT)
        lines = pl.scan_ndjson(list(self.files), schema=_LINE_SCHEMA)
        text = pl.col("request").struct.field("contents").list.first().struct.field("parts").list.first()
        found = lines.select(KEY, text.struct.field("text").alias(PROMPT)).join(wanted.lazy(), on=KEY, how="semi")
        return found.collect()


def plan_fingerprint(plan: Plan) -> str:
    """What makes two calls the same work: the same requests for the same rows (keys hash model, config, schema and
    prompt). Equal to hashing the keys one after the other, in one call: the keys joined into one string."""
    digest = hashlib.sha256(plan.spec.fingerprint.encode())
    _update(digest, _slices(plan.rows.get_column(KEY).fill_null("-")))
    return digest.hexdigest()


_HASH_SLICE = 1_000_000  # keys joined into one string at a time: 32 MB, where all of 10M rows' keys would be 320 MB


def _update(digest: hashlib._Hash, parts: Iterator[pl.Series]) -> None:
    """Feed the keys of `parts`, one after the other, to `digest`: the same digest as all of them joined into one
    string."""
    for part in parts:
        digest.update(part.str.join("").item().encode())


def _slices(keys: pl.Series) -> Iterator[pl.Series]:
    for start in range(0, keys.len(), _HASH_SLICE):
        yield keys.slice(start, _HASH_SLICE)


def run_id_for(plan: Plan, limits: Limits) -> str:
    """A run's id, from its work alone: the same work (same requests, split the same way) gets the same job display
    names, so a second call finds the jobs of the first one on the service instead of paying for them again."""
    # The set of requests, not the rows' order: the same work read in another order (a group_by, several files, a
    # shuffled frame) finds the same jobs.
    digest = hashlib.sha256(plan.spec.fingerprint.encode())
    _update(digest, _sorted(plan.requests.get_column(KEY)))
    digest.update(repr(sorted(asdict(limits).items())).encode())
    return digest.hexdigest()[:12]


def _sorted(keys: pl.Series) -> Iterator[pl.Series]:
    """`keys` sorted, a slice at a time. Request keys (32 lowercase hex digits) sort as the UInt128 numbers they
    spell: sorting those and gathering the strings a slice at a time holds about a third of what a sorted copy of
    the strings does (0.5 GB at 10M keys)."""
    if keys.is_empty() or not keys.str.contains("^[0-9a-f]{32}$").all():
        yield from _slices(keys.sort())
        return
    order = keys.str.to_integer(base=16, dtype=pl.UInt128).arg_sort()
    for start in range(0, order.len(), _HASH_SLICE):
        yield keys.gather(order.slice(start, _HASH_SLICE))


def output_columns(spec: RequestSpec, output: str, prefix: str, usage: bool = False) -> list[str]:
    """Names of the columns a call adds: the answer (text mode) or one per schema field, the error column, and
    with `usage` the per-row token columns."""
    kinds = ("input",) if spec.embeds else ("input", "output", "thinking", "cached")
    tokens = [f"{output}_{kind}_tokens" for kind in kinds] if usage else []
    if spec.field is None:
        return [output, f"{output}_error", *tokens]
    return [f"{prefix}{name}" for name, _ in spec.field.children] + [f"{output}_error", *tokens]


def check_clash(columns: list[str], added: list[str]) -> None:
    clash = [c for c in added if c in columns]
    if clash:
        raise ColumnClashError(
            f"The result column(s) {', '.join(map(repr, clash))} already exist in the frame. "
            "Hint: pass prefix='llm_' (schema fields) or output='other_name', or rename the input columns."
        )


def make_plan(
    frame: pl.DataFrame,
    template: str | pl.Expr,
    spec: RequestSpec,
    limits: Limits,
    media: MediaColumns | None = None,
    inline_media_bytes: int = INLINE_MEDIA_BYTES,
    skip_empty: bool = False,
) -> Plan:
    """The plan of a call: every row's key (or why it is not sent), the distinct requests, their shards. With
    `media`, those columns' cells are resolved first (read, hashed, typed) and become media parts. With
    `skip_empty`, a row whose prompt is the empty string is not sent (an embedding of nothing is refused by the
    service, and would cost a request)."""
    resolved = resolve(frame, media, spec.model, media_resolution(spec)) if media else None
    source = resolved.frame if resolved is not None else frame
    prompt, null_col = prompt_exprs(template, source.collect_schema())
    try:
        rendered = source.select(prompt.alias(PROMPT), null_col.alias(NULL_COLUMN))
    except pl.exceptions.ShapeError:  # a prompt expression not of one value per row
        check_length(-1, frame.height, template)
        raise
    check_length(rendered.height, frame.height, template)
    empty = pl.lit(False)
    if skip_empty:
        rendered = rendered.with_columns((pl.col(PROMPT) == "").fill_null(False).alias(_EMPTY))
        rendered = rendered.with_columns(pl.when(~pl.col(_EMPTY)).then(pl.col(PROMPT)).alias(PROMPT))
        empty = pl.col(_EMPTY)
    # DataFrame.unique, not Series.unique: the same rows, ~6x faster at a million rows on Polars 2.1.
    distinct = rendered.select(PROMPT).drop_nulls().unique(maintain_order=True).get_column(PROMPT)
    # Sizes come from regex counts: run them on every core (`spread`), then rejoin the chunks.
    nbytes = pl.DataFrame({PROMPT: spread(distinct)}).select(escaped_size(pl.col(PROMPT)) + line_overhead(spec))
    requests = pl.DataFrame({KEY: request_keys(distinct, spec), PROMPT: distinct, NBYTES: nbytes.to_series().rechunk()})
    table = None
    if resolved is not None:
        table = choose_transport(resolved.table, distinct, inline_media_bytes,
                                 share_uploads=not (media is not None and media.cloud_storage))  # fmt: skip
        costs = per_prompt(distinct, table)
        requests = requests.with_columns(
            costs.get_column(MEDIA_TOKENS), (pl.col(NBYTES) + costs.get_column(MEDIA_BYTES)).alias(NBYTES)
        )
    check_sizes(requests, limits)
    requests, shards = shard(requests, limits)
    keyed = rendered.join(requests.select(PROMPT, KEY), on=PROMPT, how="left", maintain_order="left")
    null_reason: pl.Expr = (
        pl.when(pl.col(NULL_COLUMN).is_not_null())
        .then(pl.format("not sent: column '{}' is null in this row", pl.col(NULL_COLUMN)))
        .when(empty)
        .then(pl.lit("not sent: the text is empty"))
    )
    if resolved is not None:  # a media cell that cannot be sent says why, before any null column
        keyed = keyed.with_columns(resolved.errors)
        null_reason = (
            pl.when(pl.col("media_error").is_not_null())
            .then(pl.lit("not sent: ") + pl.col("media_error"))
            .otherwise(null_reason)
        )
    rows = keyed.select(pl.col(KEY), null_reason.alias(SKIP))
    return Plan(spec, rows, requests, shards, media=table)


def media_resolution(spec: RequestSpec) -> str | None:
    """The request-level `media_resolution` of a call (a `MEDIA_RESOLUTION_*` name), or None."""
    value = spec.config.media_resolution
    return None if value is None else str(getattr(value, "value", value))


def check_length(prompts: int, rows: int, template: str | pl.Expr) -> None:
    """One prompt per row: an expression that aggregates (`str.join`), slices (`head`) or is a bare literal would
    pair prompts with the wrong rows."""
    if prompts != rows:
        given = "another number of" if prompts < 0 else f"{prompts:,}"
        raise TemplateError(
            f"The template gives {given} prompt(s) for {rows:,} row(s): {template!r}. A prompt expression must "
            "give one value per row, e.g. pl.format('Rate: {}', pl.col('review')); for the same prompt on every row, "
            "pass it as a template string without fields."
        )


def check_sizes(requests: pl.DataFrame, limits: Limits) -> None:
    too_big = requests.filter(pl.col(NBYTES) > limits.file_bytes)
    if too_big.height:
        first = too_big.row(0, named=True)
        raise RequestTooLargeError(
            f"{too_big.height} request(s) exceed the {limits.file_bytes:,}-byte file limit; the first is "
            f"{first[NBYTES]:,} bytes (prompt starts {first[PROMPT][:60]!r}). Hint: shorten or split that text."
        )


def shard(requests: pl.DataFrame, limits: Limits) -> tuple[pl.DataFrame, tuple[Shard, ...]]:
    """Split `requests` into contiguous job shards under `limits`; adds the `shard` column."""
    if requests.height == 0:
        return requests.with_columns(pl.lit(0, pl.UInt32).alias(SHARD)), ()
    inline = requests.height <= limits.inline_requests and inline_wire_bytes(requests) <= limits.inline_bytes
    budget = limits.inline_bytes if inline else limits.file_bytes
    sharded = requests.with_columns(shard_ids(requests.get_column(NBYTES), budget, limits.max_requests).alias(SHARD))
    return sharded, shards_of(sharded, "inline" if inline else "file")


def inline_wire_bytes(requests: pl.DataFrame) -> int:
    """The size of `requests` as the SDK sends them inline: its JSON escapes every non-ASCII character (`\\uXXXX`,
    6 bytes; 12 for a character outside the BMP), where a file line carries it as UTF-8 (`NBYTES`)."""
    total = int(requests.get_column(NBYTES).sum())
    if PROMPT not in requests.columns:
        return total
    p = pl.col(PROMPT)
    ascii_chars = p.str.count_matches(r"[\x00-\x7f]")
    non_ascii = p.str.len_chars() - ascii_chars
    astral = p.str.count_matches(r"[\x{10000}-\x{10FFFF}]")
    # Each non-ASCII character's UTF-8 bytes (counted in NBYTES) become 6 bytes on the wire, 12 outside the BMP.
    extra = requests.select((6 * non_ascii + 6 * astral - (p.str.len_bytes() - ascii_chars)).sum()).item()
    return total + int(extra or 0)


def shards_of(requests: pl.DataFrame, transport: str) -> tuple[Shard, ...]:
    """The shards recorded in the `shard` column of `requests`, in order, with their sizes."""
    stats = requests.group_by(SHARD, maintain_order=True).agg(pl.len().alias("n"), pl.col(NBYTES).sum().alias("b"))
    return tuple(Shard(int(s), transport, int(n), int(b)) for s, n, b in stats.iter_rows())
