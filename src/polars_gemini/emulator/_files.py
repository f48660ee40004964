"""The Files API state: stored files and resumable upload sessions. Thread-safe; bytes stay in memory.

Missing files answer 403 PERMISSION_DENIED, not 404: that is what the real Files API says
("You do not have permission to access the File x or it may not exist").
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from polars_gemini.emulator._ids import new_id, now_ns, rfc3339
from polars_gemini.emulator._status import EmulatedError, invalid_argument

_FILE_ID = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
_LIFETIME_NS = 48 * 3600 * 1_000_000_000
PUBLIC_BASE = "https://generativelanguage.googleapis.com/v1beta"


@dataclass
class StoredFile:
    meta: dict[str, Any]
    data: bytes


@dataclass
class Upload:
    """A resumable upload in progress: the start request's metadata and the bytes received so far."""

    name: str
    display_name: str | None
    mime_type: str
    size: int
    chunks: list[bytes] = field(default_factory=list)
    received: int = 0


def file_meta(name: str, data: bytes, mime_type: str, display_name: str | None, source: str) -> dict[str, Any]:
    """A `File` resource in the real key order; generated files also get a `downloadUri`."""
    created = now_ns()
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
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, Upload] = {}

    def put(self, name: str, data: bytes, *, mime_type: str, display_name: str | None, source: str) -> dict[str, Any]:
        stored = StoredFile(file_meta(name, data, mime_type, display_name, source), data)
        with self._lock:
            self._files[name] = stored
        return stored.meta

    def get(self, name: str) -> StoredFile:
        with self._lock:
            stored = self._files.get(name)
        if stored is None:
            raise missing_file(name)
        return stored

    def delete(self, name: str) -> None:
        with self._lock:
            if self._files.pop(name, None) is None:
                raise missing_file(name)

    def metas(self) -> list[dict[str, Any]]:
        """Every file's metadata, newest first like the real `files.list`."""
        with self._lock:
            return [stored.meta for stored in reversed(self._files.values())]

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
        upload.chunks.append(data)
        upload.received += len(data)

    def finalize(self, upload_id: str, upload: Upload) -> dict[str, Any]:
        if upload.received != upload.size:
            raise invalid_argument(
                f"Upload finalized after {upload.received} bytes, but {upload.size} bytes were declared."
            )
        with self._lock:
            self._uploads.pop(upload_id, None)
        data = b"".join(upload.chunks)
        upload.chunks.clear()
        return self.put(upload.name, data, mime_type=upload.mime_type, display_name=upload.display_name,
                        source="UPLOADED")  # fmt: skip


def missing_file(name: str) -> EmulatedError:
    file_id = name.removeprefix("files/")
    return EmulatedError(
        403,
        f"You do not have permission to access the File {file_id} or it may not exist.",
        "PERMISSION_DENIED",
    )
