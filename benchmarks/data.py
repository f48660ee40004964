"""Deterministic synthetic inputs for the benchmarks: review- and ticket-like frames and their results files.

Everything is vectorized (a splitmix64 generator written as Polars integer expressions, Polars string kernels)
and seeded, so a million rows take seconds and the
same `rows` and `seed` always give the same bytes. Texts are 100-2,000 characters (log-normal, median ~450), with
the things that make JSON encoding non-trivial in real data: quotes, newlines, a rare backslash, accented and
non-Latin characters. About 3% of rows repeat an earlier text exactly (reposts), and 0.1% have no text.

    >>> frame = reviews(1_000)
    >>> frame.columns
    ['id', 'kind', 'product', 'rating', 'priority', 'price', 'created', 'customer_id', 'text']
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import polars as pl

SEED = 20240601
VERSION = 1  # bump whenever a change here changes the generated data: it names the benchmarks' input cache
MODEL = "gemini-2.5-flash"
TEMPLATE = "Customer {kind} about {product}:\n\n{text}"
SYSTEM = (
    "You are a support analyst for an online electronics shop. Read the customer's review or support ticket and "
    "classify it. Be terse; never invent facts that are not in the text."
)
SENTIMENTS = ["negative", "neutral", "positive"]
SCHEMA: dict[str, Any] = {
    "sentiment": pl.Enum(SENTIMENTS),
    "confidence": pl.Float64,
    "topics": pl.List(pl.String),
    "urgent": pl.Boolean,
}
KINDS = pl.Enum(["review", "ticket"])
PRIORITIES = pl.Enum(["low", "normal", "high", "urgent"])

_PRODUCTS = [
    "wireless earbuds", "4K monitor", "mechanical keyboard", "robot vacuum", "espresso machine", "smartwatch",
    "gaming mouse", "USB-C hub", "air fryer", "e-reader", "bluetooth speaker", "laptop stand", "webcam",
    "noise-cancelling headphones", "phone case", "portable SSD", "smart thermostat", "electric toothbrush",
    "drone", "action camera", "router", "power bank", "standing desk", "office chair", "tablet", "printer",
]  # fmt: skip
_TOPICS = [
    "delivery", "billing", "battery", "sound quality", "build quality", "price", "support", "refund", "setup",
    "firmware", "packaging", "warranty", "connectivity", "display", "size", "noise", "app", "durability",
]  # fmt: skip
_REVIEW = [
    "I bought the {p} {n} weeks ago and {v}.",
    "Honestly the {p} {v}, which I did not expect at this price.",
    "The {t} is {a}; {v} after the last update.",
    'The box said "{q}" but the {p} {v}.',
    "My partner uses it every day and says the {t} is {a}.",
    "Compared with my old one, the {t} is {a} and the {p} {v}.",
    "After {n} days of use the {t} is still {a}.",
    "Would I buy it again? Probably, although the {t} is {a}.",
    "Five stars for the {t}, minus {n} for the fact that it {v}.",
    "Shipping took {n} days and the {t} was {a}.",
]
_TICKET = [
    "Order #{o} arrived on time but the {p} {v}.",
    "I have contacted support {n} times about the {t} and nobody answered.",
    "Please refund order #{o}: the {p} {v}.",
    "Error code E{n}{n} appears whenever I open the app; the {t} is {a}.",
    'Your agent told me "{q}", which turned out to be wrong.',
    "The invoice for order #{o} charges me twice for the {p}.",
    "Steps to reproduce: pair the {p}, wait {n} minutes, and it {v}.",
    "The log file at C:\\Users\\me\\AppData\\{o}.log says the {t} failed.",
    "Can you send a replacement? The {t} is {a} and it {v}.",
    "This is the {n}th time I write about the {t}. Escalate please.",
]
_FOREIGN = [
    "Die Lieferung war schnell, aber das Gerät {v_de}.",
    "La calidad es buena, pero el envío tardó {n} días.",
    "Très déçu : le produit {v_fr} après une semaine.",
    "Товар пришёл быстро, качество хорошее.",
    "配送は早かったですが、説明書が分かりにくいです。",
]
_VERBS = [
    "stopped charging", "works perfectly", "makes a clicking noise", "disconnects every few minutes",
    "feels cheap", "exceeded my expectations", "overheats quickly", "does exactly what it promises",
    "arrived with a cracked corner", "keeps resetting itself", "is lighter than it looks", "broke on day two",
]  # fmt: skip
_ADJECTIVES = ["excellent", "mediocre", "terrible", "fine", "better than advertised", "a letdown", "solid", "flimsy"]
_QUOTES = ["plug and play", "no setup needed", "free returns", "ships in 24 hours", "waterproof", "lifetime warranty"]
_GERMAN = ["funktioniert nicht mehr", "ist laut", "ist perfekt"]
_FRENCH = ["ne s'allume plus", "chauffe beaucoup", "fonctionne bien"]


_U64 = pl.UInt64


def _splitmix64(x: pl.Expr) -> pl.Expr:
    """splitmix64 over UInt64 (Polars integer arithmetic wraps): the same numbers on every platform and version,
    unlike `pl.Expr.hash`, which is documented as unstable."""
    z = x + pl.lit(0x9E3779B97F4A7C15, _U64)
    z = z.xor(z // (1 << 30)) * pl.lit(0xBF58476D1CE4E5B9, _U64)
    z = z.xor(z // (1 << 27)) * pl.lit(0x94D049BB133111EB, _U64)
    return z.xor(z // (1 << 31))


class Rng:
    """Vectorized draws; every call uses a fresh stream, so the sequence of calls fixes the data."""

    def __init__(self, seed: int) -> None:
        self.seed, self.stream = seed, 0

    def _bits(self, n: int) -> pl.Series:
        self.stream += 1
        base = _splitmix64(pl.lit((self.seed * 1_000_003 + self.stream) % 2**64, _U64)) // (1 << 24) * (1 << 24)
        return pl.select(_splitmix64(pl.int_range(0, n, dtype=_U64) + base)).to_series()

    def random(self, n: int) -> pl.Series:
        """Uniform floats in [0, 1)."""
        return (self._bits(n) // (1 << 11)).cast(pl.Float64) / float(1 << 53)

    def integers(self, low: int, high: int, n: int) -> pl.Series:
        """Uniform integers in [low, high) (Int64)."""
        return (self.random(n) * (high - low)).floor().cast(pl.Int64) + low

    def lognormal(self, median: float, sigma: float, n: int) -> pl.Series:
        """Box-Muller normals, exponentiated."""
        u1, u2 = 1.0 - self.random(n), self.random(n)
        normal = (-2.0 * u1.log()).sqrt() * (2 * math.pi * u2).cos()
        return (normal * sigma).exp() * median


def _pick(words: list[str], idx: pl.Series) -> pl.Series:
    return pl.Series(words, dtype=pl.String).gather(idx)


def _sentences(rng: Rng, templates: list[str], size: int) -> pl.Series:
    """`size` sentences: each a template with its `{p}`, `{v}`, ... slots filled by vectorized draws."""
    pieces = {"p": _PRODUCTS, "v": _VERBS, "t": _TOPICS, "a": _ADJECTIVES, "q": _QUOTES}
    pieces |= {"v_de": _GERMAN, "v_fr": _FRENCH}
    frame = pl.DataFrame({"s": _pick(templates, rng.integers(0, len(templates), size))})
    expr = pl.col("s")
    for slot, words in pieces.items():
        drawn = _pick(words, rng.integers(0, len(words), size))
        expr = expr.str.replace("{" + slot + "}", pl.lit(drawn), literal=True)
    numbers = rng.integers(2, 60, size).cast(pl.String)
    orders = rng.integers(100_000, 999_999, size).cast(pl.String)
    expr = expr.str.replace_all("{n}", pl.lit(numbers), literal=True).str.replace("{o}", pl.lit(orders), literal=True)
    return frame.select(expr).to_series()


def _texts(rng: Rng, is_ticket: pl.Series) -> pl.Series:
    """One text per row: sentences of the row's kind (5% foreign), joined, cut at 2,000 characters."""
    rows = len(is_ticket)
    pool_size = max(2_000, min(200_000, rows))
    foreign = max(500, pool_size // 20)
    pool = pl.concat(
        [_sentences(rng, _REVIEW, pool_size), _sentences(rng, _TICKET, pool_size), _sentences(rng, _FOREIGN, foreign)]
    )
    target = rng.lognormal(450.0, 0.7, rows).clip(100, 2_000)
    counts = (target / 70).round().cast(pl.Int64).clip(lower_bound=2)
    owner = pl.int_range(0, rows, eager=True).repeat_by(counts).explode().alias("row")
    total = len(owner)
    flat = pl.DataFrame({"row": owner, "ticket": is_ticket.gather(owner)}).with_columns(
        pick=pl.when(pl.Series(rng.random(total)) < 0.05)
        .then(2 * pool_size + pl.Series(rng.integers(0, foreign, total)))
        .otherwise(pl.Series(rng.integers(0, pool_size, total)) + pl.col("ticket").cast(pl.Int64) * pool_size),
        # A paragraph break after about one sentence in six, a space otherwise.
        sep=pl.when(pl.Series(rng.random(total)) < 0.16).then(pl.lit("\n\n")).otherwise(pl.lit(" ")),
    )
    flat = flat.with_columns(s=pool.gather(flat.get_column("pick")))
    joined = flat.group_by("row", maintain_order=True).agg(
        (pl.col("s") + pl.col("sep")).str.join("").str.strip_chars_end().alias("text")
    )
    # Two short sentences can fall under 100 characters: lend those rows the next row's text.
    text = pl.col("text")
    longer = pl.when(text.str.len_chars() < 100).then(text + " " + text.shift(-1).fill_null(text)).otherwise(text)
    return joined.select(longer.str.slice(0, 2_000)).get_column("text")


def reviews(rows: int, seed: int = SEED) -> pl.DataFrame:
    """`rows` customer reviews and support tickets with a few typed columns."""
    rng = Rng(seed)
    is_ticket = rng.random(rows) < 0.4
    text = _texts(rng, is_ticket)
    # Reposts: ~3% of rows repeat the text of an earlier row, so dedup has real work to do.
    index = pl.int_range(0, rows, eager=True)
    earlier = (rng.random(rows) * index).floor().cast(pl.Int64)
    text = text.gather(pl.select(pl.when(rng.random(rows) < 0.03).then(earlier).otherwise(index)).to_series())
    missing = rng.random(rows) < 0.001
    micros = rng.integers(0, 365 * 86_400, rows) * 1_000_000
    frame = pl.DataFrame(
        {
            "id": index + 1,
            "kind": pl.select(pl.when(is_ticket).then(pl.lit("ticket")).otherwise(pl.lit("review"))).to_series(),
            "product": _pick(_PRODUCTS, rng.integers(0, len(_PRODUCTS), rows)),
            "rating": rng.integers(1, 6, rows).cast(pl.Int8),
            "priority": _pick(PRIORITIES.categories.to_list(), rng.integers(0, 4, rows)),
            "price": rng.lognormal(60.0, 0.9, rows).round(2),
            "created": (micros + int(dt.datetime(2024, 1, 1).timestamp()) * 1_000_000).cast(pl.Datetime("us")),
            "customer_id": rng.integers(1, 250_000, rows).cast(pl.UInt32),
            "text": text,
        }
    )
    return frame.with_columns(
        pl.col("kind").cast(KINDS),
        pl.when(pl.col("kind") == "review").then(pl.col("rating")).alias("rating"),
        pl.when(pl.col("kind") == "ticket").then(pl.col("priority")).cast(PRIORITIES).alias("priority"),
        pl.when(pl.lit(missing)).then(None).otherwise(pl.col("text")).alias("text"),
    )


def _answers(rng: Rng, n: int, typed: bool) -> pl.Series:
    """Model answers: JSON objects that follow `SCHEMA` (typed) or one plain sentence (text)."""
    if not typed:
        return _sentences(rng, _REVIEW, n).alias("answer")
    topic_count = rng.integers(0, 4, n)
    owner = pl.int_range(0, n, eager=True).repeat_by(topic_count).explode()
    topics = pl.DataFrame({"row": owner, "t": _pick(_TOPICS, rng.integers(0, len(_TOPICS), len(owner)))})
    base = pl.DataFrame(
        {
            "row": pl.int_range(0, n, eager=True),
            "sentiment": _pick(SENTIMENTS, rng.integers(0, 3, n)),
            "confidence": rng.random(n).round(2),
            "urgent": rng.random(n) < 0.1,
        }
    )
    joined = base.join(topics.group_by("row").agg("t"), on="row", how="left").sort("row")
    topic_list = pl.col("t").fill_null(pl.lit([], pl.List(pl.String))).alias("topics")
    answer = pl.struct("sentiment", "confidence", topic_list, "urgent").struct.json_encode()
    return joined.select(answer.alias("answer")).to_series()


def results_file(keys: pl.Series, typed: bool, seed: int = SEED, model: str = MODEL) -> bytes:
    """A results file for `keys` in the real service's line shape (see the shared samples), in input order.

    0.3% of lines are per-request errors (`{"error": {...}, "key": ...}`) and 0.1% are answers cut off by
    MAX_TOKENS (typed answers then are truncated JSON), as the real service produces.
    """
    n = len(keys)
    rng = Rng(seed + 1)
    frame = pl.DataFrame(
        {
            "key": keys,
            "answer": _answers(rng, n, typed),
            "failed": rng.random(n) < 0.003,
            "truncated": rng.random(n) < 0.001,
            "prompt_tokens": rng.integers(30, 600, n),
            "thoughts": rng.integers(100, 1_200, n),
            "rid": rng.integers(0, 2**62, n).cast(pl.String).str.zfill(23),
        }
    )
    lines = frame.select(
        pl.when(pl.col("failed")).then(_error_line()).otherwise(_response_line(model)).alias("line")
    ).get_column("line")
    return (lines.str.join("\n").item() + "\n").encode()


def _response_line(model: str) -> pl.Expr:
    answer = pl.col("answer")
    text = pl.when(pl.col("truncated")).then(answer.str.slice(0, answer.str.len_chars() // 2)).otherwise(answer)
    out_tokens = (text.str.len_bytes() // 4 + 1).alias("candidatesTokenCount")
    details = pl.struct(pl.lit("TEXT").alias("modality"), pl.col("prompt_tokens").alias("tokenCount"))
    usage = pl.struct(
        (pl.col("prompt_tokens") + out_tokens + pl.col("thoughts")).alias("totalTokenCount"),
        pl.concat_list(details).alias("promptTokensDetails"),
        pl.col("thoughts").alias("thoughtsTokenCount"),
        out_tokens,
        pl.col("prompt_tokens").alias("promptTokenCount"),
    )
    content = pl.struct(pl.lit("model").alias("role"), pl.concat_list(pl.struct(text.alias("text"))).alias("parts"))
    finish = pl.when(pl.col("truncated")).then(pl.lit("MAX_TOKENS")).otherwise(pl.lit("STOP"))
    candidate = pl.struct(content.alias("content"), finish.alias("finishReason"), pl.lit(0).alias("index"))
    response = pl.struct(
        pl.col("rid").alias("responseId"),
        usage.alias("usageMetadata"),
        pl.concat_list(candidate).alias("candidates"),
        pl.lit(model).alias("modelVersion"),
    )
    return pl.struct(response.alias("response"), pl.col("key")).struct.json_encode()


def _error_line() -> pl.Expr:
    status = pl.struct(pl.lit(13).alias("code"), pl.lit("Internal error encountered.").alias("message"))
    return pl.struct(status.alias("error"), pl.col("key")).struct.json_encode()
