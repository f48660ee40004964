"""A batch on a checkpoint in object storage, in a process of its own (credentials from the environment).

usage: python remote_worker.py batch|resume EMULATOR_URL CHECKPOINT OUT.parquet [ROWS]
Exit code 3: the checkpoint was busy (CheckpointLockedError), its message on stderr.
"""

from __future__ import annotations

import sys

import polars as pl
from google import genai
from google.genai import types

import polars_gemini


def main() -> None:
    mode, url, checkpoint, out = sys.argv[1:5]
    rows = int(sys.argv[5]) if len(sys.argv) > 5 else 24
    client = genai.Client(api_key="worker-key", http_options=types.HttpOptions(base_url=url))
    fast = {"poll_interval": 0.05, "max_poll_interval": 0.2, "progress": False}
    try:
        if mode == "batch":
            frame = pl.DataFrame({"id": range(rows), "text": [f"row {i}" for i in range(rows)]})
            result = polars_gemini.batch(frame, "Say: {text}", model="gemini-2.0-flash", client=client,
                                         checkpoint=checkpoint, max_requests_per_job=8, **fast)  # fmt: skip
        else:
            result = polars_gemini.resume(checkpoint, client=client, **fast).result()
    except polars_gemini.CheckpointLockedError as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
    result.write_parquet(out)


if __name__ == "__main__":
    main()
