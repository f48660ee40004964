"""Shared helpers for the core tests."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polars_gemini.emulator import responses
from polars_gemini.emulator.s3 import S3Emulator

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}


# Answers every prompt with "echo: <prompt>", so tests can check which answer reached which row.
echo = responses.reply(lambda request: "echo: " + request.text)


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


@dataclass
class Place:
    """Where a test's checkpoint lives: a local directory, or a prefix of a bucket on the session's S3 server.

    `kwargs` go to batch()/submit()/resume()/checkpoint_status(); `env` is what a worker process needs to reach it
    (credentials from the environment, as a scheduled job would have them)."""

    kind: str
    checkpoint: str
    storage_options: dict[str, str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    s3: S3Emulator | None = None
    bucket: str = ""

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "storage_options": self.storage_options}

    def stored(self) -> list[str]:
        """The objects of a remote checkpoint (relative to its prefix); the files of a local one."""
        if self.s3 is None:
            root = Path(self.checkpoint)
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        prefix = self.checkpoint.removeprefix(f"s3://{self.bucket}/") + "/"
        return [k.removeprefix(prefix) for k in self.s3.keys(self.bucket, prefix)]

    def _object(self, relative: str) -> str:
        """The key of the object that a remote checkpoint's `index.json` maps `relative` to, read from the bucket."""
        return f"{self._prefix()}/{json.loads(self.read_raw('index.json'))['files'][relative]}"

    def _prefix(self) -> str:
        return self.checkpoint.removeprefix(f"s3://{self.bucket}/")

    def read_raw(self, key: str) -> bytes:
        """The bytes of a file of a local checkpoint, or of an object under a remote one's prefix, by its own name."""
        if self.s3 is None:
            return (Path(self.checkpoint) / key).read_bytes()
        return bytes(self.s3.client().get_object(Bucket=self.bucket, Key=f"{self._prefix()}/{key}")["Body"].read())

    def read(self, relative: str) -> bytes:
        """The current content of checkpoint file `relative` (`results/x.parquet`), read past the library: the file,
        or the object the index points at."""
        if self.s3 is None:
            return self.read_raw(relative)
        key = self._object(relative)
        return bytes(self.s3.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def overwrite(self, relative: str, data: bytes) -> None:
        """Replace the content of checkpoint file `relative` behind the library's back (to corrupt it)."""
        if self.s3 is None:
            (Path(self.checkpoint) / relative).write_bytes(data)
        else:
            self.s3.client().put_object(Bucket=self.bucket, Key=self._object(relative), Body=data)

    def names(self, folder: str) -> list[str]:
        """The checkpoint's files under `folder` (at any depth), relative to the checkpoint, sorted."""
        if self.s3 is None:
            root = Path(self.checkpoint)
            return sorted(str(p.relative_to(root)) for p in (root / folder).rglob("*") if p.is_file())
        files = json.loads(self.read_raw("index.json"))["files"]
        return sorted(name for name in files if name.startswith(f"{folder}/"))


def make_place(kind: str, tmp_path: Path, s3: S3Emulator | None, name: str = "ckpt") -> Place:
    if kind == "dir":
        return Place("dir", str(tmp_path / name))
    assert s3 is not None
    bucket = f"test-{secrets.token_hex(6)}"
    s3.create_bucket(bucket)
    return Place("s3", f"s3://{bucket}/runs/{name}", s3.storage_options(), s3.environ(), s3, bucket)
