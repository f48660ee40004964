from __future__ import annotations

from collections.abc import Iterator

import pytest
from reliability_support import echo

from polars_gemini.emulator import Emulator


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(responder=echo) as emulator:
        yield emulator
