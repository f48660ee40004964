"""A finished run's result written to Parquet chunk by chunk, in bounded memory: the same columns as `Run.result()`,
every input row once, in input order, without the whole frame (or every answer) in memory at once.

For each chunk of input rows (read in order from the input: a Parquet scan, a LazyFrame evaluated once, or slices of
a DataFrame), the results of the chunk's keys are read from the stored results (a lean store's Parquet files, one
per job; a filter on the key column, so only the matching rows are decoded), the standing result per key is chosen
as `Store.latest` chooses it, and the chunk is assembled exactly as `Run.result()` assembles the whole frame
(`per_request`, `answer_columns`, `join_rows`). The chunks feed Polars' streaming Parquet sink through an IO
source, so writing one chunk overlaps with assembling the next.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
from polars.io.plugins import register_io_source

from polars_gemini.checkpoint.files import sink_parquet
from polars_gemini.checkpoint.store import Store
from polars_gemini.core.errors import ConfigurationError
from polars_gemini.core.result_columns import ERROR, KEY, TEXT, USAGE, empty_results
from polars_gemini.cost.estimate import usage_columns
from polars_gemini.prepare.plan import Plan
from polars_gemini.run.assemble import answer_columns, join_rows, per_request

DEFAULT_SINK_BUDGET = 512_000_000  # bytes a sink may hold at once when the caller gives no memory_budget
_ANSWER_BYTES = 400  # per row, on top of the input row: key, answer text, error, usage and their copies
_MIN_CHUNK = 10_000


def sink_target(path: object) -> Path:
    """The result file to write, checked before anything is sent or waited for: a path that is not a directory and
    whose existing parent is a directory (missing folders are created when it is written)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ConfigurationError(f"path must be a file path, e.g. 'labelled.parquet'; got {path!r}.")
    target = Path(path)
    if target.is_dir():
        example = str(target / "out.parquet")
        raise ConfigurationError(f"path {str(target)!r} is a directory; name the Parquet file, e.g. {example!r}.")
    parent = next((p for p in target.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigurationError(f"path {str(target)!r} is under {str(parent)!r}, which is a file, not a directory.")
    return target


def sink_chunk_rows(frame: pl.DataFrame | pl.LazyFrame, memory_budget: int) -> int:
    """Rows per assembled chunk, so that a chunk of input, its answers and the copies a join makes stay well inside
    `memory_budget`."""
    sample = frame.head(1_000)
    sample = sample.collect() if isinstance(sample, pl.LazyFrame) else sample
    per_row = sample.estimated_size() / max(sample.height, 1) + _ANSWER_BYTES
    # x3: the input chunk, the chunk's results and answers, and the joined output are alive together (at 10M rows a
    # 512 MB budget peaks at about 310 MB with x4).
    return max(_MIN_CHUNK, int(memory_budget / (per_row * 3)))


@dataclasses.dataclass(frozen=True)
class Assembly:
    """What a chunk is assembled from: the plan, its rows (or the Parquet file holding them: `Run.spill_rows`), the
    stored results (one LazyFrame per job, oldest first), the output options."""

    plan: Plan
    rows: pl.DataFrame | Path
    results: list[pl.LazyFrame]
    output: str
    prefix: str
    usage: bool

    def chunk(self, frame: pl.DataFrame, start: int) -> pl.DataFrame:
        """Input rows `start ..` (`frame`) with their answer columns, as `Run.result()` gives them."""
        if isinstance(self.rows, Path):  # row groups outside the slice are skipped, not read
            rows = pl.scan_parquet(self.rows).slice(start, frame.height).collect()
        else:
            rows = self.rows.slice(start, frame.height)
        assert rows.height == frame.height, "the input has more rows than its plan"
        keys = rows.get_column(KEY).drop_nulls().unique(maintain_order=True)
        chunk_plan = dataclasses.replace(self.plan, rows=rows, requests=keys.to_frame(KEY))
        found = self._found(keys)
        by_request = per_request(chunk_plan, found[Store.latest_rows(found)])
        answers = answer_columns(chunk_plan, by_request, self.output, self.prefix)
        if self.usage:
            answers = answers.hstack(by_request.select(usage_columns(self.output)))
        return join_rows(frame, chunk_plan, answers, self.output)

    def height(self) -> int:
        if isinstance(self.rows, Path):
            count: int = pl.scan_parquet(self.rows).select(pl.len()).collect().item()
            return count
        return self.rows.height

    def _found(self, keys: pl.Series) -> pl.DataFrame:
        """Every stored result for `keys`, oldest first (a key retried appears once per attempt)."""
        columns = [KEY, TEXT, ERROR] + ([USAGE] if self.usage else [])
        if not self.results or keys.is_empty():
            return empty_results().select(columns)
        wanted = keys.implode()
        parts = [scan.select(columns).filter(pl.col(KEY).is_in(wanted)) for scan in self.results]
        return pl.concat(parts, how="vertical_relaxed").collect()


def sink_result(
    frame: pl.DataFrame | pl.LazyFrame, assembly: Assembly, path: Path, chunk_rows: int
) -> None:
    """Write `frame` with its answer columns to the Parquet file `path` (atomically: complete or not at all)."""
    empty = frame.head(0).collect() if isinstance(frame, pl.LazyFrame) else frame.head(0)
    schema = assembly.chunk(empty, 0).schema  # the dtypes come from the plan's spec, not from the rows

    def source(
        with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, batch_size: int | None
    ) -> Iterator[pl.DataFrame]:
        start = 0
        for piece in _chunks(frame, chunk_rows):
            out = assembly.chunk(piece, start)
            start += piece.height
            yield out if with_columns is None else out.select(with_columns)
        if start != assembly.height():
            raise AssertionError(f"the input gave {start:,} rows, its plan has {assembly.height():,}")

    generated: Callable[..., Iterator[pl.DataFrame]] = source
    sink_parquet(path, register_io_source(generated, schema=schema))


def _chunks(frame: pl.DataFrame | pl.LazyFrame, rows: int) -> Iterator[pl.DataFrame]:
    """`frame` in order, about `rows` rows at a time; a LazyFrame is evaluated once, as a stream."""
    if isinstance(frame, pl.DataFrame):
        yield from frame.iter_slices(rows)
        return
    held: list[pl.DataFrame] = []
    size = 0
    for batch in frame.collect_batches(chunk_size=rows):
        held.append(batch)
        size += batch.height
        if size >= rows:
            yield pl.concat(held)
            held, size = [], 0
    if held:
        yield pl.concat(held)
