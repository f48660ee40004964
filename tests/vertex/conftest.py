from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polars_gemini.emulator.bigquery import BigQueryEmulator, environment
from polars_gemini.emulator.gcs import GcsEmulator


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsEmulator]:
    """One Cloud Storage emulator for the session (each test makes a bucket of its own)."""
    with GcsEmulator() as server:
        yield server


@pytest.fixture(scope="session")
def bigquery() -> Iterator[BigQueryEmulator]:
    """One BigQuery emulator (bqemulator) for the session, in an environment of its own next to the project's
    (`.venv-bqemulator`, made on first use): bqemulator's grpcio-tools caps protobuf below 7, which the exact
    tokenizer's sentencepiece cannot load with. Each test makes a dataset of its own."""
    python = environment(Path(__file__).parents[2] / ".venv-bqemulator")
    with BigQueryEmulator(project="test-project", python=python) as server:
        yield server
