"""A Cloud Storage emulator on 127.0.0.1 for tests: the PyPI package `gcp-storage-emulator`, in memory, on a free port.

google-cloud-storage works against it unchanged: simple and resumable uploads (`blob.upload_from_filename` of a
20 MB file goes up resumably), downloads (`download_to_file`, `download_as_bytes(start=, end=)`, streamed
`blob.open("rb")` with seeks), listing with a prefix, paging and deletes. Polars cannot read from it (it has no HEAD
and no XML-API listing): read objects through google-cloud-storage.

    >>> with GcsEmulator() as gcs:
    ...     bucket = gcs.create_bucket("my-bucket")
    ...     bucket.blob("in/a.jsonl").upload_from_string(b'{"key": "k"}\\n')
    ...     client = gcs.client()
    ...     [blob.name for blob in client.list_blobs("my-bucket", prefix="in/")]
    ['in/a.jsonl']

`client()` passes anonymous credentials and the emulator's URL explicitly, so google-cloud-storage never looks for
default credentials and never asks a metadata server (169.254.169.254) for anything. Code that builds its own
`storage.Client()` should run with `environ()` applied (`STORAGE_EMULATOR_HOST`), which makes google-cloud-storage
use this endpoint with anonymous credentials too; the `gcs_emulator` pytest fixture sets it for the session.

Uploads honour `ifGenerationMatch` as Cloud Storage does (gcp-storage-emulator ignores it): 0 creates only if the
object is absent, a generation replaces only that version, anything else is a 412 `conditionNotMet`; a resumable
upload is checked when it starts. Conditional writes are what a checkpoint in Cloud Storage relies on.

The server is single-threaded (one request at a time, each on its own connection), which also serializes concurrent
writers; its data lives in memory until `stop()` or `wipe()`. Needs the `dev` extra (`gcp-storage-emulator`,
`google-cloud-storage`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polars_gemini.emulator._served import ServedInThread

if TYPE_CHECKING:
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]  # google.cloud: a namespace package mypy may not resolve

__all__ = ["GcsEmulator"]

_INSTALL = "pip install gcp-storage-emulator google-cloud-storage (both are in polars-gemini's dev extra)"


class GcsEmulator(ServedInThread):
    """An in-memory Cloud Storage JSON API on `host:port` (port 0: a free one), served from a daemon thread.

    `project_number` is what bucket resources report as their `projectNumber`.
    """

    _NAME = "The Cloud Storage emulator"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, project_number: str = "123456789012") -> None:
        self._host, self._port, self._project_number = host, port, project_number
        super().__init__()

    def start(self) -> GcsEmulator:
        """Binds the port and starts serving; returns `self`."""
        if self._server is not None:
            return self
        try:
            from gcp_storage_emulator.server import create_server
        except ImportError:
            raise RuntimeError(f"GcsEmulator needs gcp-storage-emulator: {_INSTALL}.") from None
        _honour_preconditions()
        server = create_server(self._host, self._port, in_memory=True, project_number=self._project_number)
        server._api.daemon = True  # a test that forgets stop() must not keep the interpreter alive
        server.start()
        self._server = server
        return self

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`: the `api_endpoint` for google-cloud-storage (and `STORAGE_EMULATOR_HOST`)."""
        host, port = self._running()._api._httpd.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"

    def environ(self) -> dict[str, str]:
        """The environment that points a plain `storage.Client()` here: `{"STORAGE_EMULATOR_HOST": url}`."""
        return {"STORAGE_EMULATOR_HOST": self.url}

    def client(self, project: str = "test-project") -> storage.Client:
        """A `google.cloud.storage.Client` for this emulator, with anonymous credentials passed explicitly."""
        try:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            raise RuntimeError(f"GcsEmulator.client needs google-cloud-storage: {_INSTALL}.") from None
        return storage.Client(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call,unused-ignore]
            client_options={"api_endpoint": self.url},
        )

    def create_bucket(self, name: str, project: str = "test-project") -> storage.Bucket:
        """Creates bucket `name` and returns it (bound to a fresh `client(project)`)."""
        return self.client(project).create_bucket(name)

    def wipe(self, *, keep_buckets: bool = False) -> None:
        """Deletes every object (and every bucket unless `keep_buckets`)."""
        if self._server is not None:
            self._server.wipe(keep_buckets=keep_buckets)


_PRECONDITION_FAILED = {
    "error": {"code": 412, "message": "At least one of the pre-conditions you specified did not hold.",
              "errors": [{"domain": "global", "reason": "conditionNotMet", "locationType": "header",
                          "location": "If-Match", "message": "At least one of the pre-conditions you specified did "
                          "not hold."}]}
}  # fmt: skip


def _honour_preconditions() -> None:
    """Make gcp-storage-emulator's object uploads check `ifGenerationMatch` (once per process)."""
    from http import HTTPStatus

    from gcp_storage_emulator import server as emulator_server
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    original = objects.insert
    if getattr(original, "honours_preconditions", False):
        return

    def insert(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> Any:
        wanted = request.query.get("ifGenerationMatch")
        if wanted:
            name = (request.query.get("name") or [None])[0]
            if name is None and isinstance(request.data, dict):
                name = (request.data.get("meta") or request.data).get("name")
            try:
                current = str(storage.get_file_obj(request.params["bucket_name"], name).get("generation", 0))
            except NotFound:
                current = "0"
            if current != str(wanted[0]):
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json(_PRECONDITION_FAILED)
                return None
        return original(request, response, storage, *args, **kwargs)

    insert.honours_preconditions = True  # type: ignore[attr-defined]
    objects.insert = insert
    emulator_server.HANDLERS = tuple(
        (regex, {method: insert if handler is original else handler for method, handler in handlers.items()})
        for regex, handlers in emulator_server.HANDLERS
    )
