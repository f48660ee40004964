"""`polars-gemini demo`: a realistic typed batch job end to end, on the emulator unless `--live`."""

from __future__ import annotations

import os
import struct
import tempfile
import time
import zlib
from contextlib import ExitStack
from pathlib import Path

import polars as pl

from polars_gemini.core.errors import ConfigurationError

_PRODUCTS = (
    "espresso machine",
    "trail running shoes",
    "noise-cancelling headphones",
    "standing desk",
    "air fryer",
    "e-reader",
    "mechanical keyboard",
    "baby stroller",
    "tent",
    "smart thermostat",
)
_OPENERS = (
    "I bought this {p} last month",
    "We have used the {p} daily for a year",
    "Got the {p} as a gift",
    "Returned my old one and tried this {p}",
    "After two weeks with the {p}",
)
_VERDICTS = (
    "and it is honestly the best purchase I made this year.",
    "and it broke after three days.",
    "and it does the job, nothing more.",
    "but the app keeps crashing and support never answered.",
    "and the build quality surprised me, solid and quiet.",
    "but it arrived scratched and late.",
    "and I would buy it again without thinking.",
    "but the price is hard to justify.",
)
_DETAILS = (
    "Battery life is as advertised.",
    "Setup took five minutes.",
    "The manual is useless.",
    "Shipping was quick.",
    "It is louder than I expected.",
    "My kids love it.",
    "",
)

SCHEMA = {
    "sentiment": pl.Enum(["positive", "negative", "neutral"]),
    "confidence": pl.Float64,
    "topics": pl.List(pl.String),
    "needs_follow_up": pl.Boolean,
}
TEMPLATE = "Classify this product review. Review: {review}\nRating given: {stars} stars"


def reviews(n: int = 2_000, seed: int = 7) -> pl.DataFrame:
    """Deterministic synthetic product reviews (with some exact duplicates, as real data has)."""
    i = pl.int_range(0, n, eager=True)
    h = (i * 2_654_435_761 + seed) % 4_294_967_291

    def pick(options: tuple[str, ...], salt: int) -> pl.Expr:
        return pl.lit(pl.Series(options)).get((h // salt) % len(options))

    return pl.DataFrame({"review_id": i}).with_columns(
        pl.format("{} {} {}", pick(_OPENERS, 1), pick(_VERDICTS, 7), pick(_DETAILS, 53))
        .str.replace("{p}", pick(_PRODUCTS, 389), literal=True)
        .str.strip_chars()
        .alias("review"),
        ((h // 3) % 5 + 1).cast(pl.Int8).alias("stars"),
    )


IMAGE_SCHEMA = {
    "caption": pl.String,
    "main_colour": pl.Enum(["red", "green", "blue", "yellow", "purple", "grey"]),
    "shape": pl.Enum(["square", "circle", "stripes"]),
}
IMAGE_TEMPLATE = "Caption this product photo in one sentence, then name its main colour and shape: {photo}"
# Captions need no thinking: a budget of 0 makes the job about seven times cheaper (the estimate says so).
_CAPTION_CONFIG = {"max_output_tokens": 512, "thinking_config": {"thinking_budget": 0}}
_COLOURS = {"red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (230, 200, 40),
            "purple": (130, 50, 160), "grey": (128, 128, 128)}  # fmt: skip


def photo_png(colour: str, shape: str, size: int, shift: int = 0) -> bytes:
    """A `size` x `size` PNG of a `colour` square, circle or stripes on white, its centre moved by `shift` pixels:
    pure Python, no imaging library."""
    rgb, white, c, r = bytes(_COLOURS[colour]), bytes((250, 250, 250)), size / 2 + shift, size / 3

    def inside(x: int, y: int) -> bool:
        if shape == "square":
            return abs(x - c) < r and abs(y - c) < r
        if shape == "circle":
            return (x - c) ** 2 + (y - c) ** 2 < r**2
        return (x // 6) % 2 == 0

    raw = b"".join(b"\x00" + b"".join(rgb if inside(x, y) else white for x in range(size)) for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def images(directory: Path, n: int = 200) -> pl.DataFrame:
    """`n` small generated product photos written to `directory`; every tenth one is an earlier picture under
    another name (as photo libraries have), so it is sent once."""
    directory.mkdir(parents=True, exist_ok=True)
    colours, shapes = list(_COLOURS), ["square", "circle", "stripes"]
    rows = []
    for i in range(n):
        k = i if i % 10 else i // 2
        colour, shape, size = colours[k % len(colours)], shapes[(k // 6) % 3], 48 + (k % 5) * 16
        path = directory / f"photo_{i:04d}.png"
        path.write_bytes(photo_png(colour, shape, size, shift=(k // 18) % 9 - 4))
        rows.append((i, str(path), colour, shape))
    return pl.DataFrame(rows, schema=["photo_id", "photo", "colour_truth", "shape_truth"], orient="row")


def caption_images(client: object, poll: float, n: int = 200) -> pl.DataFrame:
    """The media part of the demo: caption a generated photo library into typed columns, with an estimate first."""
    import polars_gemini

    with tempfile.TemporaryDirectory(prefix="polars-gemini-demo-") as tmp:
        photos = images(Path(tmp), n)
        print(f"\nImages: {photos.height} generated product photos -> typed captions ({tmp})\n")
        estimate = polars_gemini.estimate(photos, IMAGE_TEMPLATE, model="gemini-2.5-flash", schema=IMAGE_SCHEMA,
                                          media="photo", config=_CAPTION_CONFIG)  # fmt: skip
        print(estimate, "\n")
        out = polars_gemini.batch(
            photos, IMAGE_TEMPLATE, model="gemini-2.5-flash", schema=IMAGE_SCHEMA, media="photo",
            client=client, poll_interval=poll, config=_CAPTION_CONFIG,  # type: ignore[arg-type]
            max_cost=(estimate.cost_max or 0.0) * 1.01,
        )  # fmt: skip
    print(out.select("photo_id", *IMAGE_SCHEMA, "response_error").head(5))
    print(f"rows with an error: {out.get_column('response_error').is_not_null().sum()}")
    return out


def run(*, rows: int = 2_000, live: bool = False, photos: int = 200) -> pl.DataFrame:
    import polars_gemini

    if rows < 1:
        raise ConfigurationError(f"The demo needs at least 1 row, got rows={rows}. Hint: try the default, 2,000.")
    df = reviews(rows)
    with ExitStack() as stack:
        if live:
            if not os.environ.get("GEMINI_API_KEY"):
                raise SystemExit("--live needs GEMINI_API_KEY in the environment.")
            client, where, poll = None, "the real Gemini API", 30.0
        else:
            from polars_gemini.emulator import Emulator

            if os.environ.get("GEMINI_API_KEY"):
                print("GEMINI_API_KEY is set; the demo still uses the emulator unless you pass --live (costs money).")
            emu = stack.enter_context(Emulator(pending_seconds=0.5, running_seconds=1.5))
            client, where, poll = emu.client(), f"the local emulator at {emu.url}", 0.2
        print(f"polars-gemini demo: {df.height:,} reviews -> typed labels through {where}\n")
        print(df.head(3), "\n")
        config = {"temperature": 0.0, "max_output_tokens": 2_048}
        estimate = polars_gemini.estimate(df, TEMPLATE, model="gemini-2.5-flash", schema=SCHEMA, config=config)
        print(estimate, "\n")
        start = time.perf_counter()
        run = polars_gemini.submit(
            df, TEMPLATE, model="gemini-2.5-flash", schema=SCHEMA, client=client, poll_interval=poll, config=config,
            max_cost=(estimate.cost_max or 0.0) * 1.01,
        )  # fmt: skip
        out = run.result()
        print(f"\nDone in {time.perf_counter() - start:.1f} s. Head of the typed result:\n")
        print(out.select("review_id", "stars", *SCHEMA, "response_error").head(8))
        print(f"\n{run.cost()}")
        counts = out.group_by("sentiment").len().sort("sentiment")
        print(
            "\n",
            counts,
            f"\nrows with an error: {out.get_column('response_error').is_not_null().sum()}",
            sep="",
        )
        if photos:
            caption_images(client, poll, photos)
    return out
