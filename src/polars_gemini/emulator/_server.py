"""The only module that touches sockets: a `ThreadingHTTPServer` on a background thread.

HTTP/1.1 with keep-alive (the SDK's httpx client reuses connections), `Content-Length` on every
reply, and chunked request bodies decoded for clients that stream.

Under load (issue 17): the listen backlog is `BACKLOG` (Python's default of 5 made the kernel drop the SYNs of 32
concurrent clients, which retried a second or more later, or failed with `ReadError`); the kernel caps it at
`net.core.somaxconn` (4096 on current Linux, 128 on older kernels). Every request gets an HTTP answer: an exception
anywhere in the pipeline becomes a 500 INTERNAL in the API's error shape, a request the server cannot parse a 400, an
unknown HTTP method a 501 (all JSON, with `Content-Length`), and the exception goes to `on_error` (logged on stderr
with its traceback, and kept for `emu.errors`). A connection idle for `IDLE_SECONDS` is closed, so that connections
clients never close do not keep a thread each forever; httpx drops its own idle connections after 5 s, long before.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from polars_gemini.emulator._http import Request, Response, error_response
from polars_gemini.emulator._status import EmulatedError

App = Callable[[Request], Response]
OnError = Callable[[BaseException], None]

BACKLOG = 1024
"""Connections the kernel queues before `accept` (capped by `net.core.somaxconn`)."""
IDLE_SECONDS = 120.0
"""A keep-alive connection that sends nothing for this long is closed (its thread ends)."""
_LOG = logging.getLogger("polars_gemini.emulator")


class BadRequest(Exception):
    """A request whose framing cannot be read (its body's length unknown): answered 400, connection closed."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS  # per socket operation: an idle keep-alive connection, or a client that stalls mid-body
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; with Nagle's algorithm and delayed ACKs on loopback that
        # costs ~40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests and benchmarks read `emu.requests`, not an access log (errors go through `on_error`)."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (malformed request line, headers too long, unknown method) in the API's JSON
        error shape, with `Content-Length`, closing the connection as the stdlib does."""
        phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Error"
        response = error_response(EmulatedError(code, message or explain or phrase))
        self.close_connection = True
        self._write(response, close=True)

    def _serve(self) -> None:
        try:
            response = self._respond()
            self._write(response, close=self.close_connection)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away; nothing to answer

    def _respond(self) -> Response:
        try:
            request = self._request()
        except BadRequest as exc:
            self.close_connection = True  # where this body ends is unknown: the next bytes cannot be trusted
            return error_response(EmulatedError(400, str(exc), "INVALID_ARGUMENT"))
        try:
            return self.server.app(request)
        except Exception as exc:  # a bug outside the route handlers (they have their own net): still an answer
            self.server.on_error(exc)
            return error_response(EmulatedError(500, f"Emulator internal error: {exc!r}", "INTERNAL"))

    def _request(self) -> Request:
        url = urlsplit(self.path)
        host = self.headers.get("host") or "{}:{}".format(*self.server.server_address[:2])
        return Request(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._body(),
            base_url=f"http://{host}",
        )

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._chunked_body()
        declared = self.headers.get("content-length") or "0"
        if not declared.strip().isdigit():
            raise BadRequest(f"Content-Length must be a number of bytes, got {declared!r}.")
        length = int(declared)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise ConnectionError(f"the client sent {len(body)} of {length} body bytes and hung up")
        return body

    def _chunked_body(self) -> bytes:
        parts = []
        while size := self._chunk_size():
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():
            pass  # trailers
        return b"".join(parts)

    def _chunk_size(self) -> int:
        line = self.rfile.readline(1024)
        if not line:
            raise ConnectionError("the client hung up inside a chunked body")
        try:
            return int(line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            raise BadRequest(f"Malformed chunk size {line[:40]!r} in a chunked request body.") from None

    def _write(self, response: Response, *, close: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        if close:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # so `socketserver` keeps no list of per-connection threads (it does for non-daemon ones)
    allow_reuse_address = True
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], app: App, on_error: OnError) -> None:
        self.app, self.on_error = app, on_error
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An exception that escaped a connection's handler (the stdlib prints it with `print`): a client that hung up
        is routine; anything else is an emulator bug, reported, and the server goes on."""
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, (ConnectionError, TimeoutError)):
            self.on_error(error)


class ServerThread:
    """Serves `app` on `host:port` (port 0: a free one) from a daemon thread; exceptions go to `on_error`."""

    def __init__(self, host: str, port: int, app: App, on_error: OnError | None = None) -> None:
        self._on_error = on_error or log_error
        self._server = _Server((host, port), app, self._on_error)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="gemini-emulator", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        # `serve_forever` handles each request's errors itself; should its loop ever raise, it is reported and resumed,
        # not left to end the thread with a traceback nobody reads while the port stays open.
        while not self._stopping.is_set():
            try:
                self._server.serve_forever(poll_interval=0.02)  # short: `stop()` (every test fixture) stays fast
                return
            except Exception as exc:
                self._on_error(exc)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def log_error(error: BaseException, where: str = "while serving") -> None:
    """Logs an unexpected exception with its traceback on the `polars_gemini.emulator` logger (Python prints
    warnings and errors of unconfigured logging on stderr)."""
    _LOG.error("Gemini API emulator: unexpected %s %s: %r", type(error).__name__, where, error,
               exc_info=(type(error), error, error.__traceback__))  # fmt: skip
