"""Run (or resume) a checkpointed batch in a process of its own, so tests can SIGKILL it at any stage.

usage: python crash_worker.py batch|embed|sink|resume URL CHECKPOINT OUT.parquet [ROWS]

CHECKPOINT is a directory or an object-storage URL (`s3://bucket/prefix`), whose credentials the worker takes from its
environment (`AWS_*`), as a scheduled job does. `sink` writes OUT itself, chunk by chunk (`polars_gemini.sink_parquet`).
"""

from __future__ import annotations

import sys

import polars as pl
from google import genai
from google.genai import types

import polars_gemini


def frame(rows: int) -> pl.DataFrame:
    return pl.DataFrame({"id": range(rows), "text": [f"review {i % (rows // 2 + 1)}" for i in range(rows)]})


def main() -> None:
    mode, url, checkpoint, out = sys.argv[1:5]
    rows = int(sys.argv[5]) if len(sys.argv) > 5 else 40
    client = genai.Client(api_key="worker-key", http_options=types.HttpOptions(base_url=url))
    fast = {"poll_interval": 0.05, "max_poll_interval": 0.2}
    if mode == "batch":
        result = polars_gemini.batch(
            frame(rows), "Summarize: {text}", model="gemini-2.0-flash", client=client, checkpoint=checkpoint,
            inline_limit_bytes=1, max_requests_per_job=8, progress=False, **fast,
        )  # fmt: skip
    elif mode == "embed":
        result = polars_gemini.embed(
            frame(rows), "{text}", client=client, checkpoint=checkpoint, output_dimensionality=16,
            inline_limit_bytes=1, max_requests_per_job=8, progress=False, **fast,
        )  # fmt: skip
    elif mode == "sink":
        polars_gemini.sink_parquet(
            frame(rows), out, "Summarize: {text}", model="gemini-2.0-flash", client=client, checkpoint=checkpoint,
            inline_limit_bytes=1, max_requests_per_job=8, progress=False, **fast,
        )  # fmt: skip
        return
    else:
        result = polars_gemini.resume(checkpoint, client=client, progress=False, **fast).result()
    result.write_parquet(out)


if __name__ == "__main__":
    main()
