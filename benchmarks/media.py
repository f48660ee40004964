"""Media per row: 10,000 images of ~50 KB, 30% of rows repeating earlier files (some under another name).

    python benchmarks/media.py                 # 10,000 rows, all three variants
    python benchmarks/media.py --rows 1000     # a quick run

Hashing, dedup and upload planning against the seed's way. Every row has its own text (a SKU), so every row is its
own request, and a photo that several rows share is in several requests. Variants, each in a fresh interpreter (its
peak is its own resident high-water mark, reset after the inputs are loaded, above its size after imports):

- `seed`: what a loop over rows does, and what the seed did: per row, read the file, `types.Part.from_bytes`, an
  `InlinedRequest`, then one JSONL line per request with the bytes in base64. Bytes sent: those lines.
- `plan`: `make_plan(..., media_columns("photo", ...))`: each distinct path read and hashed once (on a thread
  pool), media keyed by content, so a renamed copy is the same media; singletons inline, shared ones to upload.
  Bytes it would send: the request lines as planned (inline media in base64) plus each upload once.
- `e2e`: `df.gemini.batch(..., media="photo")` to the typed result, against the emulator in its own process (its
  memory is not counted). Bytes sent: what the emulator received through the Files API (media and request file).

The images are noise PNGs (incompressible, like photos), written once per size under the temp directory.
Results: `benchmarks/results/media.json`.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import polars as pl
from google import genai
from google.genai import types

import polars_gemini  # noqa: F401  (registers df.gemini)
from polars_gemini.prepare.media import media_columns
from polars_gemini.prepare.plan import Limits, make_plan
from polars_gemini.prepare.requests import NBYTES, build_spec
from run import peak_bytes, reset_peak, rss_bytes

VERSION = 1
MODEL = "gemini-2.5-flash"
TEMPLATE = "Write the alt text for the photo of product {sku}: {photo}"
SCHEMA = {"alt_text": pl.String, "background": pl.Enum(["white", "studio", "outdoor", "other"])}
DUPLICATES = 0.30  # of rows: an earlier row's file
RENAMED = 1 / 3  # of those: a copy of it under another name
OUT = Path(__file__).resolve().parent / "results" / "media.json"


# -- inputs ---------------------------------------------------------------------------------------------------------


def noise_png(side: int, rng: random.Random) -> bytes:
    """A valid RGB PNG of noise pixels: about 3 bytes a pixel, as incompressible as a photo."""
    raw = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


def build_inputs(folder: Path, rows: int, seed: int = 12) -> pl.DataFrame:
    """`rows` rows of (sku, photo path): 70% distinct files of 43-56 KB, the rest an earlier row's file, a third of
    those as a renamed copy; shuffled. Written once (`frame.json` marks a finished folder)."""
    marker = folder / "frame.json"
    if marker.exists():
        return pl.read_ndjson(marker)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    distinct = rows - round(rows * DUPLICATES)
    paths = []
    for i in range(distinct):
        path = folder / f"photo_{i:05d}.png"
        path.write_bytes(noise_png(rng.randrange(120, 136), rng))
        paths.append(str(path))
    for k in range(rows - distinct):
        original = paths[rng.randrange(distinct)]
        if rng.random() < RENAMED:
            copy = folder / f"copy_{k:05d}.png"
            shutil.copyfile(original, copy)
            original = str(copy)
        paths.append(original)
    rng.shuffle(paths)
    frame = pl.DataFrame({"sku": [f"SKU-{i:05d}" for i in range(rows)], "photo": paths})
    frame.write_ndjson(marker)
    return frame


# -- variants (each runs in its own process) ------------------------------------------------------------------------


def seed_way(frame: pl.DataFrame) -> dict[str, Any]:
    """Per row: read, `Part.from_bytes`, `InlinedRequest`, then JSONL lines with base64 data."""
    generation = json.loads(build_spec(MODEL, schema=SCHEMA).tail_json)
    requests = []
    for sku, path in frame.iter_rows():  # the per-row loop is the point of this variant
        data = Path(path).read_bytes()
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        text = types.Part(text=f"Write the alt text for the photo of product {sku}: ")
        content = types.Content(role="user", parts=[text, types.Part.from_bytes(data=data, mime_type=mime)])
        requests.append(types.InlinedRequest(contents=[content], metadata={"key": sku}))
    lines = []
    for request in requests:
        contents = [c.model_dump(mode="json", exclude_none=True) for c in request.contents]  # type: ignore[union-attr]
        body = {"contents": contents, **generation}
        lines.append(json.dumps({"key": request.metadata["key"], "request": body}).encode())  # type: ignore[index]
    sent = sum(len(line) + 1 for line in lines)
    return {"requests": len(requests), "uploads": 0, "sent_bytes": sent, "upload_bytes": 0, "request_bytes": sent}


def plan_way(frame: pl.DataFrame) -> dict[str, Any]:
    """`make_plan` with a media column: hash, dedup by content, choose each media's transport."""
    spec = build_spec(MODEL, schema=SCHEMA)
    plan = make_plan(frame, TEMPLATE, spec, Limits(), media_columns("photo", TEMPLATE, frame.collect_schema()))
    assert plan.media is not None
    uploads = plan.media.filter(pl.col("transport") == "upload")
    upload_bytes = int(uploads.get_column("size").sum())
    request_bytes = int(plan.requests.get_column(NBYTES).sum())
    inline = int((plan.media.get_column("transport") == "inline").sum())
    return {"requests": plan.requests.height, "media": plan.media.height, "inline_media": inline,
            "uploads": uploads.height, "upload_bytes": upload_bytes, "request_bytes": request_bytes,
            "sent_bytes": upload_bytes + request_bytes}  # fmt: skip


def e2e_way(frame: pl.DataFrame, url: str) -> dict[str, Any]:
    """`df.gemini.submit(..., media="photo")`, then `run.result()`: the typed frame, against the emulator at `url`.
    The two halves are timed apart, each with its own peak: submit plans, uploads the media and the request file and
    creates the job; result polls, downloads the results and joins the typed columns to the frame."""
    client = genai.Client(api_key="emulator-key", http_options=types.HttpOptions(base_url=url))
    start = time.perf_counter()
    run = frame.gemini.submit(
        TEMPLATE, model=MODEL, schema=SCHEMA, media="photo", client=client, poll_interval=0.05, progress=False
    )
    submitted, submit_peak = time.perf_counter(), peak_bytes()
    reset_peak()
    out = run.result()
    run.close()
    errors = int(out.get_column("response_error").is_not_null().sum())
    return {"requests": run.plan.requests.height, "rows_with_error": errors, "answered": out.height,
            "submit_seconds": submitted - start, "result_seconds": time.perf_counter() - submitted,
            "submit_peak_bytes": submit_peak, "result_peak_bytes": peak_bytes()}  # fmt: skip


def serve() -> None:
    """The emulator for `e2e`, in its own process: prints its URL, then on stdin EOF prints its uploads."""
    from polars_gemini.emulator import Emulator

    with Emulator() as emu:
        print(emu.url, flush=True)
        sys.stdin.read()
        uploads = [{"mime": u.mime_type, "size": u.size, "sha256": u.sha256} for u in emu.uploads]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"uploads": uploads, "cpu_seconds": usage.ru_utime + usage.ru_stime}), flush=True)


def measure(variant: str, folder: Path, rows: int) -> dict[str, Any]:
    base = rss_bytes()  # this interpreter with the library imported, before any input
    frame = build_inputs(folder, rows)
    server = None
    if variant == "e2e":
        server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert server.stdout is not None and server.stdin is not None
        url = server.stdout.readline().strip()
    exact = reset_peak()
    start = time.perf_counter()
    if variant == "seed":
        record = seed_way(frame)
    elif variant == "plan":
        record = plan_way(frame)
    else:
        record = e2e_way(frame, url)
    seconds = time.perf_counter() - start
    peak = peak_bytes() - base
    if server is not None:
        seen = json.loads(server.communicate("")[0])
        media = [u for u in seen["uploads"] if u["mime"].startswith("image/")]
        upload_bytes = sum(u["size"] for u in media)
        request_bytes = sum(u["size"] for u in seen["uploads"]) - upload_bytes
        record["submit_peak_bytes"] -= base
        record["result_peak_bytes"] -= base
        peak = max(record["submit_peak_bytes"], record["result_peak_bytes"])
        record |= {"uploads": len(media), "distinct_uploads": len({u["sha256"] for u in media}),
                   "upload_bytes": upload_bytes, "request_bytes": request_bytes,
                   "sent_bytes": upload_bytes + request_bytes, "emulator_cpu_seconds": seen["cpu_seconds"]}  # fmt: skip
    return record | {"variant": variant, "rows": rows, "seconds": seconds, "peak_bytes": peak, "peak_exact": exact}


# -- the driver -----------------------------------------------------------------------------------------------------


def table(records: list[dict[str, Any]]) -> str:
    seed = next((r for r in records if r["variant"] == "seed"), None)

    def ratio(value: float, of: str, invert: bool = False) -> str:
        if seed is None or not value:
            return "—"
        x = seed[of] / value
        return f"{x:.1f}x" if not invert else f"{1 / x:.2f}"

    lines = [
        "| variant | s | x faster than seed | MB sent | uploads | of seed's bytes | peak MB | of seed's peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['variant']} | {r['seconds']:.2f} | {ratio(r['seconds'], 'seconds')} | {r['sent_bytes'] / 1e6:,.0f} "
            f"| {r['uploads']:,} | {ratio(r['sent_bytes'], 'sent_bytes', True)} | {r['peak_bytes'] / 1e6:,.0f} "
            f"| {ratio(r['peak_bytes'], 'peak_bytes', True)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--variants", default="seed,plan,e2e", help="comma-separated: seed, plan, e2e")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON results go")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = Path(tempfile.gettempdir()) / f"polars-gemini-media-v{VERSION}" / str(args.rows)
    if args.serve:
        serve()
        return
    if args.one:
        print(json.dumps(measure(args.one, folder, args.rows)))
        return
    start = time.perf_counter()
    frame = build_inputs(folder, args.rows)
    files = {Path(p) for p in frame.get_column("photo")}
    size = sum(p.stat().st_size for p in files)
    print(f"{args.rows:,} rows, {len(files):,} files, {size / 1e6:,.0f} MB under {folder} "
          f"({time.perf_counter() - start:.1f} s)", flush=True)  # fmt: skip
    records = []
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--one", variant, "--rows", str(args.rows)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        records.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {variant:5} {records[-1]['seconds']:7.2f} s", flush=True)
    print(table(records))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": args.rows, "files": len(files), "file_bytes": size, "records": records},
                                   indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
