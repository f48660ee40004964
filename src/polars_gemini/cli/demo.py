"""`polars-gemini demo`: a realistic typed batch job end to end, on the emulator unless `--live`."""

from __future__ import annotations

import os
import time
from contextlib import ExitStack

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


def run(*, rows: int = 2_000, live: bool = False) -> pl.DataFrame:
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
    return out
