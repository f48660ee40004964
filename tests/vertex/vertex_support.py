"""The two backends behind one seam, for contract tests parametrized over both: the Gemini Developer API (files and
inline requests on the emulator) and Vertex AI batch prediction (request shards and predictions in a real Cloud
Storage emulator, jobs on the emulator's batchPredictionJobs endpoints)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from google import genai
from google.genai import types

from polars_gemini.emulator import Emulator, responses
from polars_gemini.emulator.gcs import GcsEmulator

RETRY = types.HttpRetryOptions(attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0.0)
FAST: dict[str, Any] = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False, "retry": RETRY}
BACKENDS = ("developer", "vertex")


echo = responses.reply(lambda request: "echo: " + request.text)


@dataclass
class Backend:
    """One backend: its emulator, the client to give the library, and the options that choose the backend."""

    kind: str
    emu: Emulator
    client: genai.Client
    options: dict[str, Any]
    gcs: GcsEmulator | None = None
    bucket: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def create(self) -> str:
        """The emulator's endpoint name of the call that creates a job (and bills it)."""
        return "vertex.batches.create" if self.kind == "vertex" else "batches.create"

    @property
    def poll(self) -> str:
        return "vertex.batches.get" if self.kind == "vertex" else "batches.get"

    def objects(self, prefix: str = "") -> list[str]:
        """Object names in the staging bucket (Vertex only)."""
        assert self.gcs is not None and self.bucket is not None
        return sorted(b.name for b in self.gcs.client().list_blobs(self.bucket, prefix=prefix))

    def display_names(self) -> list[str]:
        """The display name of every job the service holds (each one billed)."""
        return [j.get("displayName") or j.get("metadata", {}).get("displayName") for j in self.emu.jobs.values()]


@contextmanager
def backend(kind: str, gcs: GcsEmulator | None = None, **settings: Any) -> Iterator[Backend]:
    """A running backend of `kind` ("developer" or "vertex"), its emulator answering with `echo` unless told."""
    settings.setdefault("responder", echo)
    if kind == "developer":
        with Emulator(**settings) as emu:
            yield Backend(kind, emu, emu.client(), {"inline_limit_bytes": 0})
        return
    assert gcs is not None
    bucket = f"bucket-{uuid.uuid4().hex[:10]}"
    gcs.create_bucket(bucket)
    with Emulator(gcs=gcs, **settings) as emu:
        options = {"staging": f"gs://{bucket}/runs", "storage_client": gcs.client()}
        yield Backend(kind, emu, emu.vertex_client(), options, gcs, bucket)
