"""Planning a LazyFrame in bounded memory: prompts are rendered batch by batch (Polars' streaming engine) and
each new distinct request goes straight into a sharded JSONL request file on disk, so the requests of a frame
larger than memory are never all held at once. What stays in memory per input row is its key (or why it is
not sent); per request its key, size, shard and estimated tokens.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from polars_gemini.prepare.plan import SKIP, Limits, Plan, Shard, check_length, check_sizes, shards_of
from polars_gemini.prepare.requests import (
    KEY,
    NBYTES,
    PROMPT,
    RequestSpec,
    encode_jsonl,
    escaped_size,
    line_overhead,
    request_keys,
)
from polars_gemini.prepare.shards import shard_ids
from polars_gemini.prepare.template import NULL_COLUMN, prompt_exprs
from polars_gemini.tokens.tokenizer import estimate_series

SHARD = "shard"
TOKENS = "estimated_input_tokens"
DEFAULT_CHUNK_ROWS = 100_000
_CHUNK_SAMPLE = 2_000


class ShardWriter:
    """Appends requests to numbered JSONL files, starting a new file when a job's byte or count limit is reached."""

    def __init__(self, directory: Path, spec: RequestSpec, limits: Limits) -> None:
        self.directory, self.spec, self.limits = directory, spec, limits
        directory.mkdir(parents=True, exist_ok=True)
        self.shard, self.fill_bytes, self.fill_count = 0, 0, 0
        self.parts: list[pl.DataFrame] = []

    def path(self, shard: int) -> Path:
        return self.directory / f"requests-{shard:05d}.jsonl"

    def add(self, requests: pl.DataFrame) -> None:
        """Write `requests` (key, prompt, size, tokens) to the current and following shard files."""
        if requests.is_empty():
            return
        placed = requests.with_columns(self._shard_of(requests).alias(SHARD))
        for (shard,), part in placed.group_by(SHARD, maintain_order=True):
            with self.path(int(shard)).open("ab") as handle:
                handle.write(encode_jsonl(part.select(KEY, PROMPT), self.spec))
        last = placed.filter(pl.col(SHARD) == placed.get_column(SHARD).max())
        if int(last.get_column(SHARD)[0]) != self.shard:
            self.fill_bytes = self.fill_count = 0
        self.shard = int(last.get_column(SHARD)[0])
        self.fill_bytes += int(last.get_column(NBYTES).sum())
        self.fill_count += last.height
        self.parts.append(placed.drop(PROMPT))

    def _shard_of(self, requests: pl.DataFrame) -> pl.Series:
        """Shard numbers continuing from the current (partly filled) file."""
        ids = shard_ids(
            requests.get_column(NBYTES), self.limits.file_bytes, self.limits.max_requests,
            fill_bytes=self.fill_bytes, fill_count=self.fill_count,
        )  # fmt: skip
        shifted: pl.Series = ids + self.shard
        return shifted

    def finish(self) -> tuple[pl.DataFrame, tuple[Shard, ...], tuple[Path, ...]]:
        empty = {KEY: pl.String, NBYTES: pl.Int64, TOKENS: pl.Int64, SHARD: pl.UInt32}
        requests = pl.concat(self.parts) if self.parts else pl.DataFrame(schema=empty)
        shards = shards_of(requests, "file")
        return requests, shards, tuple(self.path(s.index) for s in shards)


def chunk_rows(lf: pl.LazyFrame, template: str | pl.Expr, memory_budget: int) -> int:
    """Rows per streamed chunk so that a chunk, its prompts and their JSON stay well inside `memory_budget`."""
    prompt, _ = prompt_exprs(template, lf.collect_schema())
    try:
        sample = lf.head(1_000).with_columns(prompt.alias(PROMPT)).collect()
    except pl.exceptions.ShapeError:  # a prompt expression not of one value per row
        check_length(-1, lf.select(pl.len()).collect().item(), template)
        raise
    per_row = max(sample.estimated_size() / max(sample.height, 1), 1.0)
    # x4: the chunk, its rendered prompts, their JSON lines and the encoder's buffer are alive together.
    return max(1_000, int(memory_budget / (per_row * 4)))


def stream_plan(
    lf: pl.LazyFrame,
    template: str | pl.Expr,
    spec: RequestSpec,
    limits: Limits,
    directory: Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Plan:
    """A plan whose requests live in JSONL files under `directory` (file transport), built chunk by chunk."""
    prompt, null_col = prompt_exprs(template, lf.collect_schema())
    rendered = lf.select(prompt.alias(PROMPT), null_col.alias(NULL_COLUMN))
    writer = ShardWriter(directory, spec, limits)
    rows: list[pl.DataFrame] = []
    try:
        for chunk in rendered.collect_batches(chunk_size=chunk_rows):
            new, keyed = _chunk_requests(chunk, spec, writer.parts)
            check_sizes(new, limits)
            writer.add(new)
            rows.append(keyed)
    except pl.exceptions.ShapeError:  # a prompt expression not of one value per row
        check_length(-1, lf.select(pl.len()).collect().item(), template)
        raise
    requests, shards, files = writer.finish()
    all_rows = pl.concat(rows) if rows else pl.DataFrame(schema={KEY: pl.String, SKIP: pl.String})
    check_length(all_rows.height, lf.select(pl.len()).collect().item(), template)
    return Plan(spec, all_rows, requests, shards, files)


def _chunk_requests(
    chunk: pl.DataFrame, spec: RequestSpec, earlier: list[pl.DataFrame]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """This chunk's requests not among the `earlier` chunks' requests, and its rows' keys."""
    distinct = chunk.select(PROMPT).drop_nulls().unique(maintain_order=True)
    distinct = distinct.with_columns(request_keys(distinct.get_column(PROMPT), spec).alias(KEY))
    new = distinct.filter(~pl.col(KEY).is_in(_repeats(distinct.get_column(KEY), earlier).implode()))
    new = new.select(KEY, PROMPT).with_columns(
        (escaped_size(pl.col(PROMPT)) + line_overhead(spec)).alias(NBYTES),
        # Per chunk, the tokenizer's column factor from a small sample: a full-size sample in every chunk would
        # spend more time in tiktoken than everything else together.
        estimate_series(new.get_column(PROMPT), max_encoded=_CHUNK_SAMPLE, sample_size=_CHUNK_SAMPLE).alias(TOKENS),
    )
    keyed = chunk.join(distinct.select(PROMPT, KEY), on=PROMPT, how="left", maintain_order="left").select(
        pl.col(KEY),
        pl.when(pl.col(NULL_COLUMN).is_not_null())
        .then(pl.format("not sent: column '{}' is null in this row", pl.col(NULL_COLUMN)))
        .alias(SKIP),
    )
    return new, keyed


def _repeats(keys: pl.Series, earlier: list[pl.DataFrame]) -> pl.Series:
    """Those of `keys` that earlier chunks already sent. The earlier requests' keys are probed against a hash set
    of this chunk's keys (built once, and small): no copy of the keys seen so far, and no Python object per key
    (a Python set of 10M keys is about 1 GB)."""
    wanted = keys.implode()
    hits = [part.get_column(KEY).filter(part.get_column(KEY).is_in(wanted)) for part in earlier]
    return pl.concat(hits) if hits else keys.head(0)
