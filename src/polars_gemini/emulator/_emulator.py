"""`Emulator`: the public handle on a running emulated Gemini API."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from polars_gemini.emulator._app import App
from polars_gemini.emulator._batches import DEFAULT_FAILURE, BatchService, ending
from polars_gemini.emulator._clock import Clock
from polars_gemini.emulator._config import (
    FILE_LIMIT_BYTES,
    INLINE_LIMIT_BYTES,
    VERTEX_FILE_LIMIT_BYTES,
    VERTEX_REQUEST_LIMIT,
    JobOutcome,
    Settings,
)
from polars_gemini.emulator._corrupt import corruption
from polars_gemini.emulator._embed import default_embedder
from polars_gemini.emulator._faults import FAULTS, TIMEOUT_SECONDS, Faults, KeyFailure, Timing
from polars_gemini.emulator._files import FileStore, UploadRecord
from polars_gemini.emulator._generate import Counter, use_counter
from polars_gemini.emulator._http import Services
from polars_gemini.emulator._responder import default_responder
from polars_gemini.emulator._routes import ENDPOINTS
from polars_gemini.emulator._served import Served
from polars_gemini.emulator._server import ServerThread
from polars_gemini.emulator._status import operation_error
from polars_gemini.emulator._types import AnsweredRequest, Embedder, RecordedRequest, Responder
from polars_gemini.emulator._vertex import VertexService
from polars_gemini.emulator._webhooks import WebhookDelivery, WebhookDispatcher, new_secret, secret_key
from polars_gemini.tokens.exact import load_tokenizer

if TYPE_CHECKING:
    from google import genai
    from google.genai import types

    from polars_gemini.emulator.gcs import GcsEmulator


class Emulator(Served):
    """A local Gemini API (batches, files, models) served over HTTP from a background thread.

    Arguments (keyword-only; all but host/port also live on `emu.settings`, changeable while it runs):
    `responder` answers each request (default: `default_responder`); `pending_seconds` and
    `running_seconds` time each job from its creation (0: it has succeeded by the first `get`); `latency`
    delays every reply; `shuffle_results` shuffles result lines and inline responses (seeded);
    `results_file_delay_polls=N` hides a SUCCEEDED job's output for its first N `get`s;
    `api_key` demands that key (default: any key); `models` adds model names to the known ones;
    `inline_limit_bytes` / `file_limit_bytes` set the 20 MB / 2 GB limits; `job_outcome(job_json)`
    may return the state ("FAILED", "CANCELLED", "EXPIRED") a new job ends in; `max_active_jobs` and
    `enqueued_token_limit` are service quotas: a `batches.create` is refused with 429 RESOURCE_EXHAUSTED
    (and creates nothing) while that many jobs are PENDING or RUNNING, or when the input tokens of the
    model's active jobs plus the new job's would exceed the limit (tokens counted as `countTokens` does;
    jobs need `pending_seconds`/`running_seconds` > 0 to stay active). `tokenizer` says how tokens are
    counted (usage metadata, countTokens, quotas): exactly with the Gemma 3 SentencePiece model when it is
    available (a model file path, or google-genai's cached copy under "auto"; see `polars_gemini.tokens.exact`),
    else with the library's offline estimator; `emu.token_counting` says which.

    Media parts (`inlineData`, `fileData` naming a Files API file or a URL on 127.0.0.1/localhost) are
    checked per request like the real API (see `_media`), counted into `promptTokenCount` and
    `countTokens` by `polars_gemini.tokens.media`, and reach responders as `ResponderRequest.media`.
    The default responder quotes them: its answers start with `[media <d1> <d2> ...] ` where each
    digest is `hashlib.sha256(part_bytes).hexdigest()[:12]`, in part order (`responses.media_tag`).
    Files live 48 hours on the emulator's clock: `advance_time(seconds)` moves it (files expire,
    PROCESSING files become ready, jobs age), `expire_file(name)` ends one file's life now,
    `set_file_state(name, "PROCESSING", seconds=...)` makes a file wait, and
    `video_processing_seconds` makes every uploaded video/* file PROCESSING that long. `emu.uploads`
    lists every Files API upload (name, mime_type, sha256, size), to prove a file went up once.

    Service tiers (see `_tiers`): `generateContent` takes `service_tier` ("standard", "flex", "priority",
    "unspecified", any case; anything else is 400 INVALID_ARGUMENT) and echoes the tier served in
    `usageMetadata.serviceTier` and the `x-gemini-service-tier` header. Flex calls wait `flex_latency` seconds before
    their reply and are shed with 503 UNAVAILABLE at `flex_unavailable_rate` (0 to 1; attempt n of the same request
    body is shed or not by a hash of `flex_seed`, the body and n, so runs repeat and a retry may get through). Batch
    requests may carry a `serviceTier` too; they run in the batch tier regardless. `emu.answered()` lists what was
    answered (billed): `AnsweredRequest(route, tier, model, prompt, key, job)` per generateContent call and per
    batch-job request, to prove that every prompt was answered once, and in which tier.

    Faults, all counted per endpoint with 1-based call numbers since start (`on_call`, default: the next
    call; `times`: how many calls from there): `fail_http` answers an HTTP error; `delay_reply` performs
    the call, then holds its reply back (with `client(timeout=...)` shorter than the delay the SDK times
    out while the effect, e.g. a created job, stays: a lost reply); `inject(endpoint, fault)` maps each
    of `FAULTS` ("429", "500", "503", "timeout") onto those two; `fail_keys` fails single requests;
    `end_next_job` ends jobs FAILED (with an `error` in the Operation), CANCELLED or EXPIRED;
    `slow_next_jobs(count, pending_seconds=math.inf, running_seconds=0)` times only the next `count` jobs (a stuck
    shard next to one that finishes). Any job pending plus running for more than 48 hours on the emulator's clock is
    EXPIRED from its 48-hour mark on, with no results, like the real service. A CANCELLED job keeps no results either
    (the API documents none for requests finished before a cancel);
    `corrupt_results(kind)` corrupts result lines ("truncated", "garbage", "wrong_shape", "blank") or drops,
    doubles or shuffles them ("dropped", "duplicated", "shuffled").

    Embeddings (see `_api_embed`, `_embed`): `models.embedContent`, `models.batchEmbedContents` (what
    `client.models.embed_content` calls) and `batches.create_embeddings` (`:asyncBatchEmbedContent`, jobs in the same
    `batches/` namespace, with the same states, quotas, faults and endings) serve `responses.embedding(text, ...)`:
    deterministic bag-of-words vectors, unit length at 3072 values, Matryoshka prefixes below. `embedder` replaces
    that: a callable from `EmbeddingRequest` to a list of floats that may raise `EmulatedError` (that row's error).
    `models.get`/`list` know gemini-embedding-001 (2,048 input tokens, longer texts silently cut) and
    gemini-embedding-2(-preview) (8,192).

    Webhooks (see `_webhooks`): a job created with `config={"webhook_config": {"uris": [...], "user_metadata":
    {...}}}` gets, once it ends (SUCCEEDED, FAILED, CANCELLED or EXPIRED, however it got there: its time elapsing,
    `advance_time`, `end_next_job`, a cancel), one signed Standard Webhooks event POSTed to each loopback URI, from a
    background thread, at least once: `webhook_retry_seconds` (doubling) between attempts after a non-2xx answer or a
    connection error, up to `webhook_max_attempts`. `webhook_secret` signs them (default: a generated `whsec_...`,
    read from `emu.webhook_secret`); `webhook_uris` are the project's registered webhooks, for jobs whose config
    names none; `webhook_duplicate=True` delivers every event twice. `webhook_signing`: "auto" (the documented way:
    per-job `uris` get an RS256 JWT, verified with the JWKS at `emu.jwks_url`, whose `aud` is `webhook_audience` or
    else the URI; registered `webhook_uris` get the HMAC signature), "hmac" or "jwt" (every delivery so).
    `emu.webhook_deliveries` lists what was sent (`WebhookDelivery`), `emu.wait_for_webhooks()` waits until nothing
    is left to send.

    Vertex AI batch prediction (see `_vertex`): `vertex_client(project, location)` is a `vertexai=True` client whose
    `batches.create(src="gs://..." | "bq://...", config={"dest": ...})` makes a `batchPredictionJobs` job reading its
    JSONL requests from, and writing its predictions to, the Cloud Storage emulator at `storage_url` (or the
    `GcsEmulator` given as `gcs`, started with the emulator); `bq://` sources and destinations go to the BigQuery
    emulator at `bigquery_url` (`BigQueryEmulator.url`). Vertex calls need `Authorization: Bearer <vertex_token>`
    (401 UNAUTHENTICATED otherwise). Job names carry `vertex_project_number`; jobs are PENDING for `pending_seconds`,
    QUEUED for `vertex_queued_seconds`, RUNNING for `running_seconds`, CANCELLING for `vertex_cancelling_seconds` after
    a cancel; queued over 72 hours they expire, running over 24 hours they stop with the rows done so far.
    `vertex_echo_fields=False` leaves an input line's other top-level fields (its "key") out of its prediction line;
    `vertex_echo_request` echoes the request as "proto" (camelCase) or "verbatim"; `vertex_output_files=N` splits the
    predictions into N files; `vertex_request_limit` (200,000) and `vertex_file_limit_bytes` (1 GB) refuse larger inputs
    with 400 at create. `end_next_job("PARTIALLY_SUCCEEDED", failed_rows=2)` fails some rows of the next job.

        >>> with Emulator() as emu:
        ...     client = emu.client()
        ...     job = client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}])
        ...     client.batches.get(name=job.name).state.name
        'JOB_STATE_SUCCEEDED'
    """

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        embedder: Embedder | None = None,
        pending_seconds: float = 0.0,
        running_seconds: float = 0.0,
        latency: float = 0.0,
        shuffle_results: bool = False,
        results_file_delay_polls: int = 0,
        api_key: str | None = None,
        models: Iterable[str] = (),
        inline_limit_bytes: int = INLINE_LIMIT_BYTES,
        file_limit_bytes: int = FILE_LIMIT_BYTES,
        job_outcome: JobOutcome | None = None,
        max_active_jobs: int | None = None,
        enqueued_token_limit: int | None = None,
        tokenizer: str | os.PathLike[str] = "auto",
        video_processing_seconds: float = 0.0,
        flex_latency: float = 0.0,
        flex_unavailable_rate: float = 0.0,
        flex_seed: int = 0,
        webhook_secret: str | None = None,
        webhook_uris: Iterable[str] = (),
        webhook_retry_seconds: float = 0.05,
        webhook_max_attempts: int = 8,
        webhook_duplicate: bool = False,
        webhook_signing: str = "auto",
        webhook_audience: str | None = None,
        storage_url: str | None = None,
        bigquery_url: str | None = None,
        gcs: GcsEmulator | None = None,
        vertex_project_number: str = "123456789012",
        vertex_token: str = "emulator-token",
        vertex_echo_fields: bool = True,
        vertex_echo_request: str = "proto",
        vertex_output_files: int = 1,
        vertex_queued_seconds: float = 0.0,
        vertex_cancelling_seconds: float = 0.0,
        vertex_request_limit: int = VERTEX_REQUEST_LIMIT,
        vertex_file_limit_bytes: int = VERTEX_FILE_LIMIT_BYTES,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.settings = Settings(
            responder=responder or default_responder, embedder=embedder or default_embedder,
            pending_seconds=pending_seconds,
            running_seconds=running_seconds, latency=latency, shuffle_results=shuffle_results,
            results_file_delay_polls=results_file_delay_polls, api_key=api_key,
            inline_limit_bytes=inline_limit_bytes, file_limit_bytes=file_limit_bytes, job_outcome=job_outcome,
            max_active_jobs=max_active_jobs, enqueued_token_limit=enqueued_token_limit,
            video_processing_seconds=video_processing_seconds, webhook_uris=tuple(webhook_uris),
            webhook_retry_seconds=webhook_retry_seconds, webhook_max_attempts=webhook_max_attempts,
            webhook_duplicate=webhook_duplicate, webhook_audience=webhook_audience,
            flex_latency=flex_latency, flex_unavailable_rate=flex_unavailable_rate, flex_seed=flex_seed,
        )  # fmt: skip
        _check_flex(flex_latency, flex_unavailable_rate)
        self._gcs = gcs
        self.settings.storage_url = storage_url
        self.settings.bigquery_url = bigquery_url
        self.settings.vertex_project_number, self.settings.vertex_token = vertex_project_number, vertex_token
        self.settings.vertex_echo_fields, self.settings.vertex_echo_request = vertex_echo_fields, vertex_echo_request
        self.settings.vertex_output_files = vertex_output_files
        self.settings.vertex_queued_seconds = vertex_queued_seconds
        self.settings.vertex_cancelling_seconds = vertex_cancelling_seconds
        self.settings.vertex_request_limit, self.settings.vertex_file_limit_bytes = (
            vertex_request_limit, vertex_file_limit_bytes)  # fmt: skip
        _check_vertex(self.settings)
        self.settings.add_models(models)
        self._webhook_secret = webhook_secret or new_secret()
        self._webhooks = WebhookDispatcher(self.settings, secret_key(self._webhook_secret), self._report,
                                           webhook_signing)  # fmt: skip
        self._faults = Faults()
        self._clock = Clock()
        self._files = FileStore(self._clock)
        batches = self._batches_service()
        self._vertex = VertexService(self.settings, self._faults, self._clock, batches.answers, self._report)
        services = Services(self.settings, self._files, batches, batches.answers, vertex=self._vertex)
        self._app = App(services, self._faults)
        self._host, self._port = host, port
        self._server: ServerThread | None = None
        self._tokenizer = tokenizer
        self._previous_counter: Counter | None = None
        self.token_counting = "estimator"

    def _batches_service(self) -> BatchService:
        return BatchService(self.settings, self._files, self._faults, self._report, self._clock, self._webhooks)

    def _report(self, exc: BaseException) -> None:
        self._app.report(exc)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Binds the port and starts serving; returns `self`."""
        if self._server is None:
            if self._gcs is not None and self.settings.storage_url is None:
                self.settings.storage_url = self._gcs.start().url
            exact = load_tokenizer(self._tokenizer, "gemini-2.5-flash")  # Gemini 2.x and 3.x count alike
            if exact is not None:
                self._previous_counter = use_counter(exact.count)
                self.token_counting = exact.source
            self._app.stopping.clear()
            self._server = ServerThread(self._host, self._port, self._app, self._app.report)
            self._server.start()
            self._webhooks.start()
        return self

    def stop(self) -> None:
        """Stops serving; replies held back by `delay_reply` or `latency` are sent at once; webhook delivery stops
        (a POST in flight ends within its timeout)."""
        self._webhooks.stop()
        if self._server is not None:
            self._app.stopping.set()
            self._server.stop()
            self._server = None
        if self._previous_counter is not None:
            use_counter(self._previous_counter)
            self._previous_counter = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the `base_url` to give the SDK."""
        if self._server is None:
            raise RuntimeError("The emulator is not running: call start() or use it as a context manager.")
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        return f"http://{host}:{self._server.port}"

    def client(
        self,
        api_version: str | None = None,
        *,
        retry_options: types.HttpRetryOptions | None = None,
        timeout: int | None = None,
    ) -> genai.Client:
        """A `google.genai.Client` pointed at this emulator (API version: the SDK's default unless given).

        `timeout` is the SDK's `HttpOptions.timeout`, in milliseconds: a reply later than that (see
        `delay_reply`) raises `httpx2.TimeoutException` (`ReadTimeout`) from the SDK call.
        """
        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            base_url=self.url, api_version=api_version, retry_options=retry_options, timeout=timeout
        )
        return genai.Client(api_key=self.settings.api_key or "emulator-key", http_options=options)

    def vertex_client(
        self,
        project: str = "test-project",
        location: str = "us-central1",
        *,
        api_version: str | None = None,
        retry_options: types.HttpRetryOptions | None = None,
        timeout: int | None = None,
    ) -> genai.Client:
        """A Vertex AI `google.genai.Client` (`vertexai=True`) pointed at this emulator, with OAuth credentials
        carrying the emulator's `vertex_token`: requests go to `<url>/v1beta1/projects/<project>/locations/<location>/`
        (`api_version="v1"` for /v1). Retries and `timeout` (ms) as in `client()`; nothing consults Application Default
        Credentials or a metadata server.

            >>> with Emulator() as emu:
            ...     client = emu.vertex_client()
            ...     client.models.generate_content(model="gemini-2.0-flash", contents="Hi").text is not None
            True
        """
        from google import genai
        from google.genai import types
        from google.oauth2.credentials import Credentials

        options = types.HttpOptions(
            base_url=self.url, api_version=api_version, retry_options=retry_options, timeout=timeout
        )
        credentials = Credentials(token=self.settings.vertex_token)  # type: ignore[no-untyped-call,unused-ignore]
        return genai.Client(vertexai=True, project=project, location=location, credentials=credentials,
                            http_options=options)  # fmt: skip

    # -- observation ---------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy); the newest 100,000 (`KEPT_REQUESTS`) in a longer run,
        so that a long run's memory stays bounded (`calls()` counts them all)."""
        with self._app.lock:
            return list(self._app.requests)

    def calls(self, endpoint: str) -> int:
        """How many requests `endpoint` (e.g. "batches.create") has received."""
        _check_endpoint(endpoint)
        with self._app.lock:
            return self._app.calls[endpoint]

    def answered(self) -> list[AnsweredRequest]:
        """Every generation request answered so far, in the order answered: which prompt got its answer by what.

        One `AnsweredRequest(route, tier, model, prompt, key, job)` per request the real service would bill: each
        `generateContent` call that got an answer (route "generate", `tier` "standard", "flex" or "priority"; not
        the calls shed with 503, failed by a fault or refused) and each answered request of a batch job (route
        "batch", `tier` "batch", `job` its name), logged when the job's results are computed: this looks at every
        job first, so a job that has succeeded counts even if nobody fetched it. Requests of a job that expired,
        failed or was cancelled are not answered, nor are a job's failed requests. Embeddings are not logged.

            >>> from google.genai import types
            >>> with Emulator(flex_unavailable_rate=0.5) as emu:
            ...     client = emu.client(retry_options=types.HttpRetryOptions(attempts=10, initial_delay=0.01))
            ...     _ = client.batches.create(model="gemini-2.0-flash", src=[{"contents": "a"}])
            ...     flex = {"service_tier": "flex"}
            ...     _ = client.models.generate_content(model="gemini-2.0-flash", contents="b", config=flex)
            ...     [(r.route, r.tier, r.prompt) for r in emu.answered()]
            [('generate', 'flex', 'b'), ('batch', 'batch', 'a')]
        """
        self._app.services.batches.snapshot()  # computes the results of every job that has succeeded
        self._vertex.snapshot()  # and of every Vertex job that has ended with predictions
        return self._app.services.answers.records()

    def clear_requests(self) -> None:
        """Forgets recorded requests; counts go on (`fail_http(on_call=...)` counts from start)."""
        with self._app.lock:
            self._app.requests.clear()

    @property
    def jobs(self) -> Mapping[str, dict[str, Any]]:
        """Each job's JSON by name, as a `list` would show it (reading does not consume delayed polls)."""
        return MappingProxyType(self._app.services.batches.snapshot() | self._vertex.snapshot())

    @property
    def files(self) -> Mapping[str, dict[str, Any]]:
        """Each live file's metadata by name, as `files.get` shows it now (expired files are gone)."""
        return MappingProxyType({meta["name"]: meta for meta in self._files.metas()})

    def file_bytes(self, name: str) -> bytes:
        """The bytes of a live file (`files/<id>` or `<id>`); raises `EmulatedError` (403) for a missing one."""
        return self._files.get(_file_name(name)).data

    @property
    def uploads(self) -> list[UploadRecord]:
        """Every file uploaded through the Files API, oldest first, deleted and expired ones included:
        `UploadRecord(name, mime_type, sha256, size)` with the hex SHA-256 of the bytes."""
        return self._files.records

    @property
    def webhook_secret(self) -> str:
        """The `whsec_...` secret that signs webhook deliveries (give it to the receiver; it is in no repr or log)."""
        return self._webhook_secret

    @property
    def jwks_url(self) -> str:
        """`<url>/.well-known/jwks.json`: the public keys of per-job webhook JWTs (give it to the receiver's
        `--jwks-url`); 404 when deliveries are HMAC-signed only."""
        return f"{self.url}/.well-known/jwks.json"

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook delivery so far, oldest first: `WebhookDelivery(uri, event_id, type, job, attempts, status,
        delivered, error, copy)`, updated as attempts are made."""
        return self._webhooks.deliveries

    def wait_for_webhooks(self, timeout: float = 10.0, *, running: bool = False) -> bool:
        """Waits until no ended job waits for its event and no delivery waits for an attempt (delivered, or given up
        after `webhook_max_attempts`); False if `timeout` seconds passed first. Jobs still PENDING or RUNNING are not
        waited for, unless `running=True` (for jobs that end on their own time; `advance_time` ends the others).

            >>> import http.server, threading
            >>> class Hook(http.server.BaseHTTPRequestHandler):
            ...     def do_POST(self):
            ...         self.rfile.read(int(self.headers["content-length"]))
            ...         self.send_response(204)
            ...         self.end_headers()
            ...     def log_message(self, *args):
            ...         pass
            >>> receiver = http.server.HTTPServer(("127.0.0.1", 0), Hook)
            >>> threading.Thread(target=receiver.serve_forever, daemon=True).start()
            >>> with Emulator() as emu:
            ...     uri = f"http://127.0.0.1:{receiver.server_port}/"
            ...     client = emu.client()  # kept: a collected Client closes its connections
            ...     job = client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}],
            ...                                 config={"webhook_config": {"uris": [uri]}})
            ...     emu.wait_for_webhooks()
            ...     [(d.type, d.status, d.delivered) for d in emu.webhook_deliveries]
            True
            [('batch.succeeded', 204, True)]
            >>> receiver.shutdown(); receiver.server_close()
        """
        return self._webhooks.wait(timeout, running)

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the server (emulator bugs, broken responders, a failing webhook thread); empty when
        all is well. Each is also logged with its traceback on the `polars_gemini.emulator` logger (on stderr unless
        logging is configured otherwise), and the request that raised it gets a 500 INTERNAL reply. The first 1,000
        are kept."""
        with self._app.lock:
            return list(self._app.errors)

    # -- configuration ---------------------------------------------------------------------------------

    def fail_http(
        self,
        endpoint: str,
        status: int = 503,
        *,
        on_call: int | None = None,
        times: int = 1,
        message: str | None = None,
    ) -> None:
        """Answer HTTP `status` on call number `on_call` (1-based, counted since start; default: the next
        call) of `endpoint` and the `times - 1` calls after it. 429, 500 and 503 get Google's messages."""
        _check_endpoint(endpoint)
        first = on_call if on_call is not None else self.calls(endpoint) + 1
        self._faults.add_http(endpoint, status, first, times, message)

    def delay_reply(self, endpoint: str, seconds: float, *, on_call: int | None = None, times: int = 1) -> None:
        """Perform call number `on_call` (1-based, like `fail_http`; default: the next call) of `endpoint`
        and the `times - 1` after it, then wait `seconds` before replying.

        With `emu.client(timeout=300)` and `seconds=1`, the SDK raises a timeout although the server did
        the work: a `batches.create` whose reply is lost (the job exists), a `get`/`list`/`download` that
        times out. Other requests are served meanwhile, and `stop()` does not wait for the delay.

            >>> with Emulator() as emu:
            ...     client = emu.client(timeout=300)  # keep a reference: a collected Client closes its connections
            ...     emu.delay_reply("batches.create", 1.0)
            ...     try:
            ...         client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}])
            ...     except Exception as exc:
            ...         print(type(exc).__name__, len(emu.jobs))
            ReadTimeout 1
        """
        _check_endpoint(endpoint)
        if seconds <= 0 or times < 1:
            raise ValueError(f"delay_reply needs seconds > 0 and times >= 1, got seconds={seconds}, times={times}.")
        first = on_call if on_call is not None else self.calls(endpoint) + 1
        self._faults.add_delay(endpoint, seconds, first, times)

    def inject(
        self,
        endpoint: str,
        fault: str,
        *,
        on_call: int | None = None,
        times: int = 1,
        timeout_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        """Inject one of `FAULTS` on `endpoint`: "429", "500", "503" go to `fail_http`, "timeout" to
        `delay_reply(endpoint, timeout_seconds)` (give the client a shorter `timeout`, e.g. 300 ms).

        A fault matrix for reliability tests, endpoint x fault x (once, repeatedly):

            @pytest.mark.parametrize("endpoint", ["batches.create", "batches.get", "files.download"])
            @pytest.mark.parametrize("fault", FAULTS)
            @pytest.mark.parametrize("times", [1, 3])
            def test_survives(gemini_emulator, endpoint, fault, times):
                gemini_emulator.inject(endpoint, fault, times=times)
                client = gemini_emulator.client(timeout=300)
                ...
        """
        if fault not in FAULTS:
            raise ValueError(f"Unknown fault {fault!r}; expected one of {', '.join(FAULTS)}.")
        if fault == "timeout":
            self.delay_reply(endpoint, timeout_seconds, on_call=on_call, times=times)
        else:
            self.fail_http(endpoint, int(fault), on_call=on_call, times=times)

    def fail_keys(self, failures: Mapping[str, KeyFailure]) -> None:
        """Fail batch requests by key: `{"row-3": (13, "boom")}` or `{"row-3": EmulatedError(..)}`."""
        self._faults.add_keys(failures)

    def end_next_job(
        self,
        state: str = "FAILED",
        *,
        count: int = 1,
        code: int = 13,
        message: str | None = None,
        failed_rows: int = 1,
    ) -> None:
        """The next `count` jobs created end in `state` (FAILED, CANCELLED or EXPIRED), not SUCCEEDED.

        Vertex AI jobs take these too, and "PARTIALLY_SUCCEEDED" (Vertex only): the job's first `failed_rows` rows (in
        input order) fail, their prediction lines carrying a `status` message and no `response`, the others are
        answered; the job's `error` is a summary (`message`, or a generic one). A FAILED Vertex job's `error` is the
        `google.rpc.Status` `{"code": code, "message": ...}`.

        A FAILED job's Operation (in `get` and `list`) carries a top-level
        `"error": {"code": <gRPC code>, "message": ..., "status": <its name>}` (default: 13 INTERNAL,
        with a generic message). The SDK's `BatchJob.error` stays None in Gemini mode: read the raw JSON.
        """
        if state.upper().removeprefix("JOB_STATE_") == "PARTIALLY_SUCCEEDED":
            if failed_rows < 1 or count < 1:
                raise ValueError(f"end_next_job needs count >= 1 and failed_rows >= 1, got {count}, {failed_rows}.")
            self._vertex.push_partial(count, failed_rows, message)
            return
        error = operation_error(code, message or DEFAULT_FAILURE["message"])
        self._faults.push_endings(ending(state, error), count)

    def slow_next_jobs(
        self, count: int = 1, *, pending_seconds: float = math.inf, running_seconds: float = 0.0
    ) -> None:
        """The next `count` jobs created (generation and embedding jobs alike) stay PENDING for `pending_seconds`,
        then RUNNING for `running_seconds`, on the emulator's clock, instead of `Emulator(pending_seconds=,
        running_seconds=)`; later jobs keep those settings. The default is a job stuck PENDING for good.

        A job whose pending plus running time exceeds 48 hours is EXPIRED from its 48-hour mark on (`advance_time`
        gets there): no results, no `dest`, `endTime` and `updateTime` at that mark, as on the real service. A create
        refused by a quota does not use up a slow job.

            >>> with Emulator() as emu:
            ...     client = emu.client()
            ...     emu.slow_next_jobs(1)  # the first shard's job is stuck, the second one's is not
            ...     stuck = client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}])
            ...     quick = client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Ho"}])
            ...     before = client.batches.get(name=stuck.name).state.name
            ...     emu.advance_time(48 * 3600)
            ...     after = [client.batches.get(name=job.name).state.name for job in (stuck, quick)]
            ...     (before, *after)
            ('JOB_STATE_PENDING', 'JOB_STATE_EXPIRED', 'JOB_STATE_SUCCEEDED')
        """
        if count < 1 or not pending_seconds >= 0 or not running_seconds >= 0:
            raise ValueError(
                f"slow_next_jobs needs count >= 1 and seconds >= 0, got count={count}, "
                f"pending_seconds={pending_seconds}, running_seconds={running_seconds}."
            )
        self._faults.push_timings(Timing(pending_seconds, running_seconds), count)

    def corrupt_results(self, kind: str, *, lines: int = 1, jobs: int = 1) -> None:
        """The next `jobs` jobs whose results are computed (on the first `get`, `list` or `emu.jobs` that
        sees them SUCCEEDED) get their first `lines` results corrupted, in the order they are served.

        `kind`: "truncated" (a results-file line cut in the middle), "garbage" (a line that is not JSON),
        "blank" (an empty line after each such line), "wrong_shape" (valid JSON, right key, wrong
        structure; inline jobs take it as responses the SDK still parses: see `_corrupt`), "dropped" (those
        results missing), "duplicated" (each of them twice), "shuffled" (all results in another, seeded order).
        A file-only kind (truncated, garbage, blank) skips inline jobs and waits for the next job with a results
        file. Embedding jobs take every kind, with embedding-shaped wrong shapes.
        """
        self._faults.push_corruptions(corruption(kind, lines), jobs)

    def advance_time(self, seconds: float) -> None:
        """Moves the emulator's clock forward by `seconds`: files age (and expire after 48 hours), PROCESSING
        files reach their ready time, jobs spend their `pending_seconds`/`running_seconds`, and new
        timestamps (createTime, expirationTime, ...) are that much later."""
        self._clock.advance(seconds)
        self._webhooks.poke()

    def expire_file(self, name: str) -> None:
        """Ends the 48-hour life of file `name` now: it leaves `files.get`/`files.list`, and requests naming
        it get 403 PERMISSION_DENIED, as an expired file does on the real service."""
        self._files.expire(_file_name(name))

    def set_file_state(self, name: str, state: str, *, seconds: float | None = None) -> dict[str, Any]:
        """Sets file `name` to `state`: "PROCESSING" (for `seconds` of the emulator's clock, then ACTIVE;
        without `seconds` until set otherwise), "ACTIVE" or "FAILED". Requests naming a file that is not
        ACTIVE get 400 FAILED_PRECONDITION. Returns the file's metadata.

            >>> with Emulator() as emu:
            ...     _ = emu.put_file("clip", b"...", mime_type="video/mp4", source="UPLOADED")
            ...     emu.set_file_state("clip", "PROCESSING", seconds=30)["state"]
            ...     emu.advance_time(30)
            ...     emu.files["files/clip"]["state"]
            'PROCESSING'
            'ACTIVE'
        """
        return self._files.set_state(_file_name(name), state, seconds)

    def put_file(
        self,
        name: str,
        data: bytes,
        *,
        mime_type: str = "application/jsonl",
        display_name: str | None = None,
        source: str = "GENERATED",
    ) -> dict[str, Any]:
        """Stores a file directly (e.g. a real results file to serve, or a media file); returns its metadata.
        Not counted in `uploads`, which lists Files API uploads only."""
        return self._files.put(_file_name(name), data, mime_type=mime_type, display_name=display_name, source=source)


def _check_flex(latency: float, rate: float) -> None:
    if not latency >= 0 or not 0 <= rate <= 1:
        raise ValueError(
            f"Emulator needs flex_latency >= 0 and 0 <= flex_unavailable_rate <= 1, got flex_latency={latency}, "
            f"flex_unavailable_rate={rate}."
        )


def _check_vertex(settings: Settings) -> None:
    if settings.vertex_echo_request not in ("proto", "verbatim") or settings.vertex_output_files < 1:
        raise ValueError(
            f"Emulator needs vertex_echo_request 'proto' or 'verbatim' and vertex_output_files >= 1, got "
            f"{settings.vertex_echo_request!r}, {settings.vertex_output_files}."
        )
    if not settings.vertex_project_number.isdigit():
        raise ValueError(f"vertex_project_number must be digits, got {settings.vertex_project_number!r}.")


def _file_name(name: str) -> str:
    return name if name.startswith("files/") else f"files/{name}"


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in ENDPOINTS:
        hint = difflib.get_close_matches(endpoint, ENDPOINTS, n=1)
        raise ValueError(
            f"Unknown endpoint {endpoint!r}"
            + (f". Hint: did you mean {hint[0]!r}?" if hint else f"; expected one of {', '.join(ENDPOINTS)}.")
        )
