"""Shared helpers for the core tests."""

from __future__ import annotations

from typing import Any

from polars_gemini.emulator import ResponderRequest, responses

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}


def echo(request: ResponderRequest) -> dict[str, Any]:
    """Answer every prompt with 'echo: <prompt>' so tests can check which answer reached which row."""
    return responses.text("echo: " + request.text)(request)


def make_png(width: int, height: int, seed: int = 0) -> bytes:
    """A real, valid RGB PNG of `width` x `height` whose pixels (and so bytes) depend on `seed`."""
    import random
    import struct
    import zlib

    rng = random.Random(seed)  # noise: the file is about as large as its pixels (3 bytes each)
    raw = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def digest(data: bytes) -> str:
    """The short digest of a media part's bytes that the emulator's default answers carry."""
    import hashlib

    return hashlib.sha256(data).hexdigest()[:12]
