"""Streaming a LazyFrame into sharded request files vs planning it in memory: time and peak memory.

    python benchmarks/streaming.py --rows 1000000 --budget 300000000

Each variant runs in a fresh interpreter; peak memory is its resident high-water mark (reset first) above its resident
set after imports. The input is a Parquet file of synthetic reviews and tickets (`data.reviews`), written once.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

import data
from polars_gemini.prepare.plan import Limits, make_plan
from polars_gemini.prepare.requests import build_spec, encode_jsonl
from polars_gemini.prepare.stream import chunk_rows, stream_plan
from run import peak_bytes, reset_peak, rss_bytes

SHARD_BYTES = 200_000_000


def one(variant: str, source: Path, budget: int) -> dict[str, float]:
    spec = build_spec(data.MODEL, schema=data.SCHEMA, system_instruction=data.SYSTEM)
    limits = Limits(file_bytes=SHARD_BYTES)
    reset_peak()  # a child inherits its parent's high-water mark: start from this process's own
    base = rss_bytes()
    start = time.perf_counter()
    if variant == "stream":
        lf = pl.scan_parquet(source)
        plan = stream_plan(
            lf, data.TEMPLATE, spec, limits, Path(tempfile.mkdtemp()), chunk_rows(lf, data.TEMPLATE, budget)
        )
        size = sum(f.stat().st_size for f in plan.files)
    else:
        df = pl.read_parquet(source)
        plan = make_plan(df, data.TEMPLATE, spec, limits)
        size = sum(len(encode_jsonl(plan.shard_requests(s.index), spec)) for s in plan.shards)
    seconds = time.perf_counter() - start
    peak = (peak_bytes() - base) / 1e6
    return {"seconds": seconds, "peak_mb": peak, "requests": plan.requests.height, "request_mb": size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--budget", type=int, default=300_000_000, help="memory_budget for the streamed variant")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.source, args.budget)))
        return
    source = Path(tempfile.gettempdir()) / f"polars-gemini-stream-{args.rows}.parquet"
    if not source.exists():
        data.reviews(args.rows).write_parquet(source)
    print(f"{args.rows:,} rows, memory_budget {args.budget / 1e6:,.0f} MB, request files of {SHARD_BYTES / 1e6:.0f} MB")
    for variant in ("in-memory", "stream"):
        cmd = [sys.executable, __file__, "--one", variant, "--source", str(source), "--budget", str(args.budget)]
        result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        print(f"  {variant:9}  {result['seconds']:6.1f} s  peak {result['peak_mb']:7,.0f} MB  "
              f"{result['requests']:,} requests, {result['request_mb']:,.0f} MB of request lines")  # fmt: skip


if __name__ == "__main__":
    main()
