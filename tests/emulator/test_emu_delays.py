"""Replies held back past the client's timeout (`delay_reply`), and the fault matrix switch (`inject`)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import httpx2
import pytest
from emulator_support import jsonl, prompt_lines, upload
from google import genai
from google.genai import errors, types

from polars_gemini.emulator import FAULTS, Emulator

_TIMEOUT_MS = 300


def _create(client: genai.Client) -> types.BatchJob:
    return client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi", "metadata": {"key": "a"}}])


def _finished_file_job(client: genai.Client) -> str:
    """A SUCCEEDED file-output job's results file name."""
    job = client.batches.create(model="gemini-2.0-flash", src=upload(client, jsonl(prompt_lines(2))).name or "")
    done = client.batches.get(name=job.name or "")
    assert done.dest is not None and done.dest.file_name is not None
    return done.dest.file_name


def test_lost_create_reply_times_out_but_the_job_exists(gemini_emulator: Emulator) -> None:
    gemini_emulator.delay_reply("batches.create", 1.0)
    started = time.perf_counter()
    with pytest.raises(httpx2.TimeoutException):  # httpx2.ReadTimeout: the SDK does not wrap it
        _create(gemini_emulator.client(timeout=_TIMEOUT_MS))
    assert time.perf_counter() - started < 0.9
    assert len(gemini_emulator.jobs) == 1 and gemini_emulator.calls("batches.create") == 1


def test_get_times_out_on_the_delayed_call_only(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client(timeout=_TIMEOUT_MS)
    job = _create(client)
    gemini_emulator.delay_reply("batches.get", 1.0, on_call=2)
    assert client.batches.get(name=job.name or "").state == types.JobState.JOB_STATE_SUCCEEDED
    with pytest.raises(httpx2.ReadTimeout):
        client.batches.get(name=job.name or "")
    assert client.batches.get(name=job.name or "").state == types.JobState.JOB_STATE_SUCCEEDED


def test_download_times_out_then_succeeds(gemini_emulator: Emulator) -> None:
    client = gemini_emulator.client(timeout=_TIMEOUT_MS)
    name = _finished_file_job(client)
    gemini_emulator.delay_reply("files.download", 1.0, times=2)
    for _ in range(2):
        with pytest.raises(httpx2.TimeoutException):
            client.files.download(file=name)
    assert client.files.download(file=name).count(b"\n") == 2


def test_a_delayed_reply_blocks_nothing_else(gemini_emulator: Emulator) -> None:
    gemini_emulator.delay_reply("batches.list", 1.0)
    slow_client, fast_client = gemini_emulator.client(), gemini_emulator.client()
    waited: list[float] = []
    slow = threading.Thread(target=lambda: waited.append(_timed(lambda: list(slow_client.batches.list()))))
    slow.start()
    time.sleep(0.1)
    assert _timed(lambda: _create(fast_client)) < 0.5 and _timed(lambda: list(fast_client.batches.list())) < 0.5
    slow.join(5)
    assert waited and waited[0] >= 1.0


def test_stop_does_not_wait_for_a_delayed_reply() -> None:
    emu = Emulator().start()
    client = emu.client()
    emu.delay_reply("batches.list", 60.0)
    caller = threading.Thread(target=lambda: _swallow(lambda: list(client.batches.list())))
    caller.start()
    time.sleep(0.2)
    assert _timed(emu.stop) < 2.0
    caller.join(5)
    assert not caller.is_alive()


def test_delay_reply_checks_its_arguments(gemini_emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="seconds > 0"):
        gemini_emulator.delay_reply("batches.get", 0)
    with pytest.raises(ValueError, match=r"did you mean 'batches\.get'"):
        gemini_emulator.delay_reply("batches.gte", 1.0)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("times", [1, 2])
def test_inject_maps_every_fault(gemini_emulator: Emulator, fault: str, times: int) -> None:
    client = gemini_emulator.client(timeout=_TIMEOUT_MS)
    gemini_emulator.inject("batches.list", fault, times=times, timeout_seconds=0.6)
    expected = httpx2.TimeoutException if fault == "timeout" else errors.APIError
    for _ in range(times):
        with pytest.raises(expected) as caught:
            list(client.batches.list())
        if fault != "timeout":
            assert isinstance(caught.value, errors.APIError) and caught.value.code == int(fault)
    assert list(client.batches.list()) == []


def test_inject_refuses_unknown_faults(gemini_emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="expected one of 429, 500, 503, timeout"):
        gemini_emulator.inject("batches.list", "404")


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _swallow(action: Callable[[], object]) -> None:
    """Runs `action`; the server going away mid-call is what the caller provokes, not a failure."""
    with contextlib.suppress(httpx2.HTTPError, errors.APIError):
        action()
