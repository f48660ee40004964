"""pytest fixtures for the emulator, registered through the `pytest11` entry point.

    def test_job(gemini_client):
        job = gemini_client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}])
        assert gemini_client.batches.get(name=job.name).state.name == "JOB_STATE_SUCCEEDED"

    @pytest.mark.parametrize("gemini_emulator", [{"pending_seconds": 1.0}], indirect=True)
    def test_pending(gemini_emulator): ...

Importing this module imports nothing else: the server is loaded when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from google import genai

    from polars_gemini.emulator._emulator import Emulator


@pytest.fixture
def gemini_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A fresh running `Emulator` per test (arguments from indirect parametrization), stopped afterwards."""
    from polars_gemini.emulator._emulator import Emulator

    with Emulator(**getattr(request, "param", {})) as emulator:
        yield emulator


@pytest.fixture
def gemini_client(gemini_emulator: Emulator) -> genai.Client:
    """A `google.genai.Client` talking to `gemini_emulator`."""
    return gemini_emulator.client()
