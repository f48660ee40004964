"""The emulator under load (issue 17): concurrent `generateContent` callers, and a file job of 1M requests.

    python benchmarks/load.py                                  # 1 and 200 callers x 50 calls; file jobs of 100k and 1M
    python benchmarks/load.py --callers 1,200 --calls 50 --requests 100000,1000000 --before-src /tmp/old/src

The emulator runs in its own process (a `python -c` child serving a cheap echo responder, so that its memory is its
own and its CPU does not share the callers' GIL), driven through the real google-genai SDK on loopback.

* concurrent: N caller threads (a client per 10 callers) make `--calls` calls each; reported: wall time, calls per
  second, p50/p99 latency per call, transport errors (any exception). The baseline is 1 caller in the same run.
* file job: a JSONL of N short requests is uploaded with `client.files.upload`, a job created from it, polled until
  done, and its results downloaded; reported: seconds per phase and the emulator's peak resident set (VmHWM) above its
  size once serving. The baseline is the 100k job in the same run (the ratios say whether memory grows with the
  requests' bytes only). `--before-src` runs the same jobs against another source tree of the emulator (e.g. the
  commit before issue 17: `git archive 7c24900 src | tar -x -C /tmp/old`) for a before/after.

Results: `results/load.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL = "gemini-2.0-flash"
SHARING = 10  # callers per client

EMULATOR = """
import signal, threading
from polars_gemini.emulator import Emulator

def echo(request):
    text = "echo: " + request.request["contents"][0]["parts"][0]["text"]
    return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 5, "totalTokenCount": 9}}

def status(field):
    return int([l for l in open("/proc/self/status") if l.startswith(field)][0].split()[1]) * 1024

emu = Emulator(responder=echo).start()
print(emu.url, status("VmRSS"), flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
print(status("VmHWM"), flush=True)
"""


class Child:
    """The emulator in its own process (`src`: another source tree to import it from)."""

    def __init__(self, src: str | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=src) if src else None
        self.process = subprocess.Popen([sys.executable, "-c", EMULATOR], stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        url, rss = self.process.stdout.readline().split()
        self.url, self.start_rss = url, int(rss)

    def stop(self) -> int:
        """Stops it; its peak resident set above its size once serving, in bytes."""
        self.process.terminate()
        out = self.process.communicate(timeout=600)[0]
        return int(out.strip() or 0) - self.start_rss


def client(url: str) -> Any:
    from google import genai

    return genai.Client(api_key="bench", http_options={"base_url": url, "timeout": 600_000})


def concurrent(callers: int, calls: int) -> dict[str, Any]:
    child = Child()
    clients = [client(child.url) for _ in range(max(1, callers // SHARING))]
    latencies: list[float] = []
    errors: list[str] = []
    wrong = [0]
    barrier = threading.Barrier(callers + 1)

    def caller(n: int) -> None:
        sdk = clients[n // SHARING]
        barrier.wait()
        for i in range(calls):
            prompt = f"caller {n} call {i}"
            t = time.perf_counter()
            try:
                text = sdk.models.generate_content(model=MODEL, contents=prompt).text
                wrong[0] += text != f"echo: {prompt}"
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    peak = child.stop()
    ordered = sorted(latencies)
    return {
        "callers": callers, "calls": callers * calls, "seconds": seconds, "calls_per_s": callers * calls / seconds,
        "p50_ms": 1000 * statistics.median(ordered), "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "transport_errors": len(errors), "wrong_answers": wrong[0], "first_errors": errors[:3],
        "emulator_peak_mb": peak / 1e6,
    }  # fmt: skip


def file_job(requests: int, src: str | None = None) -> dict[str, Any]:
    line = '{"key":"row-%d","request":{"contents":[{"parts":[{"text":"Classify review %d: a fine product"}]}]}}\n'
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requests.jsonl"
        with path.open("w") as out:
            for start in range(0, requests, 100_000):
                out.write("".join(line % (i, i) for i in range(start, min(start + 100_000, requests))))
        child = Child(src)
        try:
            sdk = client(child.url)
            phases: dict[str, float] = {}
            t = time.perf_counter()
            uploaded = sdk.files.upload(file=str(path), config={"mime_type": "application/jsonl"})
            phases["upload_s"] = time.perf_counter() - t
            t = time.perf_counter()
            job = sdk.batches.create(model=MODEL, src=uploaded.name)
            phases["create_s"] = time.perf_counter() - t
            t = time.perf_counter()
            while not (done := sdk.batches.get(name=job.name)).done:
                time.sleep(0.2)
            phases["results_s"] = time.perf_counter() - t
            t = time.perf_counter()
            results = sdk.files.download(file=done.dest.file_name)
            phases["download_s"] = time.perf_counter() - t
        finally:
            peak = child.stop()
        return {
            "requests": requests, "input_mb": path.stat().st_size / 1e6, "output_mb": len(results) / 1e6,
            "result_lines": results.count(b"\n"), "seconds": sum(phases.values()), **phases,
            "emulator_peak_mb": peak / 1e6, "emulator": src or "this tree",
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callers", default="1,200")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--requests", default="100000,1000000")
    parser.add_argument("--before-src", help="another source tree's src/ to measure the file jobs against too")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "load.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "os_cpus": os.cpu_count()}
    for callers in map(int, args.callers.split(",")):
        result = results[f"concurrent:{callers}"] = concurrent(callers, args.calls)
        print(json.dumps(result), flush=True)
    for src in [None, args.before_src] if args.before_src else [None]:
        for requests in map(int, args.requests.split(",")):
            result = results[f"file:{requests}" + (":before" if src else "")] = file_job(requests, src)
            print(json.dumps(result), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
