"""Route handlers of the Files API, including Google's resumable upload protocol.

Upload protocol: `POST /upload/{v}/files` with `X-Goog-Upload-Command: start` opens a session and
answers its URL in `x-goog-upload-url`; chunks are POSTed there with `X-Goog-Upload-Command: upload`
(or `upload, finalize` for the last) and `X-Goog-Upload-Offset`. Every chunk reply carries
`x-goog-upload-status` (`active` or `final`): the SDK re-sends a chunk whose reply lacks it.
"""

from __future__ import annotations

from collections.abc import Mapping

from polars_gemini.emulator._http import Request, Response, Services, error_response, json_response
from polars_gemini.emulator._paging import page
from polars_gemini.emulator._status import EmulatedError, invalid_argument
from polars_gemini.emulator._validate import parse_json, require_object


def upload_start(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    headers = request.headers
    if headers.get("x-goog-upload-protocol") != "resumable" or headers.get("x-goog-upload-command") != "start":
        raise invalid_argument("Only resumable uploads are supported: send X-Goog-Upload-Protocol: resumable "
                               "and X-Goog-Upload-Command: start.")  # fmt: skip
    meta = require_object(parse_json(request.body).get("file") or {}, "file")
    size = _declared_size(headers.get("x-goog-upload-header-content-length") or meta.get("sizeBytes"))
    mime_type = str(headers.get("x-goog-upload-header-content-type") or meta.get("mimeType") or "")
    if "/" not in mime_type:
        raise invalid_argument(f"Invalid MIME type {mime_type!r}: pass a full type such as 'application/jsonl'.")
    upload_id = services.files.start_upload(meta, size, mime_type, services.settings.file_limit_bytes)
    url = f"{request.base_url}/upload/{params['version']}/files?upload_id={upload_id}&upload_protocol=resumable"
    return Response(200, b"", {"x-goog-upload-url": url, "x-goog-upload-status": "active",
                               "x-goog-upload-chunk-granularity": "262144"})  # fmt: skip


def _declared_size(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise invalid_argument("X-Goog-Upload-Header-Content-Length must give the file size in bytes.") from None


def upload_chunk(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    try:
        return _chunk(services, request)
    except EmulatedError as error:
        # `final` makes the SDK raise the error instead of sending the next chunk.
        return error_response(error, {"x-goog-upload-status": "final"})


def _chunk(services: Services, request: Request) -> Response:
    upload_id = request.query["upload_id"]
    upload = services.files.upload(upload_id)
    commands = {part.strip() for part in request.headers.get("x-goog-upload-command", "").split(",")}
    if "upload" in commands:
        offset = request.headers.get("x-goog-upload-offset", "")
        if not offset.isdigit():
            raise invalid_argument("X-Goog-Upload-Offset must be the byte offset of this chunk.")
        services.files.append(upload, int(offset), request.body)
    if "finalize" in commands:
        meta = services.files.finalize(upload_id, upload, services.settings.video_processing_seconds)
        return json_response({"file": meta}, headers={"x-goog-upload-status": "final"})
    if not commands & {"upload", "query"}:
        raise invalid_argument(f"Unknown X-Goog-Upload-Command {request.headers.get('x-goog-upload-command')!r}.")
    received = {"x-goog-upload-status": "active", "x-goog-upload-size-received": str(upload.received)}
    return Response(200, b"", received)


def get(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    return json_response(services.files.meta(f"files/{params['id']}"))


def list_(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    metas = services.files.metas()
    chosen, token = page(metas, request.query.get("pageSize"), request.query.get("pageToken"), default=10, maximum=100)
    return json_response({"files": chosen, **({"nextPageToken": token} if token else {})})


def delete(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    services.files.delete(f"files/{params['id']}")
    return json_response({})


def download(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    """The bytes of a generated file; like the real service, uploaded files cannot be downloaded."""
    stored = services.files.get(f"files/{params['id']}")
    if stored.meta["source"] != "GENERATED":
        raise invalid_argument(
            f"{stored.meta['name']} was uploaded and cannot be downloaded: only generated files "
            "(such as batch results) can be."
        )
    return Response(200, stored.data, {"content-type": stored.meta["mimeType"]})
