"""Streaming a run end to end (`sink_parquet`) against the collected path (`batch`): time and peak memory.

    python benchmarks/sink.py --variants batch:1000000,sink:1000000,sink:10000000

The emulator runs in its own process (a `python -c` child serving a cheap echo responder), so the library's
memory is measured alone; the emulator's own high-water mark is reported next to it (it drops a job's parsed
requests once its results exist, and the record of requests it keeps for tests, so that 10M requests fit). Each
variant runs in a fresh interpreter on a LazyFrame over a Parquet file of short prompts (`source`), checkpointed,
jobs of `JOB_REQUESTS`, `ACTIVE_JOBS` at a time: `batch` is the collected path (planned in memory, results kept in
memory, `run.result()` written with `write_parquet`), `sink` is what `polars_gemini.sink_parquet` does (planned with
`memory_budget`, results on disk, `run.sink_parquet`), spelled out to time each phase. Peak memory is VmHWM (the
kernel's resident high-water mark, reset before each phase) above the interpreter's resident set after imports, per
phase: plan (planning and submission: request files written and uploaded, jobs created), wait (polling and collecting
the results), assemble (the answers joined to the rows and written out). Results: `results/sink.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import polars as pl  # noqa: E402

from run import peak_bytes, reset_peak, rss_bytes  # noqa: E402

MODEL = "gemini-2.5-flash"
TEMPLATE = "Classify: {text}"
BUDGET = 256_000_000
JOB_REQUESTS = 500_000  # requests per job: at most ACTIVE_JOBS of them are parsed in the emulator at once
ACTIVE_JOBS = 2

# The emulator child: a responder that echoes the prompt (so every answer says which row it belongs to) at a few
# microseconds a request, instead of the default responder's drafted sentences and token counts.
EMULATOR = """
import gc, sys, signal, threading
from polars_gemini.emulator import Emulator

def echo(request):
    text = "echo: " + request.request["contents"][0]["parts"][0]["text"]
    return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 6, "totalTokenCount": 14}}

# A finished job's parsed requests are no longer needed once its results file exists: dropped (their count kept), so
# that the emulator holds the requests of the jobs still running only, not 10M parsed requests at the end.
from polars_gemini.emulator._batches import BatchService
_materialize = BatchService._materialize
def materialize(self, job):
    _materialize(self, job)
    job.entries = [None] * len(job.entries)
    gc.collect()
BatchService._materialize = materialize

emu = Emulator(responder=echo).start()
print(emu.url, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
while not stop.wait(0.5):
    emu.clear_requests()  # the record of every request (upload bodies included) is for tests, not needed here
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(int(hwm) * 1024, flush=True)
"""


def source(rows: int) -> Path:
    """A Parquet file of short prompts: 1% repeat an earlier row's text, 0.1% are null."""
    path = Path(tempfile.gettempdir()) / f"polars-gemini-sink-{rows}.parquet"
    if not path.exists():
        i = pl.int_range(rows, dtype=pl.Int64)
        text = pl.when(i % 100 == 7).then(i // 1000).otherwise(i).cast(pl.String)
        frame = pl.select(i.alias("id"), pl.when(i % 1000 == 3).then(None).otherwise(pl.lit("review ") + text)
                          .alias("text"), (i % 5).cast(pl.Int8).alias("stars"))  # fmt: skip
        frame.write_parquet(path)
    return path


def one(variant: str, rows: int, url: str, out: Path) -> dict[str, Any]:
    from google import genai

    import polars_gemini

    client = genai.Client(api_key="bench", http_options={"base_url": url})
    lf = pl.scan_parquet(source(rows))
    base = rss_bytes()
    phases: dict[str, dict[str, float]] = {}

    def phase(name: str, start: float) -> None:
        phases[name] = {"seconds": time.perf_counter() - start, "peak_mb": (peak_bytes() - base) / 1e6}
        reset_peak()

    reset_peak()
    start = t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # `sink_parquet()` is this submit (with a memory budget: results kept on disk), wait and
        # `run.sink_parquet`: spelled out here to time each phase.
        budget = None if variant == "batch" else BUDGET  # the collected path plans and keeps everything in memory
        run = polars_gemini.submit(lf, TEMPLATE, model=MODEL, client=client, memory_budget=budget, progress=False,
                                   poll_interval=0.5, max_poll_interval=2.0, checkpoint=Path(tmp) / "ckpt",
                                   max_requests_per_job=JOB_REQUESTS, max_active_jobs=ACTIVE_JOBS)  # fmt: skip
        phase("plan", t)
        t = time.perf_counter()
        run.wait()
        phase("wait", t)
        t = time.perf_counter()
        if variant == "batch":
            run.result().write_parquet(out)
        else:
            run.sink_parquet(out)
        phase("assemble", t)
        run.close()
    seconds = time.perf_counter() - start
    peak = max(p["peak_mb"] for p in phases.values())
    return {"seconds": seconds, "peak_mb": peak, "phases": phases, "requests": run.plan.requests.height}


def emulator() -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen([sys.executable, "-c", EMULATOR], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", default="batch:1000000,sink:1000000,sink:10000000")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "sink.json")
    args = parser.parse_args()
    if args.one:
        variant, rows = args.one.split(":")
        print(json.dumps(one(variant, int(rows), args.url, args.out)))
        return
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    for spec in args.variants.split(","):
        variant, rows = spec.split(":")
        source(int(rows))
        child, url = emulator()
        out = Path(tempfile.gettempdir()) / f"polars-gemini-sink-out-{variant}-{rows}.parquet"
        cmd = [sys.executable, __file__, "--one", spec, "--url", url, "--out", str(out)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        finally:
            child.terminate()
            emu_peak = int((child.communicate(timeout=600)[0] or "0").strip() or 0)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"{spec} failed")
        result = json.loads(done.stdout.strip().splitlines()[-1]) | {"emulator_peak_mb": emu_peak / 1e6}
        result["output_rows"] = pl.scan_parquet(out).select(pl.len()).collect().item()
        result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results[spec] = result
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        phases = ", ".join(f"{k} {v['seconds']:.1f} s / {v['peak_mb']:,.0f} MB" for k, v in result["phases"].items())
        print(f"{spec:>16}: {result['seconds']:7.1f} s, peak {result['peak_mb']:7,.0f} MB ({phases}); "
              f"emulator peak {emu_peak / 1e6:,.0f} MB", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
