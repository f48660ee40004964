from __future__ import annotations

from collections.abc import Iterator

import pytest

from polars_gemini.emulator import Emulator
from testing_support import echo


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator whose answers echo the prompt."""
    with Emulator(responder=echo) as emulator:
        yield emulator
