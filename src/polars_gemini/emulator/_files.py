"""The Files API state: stored files and resumable upload sessions. Thread-safe; bytes stay in memory.

Missing files answer 403 PERMISSION_DENIED, not 404: that is what the real Files API says
("You do not have permission to access the File x or it may not exist"). Files live 48 hours by the
emulator's `Clock`; an expired file is gone (from get, list and requests that name it), as on the real
service. A file's `state` is computed on every read: PROCESSING until its ready time (video uploads
with `Settings.video_processing_seconds`, or `set_state`), then ACTIVE, unless set to FAILED.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from polars_gemini.emulator._clock import Clock
from polars_gemini.emulator._ids import new_id, rfc3339
from polars_gemini.emulator._status import EmulatedError, invalid_argument

_FILE_ID = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
_NS = 1_000_000_000
_LIFETIME_NS = 48 * 3600 * _NS
PUBLIC_BASE = "https://generativelanguage.googleapis.com/v1beta"
STATES = ("PROCESSING", "ACTIVE", "FAILED")
_FAILED_ERROR = {"code": 13, "message": "File processing failed (emulated)."}


class UploadRecord(NamedTuple):
    """One file uploaded through the Files API (`Emulator.uploads`): `sha256` is the hex digest of its bytes."""

    name: str
    mime_type: str
    sha256: str
    size: int


@dataclass
class StoredFile:
    meta: dict[str, Any]  # the resource as created; `view` adds what changes with time
    data: bytes
    created_ns: int = 0
    expires_ns: int = 0
    ready_ns: int = 0  # PROCESSING before this instant
    forced: str | None = None  # "PROCESSING" (until set otherwise) or "FAILED"

    def state(self, now_ns: int) -> str:
        if self.forced is not None:
            return self.forced
        return "PROCESSING" if now_ns < self.ready_ns else "ACTIVE"

    def view(self, now_ns: int) -> dict[str, Any]:
        """The `File` resource at `now_ns` (key order kept: state and times are updated in place)."""
        state = self.state(now_ns)
        meta = dict(self.meta, state=state, expirationTime=rfc3339(self.expires_ns))
        if state == "ACTIVE" and self.ready_ns > self.created_ns:
            meta["updateTime"] = rfc3339(self.ready_ns)
        if state == "FAILED":
            meta["error"] = _FAILED_ERROR
        return meta


@dataclass
class Upload:
    """A resumable upload in progress: the start request's metadata and the bytes received so far."""

    name: str
    display_name: str | None
    mime_type: str
    size: int
    # One buffer, not a list of chunks joined at the end: `getvalue()` hands the bytes over without a second copy.
    data: io.BytesIO = field(default_factory=io.BytesIO)
    received: int = 0


def file_meta(
    name: str, data: bytes, mime_type: str, display_name: str | None, source: str, created: int
) -> dict[str, Any]:
    """A `File` resource in the real key order; generated files also get a `downloadUri`."""
    digest = hashlib.sha256(data).hexdigest()
    meta: dict[str, Any] = {"name": name}
    if display_name:
        meta["displayName"] = display_name
    meta |= {
        "mimeType": mime_type,
        "sizeBytes": str(len(data)),
        "createTime": rfc3339(created),
        "updateTime": rfc3339(created),
        "expirationTime": rfc3339(created + _LIFETIME_NS),
        # Proto `bytes` field; base64 of the hex digest is how the service has been seen to fill it.
        "sha256Hash": base64.b64encode(digest.encode()).decode(),
        "uri": f"{PUBLIC_BASE}/{name}",
        "state": "ACTIVE",
        "source": source,
    }
    if source == "GENERATED":
        meta["downloadUri"] = f"{PUBLIC_BASE}/{name}:download?alt=media"
    return meta


class FileStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, Upload] = {}
        self._records: list[UploadRecord] = []

    def put(
        self,
        name: str,
        data: bytes,
        *,
        mime_type: str,
        display_name: str | None,
        source: str,
        processing_seconds: float = 0.0,
    ) -> dict[str, Any]:
        now = self.clock.now_ns()
        meta = file_meta(name, data, mime_type, display_name, source, now)
        stored = StoredFile(meta, data, now, now + _LIFETIME_NS, now + int(processing_seconds * _NS))
        with self._lock:
            self._files[name] = stored
        return stored.view(now)

    def get(self, name: str) -> StoredFile:
        """The live file `name`; missing, deleted and expired files all answer 403 like the real service."""
        now = self.clock.now_ns()
        with self._lock:
            self._drop_expired(now)
            stored = self._files.get(name)
        if stored is None:
            raise missing_file(name)
        return stored

    def meta(self, name: str) -> dict[str, Any]:
        return self.get(name).view(self.clock.now_ns())

    def state(self, stored: StoredFile) -> str:
        return stored.state(self.clock.now_ns())

    def delete(self, name: str) -> None:
        with self._lock:
            self._drop_expired(self.clock.now_ns())
            if self._files.pop(name, None) is None:
                raise missing_file(name)

    def metas(self) -> list[dict[str, Any]]:
        """Every live file's metadata, newest first like the real `files.list`."""
        now = self.clock.now_ns()
        with self._lock:
            self._drop_expired(now)
            return [stored.view(now) for stored in reversed(self._files.values())]

    def _drop_expired(self, now: int) -> None:
        """Forgets expired files (callers hold the lock), so their names and storage are free again."""
        expired = [name for name, stored in self._files.items() if stored.expires_ns <= now]
        for name in expired:
            del self._files[name]

    def expire(self, name: str) -> None:
        """Ends the file's lifetime now: it disappears at once."""
        stored = self.get(name)
        with self._lock:
            stored.expires_ns = self.clock.now_ns()

    def set_state(self, name: str, state: str, seconds: float | None = None) -> dict[str, Any]:
        """PROCESSING (for `seconds`, or until set otherwise), ACTIVE or FAILED; returns the new metadata."""
        state = state.upper().removeprefix("STATE_")
        if state not in STATES:
            raise ValueError(f"Unknown file state {state!r}; expected one of {', '.join(STATES)}.")
        if seconds is not None and state != "PROCESSING":
            raise ValueError("`seconds` only applies to PROCESSING: how long until the file becomes ACTIVE.")
        stored, now = self.get(name), self.clock.now_ns()
        with self._lock:
            stored.forced = state if state == "FAILED" or (state == "PROCESSING" and seconds is None) else None
            stored.ready_ns = now + int(seconds * _NS) if seconds is not None else min(stored.ready_ns, now)
        return stored.view(now)

    @property
    def records(self) -> list[UploadRecord]:
        with self._lock:
            return list(self._records)

    def start_upload(self, meta: dict[str, Any], size: int, mime_type: str, limit: int) -> str:
        """Opens an upload session and returns its id; refuses oversize files before any byte is sent."""
        if size > limit:
            raise invalid_argument(
                f"File size {size} bytes exceeds the maximum of {limit} bytes per file "
                f"({limit / 2**30:g} GB). Split the input into several files and batch jobs."
            )
        name = self._new_name(meta.get("name"))
        upload = Upload(name, meta.get("displayName"), mime_type, size)
        upload_id = new_id(24)
        with self._lock:
            self._uploads[upload_id] = upload
        return upload_id

    def _new_name(self, wanted: Any) -> str:
        if not wanted:
            return f"files/{new_id(12)}"
        file_id = str(wanted).removeprefix("files/")
        if not _FILE_ID.fullmatch(file_id):
            raise invalid_argument(
                f"Invalid file name {wanted!r}: use up to 40 lowercase letters, digits or dashes, "
                "not starting or ending with a dash."
            )
        with self._lock:
            self._drop_expired(self.clock.now_ns())
            if f"files/{file_id}" in self._files:
                raise EmulatedError(409, f"File files/{file_id} already exists.", "ALREADY_EXISTS")
        return f"files/{file_id}"

    def upload(self, upload_id: str) -> Upload:
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise EmulatedError(404, f"Upload session {upload_id!r} not found or already finalized.", "NOT_FOUND")
        return upload

    def append(self, upload: Upload, offset: int, data: bytes) -> None:
        """Adds one chunk; the offset must be exactly where the previous chunk ended."""
        with self._lock:
            self._append(upload, offset, data)

    @staticmethod
    def _append(upload: Upload, offset: int, data: bytes) -> None:
        if offset != upload.received:
            raise invalid_argument(
                f"X-Goog-Upload-Offset is {offset} but {upload.received} bytes were received so far."
            )
        if upload.received + len(data) > upload.size:
            raise invalid_argument(
                f"Upload exceeds the declared X-Goog-Upload-Header-Content-Length of {upload.size} bytes."
            )
        upload.data.write(data)
        upload.received += len(data)

    def finalize(self, upload_id: str, upload: Upload, processing_seconds: float = 0.0) -> dict[str, Any]:
        """Stores the uploaded file (video files PROCESSING for `processing_seconds`) and records the upload."""
        if upload.received != upload.size:
            raise invalid_argument(
                f"Upload finalized after {upload.received} bytes, but {upload.size} bytes were declared."
            )
        with self._lock:
            self._uploads.pop(upload_id, None)
        data = upload.data.getvalue()
        upload.data = io.BytesIO()
        wait = processing_seconds if upload.mime_type.lower().startswith("video/") else 0.0
        meta = self.put(upload.name, data, mime_type=upload.mime_type, display_name=upload.display_name,
                        source="UPLOADED", processing_seconds=wait)  # fmt: skip
        record = UploadRecord(upload.name, upload.mime_type, hashlib.sha256(data).hexdigest(), len(data))
        with self._lock:
            self._records.append(record)
        return meta


def missing_file(name: str) -> EmulatedError:
    file_id = name.removeprefix("files/")
    return EmulatedError(
        403,
        f"You do not have permission to access the File {file_id} or it may not exist.",
        "PERMISSION_DENIED",
    )
