"""Run (or resume) a checkpointed Vertex AI batch in a process of its own, so tests can SIGKILL it at any stage.

usage: python vertex_worker.py batch|resume EMULATOR_URL GCS_URL BUCKET CHECKPOINT OUT.parquet ROWS
"""

from __future__ import annotations

import sys

import polars as pl
from google import genai
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.genai import types
from google.oauth2.credentials import Credentials

import polars_gemini


def main() -> None:
    mode, url, gcs_url, bucket, checkpoint, out, rows = sys.argv[1:8]
    n = int(rows)
    client = genai.Client(vertexai=True, project="test-project", location="us-central1",
                          credentials=Credentials(token="emulator-token"),
                          http_options=types.HttpOptions(base_url=url))  # fmt: skip
    gcs = storage.Client(project="test-project", credentials=AnonymousCredentials(),
                         client_options={"api_endpoint": gcs_url})  # fmt: skip
    fast = {"poll_interval": 0.05, "max_poll_interval": 0.2, "progress": False}
    if mode == "batch":
        frame = pl.DataFrame({"id": range(n), "text": [f"review {i % (n // 2 + 1)}" for i in range(n)]})
        result = polars_gemini.batch(frame, "Summarize: {text}", model="gemini-2.0-flash", client=client,
                                     checkpoint=checkpoint, max_requests_per_job=8, staging=f"gs://{bucket}/runs",
                                     storage_client=gcs, **fast)  # fmt: skip
    else:
        result = polars_gemini.resume(checkpoint, client=client, storage_client=gcs, **fast).result()
    result.write_parquet(out)


if __name__ == "__main__":
    main()
