"""Embedding results ingest: a results file of 1,000,000 lines x 768 values into an `Array(Float32, 768)` column.

    python benchmarks/embeddings.py                        # 1,000,000 rows (a ~9.7 GB file under the temp directory)
    python benchmarks/embeddings.py --rows 200000          # where the disk has no room for that
    python benchmarks/embeddings.py --variants library,sink --keep

The file has the real line shape (`tests/data/samples/result_file_embeddings_gemini-embedding-001.jsonl`):
`{"response":{"tokenCount":"12","embedding":{"values":[...]}},"key":"<32 hex>"}`, the values float32 normals of a
truncated unit vector's scale printed shortest-round-trip (`-0.034119852`: 8-9 significant digits), written by Polars
string ops in blocks (never through the emulator). Variants, each in a fresh interpreter (its peak is its resident
high-water mark, reset after the imports, above its size after the imports; `ru_maxrss` is recorded too):

- `baseline`: `json.loads` line by line into a preallocated numpy float32 array (rows x 768), keys into a list.
- `polars_read`: `pl.scan_ndjson(path, schema=<the library's line schema>).collect(engine="streaming")` alone: the
  floor the library's parse starts from (Float32 lists).
- `library`: `results.parse_embed_file(path, "bench", 768)`, then `assemble.embedding_columns(..., normalize=True)`,
  what `embed` does with a results file: the `Array(Float32, 768)` column and its errors. The two are timed apart,
  each with its own peak.
- `read_array`: `scan_ndjson` with `Array(Float32, 768)` in the schema, so values are decoded straight into the
  fixed-size array (no list column and no cast copy): what a leaner `parse_embed_file` could do.
- `sink`: `scan_ndjson(...).select(key, values as Array(Float32, 768)).sink_parquet(...)`: streamed to Parquet,
  never the whole array in memory.

Output array: rows x 768 x 4 bytes (3.07 GB at 1M rows); the goal is a peak within 2x of it.
Results: `benchmarks/results/embeddings.json` and `embeddings.md`.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from polars_gemini.core.result_columns import EMBEDDING
from polars_gemini.run import results
from polars_gemini.run.assemble import embedding_columns
from run import _status_kib, cpu_busy, peak_bytes, reset_peak, rss_bytes, wait_for_quiet

VERSION = 1
DIMS = 768
BLOCK = 10_000  # rows generated (and formatted) at a time
SCALE = np.float32(1 / np.sqrt(3072))  # a unit 3072-vector's values; its first 768 are what the file carries
VARIANTS = ("baseline", "polars_read", "library", "read_array", "sink")
OUT = Path(__file__).resolve().parent / "results" / "embeddings.json"
LINE_SCHEMA = results._EMBED_LINE  # the library's own schema for a line, so `polars_read` reads what it reads


# -- input ----------------------------------------------------------------------------------------------------------


def block_lines(start: int, rows: int, rng: np.random.Generator) -> pl.DataFrame:
    """`rows` result lines (one String column) for keys `start`..: formatted by Polars, not per value in Python."""
    values = pl.Series("v", rng.standard_normal(rows * DIMS, dtype=np.float32) * SCALE).cast(pl.String)
    # 16 random bytes as 32 hex digits (no zero byte: numpy's S16 would drop a trailing one)
    keys = pl.Series(rng.integers(1, 256, (rows, 16), dtype=np.uint8).view("S16").ravel()).bin.encode("hex")
    frame = pl.DataFrame({"v": values.reshape((rows, DIMS)), "k": keys, "t": rng.integers(4, 40, rows)})
    line = pl.concat_str(
        pl.lit('{"response":{"tokenCount":"'), pl.col("t").cast(pl.String), pl.lit('","embedding":{"values":['),
        pl.col("v").arr.join(","), pl.lit(']}},"key":"'), pl.col("k"), pl.lit('"}'),
    )  # fmt: skip
    return frame.select(line.alias("line"))


def build_input(path: Path, rows: int, seed: int = 13) -> None:
    """Write the results file once (a `.done` marker beside it marks a finished one)."""
    marker = path.with_suffix(".done")
    if marker.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with path.open("wb") as out:
        for start in range(0, rows, BLOCK):
            lines = block_lines(start, min(BLOCK, rows - start), rng).get_column("line")
            out.write(("\n".join(lines) + "\n").encode())  # one string per block: ~100 MB at a time
    marker.write_text(str(path.stat().st_size))


# -- memory -------------------------------------------------------------------------------------------------------


class Sampler:
    """Peak anonymous and file-backed resident memory, sampled every 10 ms in a thread (the kernel keeps a
    high-water mark of their sum only). Polars' NDJSON reader memory-maps the file: its pages are resident and
    counted by VmHWM and ru_maxrss, but they are clean page cache the kernel can drop, not the process's own."""

    def __init__(self) -> None:
        self.anon, self.file = 0, 0
        self._anon0 = _status_kib("RssAnon") * 1024
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.anon = max(self.anon, _status_kib("RssAnon") * 1024 - self._anon0)
            self.file = max(self.file, _status_kib("RssFile") * 1024)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- variants (each runs in its own process) ------------------------------------------------------------------------


def baseline(path: Path, rows: int) -> dict[str, Any]:
    """The hand-written way: a Python loop over lines (the point of this variant), `json.loads` each."""
    out = np.empty((rows, DIMS), dtype=np.float32)
    keys = []
    with path.open("rb") as lines:
        for i, line in enumerate(lines):
            record = json.loads(line)
            out[i] = record["response"]["embedding"]["values"]
            keys.append(record["key"])
    assert len(keys) == rows and np.isfinite(out[-1]).all()
    return {"rows_out": len(keys), "checksum": float(out[:, 0].sum())}


def polars_read(path: Path, rows: int) -> dict[str, Any]:
    lines = pl.scan_ndjson(path, schema=LINE_SCHEMA).collect(engine="streaming")
    assert lines.height == rows
    return {"rows_out": lines.height}


def library(path: Path, rows: int, base: int) -> dict[str, Any]:
    """What `embed` does with a results file, in its two steps, each with its own time and peak."""
    start = time.perf_counter()
    by_request, unreadable = results.parse_embed_file(path, "bench", DIMS)
    parsed, parse_peak = time.perf_counter(), peak_bytes() - base
    reset_peak()
    columns = embedding_columns(by_request, EMBEDDING, DIMS, normalize=True)
    done = time.perf_counter()
    assert unreadable == 0 and columns.height == rows and columns.get_column(f"{EMBEDDING}_error").null_count() == rows
    assert columns.schema[EMBEDDING] == pl.Array(pl.Float32, DIMS)
    return {"rows_out": columns.height, "parse_seconds": parsed - start, "parse_peak_bytes": parse_peak,
            "columns_seconds": done - parsed, "columns_peak_bytes": peak_bytes() - base}  # fmt: skip


def read_array(path: Path, rows: int) -> dict[str, Any]:
    schema = {"key": pl.String, "response": pl.Struct({"tokenCount": pl.String,
              "embedding": pl.Struct({"values": pl.Array(pl.Float32, DIMS)})})}  # fmt: skip
    values = pl.col("response").struct.field("embedding").struct.field("values").alias(EMBEDDING)
    frame = pl.scan_ndjson(path, schema=schema).select("key", values).collect(engine="streaming")
    assert frame.height == rows and frame.schema[EMBEDDING] == pl.Array(pl.Float32, DIMS)
    return {"rows_out": frame.height}


def sink(path: Path, rows: int, target: Path) -> dict[str, Any]:
    values = pl.col("response").struct.field("embedding").struct.field("values")
    query = pl.scan_ndjson(path, schema=LINE_SCHEMA).select("key", values.cast(pl.Array(pl.Float32, DIMS)))
    query.sink_parquet(target)
    written = pl.scan_parquet(target).select(pl.len()).collect().item()
    assert written == rows
    return {"rows_out": written, "parquet_bytes": target.stat().st_size}


def measure(variant: str, path: Path, rows: int) -> dict[str, Any]:
    base = rss_bytes()  # this interpreter with Polars, numpy and the library imported
    exact = reset_peak()
    start = time.perf_counter()
    with Sampler() as sampled:
        if variant == "baseline":
            record = baseline(path, rows)
        elif variant == "polars_read":
            record = polars_read(path, rows)
        elif variant == "library":
            record = library(path, rows, base)
        elif variant == "read_array":
            record = read_array(path, rows)
        else:
            target = path.with_suffix(".parquet")
            record = sink(path, rows, target)
            target.unlink()
    seconds = time.perf_counter() - start
    peak = peak_bytes() - base
    if variant == "library":
        peak = max(record["parse_peak_bytes"], record["columns_peak_bytes"])
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # never reset: includes the imports
    return record | {"variant": variant, "rows": rows, "seconds": seconds, "peak_bytes": peak, "peak_exact": exact,
                     "anon_peak_bytes": sampled.anon, "file_peak_bytes": sampled.file, "ru_maxrss_bytes": maxrss,
                     "base_bytes": base}  # fmt: skip


# -- the driver -----------------------------------------------------------------------------------------------------


def table(records: list[dict[str, Any]], rows: int, file_bytes: int) -> str:
    array = rows * DIMS * 4
    base = next((r for r in records if r["variant"] == "baseline"), None)

    def faster(record: dict[str, Any]) -> str:
        return f"{base['seconds'] / record['seconds']:.1f}x" if base else "—"

    def of_base(record: dict[str, Any]) -> str:
        return f"{record['peak_bytes'] / base['peak_bytes']:.2f}" if base else "—"

    lines = [
        "| variant | s | rows/s | MB/s of file | x baseline speed | peak RSS MB | ÷ output array | ÷ baseline "
        "| of it anon MB | anon ÷ output array | file-mapped MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        rate = f"{rows / r['seconds']:,.0f} | {file_bytes / 1e6 / r['seconds']:,.0f}"
        lines.append(
            f"| {r['variant']} | {r['seconds']:.1f} | {rate} | {faster(r)} | {r['peak_bytes'] / 1e6:,.0f} "
            f"| {r['peak_bytes'] / array:.2f} | {of_base(r)} | {r['anon_peak_bytes'] / 1e6:,.0f} "
            f"| {r['anon_peak_bytes'] / array:.2f} | {r['file_peak_bytes'] / 1e6:,.0f} |"
        )
    lib = next((r for r in records if r["variant"] == "library"), None)
    if lib:
        lines.append("")
        lines.append(f"library steps: parse_embed_file {lib['parse_seconds']:.1f} s, peak "
                     f"{lib['parse_peak_bytes'] / 1e6:,.0f} MB; embedding_columns {lib['columns_seconds']:.1f} s, "
                     f"peak {lib['columns_peak_bytes'] / 1e6:,.0f} MB (with the parsed table resident)")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON results go (and .md beside it)")
    parser.add_argument("--keep", action="store_true", help="keep the results file for another run")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="seconds to wait for idle CPUs before each")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = Path(tempfile.gettempdir()) / f"polars-gemini-embeddings-v{VERSION}" / f"{args.rows}.jsonl"
    if args.one:
        print(json.dumps(measure(args.one, path, args.rows)))
        return
    need = args.rows * DIMS * 12.7 * 1.05
    free = shutil.disk_usage(Path(tempfile.gettempdir())).free
    if not path.with_suffix(".done").exists() and free < need:
        sys.exit(f"{args.rows:,} rows need ~{need / 1e9:.1f} GB under {tempfile.gettempdir()}, {free / 1e9:.1f} GB "
                 "are free: try --rows 200000")  # fmt: skip
    start = time.perf_counter()
    build_input(path, args.rows)
    file_bytes = path.stat().st_size
    print(f"{args.rows:,} rows x {DIMS}: {file_bytes / 1e9:.2f} GB at {path} ({time.perf_counter() - start:.0f} s)",
          flush=True)  # fmt: skip
    records = []
    for variant in [v for v in args.variants.split(",") if v]:  # --variants "" only writes the file
        busy = wait_for_quiet(args.quiet_wait)
        cmd = [sys.executable, __file__, "--one", variant, "--rows", str(args.rows)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"  {variant}: FAILED\n{done.stderr[-3000:]}", flush=True)
            continue
        records.append(json.loads(done.stdout.strip().splitlines()[-1]) | {"cpu_busy_before": round(busy, 3)})
        print(f"  {variant:11} {records[-1]['seconds']:7.1f} s  peak {records[-1]['peak_bytes'] / 1e6:7,.0f} MB",
              flush=True)  # fmt: skip
    summary = table(records, args.rows, file_bytes)
    print(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"rows": args.rows, "dims": DIMS, "file_bytes": file_bytes, "output_array_bytes": args.rows * DIMS * 4,
            "polars": pl.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
            "cpu_busy_after": round(cpu_busy(), 3)}  # fmt: skip
    args.out.write_text(json.dumps(meta | {"records": records}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(f"{args.rows:,} rows x {DIMS} ({file_bytes / 1e9:.2f} GB)\n\n{summary}\n")
    if not args.keep:
        path.unlink()
        path.with_suffix(".done").unlink()


if __name__ == "__main__":
    main()
