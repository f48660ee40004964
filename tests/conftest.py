from __future__ import annotations

from collections.abc import Iterator

import pytest

from polars_gemini.emulator import Emulator
from polars_gemini.emulator.gcs import GcsEmulator
from testing_support import echo


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
