"""The three ways in: context manager, pytest fixtures, and the `polars-gemini emulator` command."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from emulator_support import prompt_lines, run_file_job
from google import genai
from google.genai import types

from polars_gemini.emulator import Emulator
from polars_gemini.emulator._cli import serve


def test_start_stop_without_context_manager() -> None:
    emu = Emulator().start()
    try:
        assert emu.url.startswith("http://127.0.0.1:")
        client = emu.client()
        assert list(client.batches.list()) == []
    finally:
        emu.stop()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.url


def test_fixtures_give_a_fresh_emulator(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    assert gemini_emulator.requests == [] and gemini_emulator.jobs == {} and gemini_emulator.files == {}
    gemini_client.batches.create(model="gemini-2.0-flash", src=[{"contents": "x"}])
    assert gemini_emulator.calls("batches.create") == 1 and len(gemini_emulator.jobs) == 1


@pytest.mark.parametrize("gemini_emulator", [{"pending_seconds": 60, "api_key": "k"}], indirect=True)
def test_fixture_takes_emulator_arguments(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    job = gemini_client.batches.create(model="gemini-2.0-flash", src=[{"contents": "x"}])
    assert gemini_client.batches.get(name=job.name or "").state == types.JobState.JOB_STATE_PENDING


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, polars_gemini, pytest; before = set(sys.modules); "
        "import polars_gemini.emulator.pytest_plugin; "
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['polars_gemini.emulator', 'polars_gemini.emulator.pytest_plugin']"


def test_cli_serves_until_terminated() -> None:
    command = [sys.executable, "-m", "polars_gemini.cli.main", "emulator", "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _first_line(process)
        assert line.startswith("Gemini API emulator listening on http://127.0.0.1:") and "(API key: any)" in line
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        client = genai.Client(api_key="any", http_options=types.HttpOptions(base_url=url))
        job = client.batches.create(model="gemini-2.5-flash", src=[{"contents": "Hi", "metadata": {"key": "a"}}])
        done = client.batches.get(name=job.name or "")
        assert done.dest and done.dest.inlined_responses and done.dest.inlined_responses[0].response
        assert run_file_job(client, prompt_lines(2))[1]["key"] == "row-1"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout and process.stderr
        process.stdout.close()
        process.stderr.close()


def _first_line(process: subprocess.Popen[str]) -> str:
    """The first stdout line, or a failure after 20 s (never a hung test)."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline() if process.stdout else ""))
    reader.start()
    reader.join(timeout=20)
    assert lines, "the emulator printed nothing within 20 s"
    return lines[0].strip()


@pytest.mark.parametrize("port", [99_999, -1])
def test_serve_refuses_a_port_out_of_range(capsys: pytest.CaptureFixture[str], port: int) -> None:
    assert serve(port=port) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"polars-gemini emulator: error: port {port} is out of range")


def test_serve_refuses_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve(port=port) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}: Address already in use" in err


@pytest.mark.parametrize("taken", [False, True])
def test_cli_exits_2_when_it_cannot_listen(taken: bool) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1] if taken else 99_999
        command = [sys.executable, "-m", "polars_gemini.cli.main", "emulator", "--port", str(port)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert str(port) in done.stderr.strip().splitlines()[-1]


def test_the_async_client_works_too(gemini_emulator: Emulator) -> None:
    async def main() -> types.BatchJob:
        client = gemini_emulator.client().aio
        job = await client.batches.create(model="gemini-2.0-flash", src=[{"contents": "hi"}])
        return await client.batches.get(name=job.name or "")

    done = asyncio.run(main())
    assert done.dest and done.dest.inlined_responses and done.dest.inlined_responses[0].response


def test_concurrent_clients(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    def work(i: int) -> str | None:
        job = gemini_client.batches.create(model="gemini-2.0-flash", src=[{"contents": f"q{i % 3}"}])
        gemini_client.batches.get(name=job.name or "")
        return gemini_client.models.generate_content(model="gemini-2.0-flash", contents=f"q{i % 3}").text

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(work, range(24)))
    assert answers[:3] * 8 == answers and gemini_emulator.errors == []
    assert len(gemini_emulator.jobs) == 24 == gemini_emulator.calls("batches.get")
