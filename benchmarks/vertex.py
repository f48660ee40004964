"""The Vertex AI path against the Developer API path, and the cost of the fallback join.

    python benchmarks/vertex.py --rows 100000

1. End to end, the same frame of distinct prompts through `batch()` on both backends, in one process against the
   project's emulators: the Developer API (uploaded JSONL files) and Vertex AI (request shards staged in a Cloud Storage
   emulator, gcp-storage-emulator in memory; predictions read back from it). The ratio is Vertex's time over the
   Developer API's, measured in the same run.
2. Parsing one Vertex job's worth of prediction lines (200,000, shuffled) joined by the echoed key, against the same
   lines without the key, joined by the digest of their echoed (camelCase) request: the ratio is what a service that
   drops the key costs.

Results: `results/vertex.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl

import polars_gemini
from polars_gemini.emulator import Emulator
from polars_gemini.emulator.gcs import GcsEmulator
from polars_gemini.prepare.requests import build_spec, encode_jsonl, request_keys
from polars_gemini.run.predictions import parse_predictions, request_digests
from polars_gemini.run.results import split_lines

HERE = Path(__file__).resolve().parent
FAST: dict[str, Any] = {"poll_interval": 0.05, "max_poll_interval": 0.2, "progress": False}


def end_to_end(rows: int) -> dict[str, float]:
    df = pl.DataFrame({"text": [f"review number {i} of many" for i in range(rows)]})
    times: dict[str, float] = {}
    with GcsEmulator() as gcs:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        gcs.create_bucket(bucket)
        with Emulator(gcs=gcs) as emu:
            warm = df.head(20)  # first calls load the tokenizer and open connections: not part of either timing
            polars_gemini.batch(warm, "Warm: {text}", model="gemini-2.5-flash", client=emu.client(), **FAST)
            polars_gemini.batch(warm, "Warm: {text}", model="gemini-2.5-flash", client=emu.vertex_client(),
                                staging=f"gs://{bucket}/warm", storage_client=gcs.client(), **FAST)  # fmt: skip
            began = time.perf_counter()
            dev = polars_gemini.batch(df, "Classify: {text}", model="gemini-2.5-flash", client=emu.client(),
                                      inline_limit_bytes=0, **FAST)  # fmt: skip
            times["developer_s"] = time.perf_counter() - began
            began = time.perf_counter()
            vertex = polars_gemini.batch(df, "Classify: {text}", model="gemini-2.5-flash", client=emu.vertex_client(),
                                         staging=f"gs://{bucket}/runs", storage_client=gcs.client(), **FAST)
            times["vertex_s"] = time.perf_counter() - began
    assert dev.get_column("response").equals(vertex.get_column("response"))
    times["vertex_over_developer"] = times["vertex_s"] / times["developer_s"]
    return times


def join_cost(lines: int) -> dict[str, float]:
    spec = build_spec("gemini-2.5-flash")
    prompts = pl.Series("prompt", [f"prompt number {i}" for i in range(lines)])
    requests = pl.DataFrame({"key": request_keys(prompts, spec), "prompt": prompts})
    sent = split_lines(encode_jsonl(requests, spec))
    answer = '"status":"","response":{"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"STOP"}]}}'
    text = pl.struct(pl.col("prompt").alias("text")).struct.json_encode()
    echoed = pl.concat_str(pl.lit('{"request":{"contents":[{"role":"user","parts":['), text, pl.lit("]}]},"))
    base = requests.select(pl.col("key"), echoed.alias("e")).sample(fraction=1.0, shuffle=True, seed=1)
    keyed = base.select(pl.concat_str(pl.lit('{"key":"'), pl.col("key"), pl.lit('",'), pl.col("e").str.slice(1),
                                      pl.lit(answer))).to_series()  # fmt: skip
    unkeyed = base.select(pl.concat_str(pl.col("e"), pl.lit(answer))).to_series()
    began = time.perf_counter()
    by_key, _ = parse_predictions(keyed, "bench", None)
    keyed_s = time.perf_counter() - began
    began = time.perf_counter()
    by_digest, unread = parse_predictions(unkeyed, "bench", lambda: request_digests(sent))
    digest_s = time.perf_counter() - began
    assert unread == 0 and by_digest.sort("key").get_column("key").equals(by_key.sort("key").get_column("key"))
    return {"lines": lines, "by_key_s": keyed_s, "by_digest_s": digest_s, "digest_over_key": digest_s / keyed_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    result = {"end_to_end": {"rows": args.rows, **end_to_end(args.rows)}, "join": join_cost(args.lines)}
    print(json.dumps(result, indent=2))
    (HERE / "results" / "vertex.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
