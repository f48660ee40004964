from __future__ import annotations

from collections.abc import Iterator

import pytest

from polars_gemini.emulator.gcs import GcsEmulator


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsEmulator]:
    """One Cloud Storage emulator for the session (each test makes a bucket of its own)."""
    with GcsEmulator() as server:
        yield server
