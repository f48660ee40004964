"""The request pipeline: record, count, wait, inject failures, authenticate, dispatch, delay the reply.

Waits (`latency`, `flex_latency`, `delay_reply`) sleep on `stopping`, an event `Emulator.stop()` sets, so that stopping
never waits for them; each request has its own thread, so a held-back reply blocks no other request.

API-key errors follow Google: no key at all is 403 PERMISSION_DENIED; a wrong key (only when
`Emulator(api_key=...)` demands one) is 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
"""

from __future__ import annotations

import threading
from collections import Counter, deque

from polars_gemini.emulator._faults import Faults
from polars_gemini.emulator._http import Request, Response, Services, error_response, json_response
from polars_gemini.emulator._routes import Route, resolve
from polars_gemini.emulator._server import log_error
from polars_gemini.emulator._status import EmulatedError
from polars_gemini.emulator._types import RecordedRequest

_SECRET_HEADERS = frozenset({"x-goog-api-key", "authorization"})
# Bodies over 32 MiB, and chunk uploads over 1 MiB, are not kept: a 100 MB upload would pin 100 MB.
_KEPT_BODY_BYTES = 32 * 2**20
# A long run must not grow without bound (issue 17: ~1.5 KB kept per generateContent call, forever): the request log
# keeps the newest records, the error list the first errors (the first is the one to read) and the count of the rest.
KEPT_REQUESTS = 100_000
KEPT_ERRORS = 1_000
# Tracebacks logged in full; beyond that one error in `_LOG_EVERY` is logged, so a responder that fails every request
# of a 1M-request job does not print a million tracebacks.
_LOGGED_ERRORS = 100
_LOG_EVERY = 1_000
_KEY_INVALID = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    }
}


class App:
    def __init__(self, services: Services, faults: Faults) -> None:
        self.services, self.faults = services, faults
        self.requests: deque[RecordedRequest] = deque(maxlen=KEPT_REQUESTS)
        self.errors: list[BaseException] = []
        self.error_count = 0
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def __call__(self, request: Request) -> Response:
        route, params = resolve(request)
        call_no = self._record(route.endpoint, request)
        self._wait(self.services.settings.latency)
        response = self._answer(route, params, request, call_no)
        # The call has had its effect (a job exists): only the reply is late, as when a reply is lost.
        self._wait(response.hold_seconds + self.faults.reply_delay(route.endpoint, call_no))
        return response

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)

    def _answer(self, route: Route, params: dict[str, str], request: Request, call_no: int) -> Response:
        try:
            return self._dispatch(route, params, request, call_no)
        except EmulatedError as error:
            return error_response(error)
        except Exception as exc:  # an emulator or responder bug: answer 500 and keep it for `emu.errors`
            self.report(exc)
            return error_response(EmulatedError(500, f"Emulator internal error: {exc!r}", "INTERNAL"))

    def report(self, error: BaseException) -> None:
        """An exception raised inside the server: logged on stderr (see `log_error`) and kept for `emu.errors`."""
        with self.lock:
            self.error_count += 1
            number = self.error_count
            if len(self.errors) < KEPT_ERRORS:
                self.errors.append(error)
        if number <= _LOGGED_ERRORS or number % _LOG_EVERY == 0:
            log_error(error, f"(error {number} since start; the server goes on)")

    def _dispatch(self, route: Route, params: dict[str, str], request: Request, call_no: int) -> Response:
        injected = self.faults.http_error(route.endpoint, call_no)
        if injected is not None:
            return error_response(injected)
        if route.needs_key:
            refusal = self._check_key(request)
            if refusal is not None:
                return refusal
        return route.handler(self.services, request, params)

    def _check_key(self, request: Request) -> Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            message = "Method doesn't allow unregistered callers (callers without established identity). " \
                "Please use API Key or other form of API consumer identity to call this API."  # fmt: skip
            return error_response(EmulatedError(403, message, "PERMISSION_DENIED"))
        wanted = self.services.settings.api_key
        return json_response(_KEY_INVALID, 400) if wanted is not None and key != wanted else None

    def _record(self, endpoint: str, request: Request) -> int:
        keep = len(request.body) <= (2**20 if endpoint == "files.upload_chunk" else _KEPT_BODY_BYTES)
        recorded = RecordedRequest(
            endpoint=endpoint,
            method=request.method,
            path=request.path,
            query={k: v for k, v in request.query.items() if k != "key"},
            headers={k: v for k, v in request.headers.items() if k not in _SECRET_HEADERS},
            body=request.body if keep else b"",
            body_size=len(request.body),
        )
        with self.lock:
            self.requests.append(recorded)
            self.calls[endpoint] += 1
            return self.calls[endpoint]
