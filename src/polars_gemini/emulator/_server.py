"""The only module that touches sockets: a `ThreadingHTTPServer` on a background thread.

HTTP/1.1 with keep-alive (the SDK's httpx client reuses connections), `Content-Length` on every
reply, and chunked request bodies decoded for clients that stream.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from polars_gemini.emulator._http import Request, Response

App = Callable[[Request], Response]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; with Nagle's algorithm and delayed ACKs on loopback that
        # costs ~40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests and benchmarks read `emu.requests`, not stderr."""

    def _serve(self) -> None:
        try:
            response = self.server.app(self._request())
            self._write(response)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away; nothing to answer

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
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _chunked_body(self) -> bytes:
        parts = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():
            pass  # trailers
        return b"".join(parts)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, _Handler)


class ServerThread:
    """Serves `app` on `host:port` (port 0: a free one) from a daemon thread."""

    def __init__(self, host: str, port: int, app: App) -> None:
        self._server = _Server((host, port), app)
        # A short poll interval keeps `stop()` (and so every test fixture) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="gemini-emulator",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
