"""Media parts of a request, resolved and checked the way the real API does, per request.

A part is `inlineData {mimeType, data: base64}` or `fileData {fileUri, mimeType?}` (key spellings are
normalized to camelCase on input, so `inline_data` / `mime_type` work alike). Verdicts, each that request's
error (the HTTP reply of `generateContent`/`countTokens`, the request's result in a batch):

- inline data that is not base64 (standard or URL-safe, padding optional), or a MIME type the API does not
  take: 400 INVALID_ARGUMENT ("Unsupported MIME type: image/gif").
- a Files API URI (`files/<id>`, `https://<any host>/v1beta/files/<id>`, `.../v1/files/<id>`) naming a
  file that does not exist, was deleted or has expired: 403 PERMISSION_DENIED; a file not ACTIVE:
  400 FAILED_PRECONDITION.
- another http(s) URL: the real API fetches public and signed URLs itself (since January 2026); the
  emulator fetches only URLs on 127.0.0.1 / localhost (tests serve files locally) and answers
  400 INVALID_ARGUMENT "Cannot fetch content from the provided URL" for any other URL or a failed fetch.
- `gs://` URIs: 400 INVALID_ARGUMENT (the Developer API takes only registered files).

Tokens per part follow `polars_gemini.tokens.media` for the request's model, at the part's
`mediaResolution.level`, else the request's `generationConfig.mediaResolution`; text documents count
their text with the emulator's text counter (exact when the exact tokenizer is loaded).
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from polars_gemini.emulator import _generate as g
from polars_gemini.emulator._files import FileStore
from polars_gemini.emulator._status import EmulatedError, invalid_argument
from polars_gemini.emulator._types import MediaPart
from polars_gemini.tokens.media import LEVELS, SUPPORTED, media_tokens, normalize_mime, probe, sniff_mime

_FILES_URI = re.compile(r"(?:https?://[^/]+/(?:v1|v1beta|v1alpha)/)?files/(?P<id>[^/?#:]+)")
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_TEXT_APPLICATIONS = frozenset({"application/json", "application/x-javascript", "application/x-python"})
_RESOLUTIONS = frozenset({*LEVELS, "MEDIA_RESOLUTION_UNSPECIFIED"})
FETCH_TIMEOUT_SECONDS = 10.0
CANNOT_FETCH = "Cannot fetch content from the provided URL"


def request_media(request: dict[str, Any], model: str, files: FileStore) -> tuple[MediaPart, ...]:
    """The media parts of `contents`, in order; raises the first part's `EmulatedError`."""
    parts = list(_media_parts(request.get("contents")))
    if not parts:
        return ()
    default = _level(g.generation_config(request).get("mediaResolution"), "generation_config.media_resolution")
    return tuple(_resolve(part, where, model, default, files) for where, part in parts)


def _media_parts(contents: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for i, content in enumerate(contents if isinstance(contents, list) else ()):
        parts = content.get("parts") if isinstance(content, dict) else None
        for j, part in enumerate(parts if isinstance(parts, list) else ()):
            if isinstance(part, dict) and ("inlineData" in part or "fileData" in part):
                yield f"contents[{i}].parts[{j}]", part


def _level(value: Any, where: str) -> str | None:
    """A `MEDIA_RESOLUTION_*` level, None for none or UNSPECIFIED; 400 for a value the enum lacks."""
    if value is None:
        return None
    if value not in _RESOLUTIONS:
        raise invalid_argument(f"Invalid value at '{where}' (type.googleapis.com/google.ai.generativelanguage."
                               f"v1beta.MediaResolution), {value!r}")  # fmt: skip
    return None if value == "MEDIA_RESOLUTION_UNSPECIFIED" else str(value)


def _resolve(part: dict[str, Any], where: str, model: str, default: str | None, files: FileStore) -> MediaPart:
    resolution = part.get("mediaResolution")
    level = default
    if isinstance(resolution, dict) and resolution.get("level") is not None:
        level = _level(resolution["level"], f"{where}.media_resolution.level")
    if "inlineData" in part:
        blob = part["inlineData"] if isinstance(part["inlineData"], dict) else {}
        data = _decode(blob.get("data"), f"{where}.inline_data.data")
        return media_part(str(blob.get("mimeType") or ""), data, model, level, "inline")
    ref = part["fileData"] if isinstance(part["fileData"], dict) else {}
    mime, data, source = _file_data(str(ref.get("fileUri") or ""), ref.get("mimeType"), files)
    return media_part(mime, data, model, level, source)


def _decode(value: Any, where: str) -> bytes:
    """Proto JSON `bytes`: standard or URL-safe base64, padding optional, as Google's parser accepts."""
    text = value if isinstance(value, str) else ""
    wanted = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        if value is None or len(wanted) % 4 == 1:
            raise binascii.Error("bad length")
        return base64.b64decode(wanted + "=" * (-len(wanted) % 4), validate=True)
    except binascii.Error:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise invalid_argument(
            f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for \"{shown}\""
        ) from None


def media_part(mime_type: str, data: bytes, model: str, level: str | None, source: str) -> MediaPart:
    """A checked part with its tokens; 400 "Unsupported MIME type: x" for types the API does not take."""
    mime = normalize_mime(mime_type)
    if mime not in SUPPORTED:
        raise invalid_argument(f"Unsupported MIME type: {mime_type.strip() or '(none)'}")
    if mime.startswith("text/") or mime in _TEXT_APPLICATIONS:
        text = data.decode("utf-8", errors="replace")
        return MediaPart(mime, data, "TEXT", g.token_counts([text])[text], source)
    tokens, _ = media_tokens(mime, probe(data, mime), model, level)
    return MediaPart(mime, data, _modality(mime), tokens, source)


def _modality(mime: str) -> str:
    if mime == "application/pdf":
        return "DOCUMENT"
    return {"image": "IMAGE", "audio": "AUDIO", "video": "VIDEO"}.get(mime.split("/")[0], "TEXT")


def _file_data(uri: str, mime: Any, files: FileStore) -> tuple[str, bytes, str]:
    """(MIME type, bytes, source) of a `fileData` part: a Files API file, or a URL the emulator may fetch."""
    match = _FILES_URI.fullmatch(uri)
    if match is not None:
        stored = files.get(f"files/{match['id']}")
        if files.state(stored) != "ACTIVE":
            raise EmulatedError(400, f"The File {match['id']} is not in an ACTIVE state and usage is not allowed.",
                                "FAILED_PRECONDITION")  # fmt: skip
        return str(mime or stored.meta["mimeType"]), stored.data, stored.meta["name"]
    if uri.startswith("gs://"):
        raise invalid_argument(f"Unsupported file uri: {uri}. The Gemini Developer API does not read Cloud Storage "
                               "(gs://) URIs: upload the file with the Files API and pass its uri.")  # fmt: skip
    data, served = _fetch(uri)
    return str(mime or served or sniff_mime(data[:32]) or "application/octet-stream"), data, uri


def _fetch(url: str) -> tuple[bytes, str | None]:
    """The bytes and Content-Type of a local URL; no proxies, so tests never reach the network."""
    split = urlsplit(url)
    if split.scheme not in ("http", "https") or split.hostname not in _LOCAL_HOSTS:
        raise invalid_argument(CANNOT_FETCH)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=FETCH_TIMEOUT_SECONDS) as reply:
            served = reply.headers.get("content-type")
            return reply.read(), served.split(";")[0].strip() if served else None
    except urllib.error.HTTPError as error:
        error.close()
        raise invalid_argument(CANNOT_FETCH) from None
    except (OSError, ValueError):
        raise invalid_argument(CANNOT_FETCH) from None
