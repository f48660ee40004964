"""Where a checkpoint lives: a local directory, or a prefix in object storage (`s3://`, `gs://`, `az://`, ...).

`open_location("runs/reviews")` and `open_location("s3://bucket/runs/reviews", storage_options={...})` give a
`Location`; `location / "results" / "job.parquet"` names a file in it (an `Entry`), which `checkpoint.files` reads and
writes. Both kinds keep the same promises, by different means:

* **A local directory**: every write is a temporary file, flushed, synced and renamed over the old one (`files`);
  the lock is an `fcntl` lock on `<dir>/.lock` (`lock`).
* **Object storage** has no rename and no `fcntl`. Every write goes to a new object that is never written again
  (`objects/<name>.<unique>`), and one small object, `index.json`, maps each file's name to its current object.
  The index is replaced only by a conditional write (S3 `If-Match`, Cloud Storage `ifGenerationMatch`, Azure
  `If-Match`): a reader sees the old state or the new one, never half of one. The lock is a **lease**, `lease.json`:
  an owner and an expiry, renewed by a background thread while the run lives. A crashed worker loses it once it runs
  out (`POLARS_GEMINI_LEASE_SECONDS`, 60 s by default), and the next worker takes the checkpoint over. A worker that
  lost its lease (paused past its expiry, say) is fenced off: its next index write finds the index changed and fails
  with `CheckpointLockedError`, and before every job creation it checks that its lease still has half its time left.
  Files are cached in a local temporary directory, so Polars reads and scans them as local files.

Credentials come from the environment, as the cloud's own tools take them (`AWS_*`, `GOOGLE_APPLICATION_CREDENTIALS`,
`AZURE_STORAGE_*`), or from `storage_options=`, with the keys Polars takes (`aws_access_key_id`, `aws_region`,
`aws_endpoint_url`, `azure_storage_account_name`, `google_service_account`, ...). Nothing of them is written to the
checkpoint. S3, Azure and the other obstore schemes go through obstore (the Rust `object_store` crate, as in Polars);
`gs://` goes through google-cloud-storage (generation preconditions; the `gcs` extra).

    >>> loc = open_location("runs/reviews")
    >>> str(loc / "results" / "job-0000.parquet")
    'runs/reviews/results/job-0000.parquet'
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from polars_gemini.core.errors import CheckpointError, CheckpointLockedError

INDEX = "index.json"
LEASE = "lease.json"
_OBJECTS = "objects"
_OURS = re.compile(r"\.[0-9a-f]{16}(\.[^./]+)?$")  # how `_object_key` ends a name: .<16 hex digits>.<suffix>
_LEASE_ENV = "POLARS_GEMINI_LEASE_SECONDS"
_DEFAULT_LEASE = 60.0
_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss", "adl", "r2", "http", "https")
_CLIENT_KEYS = frozenset({
    "allow_http", "allow_invalid_certificates", "connect_timeout", "default_content_type", "http1_only",
    "http2_only", "pool_idle_timeout", "pool_max_idle_per_host", "proxy_url", "timeout", "user_agent",
})  # fmt: skip
# Test-only crash injection (see `files`): `POLARS_GEMINI_CRASH_AT=<file or folder name>` kills the process right
# before a write there lands.
CRASH_ENV = "POLARS_GEMINI_CRASH_AT"


def lease_seconds() -> float:
    """How long a lease on a remote checkpoint lasts without renewal (`POLARS_GEMINI_LEASE_SECONDS`, default 60)."""
    raw = os.environ.get(_LEASE_ENV)
    try:
        value = float(raw) if raw else _DEFAULT_LEASE
    except ValueError:
        raise CheckpointError(f"{_LEASE_ENV}={raw!r} is not a number of seconds. Example: {_LEASE_ENV}=60.") from None
    if value <= 0:
        raise CheckpointError(f"{_LEASE_ENV}={raw!r} must be positive. Example: {_LEASE_ENV}=60.")
    return value


def crash_point(name: str) -> None:
    """Kill the process here if the crash tests asked for it at this file (or folder) name."""
    parts = PurePosixPath(name)
    if os.environ.get(CRASH_ENV) in (parts.name, parts.parent.name):
        os.kill(os.getpid(), 9)


def is_url(checkpoint: str | os.PathLike[str]) -> bool:
    """Whether `checkpoint` names object storage (`scheme://...`) rather than a local directory."""
    text = os.fspath(checkpoint)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() != "file" and scheme.isidentifier()


def url_problem(url: str) -> str | None:
    """What is wrong with an object-storage checkpoint URL (an unknown scheme, no bucket), or None.

    >>> url_problem("s3://bucket/runs/reviews") is None
    True
    >>> url_problem("s3:///runs")[:40]
    "Checkpoint 's3:///runs': no bucket named"
    """
    scheme, _, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    scheme = scheme.lower()
    dots = any(part in (".", "..") for part in prefix.split("/"))
    if scheme in _SCHEMES and bucket and "\x00" not in url and not dots:
        return None
    what = ("no bucket named" if not bucket else f"unknown scheme {scheme!r}" if scheme not in _SCHEMES
            else "a '.' or '..' in its prefix (object stores keep them as they are)" if dots else "a NUL")  # fmt: skip
    return (
        f"Checkpoint {url!r}: {what}. Use a local directory or s3://bucket/prefix, gs://bucket/prefix, "
        "az://container/prefix (also s3a, gcs, azure, abfs, abfss, adl, r2, http, https)."
    )


def open_location(
    checkpoint: str | os.PathLike[str] | Location, storage_options: Mapping[str, Any] | None = None
) -> Location:
    """The checkpoint named by `checkpoint`: a local directory (a path, or `file://`), or an object-storage prefix.

    >>> open_location("runs/reviews").remote
    False
    """
    if isinstance(checkpoint, Location):
        return checkpoint
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise CheckpointError(
            f"storage_options must be a dict of credentials, e.g. {{'aws_region': 'eu-west-1'}}; got a "
            f"{type(storage_options).__name__}."
        )
    text = os.fspath(checkpoint)
    if not is_url(text):
        if storage_options:
            raise CheckpointError(
                f"storage_options were given, but checkpoint {text!r} is a local directory. Pass an object-storage "
                "URL (s3://bucket/prefix, gs://..., az://...), or drop storage_options."
            )
        head = text.partition("/")[0]
        if head.endswith(":") and head[:-1].lower() in _SCHEMES:  # pathlib made "s3://b/p" into "s3:/b/p"
            raise CheckpointError(
                f"Checkpoint {text!r} looks like an object-storage URL that lost a slash (pathlib.Path turns "
                f"'{head}//bucket/prefix' into '{head}/bucket/prefix'). Pass the URL as a string: "
                f"checkpoint='{head}//{text.partition('/')[2].lstrip('/')}'."
            )
        return LocalLocation(Path(text.removeprefix("file://")))
    problem = url_problem(text)
    if problem:
        raise CheckpointError(problem)
    scheme, _, rest = text.partition("://")
    bucket, _, prefix = rest.partition("/")
    scheme = scheme.lower()
    prefix = prefix.strip("/")
    options = dict(storage_options or {})
    gcs = scheme in ("gs", "gcs")
    backend: Backend = GcsBackend(bucket, prefix, options) if gcs else ObstoreBackend(text, options)
    return RemoteLocation(text.rstrip("/"), backend)


class Entry:
    """A file in a checkpoint, named relative to it (`results/job.parquet`), like a `pathlib.Path` under it.

    >>> entry = open_location("runs/x") / "results" / "job-0001.parquet"
    >>> entry.name, entry.stem, entry.parent.name
    ('job-0001.parquet', 'job-0001', 'results')
    """

    __slots__ = ("location", "relative")

    def __init__(self, location: Location, relative: str) -> None:
        self.location, self.relative = location, relative.strip("/")

    def __truediv__(self, part: str) -> Entry:
        return Entry(self.location, f"{self.relative}/{part}")

    @property
    def name(self) -> str:
        return PurePosixPath(self.relative).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.relative).stem

    @property
    def parent(self) -> Entry:
        return Entry(self.location, str(PurePosixPath(self.relative).parent))

    def exists(self) -> bool:
        return self.location.exists(self.relative)

    def unlink(self, missing_ok: bool = True) -> None:
        self.location.delete(self.relative)

    def local(self) -> Path:
        """A local file with this entry's content (a remote one is downloaded into the location's cache once)."""
        return self.location.local(self.relative)

    def __str__(self) -> str:
        return self.location.describe(self.relative)

    def __repr__(self) -> str:
        return f"Entry({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and other.location is self.location and other.relative == self.relative

    def __hash__(self) -> int:
        return hash((id(self.location), self.relative))


class Location(ABC):
    """A checkpoint's home. Subclasses: `LocalLocation` (a directory) and `RemoteLocation` (object storage)."""

    remote: bool = False

    def __truediv__(self, part: str) -> Entry:
        return Entry(self, part)

    @property
    @abstractmethod
    def key(self) -> str:
        """What identifies this checkpoint in this process (for the in-process lock)."""

    @abstractmethod
    def describe(self, relative: str = "") -> str:
        """How a file in it is named in messages (no credentials, ever)."""

    @abstractmethod
    def exists(self, relative: str = "") -> bool:
        """Whether that file exists (with "": whether the checkpoint holds anything)."""

    @abstractmethod
    def local(self, relative: str) -> Path:
        """A local file with that file's content; FileNotFoundError if there is none."""

    @abstractmethod
    def write(self, relative: str, writer: Callable[[IO[bytes]], None]) -> None:
        """Replace that file, atomically, with what `writer` writes to the binary handle it is given."""

    @abstractmethod
    def publish(self, relative: str, source: Path) -> None:
        """Replace that file, atomically, with the local file `source` (moved or uploaded)."""

    @abstractmethod
    def delete(self, relative: str) -> None:
        """Remove that file, if it exists."""

    @abstractmethod
    def names(self, folder: str) -> list[str]:
        """The files directly under `folder`, as relative names, sorted."""

    @abstractmethod
    def staging_dir(self) -> Path:
        """A local directory for large files written before they are published (a local checkpoint: itself)."""

    @abstractmethod
    def acquire(self) -> Hold:
        """Take the checkpoint for this process (CheckpointLockedError if another process holds it)."""

    @abstractmethod
    def adopt(self, hold: Hold) -> None:
        """Write under `hold`, taken by another `Location` of the same checkpoint in this process (a new run that
        took an idle checkpoint over from an earlier one)."""

    @abstractmethod
    def relative_of(self, path: Path) -> str | None:
        """The checkpoint-relative name of the local file `path`, if it is one of this checkpoint's files (or their
        local copies); else None."""

    @abstractmethod
    def prepare(self) -> None:
        """Make sure the checkpoint can be written (the directory exists, or the bucket is reachable)."""

    @abstractmethod
    def refresh(self) -> None:
        """Read what other processes wrote since this location was opened (remote: the index again)."""

    def __str__(self) -> str:
        return self.describe()


class Hold(ABC):
    """A process's exclusive hold on a checkpoint: a file lock or a lease."""

    @abstractmethod
    def check(self, margin: float = 0.0) -> None:
        """Raise CheckpointLockedError if the hold is lost (or, for a lease, has less than `margin` of its term)."""

    @abstractmethod
    def release(self) -> None:
        """Give the checkpoint up."""


# -- local directories ------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary file object whose content replaces `path` only once fully written and synced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        crash_point(str(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalLocation(Location):
    """A checkpoint directory on a local (or mounted) file system."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def key(self) -> str:
        return str(self.root.resolve())

    def path(self, relative: str = "") -> Path:
        return self.root / relative if relative else self.root

    def describe(self, relative: str = "") -> str:
        return str(self.path(relative))

    def exists(self, relative: str = "") -> bool:
        return self.path(relative).exists()

    def local(self, relative: str) -> Path:
        path = self.path(relative)
        if not path.exists():
            raise FileNotFoundError(str(path))
        return path

    def write(self, relative: str, writer: Callable[[IO[bytes]], None]) -> None:
        with atomic_file(self.path(relative)) as handle:
            writer(handle)

    def publish(self, relative: str, source: Path) -> None:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.resolve() == target.resolve():
            return
        with source.open("rb+") as handle:
            os.fsync(handle.fileno())
        crash_point(str(target))
        os.replace(source, target)
        _fsync_dir(target.parent)

    def delete(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)

    def names(self, folder: str) -> list[str]:
        where = self.path(folder)
        if not where.is_dir():
            return []
        return sorted(f"{folder}/{p.name}" for p in where.iterdir() if p.is_file() and not p.name.startswith("."))

    def staging_dir(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def relative_of(self, path: Path) -> str | None:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return None

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def refresh(self) -> None:
        return None  # every read goes to the file system

    def acquire(self) -> Hold:
        return _FileLock(self.root)

    def adopt(self, hold: Hold) -> None:
        return None  # the file lock is the process's: nothing to carry over


class _FileLock(Hold):
    """An fcntl advisory lock on `<dir>/.lock`, which holds the holder's pid."""

    def __init__(self, root: Path) -> None:
        import fcntl

        self.fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise CheckpointLockedError(
                f"Checkpoint {root} is in use by another process (pid {holder}). Wait for it to finish, "
                "stop it, or use another checkpoint directory."
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def check(self, margin: float = 0.0) -> None:
        return None  # held until released or the process ends

    def release(self) -> None:
        os.close(self.fd)  # closing the descriptor drops the flock


# -- object storage ---------------------------------------------------------------------------------------------


class Conflict(Exception):
    """A conditional write found the object changed (or present, for a create)."""


ANY = object()  # `Backend.put(expect=ANY)`: unconditional


class Backend(ABC):
    """Bytes in and out of one bucket prefix, with conditional writes: `expect=None` creates only if absent,
    `expect=<version>` replaces only that version, `expect=ANY` writes unconditionally. Keys are relative to the
    prefix."""

    @abstractmethod
    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's content and version, or None if there is none."""

    @abstractmethod
    def download(self, key: str, target: Path) -> None:
        """Write the object to the local file `target` (FileNotFoundError if there is none)."""

    @abstractmethod
    def put(self, key: str, data: bytes | Path, expect: object = ANY) -> str:
        """Write the object (from bytes, or a local file); its new version. Raises `Conflict`."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if it exists."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix` (relative to the backend's own prefix)."""

    def ready(self) -> None:
        """Check that the bucket is reachable (an error saying how to fix it if not)."""
        self.list(INDEX)


class ObstoreBackend(Backend):
    """S3, Azure, the other object stores of the `object_store` crate, through obstore (the `s3` / `azure`
    extras). Conditional writes: `PutMode.Create` and `UpdateVersion` (S3 needs `aws_conditional_put="etag"`, which is
    set unless given)."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        try:
            from obstore.store import from_url
        except ImportError:
            raise CheckpointError(
                f"Checkpoint {url} is in object storage, which needs obstore: pip install 'polars-gemini[s3]' "
                "(or [azure])."
            ) from None
        config = {k: v for k, v in options.items() if k not in _CLIENT_KEYS}
        client = {k: v for k, v in options.items() if k in _CLIENT_KEYS}
        if url.split("://")[0].lower() in ("s3", "s3a"):
            config.setdefault("aws_conditional_put", "etag")
            if str(config.get("aws_endpoint_url", config.get("endpoint_url", ""))).startswith("http://"):
                client.setdefault("allow_http", True)  # an S3-compatible server on loopback (MinIO, moto)
        try:
            self.store = from_url(url, config=cast(Any, config or None), client_options=cast(Any, client or None))
        except BaseException as exc:  # obstore raises a PanicException (a BaseException) on unknown keys
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise CheckpointError(
                f"Checkpoint {url}: could not open the object store ({type(exc).__name__}: {_first_line(exc)}). Check "
                "storage_options: its keys are those Polars takes (aws_access_key_id, aws_region, aws_endpoint_url, "
                "azure_storage_account_name, ...)."
            ) from None

    def get(self, key: str) -> tuple[bytes, str] | None:
        import obstore as obs

        try:
            result = obs.get(self.store, key)
        except FileNotFoundError:
            return None
        data = bytes(result.bytes())
        return data, str(result.meta.get("e_tag") or result.meta.get("version") or "")

    def download(self, key: str, target: Path) -> None:
        import obstore as obs

        result = obs.get(self.store, key)  # FileNotFoundError if absent
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as handle:
            for chunk in result.stream(min_chunk_size=8 << 20):
                handle.write(chunk)

    def put(self, key: str, data: bytes | Path, expect: object = ANY) -> str:
        import obstore as obs
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        mode: Any = "overwrite" if expect is ANY else "create" if expect is None else {"e_tag": expect}
        try:
            result = obs.put(self.store, key, data, mode=mode)
        except (AlreadyExistsError, PreconditionError):
            raise Conflict(key) from None
        return str(result.get("e_tag") or result.get("version") or "")

    def delete(self, key: str) -> None:
        import obstore as obs

        with contextlib.suppress(FileNotFoundError):
            obs.delete(self.store, key)

    def list(self, prefix: str) -> list[str]:
        import obstore as obs

        found: list[str] = []
        for batch in obs.list(self.store, prefix=prefix or None):
            found.extend(str(meta["path"]) for meta in batch)
        return found


class GcsBackend(Backend):
    """Cloud Storage through google-cloud-storage (the `gcs` extra): generation preconditions make the conditional
    writes. Credentials: Application Default Credentials, or `storage_options={"google_service_account": <path>}`,
    `{"project": ...}`; `STORAGE_EMULATOR_HOST` points it at an emulator."""

    def __init__(self, bucket: str, prefix: str, options: dict[str, Any]) -> None:
        try:
            from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            raise CheckpointError(
                f"Checkpoint gs://{bucket}/{prefix} needs google-cloud-storage: pip install 'polars-gemini[gcs]'."
            ) from None
        unknown = set(options) - {"google_service_account", "google_service_account_path", "project", "client"}
        if unknown:
            raise CheckpointError(
                f"Checkpoint gs://{bucket}/{prefix}: storage_options {sorted(unknown)} are not understood. Use "
                "google_service_account (a key file's path) and project, or the environment's credentials."
            )
        client = options.get("client")
        if client is None:
            account = options.get("google_service_account") or options.get("google_service_account_path")
            try:
                if account:
                    client = storage.Client.from_service_account_json(account, project=options.get("project"))
                else:
                    client = storage.Client(project=options.get("project"))
            except Exception as exc:  # no credentials found, an unreadable key file: google.auth's own errors
                raise CheckpointError(
                    f"Checkpoint gs://{bucket}/{prefix}: no usable Cloud Storage credentials ({type(exc).__name__}: "
                    f"{_first_line(exc)}). Run `gcloud auth application-default login`, set "
                    "GOOGLE_APPLICATION_CREDENTIALS, or pass storage_options={'google_service_account': <key file>}."
                ) from None
        self.bucket = client.bucket(bucket)
        self.prefix = f"{prefix}/" if prefix else ""

    def _blob(self, key: str) -> Any:
        return self.bucket.blob(self.prefix + key)

    def get(self, key: str) -> tuple[bytes, str] | None:
        from google.api_core import exceptions

        blob = self.bucket.get_blob(self.prefix + key)  # its generation, then exactly that version's bytes
        if blob is None:
            return None
        generation = blob.generation  # (a download may reset it from headers an emulator leaves out)
        try:
            data = blob.download_as_bytes(if_generation_match=generation)
        except (exceptions.NotFound, exceptions.PreconditionFailed):
            return self.get(key)  # replaced in between: read the new version
        return bytes(data), str(generation)

    def download(self, key: str, target: Path) -> None:
        from google.api_core import exceptions

        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._blob(key).download_to_filename(str(target))
        except exceptions.NotFound:
            target.unlink(missing_ok=True)
            raise FileNotFoundError(key) from None

    def put(self, key: str, data: bytes | Path, expect: object = ANY) -> str:
        from google.api_core import exceptions

        blob = self._blob(key)
        condition: dict[str, Any] = {} if expect is ANY else {"if_generation_match": 0 if expect is None else
                                                               int(str(expect))}  # fmt: skip
        try:
            if isinstance(data, Path):
                blob.upload_from_filename(str(data), **condition)
            else:
                blob.upload_from_string(data, **condition)
        except exceptions.PreconditionFailed:
            raise Conflict(key) from None
        return str(blob.generation or "")

    def delete(self, key: str) -> None:
        from google.api_core import exceptions

        with contextlib.suppress(exceptions.NotFound):
            self._blob(key).delete()

    def list(self, prefix: str) -> list[str]:
        start = len(self.prefix)
        return [b.name[start:] for b in self.bucket.client.list_blobs(self.bucket, prefix=self.prefix + prefix)]


@dataclass
class _Index:
    files: dict[str, str]  # relative name -> object key
    version: str | None  # the index object's version (None: no index yet)


class RemoteLocation(Location):
    """A checkpoint in object storage: write-once objects, an index replaced by conditional writes, a lease."""

    remote = True

    def __init__(self, url: str, backend: Backend) -> None:
        self.url, self.backend = url, backend
        self._guard = threading.RLock()  # one index update at a time in this process
        self._index: _Index | None = None
        self._cache: Path | None = None
        self._cached: dict[str, str] = {}  # relative name -> object key of the local copy
        self._external: dict[str, tuple[str, Path]] = {}  # relative name -> (object key, a local file that has it)
        self.hold: Lease | None = None

    @property
    def key(self) -> str:
        return self.url

    def describe(self, relative: str = "") -> str:
        return f"{self.url}/{relative}" if relative else self.url

    # -- the index

    def _read_index(self) -> _Index:
        found = self._call("read", INDEX, lambda: self.backend.get(INDEX))
        if found is None:
            return _Index({}, None)
        data, version = found
        try:
            files = json.loads(data)["files"]
        except (ValueError, KeyError, TypeError):
            from polars_gemini.core.errors import CheckpointCorruptedError

            raise CheckpointCorruptedError(
                f"{self.describe(INDEX)} is not a polars-gemini checkpoint index. Restore it from a backup (the "
                "bucket's object versions), or start over in another prefix."
            ) from None
        return _Index(dict(files), version)

    def index(self) -> _Index:
        with self._guard:
            if self._index is None:
                self._index = self._read_index()
            return self._index

    def refresh(self) -> None:
        with self._guard:
            self._index = self._read_index()

    def _commit(self, changes: dict[str, str | None]) -> None:
        """Point the index at new objects (None: forget the file), by a conditional write; the replaced objects are
        deleted afterwards. Refused (CheckpointLockedError) if the index changed under us: another worker holds the
        checkpoint now."""
        with self._guard:
            if self.hold is None:
                raise CheckpointLockedError(
                    f"Checkpoint {self.url} is written only by the worker holding its lease; take it first "
                    "(batch/submit/resume do)."
                )
            self.hold.check()
            current = self.index()
            files = dict(current.files)
            old = [files[k] for k in changes if k in files and files[k] != changes[k]]
            for relative, key in changes.items():
                if key is None:
                    files.pop(relative, None)
                else:
                    files[relative] = key
            body = json.dumps({"format": 1, "files": files}, indent=1, sort_keys=True).encode()
            expect = current.version  # None: create (no index yet)
            try:
                version = self._call("write", INDEX, lambda: self.backend.put(INDEX, body, expect))
            except Conflict:
                version = self._landed(body)
            if version is None:
                self._index = None
                if isinstance(self.hold, Lease):  # fenced off: every later step refuses too (job creation first)
                    self.hold.lose("another worker changed the checkpoint's index")
                raise CheckpointLockedError(
                    f"Checkpoint {self.url} was changed by another worker (its index is not the one this run last "
                    "wrote): this run's lease ran out and another run took the checkpoint over. Nothing more is "
                    "written or sent from here; the other run carries on (or polars_gemini.resume(...) does)."
                ) from None
            self._index = _Index(files, version)
        for key in old:  # housekeeping only: the index no longer names them, and the next lease's sweep retries
            with contextlib.suppress(CheckpointError):
                self._call("delete", key, lambda k=key: self.backend.delete(k))  # type: ignore[misc]

    def _landed(self, body: bytes) -> str | None:
        """After a conditional write was refused: the index's version if what it holds is `body` (the write landed,
        and a retry of it, its reply lost, was what the store refused), else None (another worker wrote it)."""
        found = self._call("read", INDEX, lambda: self.backend.get(INDEX))
        return found[1] if found is not None and found[0] == body else None

    def _object_key(self, relative: str) -> str:
        path = PurePosixPath(relative)
        return f"{_OBJECTS}/{path.parent}/{path.stem}.{uuid.uuid4().hex[:16]}{path.suffix}".replace("/./", "/")

    # -- files

    def exists(self, relative: str = "") -> bool:
        files = self.index().files
        if not relative:
            return bool(files)
        return relative in files or any(name.startswith(f"{relative}/") for name in files)

    def local(self, relative: str) -> Path:
        with self._guard:
            key = self.index().files.get(relative)
            if key is None:
                raise FileNotFoundError(self.describe(relative))
            known = self._external.get(relative)
            if known is not None and known[0] == key and known[1].exists():
                return known[1]
            target = self._cache_dir() / relative
            if self._cached.get(relative) != key or not target.exists():
                tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
                try:
                    self._download(key, relative, tmp)
                except FileNotFoundError:  # replaced (and deleted) by the holder since our index was read
                    self.refresh()
                    again = self.index().files.get(relative)
                    if again is None:
                        raise FileNotFoundError(self.describe(relative)) from None
                    key = again
                    self._download(key, relative, tmp)
                os.replace(tmp, target)
                self._cached[relative] = key
            return target

    def _download(self, key: str, relative: str, target: Path) -> None:
        self._call("read", relative, lambda: self.backend.download(key, target))

    def write(self, relative: str, writer: Callable[[IO[bytes]], None]) -> None:
        staged = self._cache_dir() / ".staging" / f"{uuid.uuid4().hex}"
        staged.parent.mkdir(parents=True, exist_ok=True)
        try:
            with staged.open("wb") as handle:
                writer(handle)
            self.publish(relative, staged)
        finally:
            staged.unlink(missing_ok=True)

    def publish(self, relative: str, source: Path) -> None:
        key = self._object_key(relative)
        self._call("write", relative, lambda: self.backend.put(key, source))
        crash_point(relative)  # the object is up, the index does not point at it yet: a crash leaves an orphan
        self._commit({relative: key})
        with self._guard:  # keep the local copy: reads of what this run wrote need no download
            if source.parent != self._cache_dir() / ".staging":  # a file of the caller's: read from where it is
                self._external[relative] = (key, source)
                return
            target = self._cache_dir() / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            self._cached[relative] = key

    def delete(self, relative: str) -> None:
        if relative in self.index().files:
            self._commit({relative: None})
        with self._guard:
            self._cached.pop(relative, None)

    def names(self, folder: str) -> list[str]:
        return sorted(n for n in self.index().files if str(PurePosixPath(n).parent) == folder)

    def staging_dir(self) -> Path:
        where = self._cache_dir() / ".staging"
        where.mkdir(parents=True, exist_ok=True)
        return where

    def relative_of(self, path: Path) -> str | None:
        for relative, (_, source) in self._external.items():
            if source == path:
                return relative
        try:
            return path.resolve().relative_to(self._cache_dir().resolve()).as_posix()
        except ValueError:
            return None

    def prepare(self) -> None:
        self._call("reach", "", self.backend.ready)

    def adopt(self, hold: Hold) -> None:
        if isinstance(hold, Lease):
            self.hold = hold
            self.refresh()

    def acquire(self) -> Hold:
        lease = Lease(self)
        self.hold = lease
        try:
            self.refresh()  # what the previous holder wrote
            self._sweep()
        except BaseException:  # a corrupted index, a storage error: the lease must not outlive the failed open
            lease.release()
            raise
        return lease

    def _sweep(self) -> None:
        """Delete objects no index entry points at (left by a worker killed between its upload and its commit): only
        those named as this module names them (`_object_key`), never another program's files under `objects/`."""
        live = set(self.index().files.values())
        for key in self._call("list", _OBJECTS, lambda: self.backend.list(f"{_OBJECTS}/")):
            if key not in live and _OURS.search(key):
                self._call("delete", key, lambda k=key: self.backend.delete(k))  # type: ignore[misc]

    def _cache_dir(self) -> Path:
        if self._cache is None:
            self._cache = Path(tempfile.mkdtemp(prefix="polars-gemini-checkpoint-"))
            weakref.finalize(self, shutil.rmtree, self._cache, ignore_errors=True)
        return self._cache

    def _call(self, what: str, relative: str, call: Callable[[], Any]) -> Any:
        """A storage call, retried on transport errors (a few times, with backoff); other errors are raised as
        CheckpointError naming the object, never with credentials."""
        delay, attempts = 0.25, 9  # about 25 s of waiting in all: a storage outage of that long is ridden out
        for attempt in range(attempts):
            try:
                return call()
            except (Conflict, FileNotFoundError, CheckpointError):
                raise
            except Exception as exc:
                if attempt == attempts - 1 or not _transient(exc):
                    raise CheckpointError(
                        f"Could not {what} {self.describe(relative)} ({type(exc).__name__}: {_first_line(exc)}). "
                        "Check the bucket's name, that it exists, and the credentials (environment or "
                        "storage_options)."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def _transient(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return not any(s in text for s in ("403", "401", "forbidden", "unauthorized", "nosuchbucket", "does not exist",
                                       "404"))  # fmt: skip


class Lease(Hold):
    """An expiring claim on a remote checkpoint (`lease.json`: owner, host, pid, expiry), renewed in the background
    every third of its term; taken over by another worker only once it has expired."""

    def __init__(self, location: RemoteLocation) -> None:
        self.location, self.term = location, lease_seconds()
        self.owner = uuid.uuid4().hex
        self.expires = 0.0
        self._version: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._mutex = threading.Lock()  # renewal and release, one at a time
        self._take()
        self._thread = threading.Thread(target=self._renew_loop, name="polars-gemini-lease", daemon=True)
        self._thread.start()

    def _body(self, expires: float) -> bytes:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "expires_at": expires, "term": self.term}).encode()  # fmt: skip

    def _take(self) -> None:
        backend, loc = self.location.backend, self.location
        found = loc._call("read", LEASE, lambda: backend.get(LEASE))
        now = time.time()
        expect: object = None
        if found is not None:
            data, version = found
            try:
                held = json.loads(data)
                expires, who = float(held["expires_at"]), f"{held.get('host')}, pid {held.get('pid')}"
            except (ValueError, KeyError, TypeError):
                held, expires, who = {}, 0.0, "unknown"  # an unreadable lease protects nothing: take it over
            if expires > now and not held.get("released"):
                left = f"{expires - now:.0f} s more" if expires - now < 10 * 86400 else "ever (its expiry is garbled)"
                raise CheckpointLockedError(
                    f"Checkpoint {loc.url} is in use by another worker ({who}); its lease runs for {left} and is "
                    "renewed while that worker lives. Wait for it to finish, stop it (its lease then runs out), or "
                    f"use another checkpoint. If you are sure no worker is on it, delete {loc.describe(LEASE)}."
                )
            expect = version
        expires = now + self.term
        body = self._body(expires)
        try:
            self._version = loc._call("write", LEASE, lambda: backend.put(LEASE, body, expect))
        except Conflict:
            found = loc._call("read", LEASE, lambda: backend.get(LEASE))
            if found is None or found[0] != body:  # (else: this very write landed, and its retry was refused)
                raise CheckpointLockedError(
                    f"Checkpoint {loc.url} was just taken by another worker (both tried at once; it won). Wait for "
                    "it to finish, or use another checkpoint."
                ) from None
            self._version = found[1]
        self.expires = expires

    def renew(self) -> None:
        """Extend the lease by one term (conditional on it still being ours)."""
        with self._mutex:
            if self._lost or self._stop.is_set():
                return
            expires = time.time() + self.term
            body = self._body(expires)
            try:
                self._version = self.location.backend.put(LEASE, body, self._version)
                self.expires = expires
            except Conflict:  # another worker took it over, unless this very renewal landed (its reply lost)
                found = self.location.backend.get(LEASE)
                if found is not None and found[0] == body:
                    self._version, self.expires = found[1], expires
                else:
                    self._lost = "another worker took it over"
            except Exception:  # a transient storage error: try again at the next tick, unless the term ran out
                if time.time() >= self.expires:
                    self._lost = "it could not be renewed before it expired"

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.term / 3):
            self.renew()
            if self._lost:
                return

    def lose(self, why: str) -> None:
        """Give the lease up as lost (`why`): renewal stops, and every later `check` refuses."""
        with self._mutex:
            self._lost = self._lost or why
            self._stop.set()

    def check(self, margin: float = 0.0) -> None:
        if not self._lost and time.time() >= self.expires:
            self._lost = "it expired before it was renewed"
        if self._lost:
            raise CheckpointLockedError(
                f"This run lost its lease on checkpoint {self.location.url} ({self._lost}): another worker may hold "
                "it now. Nothing more is written or sent from here; polars_gemini.resume(...) picks the work up."
            )
        if margin and self.expires - time.time() < margin:
            self.renew()
            self.check()

    def release(self) -> None:
        with self._mutex:
            self._stop.set()
            if self._lost or self._version is None:
                return
            body = json.dumps({"owner": self.owner, "expires_at": 0, "released": True}).encode()
            with contextlib.suppress(Exception):  # a lease not released runs out on its own
                self.location.backend.put(LEASE, body, self._version)
            self._lost = "it was released"
        if self.location.hold is self:
            self.location.hold = None
