"""What a checkpoint costs (issue 17): the same batch with no checkpoint, a local directory and an S3 prefix.

    python benchmarks/checkpoints.py                     # 20,000 rows in 20 jobs, 3 repeats
    python benchmarks/checkpoints.py --rows 100000 --per-job 5000 --repeats 1

The Gemini emulator and the S3-compatible server (moto's server mode, `polars_gemini.emulator.s3`) each run in a
process of their own on loopback, so neither shares the library's GIL. Each variant is one `df.gemini.batch(...)`
call in a fresh checkpoint (file transport, `max_requests_per_job=--per-job`), timed end to end; the baseline is the
same call without a checkpoint, in the same run. Reported per variant: the best and median wall time, the ratio to
the baseline, and for S3 the objects and bytes the checkpoint holds at the end. Results: `results/checkpoints.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent

SERVE = """
import signal, threading, sys
if sys.argv[1] == "gemini":
    from polars_gemini.emulator import Emulator, responses
    server = Emulator(responder=responses.reply(lambda r: "echo: " + r.text)).start()
else:
    from polars_gemini.emulator.s3 import S3Emulator
    server = S3Emulator().start()
print(server.url, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
"""


def serve(kind: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVE, kind], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--per-job", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import boto3
    from google import genai
    from google.genai import types

    from polars_gemini.emulator.s3 import CREDENTIALS

    gemini, gemini_url = serve("gemini")
    s3_proc, s3_url = serve("s3")
    try:
        options = {"aws_endpoint_url": s3_url, **CREDENTIALS}
        s3 = boto3.client("s3", endpoint_url=s3_url, aws_access_key_id=CREDENTIALS["aws_access_key_id"],
                          aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
                          region_name=CREDENTIALS["aws_region"])  # fmt: skip
        client = genai.Client(api_key="bench", http_options=types.HttpOptions(base_url=gemini_url))
        df = pl.DataFrame({"id": range(args.rows), "text": [f"review number {i}" for i in range(args.rows)]})
        fast = {"poll_interval": 0.05, "max_poll_interval": 0.2, "progress": False, "inline_limit_bytes": 1,
                "max_requests_per_job": args.per_job, "model": "gemini-2.0-flash", "client": client}
        results: dict[str, Any] = {"rows": args.rows, "jobs": -(-args.rows // args.per_job), "variants": {}}
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for variant in ("none", "directory", "s3"):
                    where: dict[str, Any] = {}
                    if variant == "directory":
                        where = {"checkpoint": f"{tmp}/run-{repeat}"}
                    elif variant == "s3":
                        bucket = f"bench-{os.getpid()}-{repeat}"
                        s3.create_bucket(Bucket=bucket)
                        where = {"checkpoint": f"s3://{bucket}/runs/x", "storage_options": options}
                    template = f"Summarize ({variant} {repeat}): {{text}}"  # new work each time: no job reused
                    started = time.perf_counter()
                    out = df.gemini.batch(template, **where, **fast)
                    seconds = time.perf_counter() - started
                    assert out.get_column("response_error").null_count() == args.rows
                    entry = results["variants"].setdefault(variant, {"seconds": []})
                    entry["seconds"].append(round(seconds, 3))
                    if variant == "s3":
                        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
                        entry["objects"] = len(listed)
                        entry["megabytes"] = round(sum(item["Size"] for item in listed) / 1e6, 2)
        base = min(results["variants"]["none"]["seconds"])
        for entry in results["variants"].values():
            entry["best"] = min(entry["seconds"])
            entry["median"] = statistics.median(entry["seconds"])
            entry["vs_no_checkpoint"] = round(entry["best"] / base, 2)
        results["measured_at"] = time.strftime("%Y-%m-%d %H:%M")
        results["load_average_before"] = os.getloadavg()[0]
        (HERE / "results" / "checkpoints.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
    finally:
        for proc in (gemini, s3_proc):
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
