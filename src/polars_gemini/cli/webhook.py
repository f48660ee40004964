"""`polars-gemini webhook serve`: receive the Gemini API's batch webhooks and finish the runs they name.

The flow: `polars-gemini submit ... --checkpoint DIR --webhook URL --output OUT` exits once the jobs are created; each
job carries `webhook_config.user_metadata.polars_gemini_checkpoint = DIR`; when a job ends the service POSTs a signed
event to URL; this receiver verifies it, answers at once, and resumes the run in a worker thread
(`polars_gemini.resume(DIR)`, one polling step, which also submits a retry round when one is due). When the run is
done its result file is written to OUT, as `submit --output` recorded it in the checkpoint.

Checks, in order (nothing is done for a refused event):

* 401: a signature that does not verify. Registered (project-level) webhooks: Standard Webhooks HMAC
  (`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the `whsec_` secret, checked by
  the `standardwebhooks` library), `webhook-timestamp` within `--tolerance` seconds. Per-job webhooks
  (`webhook_config.uris`): an RS256 JWT in `webhook-signature`, its key from the JWKS at `--jwks-url` (Google's by
  default, fetched once and cached), `exp` not passed, `iat` within `--tolerance`, `aud` equal to `--audience` and
  `iss` to `--issuer` when given; and the token must cover the event: a `body_sha256` claim matching the body, or
  the event itself in its claims (then a body saying otherwise is refused). 503 when the JWKS cannot be fetched;
* 400: a signed body that is not a JSON event, or a malformed request; 413: a body over 1 MiB (a `Content-Length`
  one, or a `Transfer-Encoding: chunked` one, read up to that size); 501: another transfer-encoding;
* 200 `duplicate`: a webhook-id seen before (remembered in the checkpoint directory, `webhook_events.json`, so that
  a restarted receiver still knows it): the service delivers at least once;
* 200 `ignored`: an event that names no usable checkpoint (not a batch event; a `polars_gemini_checkpoint` in object
  storage, which a scheduled `polars-gemini resume URL` picks up instead; one that is not a checkpoint directory, is
  outside `--root`, or whose jobs do not include the event's batch, `data.id`: a misrouted or forged event; a path
  the system refuses, with a NUL byte or too long; no checkpoint named and, under
  `--root`, none that has that batch): logged, and acknowledged so that the service does not retry it for 24 hours;
* 202 `accepted`: the run is resumed (one resume at a time per checkpoint; an event arriving meanwhile runs it once
  more afterwards);
* 500: the receiver itself failed (say its checkpoint directory is not writable): logged; the service retries.

A resume that fails (any error: the API, a damaged checkpoint, a result file that cannot be written, a checkpoint
another process holds beyond `settle_seconds`) is one log line and a `failed` outcome; the receiver goes on serving,
and forgets the webhook-ids of the events that resume answered, so that a redelivery of one of them (or a replay) is
acted upon rather than counted as a duplicate. The service redelivers only what was not acknowledged, and the 202
was sent already: the dependable recovery is the run's next event, or `polars-gemini resume DIR`.

Which checkpoint: the one `data.user_metadata` names (as the emulator sends it; else `data.userMetadata` or a
top-level `user_metadata`), else, with `--root`, the checkpoint under it whose `jobs.parquet` lists the event's
batch (registered webhooks may not carry a job's metadata; the index is cached, and rescanned for a batch it does
not know).

What remains a guess (https://ai.google.dev/gemini-api/docs/webhooks, page of 2026-05-19, documents the JWKS URL,
RS256 and an audience "your-configured-audience" only): the token's issuer, its audience (the hookdeck/webhook-skills
guide says the endpoint URL), whether and how it covers the body (`body_sha256` is the emulator's form; "the claims
are the event" follows the documentation's sample, `event = jwt.decode(...)`), and where the user metadata sits in
the event. A token covering neither body nor event is refused (401): the receiver never resumes a run on an event
its signature does not authenticate. Secrets and tokens never appear in a log line, a reply or an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polars_gemini.cli._webhook_auth import (
    GOOGLE_JWKS_URL,
    Authentic,
    HmacCheck,
    JwtCheck,
    Refused,
    is_jwt,
    jwt_available,
    load_verifier,
)
from polars_gemini.core.errors import CheckpointLockedError, ConfigurationError, GeminiBatchError

if TYPE_CHECKING:
    from google import genai

SECRET_ENV = "POLARS_GEMINI_WEBHOOK_SECRET"
"""The environment variable that holds the signing secret (better than `--secret`: argv is visible in `ps`)."""
CHECKPOINT_KEY = "polars_gemini_checkpoint"
"""The user-metadata key naming a run's checkpoint directory (absolute), set by `submit(..., webhook=...)`."""
JOBS_FILE = "jobs.parquet"
"""In a checkpoint directory: its batch jobs (column `name`, `batches/<id>`), as `checkpoint.files` writes them."""
SEEN_FILE = "webhook_events.json"
"""In a checkpoint directory: the webhook-ids already handled for it (the last `KEEP_IDS`)."""
KEEP_IDS = 1000
MAX_BODY_BYTES = 1 << 20
BATCH_EVENTS = frozenset({"batch.succeeded", "batch.failed", "batch.expired", "batch.cancelled"})
READ_TIMEOUT_SECONDS = 30.0
"""How long a client may take over sending its request: a stalled one does not hold a thread for ever."""
_LOG = logging.getLogger(__name__)  # debug lines only (hung-up clients); decisions go through the receiver's `log`


@dataclass(frozen=True)
class Reply:
    """The HTTP answer to one delivery: its status and JSON body."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class ResumeOutcome:
    """What one resume of a checkpoint came to: `status` "done" (the result file written, if one was recorded),
    "pending" (jobs still running: their own events will resume it again) or "failed" (`error` says why)."""

    checkpoint: str
    status: str
    rows: int | None = None
    failed_rows: int | None = None
    output: str | None = None
    error: str | None = None


class WebhookReceiver:
    """Verifies batch webhook deliveries, ignores duplicates, and resumes the runs they name (see the module).

    `handle(body, headers)` is the whole decision, without HTTP; `serve(host, port)` puts it behind a threaded HTTP
    server. `secret` (a `whsec_` secret) verifies HMAC-signed deliveries (registered webhooks); `jwks_url` the
    JWT-signed ones (per-job webhooks; None: refused), with `audience` and `issuer` checked when given. Either may
    be missing, not both. `client` is the google-genai client for the resumes (default: from GEMINI_API_KEY, made at
    the first resume). `root` restricts the checkpoints it resumes to that directory's tree, and finds the checkpoint
    of an event whose metadata names none by its batch name. A run whose checkpoint another
    process holds (the submitting command, still closing) is tried again for up to `settle_seconds` (logged once),
    as is one whose job reports SUCCEEDED before its results are attached; past that the resume fails, and the
    webhook-ids it answered are forgotten (see the module). `on_outcome` is called with each `ResumeOutcome` (an
    exception from it is logged). `handle` never raises.

    >>> receiver = WebhookReceiver("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    >>> receiver.handle(b"{}", {"webhook-id": "msg_1", "webhook-timestamp": "0",
    ...                         "webhook-signature": "v1,AAAA"}).status
    401
    """

    def __init__(
        self,
        secret: str | None = None,
        *,
        jwks_url: str | None = GOOGLE_JWKS_URL,
        audience: str | None = None,
        issuer: str | None = None,
        tolerance: float = 300.0,
        root: str | os.PathLike[str] | None = None,
        client: genai.Client | None = None,
        settle_seconds: float = 60.0,
        on_outcome: Callable[[ResumeOutcome], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not tolerance > 0:
            raise ConfigurationError(f"tolerance must be a positive number of seconds, got {tolerance}.")
        self.tolerance, self.settle_seconds = float(tolerance), float(settle_seconds)
        self._log = log or (lambda line: print(f"polars-gemini webhook: {line}", file=sys.stderr, flush=True))
        self._hmac = HmacCheck(secret, self.tolerance) if secret else None
        self._jwt = self._jwt_check(jwks_url, audience, issuer)
        if self._hmac is None and self._jwt is None:
            raise ConfigurationError(
                "The webhook receiver verifies nothing: give the whsec_ signing secret of a registered webhook, or a "
                "JWKS URL (with PyJWT installed) for per-job webhooks."
            )
        self.root = Path(root).resolve() if root is not None else None
        self._jobs = JobIndex(self.root) if self.root is not None else None
        self._client, self._on_outcome = client, on_outcome
        self._lock = threading.Condition()
        self._seen: set[str] = set()  # ids of events that named no checkpoint (those of runs live in the runs)
        self._queued: dict[Path, list[str]] = {}  # checkpoint with a worker -> ids of events its next resume answers
        self.outcomes: list[ResumeOutcome] = []

    def _jwt_check(self, jwks_url: str | None, audience: str | None, issuer: str | None) -> JwtCheck | None:
        if not jwks_url:
            return None
        if self._hmac is not None and not jwt_available():
            self._log("PyJWT is not installed: per-job (JWT-signed) deliveries will be refused")
            return None
        return JwtCheck(jwks_url, audience, issuer, self.tolerance)

    # -- the decision --------------------------------------------------------------------------------------------

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """The answer to one delivery (`headers` in any case); starts a resume when it is due. Never raises: a failure
        of the receiver itself is logged and answered 500, so that the service delivers the event again."""
        try:
            return self._handle(body, headers)
        except Exception as exc:
            self._log(f"could not handle a delivery (500, the service will retry it): {_one_line(exc)}")
            return Reply(500, {"error": "the receiver failed on this delivery; it is handled when retried"})

    def _handle(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            auth = self._authenticate(body, lowered)
        except Refused as refused:
            self._log(f"refused a delivery ({refused.status}): {refused.message}")
            return Reply(refused.status, {"error": refused.message})
        event = auth.event if auth.event is not None else _event(body)
        if event is None:
            self._log("refused a signed delivery (400): its body is not a JSON event")
            return Reply(400, {"error": "the body is not a JSON webhook event"})
        msg_id = auth.msg_id
        kind, batch, named = _fields(event)
        job = f"{batch or '?'}, {auth.scheme}-signed"
        checkpoint, why = self._checkpoint(kind, batch, named)
        with self._lock:
            if self._was_seen(msg_id, checkpoint):
                self._log(f"event {msg_id} ({kind} {job}): a duplicate, ignored")
                return Reply(200, {"status": "duplicate"})
            self._remember(msg_id, checkpoint)
        if checkpoint is None:
            self._log(f"event {msg_id} ({kind} {job}): ignored, {why}")
            return Reply(200, {"status": "ignored", "reason": why})
        self._log(f"event {msg_id} ({kind} {job}): resuming {checkpoint}")
        try:
            self._schedule(checkpoint, msg_id)
        except Exception:
            self._forget(checkpoint, [msg_id])  # answered 500: its retry must not be a duplicate
            raise
        return Reply(202, {"status": "accepted", "checkpoint": str(checkpoint)})

    def _authenticate(self, body: bytes, headers: Mapping[str, str]) -> Authentic:
        """Which scheme signed the delivery, by the form of `webhook-signature` (a JWT, or `v1,` entries)."""
        if is_jwt(headers.get("webhook-signature", "")):
            if self._jwt is None:
                raise Refused(401, "a JWT-signed (per-job webhook) delivery, but this receiver verifies no JWTs")
            return self._jwt.check(body, headers)
        if self._hmac is None:
            raise Refused(401, "an HMAC-signed (registered webhook) delivery, but this receiver has no signing secret")
        return self._hmac.check(body, headers)

    def _checkpoint(self, kind: str, batch: str, named: Any) -> tuple[Path | None, str]:
        """The checkpoint directory to resume, or None and why not (a path the system refuses is such a why)."""
        try:
            found, why = self._find(kind, batch, named)
            return found, why if len(why) <= 300 else f"{why[:180]}...{why[-100:]}"  # a long forged path, cut
        except (ValueError, OSError) as exc:  # a NUL byte, a lone surrogate, a name or path too long, ...
            shown = repr(named)[:80] + ("..." if len(repr(named)) > 80 else "")
            return None, f"{CHECKPOINT_KEY} {shown} cannot be used as a path ({_one_line(exc, 120)})"

    def _find(self, kind: str, batch: str, named: Any) -> tuple[Path | None, str]:
        if kind not in BATCH_EVENTS:
            return None, f"{kind or 'an event without a type'} is not a batch event"
        if not batch:
            return None, "it names no batch (data.id)"
        if not isinstance(named, str) or not named:
            if self._jobs is None:
                return None, f"its user_metadata names no {CHECKPOINT_KEY} (--root finds checkpoints by batch name)"
            found = self._jobs.find(batch)
            return (found, "") if found is not None else (None, f"no checkpoint under --root {self.root} has {batch}")
        return self._named(named, batch)

    def _named(self, named: str, batch: str) -> tuple[Path | None, str]:
        from polars_gemini.api.resume import MANIFEST
        from polars_gemini.checkpoint.location import is_url

        if is_url(named):  # its lease and files are the bucket's: a scheduled `resume URL` picks it up
            return None, (f"{CHECKPOINT_KEY} {named!r} is in object storage, which this receiver does not resume "
                          f"(it resumes checkpoint directories): run `polars-gemini resume {named}` on a schedule")
        path = Path(named)
        if not path.is_absolute():
            return None, f"{CHECKPOINT_KEY} {named!r} is not an absolute path"
        path = path.resolve()
        if self.root is not None and not path.is_relative_to(self.root):
            return None, f"{path} is outside --root {self.root}"
        if not (path / MANIFEST).is_file():
            return None, f"{path} is not a polars-gemini checkpoint (no {MANIFEST})"
        if _bare(batch) not in job_names(path / JOBS_FILE):
            return None, f"{batch} is not one of {path}'s jobs (a misrouted or forged event)"
        return path, ""

    def _was_seen(self, msg_id: str, checkpoint: Path | None) -> bool:
        return msg_id in self._seen or (checkpoint is not None and msg_id in _seen_ids(checkpoint))

    def _remember(self, msg_id: str, checkpoint: Path | None) -> None:
        if checkpoint is None:
            self._seen.add(msg_id)
            return
        from polars_gemini.checkpoint.files import write_json

        ids = [*_seen_ids(checkpoint), msg_id][-KEEP_IDS:]
        write_json(checkpoint / SEEN_FILE, {"format": 1, "webhook_ids": ids})  # atomic: a crash keeps the old file

    def _forget(self, checkpoint: Path, msg_ids: list[str]) -> None:
        """Drops `msg_ids` from the checkpoint's remembered ids (their events were not acted upon to the end)."""
        from polars_gemini.checkpoint.files import write_json

        gone = set(msg_ids)
        with self._lock:
            ids = _seen_ids(checkpoint)
            if gone.isdisjoint(ids):
                return
            try:
                write_json(checkpoint / SEEN_FILE, {"format": 1, "webhook_ids": [i for i in ids if i not in gone]})
            except OSError as exc:
                self._log(f"{checkpoint}: cannot forget webhook-ids {sorted(gone)}: {_one_line(exc)}")

    # -- resuming -----------------------------------------------------------------------------------------------

    def _schedule(self, checkpoint: Path, msg_id: str) -> None:
        with self._lock:
            if checkpoint in self._queued:
                self._queued[checkpoint].append(msg_id)  # it runs once more when the current resume ends
                return
            self._queued[checkpoint] = [msg_id]
        try:
            threading.Thread(target=self._work, args=(checkpoint,), name=f"resume {checkpoint.name}",
                             daemon=True).start()  # fmt: skip
        except BaseException:
            with self._lock:
                del self._queued[checkpoint]
                self._lock.notify_all()
            raise

    def _work(self, checkpoint: Path) -> None:
        """Resumes `checkpoint` while events for it are queued. Nothing escapes: each failure is a failed outcome."""
        try:
            while True:
                with self._lock:
                    msg_ids = self._queued[checkpoint]
                    if not msg_ids:
                        return
                    self._queued[checkpoint] = []
                try:
                    outcome = self._resume(checkpoint)
                    if outcome.status == "failed":
                        self._forget(checkpoint, msg_ids)
                    self._finish(outcome)
                except Exception as exc:  # a failure of the bookkeeping itself: logged, and the worker goes on
                    self._log(f"{checkpoint}: resume failed: {_one_line(exc)}")
        finally:
            with self._lock:
                del self._queued[checkpoint]
                self._lock.notify_all()

    def _finish(self, outcome: ResumeOutcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
        where = f", written to {outcome.output}" if outcome.output else ""
        if outcome.status == "done":
            self._log(f"{outcome.checkpoint}: done, {outcome.rows:,} rows ({outcome.failed_rows:,} failed){where}")
        elif outcome.status == "pending":
            self._log(f"{outcome.checkpoint}: jobs still running; their events will resume it")
        else:
            self._log(f"{outcome.checkpoint}: resume failed: {outcome.error} (its webhook-ids are forgotten: a "
                      f"redelivery tries again, as does `polars-gemini resume {outcome.checkpoint}`)")  # fmt: skip
        if self._on_outcome is not None:
            try:
                self._on_outcome(outcome)
            except Exception as exc:
                self._log(f"{outcome.checkpoint}: the on_outcome callback failed: {_one_line(exc)}")

    def _resume(self, checkpoint: Path) -> ResumeOutcome:
        """One resume; any exception is a failed outcome whose `error` is one line (the library's errors as they
        are; anything else with its type, as it is unexpected)."""
        from polars_gemini.cli.etl import CliError

        try:
            run = self._open(checkpoint)
            try:
                if not self._advance(run):
                    return ResumeOutcome(str(checkpoint), "pending")
                result = run.result()
                error_col = f"{run.options.output}_error"
            finally:
                run.close()
            return self._write(checkpoint, result, error_col)
        except (GeminiBatchError, CliError) as exc:
            return ResumeOutcome(str(checkpoint), "failed", error=_one_line(exc, with_type=False))
        except Exception as exc:  # OSError, a raw Polars error, a bug: the same outcome, never a dead thread
            return ResumeOutcome(str(checkpoint), "failed", error=_one_line(exc))

    def _open(self, checkpoint: Path) -> Any:
        """`polars_gemini.resume`, waiting while another process holds the checkpoint (up to `settle_seconds`)."""
        import polars_gemini

        deadline, delay = time.monotonic() + self.settle_seconds, 0.1
        while True:
            try:
                return polars_gemini.resume(checkpoint, client=self._api(), progress=False)
            except CheckpointLockedError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                if delay == 0.1:
                    self._log(f"{_one_line(exc, with_type=False)} Trying again for up to {self.settle_seconds:g} s.")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _advance(self, run: Any) -> bool:
        """One polling step (collects ended jobs, submits a due retry round); repeated, up to `settle_seconds`, while
        a job reports SUCCEEDED without its results yet (no further event would come for it). True when done."""
        deadline, delay = time.monotonic() + self.settle_seconds, 0.2
        while not run.advance():
            settling = any(job.state == "SUCCEEDED" for job in run.store.active_jobs())
            if not settling or time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        return True

    def _write(self, checkpoint: Path, result: Any, error_col: str) -> ResumeOutcome:
        from polars_gemini.cli.etl import recorded_output, write

        failed = int(result.get_column(error_col).is_not_null().sum()) if error_col in result.columns else 0
        output = recorded_output(checkpoint)
        if output is not None:
            write(result, output)
        return ResumeOutcome(str(checkpoint), "done", rows=result.height, failed_rows=failed, output=output)

    def _api(self) -> genai.Client:
        if self._client is None:
            from polars_gemini.service.gemini import client_from_env

            self._client = client_from_env()
        return self._client

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Waits until no resume is running or queued; False if `timeout` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queued:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    # -- HTTP -----------------------------------------------------------------------------------------------------

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[ReceiverServer]:
        """Serves `handle` over HTTP from a background thread (POST to any path; GET answers a health check) until
        the block ends. `port=0` picks a free port: see the server's `url`."""
        server = ReceiverServer((host, port), self)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="webhook receiver", daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def _one_line(exc: BaseException, limit: int = 500, *, with_type: bool = True) -> str:
    """`exc` for a log line: its message on one line (Polars errors span several), cut at `limit` characters."""
    text = " ".join(str(exc).split()) or "(no message)"
    text = f"{type(exc).__name__}: {text}" if with_type else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _event(body: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("type"), str) else None


def _fields(event: dict[str, Any]) -> tuple[str, str, Any]:
    """(type, job name, the checkpoint its user metadata names)."""
    data: dict[str, Any] = event["data"] if isinstance(event.get("data"), dict) else {}
    places = [data.get(key) for key in ("user_metadata", "userMetadata")]
    places += [event.get(key) for key in ("user_metadata", "userMetadata")]
    metadata = next((m for m in places if isinstance(m, dict)), {})
    named = metadata.get(CHECKPOINT_KEY, metadata.get("polarsGeminiCheckpoint"))
    batch = data.get("id")
    return event["type"], batch if isinstance(batch, str) else "", named


def _seen_ids(checkpoint: Path) -> list[str]:
    try:
        ids = json.loads((checkpoint / SEEN_FILE).read_text()).get("webhook_ids", [])
    except (OSError, ValueError, AttributeError):
        return []  # none yet (or unreadable: it is rewritten whole, atomically, on the next event)
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _bare(batch: str) -> str:
    """A batch's id without the `batches/` of its resource name (the docs' example event says "batch_123456")."""
    return batch.removeprefix("batches/")


def job_names(jobs_file: Path) -> frozenset[str]:
    """The batch ids (`_bare`) of a checkpoint's `jobs.parquet`; empty when it is missing or unreadable."""
    import polars as pl

    try:
        names = pl.read_parquet(jobs_file, columns=["name"]).get_column("name").drop_nulls()
    except (OSError, pl.exceptions.PolarsError):
        return frozenset()
    return frozenset(names.str.strip_prefix("batches/").to_list())


class JobIndex:
    """Which checkpoint under `root` holds a batch, from their `jobs.parquet` files; thread-safe. A batch it does not
    know makes it look again (reading only the files changed since), as a run's new jobs appear.

    >>> JobIndex(Path("/nonexistent")).find("batches/abc") is None
    True
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._files: dict[Path, tuple[int, frozenset[str]]] = {}  # jobs.parquet -> (mtime_ns, batch ids)
        self._owner: dict[str, Path] = {}  # batch id -> checkpoint directory
        self.scans = 0

    def find(self, batch: str) -> Path | None:
        """The checkpoint directory whose jobs include `batch` (`batches/<id>` or `<id>`), or None."""
        key = _bare(batch)
        with self._lock:
            if key not in self._owner:
                self._scan()
            return self._owner.get(key)

    def _scan(self) -> None:
        from polars_gemini.api.resume import MANIFEST

        self.scans += 1
        files: dict[Path, tuple[int, frozenset[str]]] = {}
        for jobs_file in self.root.rglob(JOBS_FILE):
            if not (jobs_file.parent / MANIFEST).is_file():
                continue
            try:
                stamp = jobs_file.stat().st_mtime_ns
            except OSError:
                continue
            known = self._files.get(jobs_file)
            files[jobs_file] = known if known is not None and known[0] == stamp else (stamp, job_names(jobs_file))
        self._files = files
        self._owner = {name: path.parent for path, (_, names) in files.items() for name in names}


class ReceiverServer(ThreadingHTTPServer):
    """The receiver's HTTP server (threads per request; `url` once bound)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside a reply: a client that hung up or stalled is a debug line (no traceback
        on stderr); anything else one log line."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            _LOG.debug("webhook client %s went away: %s", client_address, type(exc).__name__)
        elif exc is not None:
            self.receiver._log(f"an HTTP connection failed: {_one_line(exc)}")


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")
_DIGITS = re.compile(r"[0-9]{1,12}")
_LINE_BYTES = 4096  # a chunk-size line or a trailer line
_TRAILER_LINES = 64


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_SECONDS

    def do_POST(self) -> None:
        try:
            body = self._body()
        except _BadRequest as bad:
            self.close_connection = True  # what is left of the body is not read: never parse it as a request
            self._send(Reply(bad.status, {"error": bad.message}))
            return
        self._send(self.server.receiver.handle(body, dict(self.headers.items())))

    def _body(self) -> bytes:
        """The request body: `Content-Length` bytes, or a `Transfer-Encoding: chunked` body (which takes precedence,
        RFC 9112 section 6.3; the connection is then closed after the reply if both were sent)."""
        encodings = self.headers.get_all("transfer-encoding") or []
        lengths = {value.strip() for value in self.headers.get_all("content-length") or []}
        if encodings:
            if [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
                raise _BadRequest(501, "only a chunked transfer-encoding is supported (or send a content-length)")
            if lengths:
                self.close_connection = True
            return self._chunked()
        if len(lengths) > 1 or not all(_DIGITS.fullmatch(value) for value in lengths):
            raise _BadRequest(400, "the content-length header is not one whole number")
        length = int(lengths.pop()) if lengths else 0
        if length > MAX_BODY_BYTES:
            raise _BadRequest(413, f"a body of 0 to {MAX_BODY_BYTES} bytes, please")
        return self.rfile.read(length)

    def _chunked(self) -> bytes:
        malformed = _BadRequest(400, "a malformed chunked body")
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(_LINE_BYTES + 1)
            size_text = line.split(b";", 1)[0].strip()  # a chunk extension is ignored
            if len(line) > _LINE_BYTES or not line.endswith(b"\n") or not _CHUNK_SIZE.fullmatch(size_text):
                raise malformed
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequest(413, f"a body of 0 to {MAX_BODY_BYTES} bytes, please")
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.read(2) != b"\r\n":
                raise malformed
            chunks.append(chunk)
        for _ in range(_TRAILER_LINES):  # trailer fields, ignored, up to the empty line
            line = self.rfile.readline(_LINE_BYTES + 1)
            if line in (b"\r\n", b"\n"):
                return b"".join(chunks)
            if not line or len(line) > _LINE_BYTES:
                raise malformed
        raise malformed

    def do_GET(self) -> None:
        self._send(Reply(200, {"status": "ok"}))

    def _send(self, reply: Reply) -> None:
        data = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            if self.close_connection:
                self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except ConnectionError as exc:  # the client hung up before the reply: nothing to tell it
            self.close_connection = True
            _LOG.debug("webhook client %s hung up before the reply: %s", self.client_address, type(exc).__name__)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the receiver logs each decision itself, without headers


# -- the command ----------------------------------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """`webhook serve`, on the `polars-gemini` parser's subparsers."""
    hook = sub.add_parser("webhook", help="receive the Gemini API's batch webhooks and finish the runs they name")
    actions = hook.add_subparsers(dest="action", required=True)
    serve = actions.add_parser(
        "serve", help="verify signed batch events and resume their runs, until interrupted",
        description="\n\n".join((__doc__ or "").split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    serve.add_argument("--secret", help=f"the whsec_ signing secret of a registered webhook; better in ${SECRET_ENV} "
                                        "(argv shows in ps); optional when per-job (JWT) deliveries are all there is")
    serve.add_argument("--jwks-url", default=GOOGLE_JWKS_URL,
                       help=f"where the keys of per-job webhook JWTs are (default {GOOGLE_JWKS_URL}; '' refuses JWTs)")
    serve.add_argument("--audience", help="the aud the JWTs must carry (not documented by Google: checked if given)")
    serve.add_argument("--issuer", help="the iss the JWTs must carry (not documented by Google: checked if given)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="the port (0: a free one, printed at start)")
    serve.add_argument("--tolerance", type=float, default=300.0,
                       help="seconds a webhook-timestamp or a JWT's iat may be off (default 300)")
    serve.add_argument("--root", help="resume only checkpoints inside this directory, and find there the checkpoint of "
                                      "an event whose metadata names none, by its batch name")
    serve.add_argument("--json", action="store_true", help="report on stdout as JSON lines (listening, each resume)")


def run_command(args: argparse.Namespace) -> int:
    """`webhook serve`: the exit code (0 once interrupted; 2 for nothing to verify with, a missing library or port)."""
    from polars_gemini.cli.etl import DONE, USAGE

    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret and not (args.jwks_url and jwt_available()):
        print(f"polars-gemini webhook: error: give the signing secret in ${SECRET_ENV} (or --secret), or install "
              "PyJWT to verify per-job (JWT-signed) webhooks: pip install 'polars-gemini[webhooks]'.",
              file=sys.stderr)  # fmt: skip
        return USAGE
    report = (lambda value: print(json.dumps(value), flush=True)) if args.json else None
    try:
        receiver = WebhookReceiver(secret, jwks_url=args.jwks_url or None, audience=args.audience, issuer=args.issuer,
                                   tolerance=args.tolerance, root=args.root, client=_client(),
                                   on_outcome=(lambda o: report(asdict(o))) if report else None)  # fmt: skip
        with receiver.serve(args.host, args.port) as server:
            if report:
                report({"status": "listening", "url": server.url})
            else:
                print(f"polars-gemini webhook receiver listening on {server.url}", flush=True)
            _wait_for_signal()
        receiver.wait_idle(timeout=60)
    except GeminiBatchError as exc:
        print(f"polars-gemini webhook: error: {exc}", file=sys.stderr)
        return USAGE
    except OSError as exc:
        print(f"polars-gemini webhook: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return USAGE
    return DONE


def _client() -> genai.Client:
    from polars_gemini.service.gemini import client_from_env

    return client_from_env()  # GEMINI_API_KEY, checked now rather than at the first event


def _wait_for_signal() -> None:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = [
    "CHECKPOINT_KEY",
    "GOOGLE_JWKS_URL",
    "JOBS_FILE",
    "SECRET_ENV",
    "SEEN_FILE",
    "JobIndex",
    "ReceiverServer",
    "Reply",
    "ResumeOutcome",
    "WebhookReceiver",
    "add_commands",
    "job_names",
    "load_verifier",
    "run_command",
]
