"""Invariants, with hypothesis: rows come back exactly once in order; keys are deterministic and unique."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import polars_gemini  # noqa: F401
from polars_gemini import GeminiBatchWarning
from polars_gemini.emulator import Emulator, responses
from polars_gemini.prepare.requests import build_spec, request_keys

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}
# Arbitrary text: braces, emoji, control characters, quotes, backslashes, lone surrogates excluded (not UTF-8).
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
ROWS = st.lists(st.one_of(st.none(), TEXT, st.sampled_from(["dup", "{x}", "}}{{", '😀\x00\n"\\'])), max_size=25)


echo = responses.reply(lambda request: "echo:" + request.text)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(responder=echo) as emulator:
        yield emulator


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, file_transport=st.booleans(), per_job=st.sampled_from([None, 1, 4]))
def test_every_row_returns_exactly_once_in_order(
    emu: Emulator, rows: list[str | None], file_transport: bool, per_job: int | None
) -> None:
    emu.settings.shuffle_results = file_transport
    df = pl.DataFrame({"i": range(len(rows)), "t": rows}, schema={"i": pl.Int64, "t": pl.String})
    with warnings.catch_warnings():
        # Examples with the same distinct prompts are the same work: re-attaching to the earlier job is correct,
        # and the promise below must hold for re-attached runs too.
        warnings.simplefilter("ignore", GeminiBatchWarning)
        out = df.gemini.batch(
            "<{t}>",
            model="gemini-2.0-flash",
            client=emu.client(),
            max_requests_per_job=per_job,
            inline_limit_bytes=1 if file_transport else None,
            **FAST,
        )
    assert out.get_column("i").to_list() == list(range(len(rows)))
    assert out.get_column("t").to_list() == rows
    expected = [None if t is None else f"echo:<{t}>" for t in rows]
    assert out.get_column("response").to_list() == expected
    assert out.get_column("response_error").is_null().to_list() == [t is not None for t in rows]


@given(prompts=st.lists(TEXT, min_size=1, max_size=30, unique=True))
def test_keys_are_deterministic_and_unique(prompts: list[str]) -> None:
    spec = build_spec("gemini-2.5-flash", system_instruction="Be terse.")
    keys = request_keys(pl.Series(prompts), spec)
    assert keys.n_unique() == len(prompts)
    assert keys.equals(request_keys(pl.Series(prompts), build_spec("gemini-2.5-flash", system_instruction="Be terse.")))
    other = request_keys(pl.Series(prompts), build_spec("gemini-2.5-flash", system_instruction="Be verbose."))
    assert not set(keys.to_list()) & set(other.to_list())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, file_transport=st.booleans(), per_job=st.sampled_from([None, 1, 4]))
def test_every_row_gets_its_own_embedding_exactly_once_in_order(
    emu: Emulator, rows: list[str | None], file_transport: bool, per_job: int | None
) -> None:
    emu.settings.shuffle_results = file_transport
    df = pl.DataFrame({"i": range(len(rows)), "t": rows}, schema={"i": pl.Int64, "t": pl.String})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeminiBatchWarning)  # the same work again re-attaches: correct, as above
        out = df.gemini.embed(
            "<{t}>", client=emu.client(), output_dimensionality=8, normalize=False, max_requests_per_job=per_job,
            inline_limit_bytes=1 if file_transport else None, **FAST,
        )  # fmt: skip
    assert out.get_column("i").to_list() == list(range(len(rows)))
    assert out.get_column("t").to_list() == rows
    assert out.schema["embedding"] == pl.Array(pl.Float32, 8)
    got = out.get_column("embedding").to_list()
    for text, vector in zip(rows, got, strict=True):
        if text is None:
            assert vector is None
        else:
            assert vector == pytest.approx(responses.embedding(f"<{text}>", dimensions=8), abs=1e-7)
    assert out.get_column("embedding_error").is_null().to_list() == [t is not None for t in rows]
