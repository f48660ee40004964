"""pytest fixtures for the emulator, registered through the `pytest11` entry point.

    def test_job(gemini_client):
        job = gemini_client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}])
        assert gemini_client.batches.get(name=job.name).state.name == "JOB_STATE_SUCCEEDED"

    @pytest.mark.parametrize("gemini_emulator", [{"pending_seconds": 1.0}], indirect=True)
    def test_pending(gemini_emulator): ...

Vertex AI batch tests get a Cloud Storage emulator (`gcs_emulator`, one per test session, `STORAGE_EMULATOR_HOST`
set to it for the session so that no Cloud Storage client looks for real credentials), a fresh bucket per test
(`gcs_bucket`) and an `Emulator` wired to that storage (`vertex_emulator`, parametrizable like `gemini_emulator`):

    def test_vertex(vertex_emulator, gcs_bucket):
        gcs_bucket.blob("in/x.jsonl").upload_from_string('{"key": "k", "request": {"contents": [...]}}')
        client = vertex_emulator.vertex_client()
        job = client.batches.create(model="gemini-2.5-flash", src=f"gs://{gcs_bucket.name}/in/x.jsonl",
                                    config={"dest": f"gs://{gcs_bucket.name}/out"})

Checkpoints in object storage get an S3-compatible server (`s3_emulator`, moto's server mode, one per test session)
and a fresh bucket per test (`s3_bucket`, its name):

    def test_remote(s3_emulator, s3_bucket, gemini_client, df):
        df.gemini.batch("{text}", model="gemini-2.5-flash", client=gemini_client,
                        checkpoint=f"s3://{s3_bucket}/runs/x", storage_options=s3_emulator.storage_options())

Importing this module imports nothing else: the server is loaded when a fixture is first used.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from google import genai
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]  # google.cloud: a namespace package mypy may not resolve

    from polars_gemini.emulator._emulator import Emulator
    from polars_gemini.emulator.gcs import GcsEmulator
    from polars_gemini.emulator.s3 import S3Emulator


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


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """A running in-memory Cloud Storage emulator for the session, with `STORAGE_EMULATOR_HOST` pointing at it."""
    from polars_gemini.emulator.gcs import GcsEmulator

    with GcsEmulator() as gcs, pytest.MonkeyPatch.context() as patch:
        for name, value in gcs.environ().items():
            patch.setenv(name, value)
        yield gcs


@pytest.fixture
def gcs_bucket(gcs_emulator: GcsEmulator) -> storage.Bucket:
    """A new, empty bucket (a random `test-...` name) on the session's Cloud Storage emulator."""
    return gcs_emulator.create_bucket(f"test-{secrets.token_hex(6)}")


@pytest.fixture
def vertex_emulator(request: pytest.FixtureRequest, gcs_emulator: GcsEmulator) -> Iterator[Emulator]:
    """A fresh running `Emulator` reading and writing `gcs_emulator` (arguments from indirect parametrization)."""
    from polars_gemini.emulator._emulator import Emulator

    with Emulator(**{"storage_url": gcs_emulator.url, **getattr(request, "param", {})}) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def s3_emulator() -> Iterator[S3Emulator]:
    """A running in-memory S3-compatible server (moto) for the session."""
    from polars_gemini.emulator.s3 import S3Emulator

    with S3Emulator() as s3:
        yield s3


@pytest.fixture
def s3_bucket(s3_emulator: S3Emulator) -> str:
    """The name of a new, empty bucket (`test-...`) on the session's S3 server."""
    name = f"test-{secrets.token_hex(6)}"
    s3_emulator.create_bucket(name)
    return name
