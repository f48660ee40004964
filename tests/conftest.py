from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polars_gemini.emulator import Emulator
from polars_gemini.emulator.gcs import GcsEmulator
from testing_support import Place, echo, make_place


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator whose answers echo the prompt."""
    with Emulator(responder=echo) as emulator:
        yield emulator


@pytest.fixture
def vertex_emu(gcs_emulator: GcsEmulator) -> Iterator[Emulator]:
    """An emulator whose answers echo the prompt, whose Vertex AI jobs use the session's Cloud Storage emulator."""
    with Emulator(responder=echo, storage_url=gcs_emulator.url) as emulator:
        yield emulator


@pytest.fixture(params=["dir", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    """A checkpoint location, once a local directory and once a prefix on the session's S3 server."""
    s3 = request.getfixturevalue("s3_emulator") if request.param == "s3" else None
    return make_place(request.param, tmp_path, s3)
