"""Webhook delivery: a signed event POSTed to each URI of a job's `webhookConfig` when the job ends.

What the real service does (https://ai.google.dev/gemini-api/docs/webhooks, as of 2026-06; google-genai 3.6.1
`types.WebhookConfig`):

* `batches.create` takes `batch.webhookConfig = {"uris": [...], "user_metadata": {...}}` (the SDK sends the inner
  keys in snake_case); `uris` "will be used instead of the registered webhooks", `user_metadata` "will be included
  in each webhook event notification".
* Events, in a thin envelope `{"type", "version": "v1", "timestamp", "data"}`: `batch.succeeded` (data `id`,
  `output_file_uri`), `batch.failed` (`id`, `error_code`, `error_message`), `batch.cancelled` and `batch.expired`
  (`id`).
* Standard Webhooks headers: `webhook-id` (the same on every retry of an event: deduplicate on it),
  `webhook-timestamp` (Unix seconds), `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed
  with the base64-decoded `whsec_` secret; several space-separated entries during a secret rotation).
* At least once: a delivery without a 2xx answer is retried with exponential backoff for 24 hours.

What the documentation leaves open, and what the emulator does there:

* Where `user_metadata` sits in the envelope: here in `data.user_metadata`.
* The form of `data.id` (the docs' example says "batch_123456"): here the job's name, `batches/<id>`.
* Signing: the docs sign registered (static) webhooks with the HMAC scheme and per-job (dynamic) ones with an RS256
  JWT in `webhook-signature`, checked against Google's JWKS, with claims and audience not documented. The emulator
  does the same (`webhook_signing="auto"`): a job whose config names `uris` gets a JWT (`_webhook_jwt`: which claims,
  and which of them are guesses), the project's `webhook_uris` get the HMAC signature with `webhook_secret`.
  `webhook_signing="hmac"` signs everything with the HMAC scheme (also what "auto" does when PyJWT or cryptography is
  missing), `"jwt"` everything with a JWT. `WebhookDelivery.signing` says which each delivery got.
* `webhook-timestamp` is the real time of each attempt (receivers check it against their own clock); the envelope's
  `timestamp` is the job's end on the emulator's clock (which `advance_time` moves).

Deliveries go only to loopback hosts (127.0.0.1, ::1, localhost): any other URI is recorded as not sent, so that a
test can never reach out. Redirects are not followed. A background thread notices jobs that end (job states are
computed from the clock, so it looks every `webhook_poll_seconds`, and at once on `advance_time`, creates and
cancels); another sends, retrying after `webhook_retry_seconds`, doubling, up to `webhook_max_attempts` attempts.
Both start with the first job that has somewhere to deliver, and stop with the emulator.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import http.client
import ipaddress
import itertools
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from polars_gemini.emulator._config import Settings
from polars_gemini.emulator._ids import new_id
from polars_gemini.emulator._jobs import TERMINAL
from polars_gemini.emulator._status import invalid_argument
from polars_gemini.emulator._webhook_jwt import INSTALL, JwtSigner
from polars_gemini.emulator._webhook_jwt import available as jwt_available

SECRET_PREFIX = "whsec_"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class WebhookDelivery:
    """One event sent (or to be sent) to one URI, as `emu.webhook_deliveries` lists it.

    `event_id` is the `webhook-id` (the same for every attempt and copy of one event), `type` the event type
    (`batch.succeeded`, ...), `job` the job's name. `attempts` counts the POSTs made; `status` is the last HTTP
    status answered (None: none yet, a connection error, or not sent at all); `delivered` says whether some attempt
    got a 2xx; `error` is the last failure ("HTTP 500", "connection refused", or why it was not sent). `copy` is 2
    for the second delivery of an event (`webhook_duplicate=True`). `signing` is "hmac" or "jwt" (see the module).
    """

    uri: str
    event_id: str
    type: str
    job: str
    attempts: int = 0
    status: int | None = None
    delivered: bool = False
    error: str | None = None
    copy: int = 1
    signing: str = "hmac"


def new_secret() -> str:
    """A fresh Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret (the prefix is optional); a ValueError that never quotes the secret."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook_secret must be 'whsec_' followed by base64 (the secret is not shown).") from None
    if not key:
        raise ValueError("webhook_secret is empty: give 'whsec_' followed by base64, or None for a generated one.")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value of a delivery: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signing_mode(value: str) -> str:
    """`webhook_signing` checked: "auto" and "hmac" always work; "jwt" needs PyJWT and cryptography ("auto" falls
    back to "hmac" without them, as the module says). A ValueError otherwise."""
    if value not in ("auto", "hmac", "jwt"):
        raise ValueError(f"webhook_signing must be 'auto', 'hmac' or 'jwt', got {value!r}.")
    if value != "hmac" and not jwt_available():
        if value == "jwt":
            raise ValueError(f"webhook_signing='jwt' needs PyJWT and cryptography: {INSTALL}.")
        return "hmac"
    return value


def parse_config(value: Any) -> dict[str, Any] | None:
    """A `batch.webhookConfig` as the job keeps and echoes it, `{"uris": [...], "userMetadata": {...}}` (keys only
    when set); both spellings of `user_metadata` are accepted, as by the real API. 400 INVALID_ARGUMENT otherwise."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_argument("batch.webhook_config must be an object with uris and user_metadata.")
    unknown = set(value) - {"uris", "user_metadata", "userMetadata"}
    if unknown:
        raise invalid_argument(f"batch.webhook_config: unknown field(s) {', '.join(sorted(unknown))}.")
    config: dict[str, Any] = {}
    uris = value.get("uris")
    if uris is not None:
        if not isinstance(uris, list) or not all(isinstance(uri, str) and _is_http(uri) for uri in uris):
            raise invalid_argument("batch.webhook_config.uris must be a list of http(s) URLs.")
        config["uris"] = list(uris)
    metadata = value.get("userMetadata", value.get("user_metadata"))
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise invalid_argument("batch.webhook_config.user_metadata must be an object.")
        config["userMetadata"] = metadata
    return config


def _is_http(uri: str) -> bool:
    parts = urllib.parse.urlsplit(uri)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_loopback(uri: str) -> bool:
    host = urllib.parse.urlsplit(uri).hostname or ""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def event_for(operation: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The event of an ended job, from its Operation JSON (as `batches.get` shows it) and its webhook config."""
    meta = operation.get("metadata") or {}
    state = str(meta.get("state", "")).removeprefix("BATCH_STATE_")
    data: dict[str, Any] = {"id": operation.get("name")}
    output = meta.get("output") or {}
    if state == "SUCCEEDED" and "responsesFile" in output:
        data["output_file_uri"] = output["responsesFile"]
    if state == "FAILED":
        error = operation.get("error") or {}
        data["error_code"], data["error_message"] = error.get("code"), error.get("message")
    if "userMetadata" in config:
        data["user_metadata"] = config["userMetadata"]
    stamp = meta.get("endTime") or meta.get("updateTime")
    return {"type": f"batch.{state.lower()}", "version": "v1", "timestamp": stamp, "data": data}


@dataclass
class _Watch:
    """A job with somewhere to deliver: how to read its state cheaply, and its full Operation JSON."""

    state: Callable[[], str]
    view: Callable[[], dict[str, Any]]
    config: dict[str, Any]
    uris: Sequence[str]
    signing: str


@dataclass(order=True)
class _Task:
    due: float
    seq: int
    index: int = field(compare=False)  # into the deliveries list
    body: bytes = field(compare=False, repr=False)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx answer is a failed delivery, never a POST to somewhere else


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


class WebhookDispatcher:
    """Watches jobs with a webhook config and delivers their events; thread-safe. Holds the signing key, never the
    secret's text, and logs nothing."""

    def __init__(
        self, settings: Settings, key: bytes, on_error: Callable[[BaseException], None], signing: str = "auto"
    ) -> None:
        self._settings, self._key, self._on_error = settings, key, on_error
        self._signing = signing_mode(signing)
        self.jwt = JwtSigner() if self._signing != "hmac" else None
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._watches: dict[str, _Watch] = {}
        self._deliveries: list[WebhookDelivery] = []
        self._tasks: list[_Task] = []
        self._busy = 0  # events being built plus POSTs in flight
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []

    # -- what the batch service and the emulator call ------------------------------------------------------------

    def watch(
        self, name: str, state: Callable[[], str], view: Callable[[], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """Deliver `name`'s event once it ends, to its config's URIs, else to the project's (`webhook_uris`)."""
        uris = config.get("uris") or self._settings.webhook_uris
        if not uris:
            return
        per_job = self._signing == "jwt" or (self._signing == "auto" and bool(config.get("uris")))
        with self._cond:
            self._watches[name] = _Watch(state, view, config, tuple(uris), "jwt" if per_job else "hmac")
            if not self._threads and not self._stopping.is_set():
                self._start_threads()
        self.poke()

    def forget(self, name: str) -> None:
        """A deleted job sends nothing more."""
        with self._cond:
            self._watches.pop(name, None)

    def poke(self) -> None:
        """Look at the watched jobs now (the clock moved, a job was created or cancelled)."""
        self._wake.set()

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        with self._cond:
            return list(self._deliveries)

    def wait(self, timeout: float, running: bool = False) -> bool:
        """Until no ended job waits for its event and no delivery waits to be (re)tried (`running`: and every watched
        job has ended); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending(running):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._cond.wait(min(remaining, 0.05))
        return True

    def start(self) -> None:
        """Resumes after `stop()` (the emulator was started again)."""
        with self._cond:
            self._stopping.clear()
            if (self._watches or self._tasks) and not self._threads:
                self._start_threads()

    def stop(self) -> None:
        """Stops both threads: a POST in flight ends within `webhook_timeout_seconds`; queued retries stay queued."""
        self._stopping.set()
        self._wake.set()
        with self._cond:
            threads, self._threads = self._threads, []
            self._cond.notify_all()
        for thread in threads:
            thread.join(self._settings.webhook_timeout_seconds + 1.0)

    # -- the two threads --------------------------------------------------------------------------------------------

    def _start_threads(self) -> None:
        for target, name in ((self._watch_loop, "watch"), (self._send_loop, "send")):
            thread = threading.Thread(target=self._guarded(target), name=f"emulator-webhooks-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _guarded(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self._stopping.is_set():
                try:
                    loop()
                except Exception as exc:  # an emulator bug: reported in `emu.errors`, and delivery goes on
                    self._on_error(exc)

        return run

    def _watch_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._settings.webhook_poll_seconds)
            self._wake.clear()
            for watch in self._ended():
                try:
                    self._emit(watch)
                finally:
                    with self._cond:
                        self._busy -= 1
                        self._cond.notify_all()

    def _ended(self) -> list[_Watch]:
        with self._cond:
            ended = {name: w for name, w in self._watches.items() if w.state() in TERMINAL}
            for name in ended:
                del self._watches[name]
            self._busy += len(ended)
        return list(ended.values())

    def _emit(self, watch: _Watch) -> None:
        event = event_for(watch.view(), watch.config)
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        event_id = "msg_" + new_id(27)
        with self._cond:
            for uri in watch.uris:
                record = WebhookDelivery(uri, event_id, event["type"], str(event["data"]["id"]), signing=watch.signing)
                if not is_loopback(uri):
                    record = replace(record, error="not sent: the emulator delivers only to loopback hosts")
                self._deliveries.append(record)
                if record.error is None:
                    self._push(len(self._deliveries) - 1, body, 0.0)

    def _push(self, index: int, body: bytes, delay: float) -> None:
        """Queues a POST (callers hold the lock)."""
        heapq.heappush(self._tasks, _Task(time.monotonic() + delay, next(self._seq), index, body))
        self._cond.notify_all()

    def _send_loop(self) -> None:
        task = self._next_task()
        if task is None:
            return
        try:
            self._attempt(task)
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def _next_task(self) -> _Task | None:
        with self._cond:
            while not self._stopping.is_set():
                now = time.monotonic()
                if self._tasks and self._tasks[0].due <= now:
                    self._busy += 1
                    return heapq.heappop(self._tasks)
                self._cond.wait(self._tasks[0].due - now if self._tasks else None)
        return None

    def _attempt(self, task: _Task) -> None:
        with self._cond:
            record = self._deliveries[task.index]
        stamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "polars-gemini-emulator",
            "webhook-id": record.event_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": self._signature(record, stamp, task.body),
        }
        status, error = _post(record.uri, task.body, headers, self._settings.webhook_timeout_seconds)
        self._settle(task, status, error)

    def _signature(self, record: WebhookDelivery, stamp: int, body: bytes) -> str:
        if record.signing == "jwt" and self.jwt is not None:
            audience = self._settings.webhook_audience or record.uri
            return self.jwt.sign(record.event_id, stamp, body, audience)
        return sign(self._key, record.event_id, stamp, body)

    def _settle(self, task: _Task, status: int | None, error: str | None) -> None:
        s = self._settings
        ok = status is not None and 200 <= status < 300
        with self._cond:
            record = self._deliveries[task.index]
            record = replace(record, attempts=record.attempts + 1, status=status, delivered=ok, error=error)
            self._deliveries[task.index] = record
            if not ok and record.attempts < s.webhook_max_attempts:
                backoff = s.webhook_retry_seconds * 2 ** (record.attempts - 1)
                self._push(task.index, task.body, min(backoff, _MAX_BACKOFF_SECONDS))
            elif ok and s.webhook_duplicate and record.copy == 1:
                self._deliveries.append(replace(record, attempts=0, status=None, delivered=False, error=None, copy=2))
                self._push(len(self._deliveries) - 1, task.body, 0.0)

    def _pending(self, running: bool) -> bool:
        """Callers hold the lock."""
        ended = any(running or w.state() in TERMINAL for w in self._watches.values())
        return bool(ended or self._tasks or self._busy)


def _post(uri: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """POSTs one delivery: (HTTP status or None, the failure or None)."""
    request = urllib.request.Request(uri, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as reply:
            reply.read()
            return int(reply.status), None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, f"HTTP {exc.code}"
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        return None, str(getattr(reason, "strerror", None) or reason)
