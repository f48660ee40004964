"""Deterministic, meaningful embedding vectors: what the emulator serves and `responses.embedding` returns.

A bag of words: each lowercased word (`\\w+`) maps to a fixed pseudo-random direction, seeded by a hash of the model
and the word, and a text's vector is the sum over its words (a word twice counts twice), plus a small direction of
the whole text (so two distinct texts never coincide), plus a small direction of the task type (the same text embedded
for RETRIEVAL_QUERY and CLUSTERING differs slightly, as task-tuned embeddings do). A `title` counts, at half weight,
only with RETRIEVAL_DOCUMENT (the only task type it applies to). Near-duplicate texts therefore have cosine similarity
near 1, unrelated texts near 0, and each model has its own space.

Normalization follows the real service (Gemini API embeddings guide, "Ensuring quality for smaller dimensions"):
the full-size output (3072 values) is unit length; a smaller `outputDimensionality` returns the first values of that
same vector (Matryoshka truncation), not renormalized. The real result file (samples/
result_file_embeddings_gemini-embedding-001.jsonl) shows it: 3 values of norm 0.038. Values are rounded to 10 decimal
places, which prints like the service's float32 values (`-0.034119852`, `0.0025719088`).

A direction is `A[i] * B[j] * C[k]` (elementwise) for three fixed 256 x 3072 random tables (9 MB, built once) and
i, j, k from a 64-bit hash: products of independent rows are nearly orthogonal unless all three indices agree (1 in
16.7 million), and one costs two multiplications where a seeded random generator costs ~25 us. Word directions are
kept in a bounded LRU cache (`_WordCache`). Measured on this project's 2-CPU machine, a 3,000-row job of 15-word texts
costs ~0.55 s of CPU at 768 dimensions and ~1 s at 3072, token counting included; most of the difference is turning
9 million values into Python floats, which their JSON encoding (and the SDK's parsing) then dwarfs.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FULL_DIMENSIONS = 3072
_ROWS = 256
_WORD = re.compile(r"\w+")
_TEXT_WEIGHT = 0.15  # the whole text's own direction, relative to the length of its bag of words
_TASK_WEIGHT = 0.1
_TITLE_WEIGHT = 0.5
_DECIMALS = 1e10
Vector = npt.NDArray[np.float64]
_tables: list[npt.NDArray[np.float32]] = []
_tables_lock = threading.Lock()


@dataclass(frozen=True)
class Spec:
    """What one embedding depends on: the (already truncated) text, model, task type, title and output size."""

    text: str
    model: str = "gemini-embedding-001"
    task_type: str | None = None
    title: str | None = None
    dimensions: int | None = None


def vectors(specs: Sequence[Spec]) -> list[list[float]]:
    """The served values of each spec, in order. Each row is computed alone and rounding is elementwise, so a batch
    equals its rows embedded one by one."""
    return [_served(_full(spec), spec.dimensions) for spec in specs]


def _served(full: Vector, dimensions: int | None) -> list[float]:
    """The first `dimensions` values (all without), rounded: only the part served is rounded and converted."""
    prefix = full[: dimensions or FULL_DIMENSIONS]
    values: list[float] = (np.rint(prefix * _DECIMALS) / _DECIMALS).tolist()
    return values


def _full(spec: Spec) -> Vector:
    """The unit-length full-size vector: words (and title words) from the cache, plus the text's and task's own."""
    weights: dict[str, float] = dict(Counter(_words(spec.text)))
    if spec.title and spec.task_type == "RETRIEVAL_DOCUMENT":
        for word, count in Counter(_words(spec.title)).items():
            weights[word] = weights.get(word, 0) + _TITLE_WEIGHT * count
    # Directions are nearly orthogonal, so the bag's length is about the root of its squared weights.
    scale = max(1.0, math.sqrt(sum(w * w for w in weights.values())))
    total = _WORDS.weighted_sum(spec.model, weights)
    total += (_TEXT_WEIGHT * scale) * _direction(_seed(spec.model, "text", spec.text))
    if spec.task_type:
        total += (_TASK_WEIGHT * scale) * _direction(_seed(spec.model, "task", spec.task_type))
    unit: Vector = total / math.sqrt(float(total @ total))
    return unit


def _words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


class _WordCache:
    """Word directions in the rows of one float32 matrix, least recently used evicted past `capacity` words.

    One matrix rather than an array per word: a text's bag of words is then one gather and one matrix-vector product
    (~20 us for 15 words), where summing separate arrays costs ten times that. Grows by doubling up to 12 KB x
    `capacity` (48 MB at 4,096 words); thread-safe.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._slots: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._rows = np.empty((0, FULL_DIMENSIONS), dtype=np.float32)

    def weighted_sum(self, model: str, weights: Mapping[str, float]) -> Vector:
        if not weights:
            return np.zeros(FULL_DIMENSIONS)
        keys = [(model, word) for word in weights]
        if len(keys) > self._capacity // 2:  # so many words that filling the cache could evict some of them
            gathered = np.stack([_direction(_seed(model, "word", word)) for word in weights]).astype(np.float32)
        else:
            gathered = self._gather(keys)
        total: Vector = (np.fromiter(weights.values(), np.float32, len(weights)) @ gathered).astype(np.float64)
        return total

    def _gather(self, keys: list[tuple[str, str]]) -> npt.NDArray[np.float32]:
        with self._lock:
            known, touch = self._slots.get, self._slots.move_to_end
            found = [known(key) for key in keys]
            for key, slot in zip(keys, found, strict=True):
                if slot is not None:
                    touch(key)  # before any eviction below, which takes the least recently used
            slots = [self._slot(key) if slot is None else slot for key, slot in zip(keys, found, strict=True)]
            return self._rows[slots]

    def _slot(self, key: tuple[str, str]) -> int:
        """The row of a word not in the cache: a free one, or the least recently used word's (callers hold the lock)."""
        if len(self._slots) < self._capacity:
            slot = len(self._slots)
            if slot == len(self._rows):
                grown = np.empty((min(self._capacity, max(256, 2 * slot)), FULL_DIMENSIONS), dtype=np.float32)
                grown[:slot] = self._rows
                self._rows = grown
        else:
            slot = self._slots.popitem(last=False)[1]
        self._rows[slot] = _direction(_seed(key[0], "word", key[1]))
        self._slots[key] = slot
        return slot


def _seed(model: str, kind: str, text: str) -> int:
    data = "\x1f".join((model, kind, text)).encode(errors="surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _direction(seed: int) -> Vector:
    """A pseudo-random direction (length about sqrt(3072), like every other) from a 64-bit seed: the product of
    three table rows picked by the seed, with the seed's sign."""
    a, b, c = _random_tables()
    i, j, k = seed & 0xFF, (seed >> 8) & 0xFF, (seed >> 16) & 0xFF
    product: Vector = (a[i] * b[j] * c[k]).astype(np.float64)
    return -product if seed >> 63 else product


def _random_tables() -> list[npt.NDArray[np.float32]]:
    """Three 256 x 3072 tables of standard normal float32 values, from a fixed seed (built on first use, once)."""
    if not _tables:
        with _tables_lock:
            if not _tables:
                rng = np.random.Generator(np.random.PCG64(20_260_101))
                _tables.extend(rng.standard_normal((3, _ROWS, FULL_DIMENSIONS), dtype=np.float32))
    return _tables


_WORDS = _WordCache(4096)
