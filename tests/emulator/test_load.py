"""The emulator under load (issue 17): hundreds of concurrent SDK callers, connection bursts larger than the old listen
backlog of 5, exceptions that become answers instead of resets, and file jobs whose memory does not grow with their
parsed requests. Timings are in `benchmarks/load.py`; nothing here is timed."""

from __future__ import annotations

import json
import logging
import select
import socket
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from emulator_support import raw
from google import genai
from google.genai import errors

from polars_gemini.emulator import EmulatedError, Emulator, ResponderRequest, _jobs
from polars_gemini.emulator._http import Request, Response
from polars_gemini.emulator._server import ServerThread

CALLERS, CALLS = 200, 50  # the numbers: 10,000 generateContent calls, 200 at a time
SHARING = 10  # callers per client (each client's pool keeps up to 20 connections alive); a client takes ~50 ms to make
MODEL = "gemini-2.0-flash"


def quick_echo(request: ResponderRequest) -> dict[str, Any]:
    """The prompt back, without token counting: the load is the transport's, not the responder's."""
    text = "echo: " + request.request["contents"][0]["parts"][0]["text"]
    return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 3, "totalTokenCount": 5}}  # fmt: skip


def test_two_hundred_concurrent_callers_get_every_answer_and_no_transport_error() -> None:
    answers: dict[str, str | None] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(CALLERS)

    def caller(client: genai.Client, n: int) -> None:
        start.wait()
        for i in range(CALLS):
            prompt = f"caller {n} call {i}"
            try:
                answers[prompt] = client.models.generate_content(model=MODEL, contents=prompt).text
            except Exception as exc:  # counted, not raised: the test reports how many and which
                failures.append(exc)

    with Emulator(responder=quick_echo) as emu:
        clients = [emu.client() for _ in range(CALLERS // SHARING)]  # 200 connections open at once, kept alive
        threads = [threading.Thread(target=caller, args=(clients[n // SHARING], n)) for n in range(CALLERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert emu.errors == []
        assert emu.calls("models.generateContent") == CALLERS * CALLS
    assert failures == [], f"{len(failures)} transport errors, e.g. {failures[:3]!r}"
    assert len(answers) == CALLERS * CALLS
    assert all(answer == f"echo: {prompt}" for prompt, answer in answers.items())


def _somaxconn() -> int:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 128  # the oldest Linux default, and macOS's


def test_a_burst_of_connections_larger_than_the_old_backlog_is_queued_and_answered() -> None:
    """The connections are made while nobody accepts: the kernel completes at most backlog + 1 handshakes, so with
    Python's default backlog of 5 only 6 of them would connect, however long one waited."""
    burst = min(300, _somaxconn() - 8)
    server = ServerThread("127.0.0.1", 0, lambda request: Response(200, request.path.encode()))
    sockets = [socket.socket() for _ in range(burst)]
    try:
        for sock in sockets:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
        _, connected, _ = select.select([], sockets, [], 10.0)  # writable: the handshake completed (or failed)
        assert len(connected) == burst
        assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for sock in sockets)
        server.start()
        for n, sock in enumerate(sockets):
            sock.setblocking(True)
            sock.settimeout(30)
            sock.sendall(f"GET /{n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        replies = [_read_all(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
    assert all(reply.startswith(b"HTTP/1.1 200 ") for reply in replies)
    assert all(reply.endswith(f"\r\n\r\n/{n}".encode()) for n, reply in enumerate(replies))


def _read_all(sock: socket.socket) -> bytes:
    parts = []
    while chunk := sock.recv(65536):
        parts.append(chunk)
    return b"".join(parts)


def _raising(request: ResponderRequest) -> dict[str, Any]:
    if "boom" in request.text:
        raise RuntimeError("responder bug")
    if "refuse" in request.text:
        raise EmulatedError(429, "slow down")
    return quick_echo(request)


def test_an_exception_in_a_handler_is_a_500_in_the_api_shape_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Emulator(responder=_raising) as emu, caplog.at_level(logging.ERROR, "polars_gemini.emulator"):
        client = emu.client()
        with pytest.raises(errors.ServerError) as raised:
            client.models.generate_content(model=MODEL, contents="boom")
        assert raised.value.code == 500 and raised.value.status == "INTERNAL"
        assert "responder bug" in str(raised.value.message)
        with pytest.raises(errors.ClientError) as refused:  # an EmulatedError is an answer, not a bug: not logged
            client.models.generate_content(model=MODEL, contents="refuse")
        assert refused.value.code == 429
        assert client.models.generate_content(model=MODEL, contents="next").text == "echo: next"  # still serving
        assert [repr(error) for error in emu.errors] == ["RuntimeError('responder bug')"]
    [record] = caplog.records
    assert record.levelno == logging.ERROR and "RuntimeError" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is emu.errors[0]


def test_a_failing_pipeline_still_answers_every_request_with_content_length() -> None:
    def broken(request: Request) -> Response:
        if request.path == "/crash":
            raise KeyError("not a handler's error")
        return Response(200, b"fine")

    reported: list[BaseException] = []
    server = ServerThread("127.0.0.1", 0, broken, reported.append)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            stream = sock.makefile("rb")
            sock.sendall(b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            crash, ok = _reply(stream), _reply(stream)  # the same connection serves the request after the failure
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n")
            bad = _reply(stream)
            sock.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n")
    finally:
        server.stop()
    assert crash[0] == 500 and json.loads(crash[2])["error"]["status"] == "INTERNAL"
    assert "not a handler's error" in json.loads(crash[2])["error"]["message"]
    assert ok == (200, {"content-length": "4"}, b"fine")
    assert bad[0] == 400 and bad[1]["connection"] == "close"  # where the body ends is unknown: connection closed
    assert json.loads(bad[2])["error"]["status"] == "INVALID_ARGUMENT"
    assert [type(error) for error in reported] == [KeyError]


def _reply(stream: Any) -> tuple[int, dict[str, str], bytes]:
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline().strip()) != b"":
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    length = int(headers["content-length"])
    wanted = {"content-length"} | ({"connection"} if "connection" in headers else set())
    return status, {name: headers[name] for name in wanted}, stream.read(length)


def test_an_unknown_method_gets_a_json_501_with_content_length(emu: Emulator) -> None:
    reply = raw(emu, "TRACE", "/v1beta/models")
    assert reply.status_code == 501 and reply.headers["content-length"] == str(len(reply.content))
    assert reply.json()["error"]["status"] == "UNIMPLEMENTED"


_CHILD = """
import sys
from polars_gemini.emulator import Emulator
def broken(request):
    raise ZeroDivisionError("the responder divided by zero")
with Emulator(responder=broken) as emu:
    client = emu.client()
    for _ in range(2):
        try:
            client.models.generate_content(model="gemini-2.0-flash", contents="hi")
        except Exception as exc:
            print(type(exc).__name__, exc.code, flush=True)
"""


def test_unexpected_errors_reach_stderr_when_logging_is_not_configured() -> None:
    child = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120, check=True)
    assert child.stdout.split("\n") == ["ServerError 500", "ServerError 500", ""]
    assert child.stderr.count("Traceback (most recent call last)") == 2
    assert child.stderr.count("ZeroDivisionError: the responder divided by zero") == 2


def _lines(count: int) -> bytes:
    line = '{"key":"row-%d","request":{"contents":[{"parts":[{"text":"Classify review %d: a fine product"}]}]}}\n'
    return "".join(line % (i, i) for i in range(count)).encode()


def _traced_job(count: int) -> tuple[int, int]:
    """(peak traced bytes while a `count`-request file job is created and computed, bytes of input plus results)."""
    with Emulator(responder=quick_echo) as emu:
        client = emu.client()
        emu.put_file("input", _lines(count), mime_type="application/jsonl", source="UPLOADED")
        tracemalloc.start()
        try:
            job = client.batches.create(model=MODEL, src="files/input")
            done = client.batches.get(name=job.name)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert done.dest is not None and done.dest.file_name is not None
        results = emu.file_bytes(done.dest.file_name)
        assert results.count(b"\n") == count and b'"key":"row-%d"' % (count - 1) in results
        return peak, len(emu.file_bytes("input")) + len(results)


def test_a_file_job_does_not_hold_its_requests_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsed, a request is ~3 KB of Python objects; the old emulator held them all (3 GB for a 1M-request job). Now it
    reads `CHUNK` at a time (here 500, to keep the test small), so 8,000 more requests cost about their bytes of input
    and results, not 24 MB. The 1M-request job is in `benchmarks/load.py`."""
    monkeypatch.setattr(_jobs, "CHUNK", 500)
    small_peak, small_bytes = _traced_job(2_000)
    large_peak, large_bytes = _traced_job(10_000)
    extra = large_peak - small_peak
    assert extra < 2 * (large_bytes - small_bytes), (extra, large_bytes - small_bytes)
