"""A BigQuery emulator on 127.0.0.1 for tests: the PyPI package `bqemulator` (DuckDB-backed), in memory, in its own
process, on free loopback ports.

google-cloud-bigquery works against it unchanged: datasets, tables with JSON/STRING/INT64/TIMESTAMP/... columns,
`insert_rows_json`, load jobs from NDJSON and Parquet files (`load_table_from_file`), queries (GoogleSQL translated to
DuckDB), `list_rows(...).to_arrow()`, and the Storage Read API over gRPC (Arrow) through `read_client()`.

    >>> from google.cloud import bigquery
    >>> with BigQueryEmulator() as bq:
    ...     client = bq.client("my-project")
    ...     _ = client.create_dataset("ds")
    ...     schema = [bigquery.SchemaField("k", "STRING"), bigquery.SchemaField("request", "JSON")]
    ...     _ = client.create_table(bigquery.Table("my-project.ds.t", schema=schema))
    ...     errors = client.insert_rows_json("my-project.ds.t", [{"k": "a", "request": '{"contents": []}'}])
    ...     [dict(row) for row in client.list_rows("my-project.ds.t")]
    [{'k': 'a', 'request': {'contents': []}}]

Loopback only, nothing leaves the machine: `client()` passes anonymous credentials and an explicit project, so
google-cloud-bigquery never looks for default credentials nor asks a metadata server (169.254.169.254); the server
runs with DuckDB's format extensions off (no download attempts) and DuckDB's spatial extension, which bqemulator
requires at startup, installed from the PyPI package `duckdb-extension-spatial` (the `dev` extra pins DuckDB to the
version that package is built for). Never call `to_arrow()` / `to_dataframe()` with the default
`create_bqstorage_client=True` against the emulator: that builds a Storage client for Google's own endpoint. Pass
`create_bqstorage_client=False` (REST paging) or `bqstorage_client=bq.read_client()` (the emulator's Storage Read API).

Known gaps of bqemulator 1.4 (checked): `load_table_from_dataframe` fails (its multipart upload is refused:
"multipart upload's second part has unsupported Content-Type '*/*'"), so load a Parquet or NDJSON file with
`load_table_from_file`; a load job into a table that does not exist fails unless the table is created first.
Startup takes about 2 s (a fresh Python process importing DuckDB, SQLGlot, FastAPI and gRPC).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from polars_gemini.emulator._served import Served

if TYPE_CHECKING:
    from google.cloud import bigquery, bigquery_storage_v1

__all__ = ["BigQueryEmulator"]

_INSTALL = (
    "pip install bqemulator google-cloud-bigquery google-cloud-bigquery-storage duckdb==1.5.5 "
    "duckdb-extension-spatial==1.5.5 duckdb-extensions==1.5.5 (all in polars-gemini's dev extra)"
)


class BigQueryEmulator(Served):
    """bqemulator's REST (BigQuery API v2) and gRPC (Storage Read/Write API) servers on `host`, each on a free port.

    `project` is the default project of requests that name none. `startup_timeout` bounds how long `start()` waits for
    both servers to listen; a server that exits first raises at once with the end of its log. `python` is the
    interpreter that has bqemulator (default: this one); bqemulator's grpcio-tools caps protobuf below 7, which
    sentencepiece (the exact tokenizer) cannot load with, so it usually lives in an environment of its own:
    `python=environment(path)` makes one there (once) and returns its interpreter.
    """

    def __init__(self, *, project: str = "emulator-project", host: str = "127.0.0.1", startup_timeout: float = 60.0,
                 python: str | None = None):  # fmt: skip
        self._project, self._host, self._timeout = project, host, startup_timeout
        self._python = python or sys.executable
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._rest_port: int | None = None
        self._grpc_port: int | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.startup_seconds: float | None = None
        """How long the last `start()` took, from launching the process to both servers listening."""

    def start(self) -> BigQueryEmulator:
        """Launches the server process and waits until it listens; returns `self`."""
        if self._process is not None:
            return self
        _ensure_spatial(self._python)
        began = time.monotonic()
        self._workdir = tempfile.TemporaryDirectory(prefix="polars-gemini-bq-")
        log_path = Path(self._workdir.name) / "server.log"
        log = log_path.open("wb")
        self._process = subprocess.Popen(  # a session of its own: stop() ends the server and every worker it forked
            self._command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._environ(),
            start_new_session=True,
        )
        self._finalizer = weakref.finalize(self, _terminate, self._process, log, self._workdir)
        try:
            self._rest_port, self._grpc_port = self._wait_listening(log_path)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stops the server; its data (in memory) is gone."""
        if self._finalizer is not None:
            self._finalizer()
        self._process = self._finalizer = self._workdir = None
        self._rest_port = self._grpc_port = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`: the `api_endpoint` for google-cloud-bigquery (`BIGQUERY_EMULATOR_HOST` is
        `host:port`)."""
        return f"http://{self._host}:{self._running(self._rest_port)}"

    @property
    def grpc_endpoint(self) -> str:
        """`127.0.0.1:PORT` of the Storage Read/Write API (plaintext gRPC)."""
        return f"{self._host}:{self._running(self._grpc_port)}"

    def client(self, project: str | None = None) -> bigquery.Client:
        """A `google.cloud.bigquery.Client` for this emulator, with anonymous credentials and `project` (default: the
        emulator's) passed explicitly."""
        try:
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import bigquery
        except ImportError:
            raise RuntimeError(f"BigQueryEmulator.client needs google-cloud-bigquery: {_INSTALL}.") from None
        return bigquery.Client(
            project=project or self._project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=self.url),
        )

    def read_client(self) -> bigquery_storage_v1.BigQueryReadClient:
        """A Storage Read API client on a plaintext gRPC channel to this emulator: pass it as `bqstorage_client=` to
        `RowIterator.to_arrow()` / `to_dataframe()`."""
        try:
            grpc: Any = importlib.import_module("grpc")
            from google.cloud import bigquery_storage_v1
            from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport
        except ImportError:
            raise RuntimeError(f"read_client needs google-cloud-bigquery-storage: {_INSTALL}.") from None
        transport = BigQueryReadGrpcTransport(channel=grpc.insecure_channel(self.grpc_endpoint))
        return bigquery_storage_v1.BigQueryReadClient(transport=transport)  # type: ignore[no-untyped-call]

    def environ(self) -> dict[str, str]:
        """The environment that points a plain `bigquery.Client(project=..., credentials=...)` here:
        `{"BIGQUERY_EMULATOR_HOST": "127.0.0.1:PORT"}`."""
        return {"BIGQUERY_EMULATOR_HOST": f"{self._host}:{self._running(self._rest_port)}"}

    def _command(self) -> list[str]:
        return [
            self._python, "-c", _THREAD_CURSORS, "start", "--ephemeral", "--project", self._project,
            "--rest-host", self._host, "--rest-port", "0", "--grpc-host", self._host, "--grpc-port", "0",
            "--log-level", "info", "--log-format", "json",
        ]  # fmt: skip

    def _environ(self) -> dict[str, str]:
        assert self._workdir is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("BQEMU_")}
        env.update(
            BQEMU_ENABLE_FORMAT_EXTENSIONS="false",  # the avro extension would be downloaded: never
            BQEMU_TRACING_ENABLED="false",
            BQEMU_UPLOAD_STAGING_DIR=str(Path(self._workdir.name) / "uploads"),
            PYTHONWARNINGS="ignore",  # its own imports' warnings must not end up in the log we parse, or anywhere
        )
        return env

    def _wait_listening(self, log_path: Path) -> tuple[int, int]:
        """The REST and gRPC ports, read from the server's `rest.listen` and `grpc.listen` log events."""
        assert self._process is not None
        deadline = time.monotonic() + self._timeout
        ports: dict[str, int] = {}
        while True:
            for line in log_path.read_bytes().splitlines():
                event = _event(line)
                if event.get("event") in ("rest.listen", "grpc.listen") and isinstance(event.get("port"), int):
                    ports[event["event"]] = event["port"]
            if len(ports) == 2:
                return ports["rest.listen"], ports["grpc.listen"]
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                why = "exited" if self._process.poll() is not None else f"did not listen within {self._timeout:g} s"
                raise RuntimeError(f"The BigQuery emulator (bqemulator) {why}. Its log ends:\n{tail}")
            time.sleep(0.02)

    def _running(self, port: int | None) -> int:
        if port is None:
            raise RuntimeError("The BigQuery emulator is not running: call start() or use it as a context manager.")
        return port


def _event(line: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(line)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


PACKAGES = ("bqemulator>=1.4,<2", "duckdb==1.5.5", "duckdb-extension-spatial==1.5.5", "duckdb-extensions==1.5.5",
            "testcontainers>=4,<5", "numpy>=1.26")  # fmt: skip
"""What `environment` installs: bqemulator, and the DuckDB its spatial extension's PyPI build is for."""


def environment(path: str | os.PathLike[str]) -> str:
    """A virtual environment at `path` with bqemulator (`PACKAGES`), made the first time (a minute or two, from the
    package registry); returns its Python interpreter, for `BigQueryEmulator(python=...)`."""
    root = Path(path)
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    done = root / ".polars-gemini-ready"
    if done.exists() and done.read_text() == "\n".join(PACKAGES):
        return str(python)
    root.parent.mkdir(parents=True, exist_ok=True)
    with _building(root.parent / f".{root.name}.lock"):  # pytest-xdist workers (or a pre-warm) build it once
        if not (done.exists() and done.read_text() == "\n".join(PACKAGES)):
            _build(root, python, done)
    return str(python)


@contextlib.contextmanager
def _building(lock: Path) -> Iterator[None]:
    """One process at a time builds the environment; the others wait for it, then find it ready."""
    with lock.open("a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock (one test process at a time)
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(root: Path, python: Path, done: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES],
                               capture_output=True, text=True)  # fmt: skip
    if installed.returncode:
        raise RuntimeError(f"Installing bqemulator into {root} failed: {installed.stderr[-2000:]}")
    done.write_text("\n".join(PACKAGES))


_THREAD_CURSORS = """
import sys, threading
import bqemulator.storage.engine as engine
from bqemulator.cli import main

# bqemulator 1.4 shares one DuckDB connection between its event loop and its worker threads; DuckDB connections are
# not for concurrent use, and a table read (a worker thread) during an insert (the loop) was seen to hang both for
# good. Each thread gets a cursor of its own on the same database (DuckDB's way to use one database from threads),
# with the connection's own setting (`_apply_session_pragmas`) again; its functions are the database's already.
shared = engine.DuckDBEngine.connection.fget
local = threading.local()

def connection(self):
    base = shared(self)
    if getattr(local, "base", None) is not base:
        cursor = base.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        local.base, local.cursor = base, cursor
    return local.cursor

engine.DuckDBEngine.connection = property(connection)
sys.argv[0] = "bqemulator"
main()
"""


_SPATIAL = """
import importlib, duckdb
con = duckdb.connect()
row = con.sql("SELECT installed FROM duckdb_extensions() WHERE extension_name = 'spatial'").fetchone()
if not (row and row[0]):
    importlib.import_module("duckdb_extensions").import_extension("spatial", con=con)
"""


def _ensure_spatial(python: str = sys.executable) -> None:
    """Installs DuckDB's spatial extension from the PyPI package into DuckDB's extension directory, once: bqemulator
    runs `INSTALL spatial`, which would otherwise download it (and fail offline). In `python`'s environment, in a
    process of its own (DuckDB is not imported here)."""
    done = subprocess.run([python, "-c", _SPATIAL], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(
            f"bqemulator needs DuckDB's spatial extension, and installing it from the PyPI package built for this "
            f"DuckDB failed with {python} ({done.stderr.strip().splitlines()[-1:]}). {_INSTALL}."
        )


def _terminate(process: subprocess.Popen[bytes], log: IO[bytes], workdir: tempfile.TemporaryDirectory[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):  # the whole process group: bqemulator forks workers
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            process.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # workers that outlived their parent
    process.wait()
    log.close()
    workdir.cleanup()
