"""The URL map: which endpoint name and handler serve a method and path, under /v1, /v1beta and /v1alpha.

Endpoint names (for `emu.calls`, `emu.fail_http`, `emu.delay_reply`, `RecordedRequest.endpoint`) follow the SDK's
methods: `batches.create` (`:batchGenerateContent`), `batches.create_embeddings` (`:asyncBatchEmbedContent`),
`batches.get/list/cancel/delete` (both kinds of job), `models.generateContent`, `models.countTokens`,
`models.embedContent`, `models.batchEmbedContents`, `models.get/list`, `files.*`; Vertex AI's
`vertex.batches.create/get/list/cancel/delete` (`batchPredictionJobs` under /v1 and /v1beta1
`projects/{p}/locations/{l}`), `vertex.models.generateContent` and `vertex.models.countTokens`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from polars_gemini.emulator import _api_batches as batches
from polars_gemini.emulator import _api_embed as embed
from polars_gemini.emulator import _api_files as files
from polars_gemini.emulator import _api_models as models
from polars_gemini.emulator import _api_vertex as vertex
from polars_gemini.emulator._http import Handler, Request, Response, Services, json_response
from polars_gemini.emulator._status import not_found

_V = r"/(?P<version>v1|v1beta|v1alpha)"
_ID = r"(?P<id>[^/:]+)"
_MODEL = r"(?P<model>[^/:]+)"
_VX = r"/(?P<version>v1|v1beta1)/projects/(?P<project>[^/:]+)/locations/(?P<location>[^/:]+)"
_JOBS = rf"{_VX}/batchPredictionJobs"
_PUBLISHED = rf"{_VX}/publishers/google/models/{_MODEL}"


@dataclass(frozen=True)
class Route:
    endpoint: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    needs_key: bool = True  # chunk uploads are authorized by their upload id, as on Google's servers


def _route(endpoint: str, method: str, path: str, handler: Handler, needs_key: bool = True) -> Route:
    return Route(endpoint, method, re.compile(path), handler, needs_key)


ROUTES = (
    _route("batches.create", "POST", rf"{_V}/models/{_MODEL}:batchGenerateContent", batches.create),
    _route("batches.create_embeddings", "POST", rf"{_V}/models/{_MODEL}:asyncBatchEmbedContent",
           embed.async_batch_embed_content),
    _route("batches.get", "GET", rf"{_V}/batches/{_ID}", batches.get),
    _route("batches.list", "GET", rf"{_V}/batches", batches.list_),
    _route("batches.cancel", "POST", rf"{_V}/batches/{_ID}:cancel", batches.cancel),
    _route("batches.delete", "DELETE", rf"{_V}/batches/{_ID}", batches.delete),
    _route("files.upload_start", "POST", rf"/upload{_V}/files", files.upload_start),
    _route("files.get", "GET", rf"{_V}/files/{_ID}", files.get),
    _route("files.list", "GET", rf"{_V}/files", files.list_),
    _route("files.delete", "DELETE", rf"{_V}/files/{_ID}", files.delete),
    _route("files.download", "GET", rf"(?:/download)?{_V}/files/{_ID}:download", files.download),
    _route("models.generateContent", "POST", rf"{_V}/models/{_MODEL}:generateContent", models.generate_content),
    _route("models.countTokens", "POST", rf"{_V}/models/{_MODEL}:countTokens", models.count_tokens),
    _route("models.embedContent", "POST", rf"{_V}/models/{_MODEL}:embedContent", embed.embed_content),
    _route("models.batchEmbedContents", "POST", rf"{_V}/models/{_MODEL}:batchEmbedContents",
           embed.batch_embed_contents),
    _route("models.get", "GET", rf"{_V}/models/{_MODEL}", models.get),
    _route("models.list", "GET", rf"{_V}/models", models.list_),
    # Vertex AI: authenticated by a Bearer token in the handlers (`_api_vertex`), not by an API key.
    _route("vertex.batches.create", "POST", _JOBS, vertex.create, needs_key=False),
    _route("vertex.batches.list", "GET", _JOBS, vertex.list_, needs_key=False),
    _route("vertex.batches.get", "GET", rf"{_JOBS}/{_ID}", vertex.get, needs_key=False),
    _route("vertex.batches.cancel", "POST", rf"{_JOBS}/{_ID}:cancel", vertex.cancel, needs_key=False),
    _route("vertex.batches.delete", "DELETE", rf"{_JOBS}/{_ID}", vertex.delete, needs_key=False),
    _route("vertex.models.generateContent", "POST", rf"{_PUBLISHED}:generateContent", vertex.generate_content,
           needs_key=False),
    _route("vertex.models.countTokens", "POST", rf"{_PUBLISHED}:countTokens", vertex.count_tokens, needs_key=False),
)


def _jwks(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    """The public keys of per-job webhook JWTs (`_webhook_jwt`), at the path Google serves its own."""
    dispatcher = services.batches.webhooks
    if dispatcher is None or dispatcher.jwt is None:
        raise not_found("This emulator signs webhooks with the HMAC scheme only (webhook_signing='hmac', or PyJWT and "
                        "cryptography are not installed): it has no JWKS.")  # fmt: skip
    return json_response(dispatcher.jwt.jwks())


_JWKS = _route("webhooks.jwks", "GET", r"/\.well-known/jwks\.json", _jwks, needs_key=False)
_CHUNK = _route("files.upload_chunk", "POST", rf"/upload{_V}/files", files.upload_chunk, needs_key=False)


def _unknown(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    raise not_found(f"{request.method} {request.path} is not a Gemini API method the emulator knows.")


UNKNOWN = _route("unknown", "", "", _unknown, needs_key=False)
ENDPOINTS = tuple(sorted({route.endpoint for route in (*ROUTES, _JWKS, _CHUNK, UNKNOWN)}))
"""Every endpoint name, as used by `emu.calls`, `emu.fail_http` and `RecordedRequest.endpoint`."""


def resolve(request: Request) -> tuple[Route, dict[str, str]]:
    """The route serving `request` and its path parameters; the `unknown` route (404) if none."""
    if request.method == "POST" and "upload_id" in request.query and _CHUNK.pattern.fullmatch(request.path):
        return _CHUNK, {}
    for route in (*ROUTES, _JWKS):
        match = route.pattern.fullmatch(request.path) if route.method == request.method else None
        if match:
            return route, match.groupdict()
    return UNKNOWN, {}
