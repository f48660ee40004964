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
* 400: a signed body that is not a JSON event; 413: a body over 1 MiB;
* 200 `duplicate`: a webhook-id seen before (remembered in the checkpoint directory, `webhook_events.json`, so that
  a restarted receiver still knows it): the service delivers at least once;
* 200 `ignored`: an event that names no usable checkpoint (not a batch event; a `polars_gemini_checkpoint` that is
  not a checkpoint directory, is outside `--root`, or whose jobs do not include the event's batch, `data.id`: a
  misrouted or forged event; no checkpoint named and, under `--root`, none that has that batch): logged, and
  acknowledged so that the service does not retry it for 24 hours;
* 202 `accepted`: the run is resumed (one resume at a time per checkpoint; an event arriving meanwhile runs it once
  more afterwards).

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
import os
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
    process holds (the submitting command, still closing) is tried again for up to `settle_seconds`, as is one whose
    job reports SUCCEEDED before its results are attached. `on_outcome` is called with each `ResumeOutcome`.

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
        self._active: dict[Path, bool] = {}  # checkpoint -> resume again once the current one ends
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
        """The answer to one delivery (`headers` in any case); starts a resume when it is due."""
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
        self._schedule(checkpoint)
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
        """The checkpoint directory to resume, or None and why not."""
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

    # -- resuming -----------------------------------------------------------------------------------------------

    def _schedule(self, checkpoint: Path) -> None:
        with self._lock:
            if checkpoint in self._active:
                self._active[checkpoint] = True  # it runs once more when the current resume ends
                return
            self._active[checkpoint] = False
        threading.Thread(target=self._work, args=(checkpoint,), name=f"resume {checkpoint.name}", daemon=True).start()

    def _work(self, checkpoint: Path) -> None:
        again = True
        try:
            while again:
                self._finish(self._resume(checkpoint))
                with self._lock:
                    again = self._active[checkpoint]
                    self._active[checkpoint] = False
        finally:
            with self._lock:
                del self._active[checkpoint]
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
            self._log(f"{outcome.checkpoint}: resume failed: {outcome.error}")
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _resume(self, checkpoint: Path) -> ResumeOutcome:
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
        except (GeminiBatchError, CliError, OSError) as exc:
            return ResumeOutcome(str(checkpoint), "failed", error=str(exc))

    def _open(self, checkpoint: Path) -> Any:
        """`polars_gemini.resume`, waiting while another process holds the checkpoint (up to `settle_seconds`)."""
        import polars_gemini

        deadline, delay = time.monotonic() + self.settle_seconds, 0.1
        while True:
            try:
                return polars_gemini.resume(checkpoint, client=self._api(), progress=False)
            except CheckpointLockedError:
                if time.monotonic() + delay > deadline:
                    raise
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
            while self._active:
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


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send(Reply(413 if length > 0 else 400, {"error": f"a body of 0 to {MAX_BODY_BYTES} bytes, please"}))
            return
        body = self.rfile.read(length)
        self._send(self.server.receiver.handle(body, dict(self.headers.items())))

    def do_GET(self) -> None:
        self._send(Reply(200, {"status": "ok"}))

    def _send(self, reply: Reply) -> None:
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

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
