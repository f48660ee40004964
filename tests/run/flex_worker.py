"""A checkpointed run whose only job is stuck, finished at the Flex tier, in a process of its own (to be SIGKILLed).

usage: python flex_worker.py URL CHECKPOINT ROWS
"""

from __future__ import annotations

import sys
import warnings

import polars as pl
from google import genai
from google.genai import types

import polars_gemini


def main() -> None:
    url, checkpoint, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = genai.Client(api_key="worker-key", http_options=types.HttpOptions(base_url=url))
    frame = pl.DataFrame({"text": [f"row {i}" for i in range(rows)]})
    warnings.simplefilter("ignore")
    polars_gemini.batch(frame, "{text}", model="gemini-2.5-flash", client=client, checkpoint=checkpoint,
                        stuck_after=1 / 3600, fallback="flex", max_concurrency=4, progress=False,
                        poll_interval=0.05, max_poll_interval=0.1)  # fmt: skip


if __name__ == "__main__":
    main()
