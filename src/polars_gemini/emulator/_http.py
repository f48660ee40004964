"""The HTTP seam: plain request/response values and the services a route handler may use.

Route handlers are functions `(Services, Request, params) -> Response`; only `_server` touches sockets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polars_gemini.emulator._answers import AnswerLog
from polars_gemini.emulator._batches import BatchService
from polars_gemini.emulator._config import Settings
from polars_gemini.emulator._embed_models import EmbeddingModel
from polars_gemini.emulator._files import FileStore
from polars_gemini.emulator._status import EmulatedError, not_found
from polars_gemini.emulator._tiers import FlexGate

if TYPE_CHECKING:
    from polars_gemini.emulator._vertex import VertexService

_JSON = "application/json; charset=UTF-8"


@dataclass(frozen=True)
class Request:
    """One HTTP request. Header names are lower-case; `query` keeps the last value of each parameter."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    base_url: str


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hold_seconds: float = 0.0  # how long the reply waits once the call is done (the Flex tier's latency)


@dataclass(frozen=True)
class Services:
    settings: Settings
    files: FileStore
    batches: BatchService
    answers: AnswerLog = field(default_factory=AnswerLog)
    flex: FlexGate = field(default_factory=FlexGate)
    vertex: VertexService | None = None  # Vertex AI batch prediction (`_vertex`)


Handler = Callable[[Services, Request, Mapping[str, str]], Response]


def json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, body, {"content-type": _JSON, **(headers or {})})


def error_response(error: EmulatedError, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(error.body(), error.http_code, headers)


def known_model(services: Services, params: Mapping[str, str], method: str) -> str:
    """The bare model name of the route, or 404 with Google's wording for unknown models (embedding models
    included: they do not generate content)."""
    model = params["model"]
    if model not in services.settings.models:
        raise unsupported_model(params, method)
    return model


def embedding_model(services: Services, params: Mapping[str, str], method: str) -> EmbeddingModel:
    """The embedding model of the route, or the same 404 for unknown models and for models that do not embed
    (gemini-2.5-flash and the like: on the real API too they list no embedContent method)."""
    model = services.settings.embedding_models.get(params["model"])
    if model is None:
        raise unsupported_model(params, method)
    return model


def unsupported_model(params: Mapping[str, str], method: str) -> EmulatedError:
    return not_found(
        f"models/{params['model']} is not found for API version {params['version']}, or is not supported for "
        f"{method}. Call ListModels to see the list of available models and their supported methods."
    )


def check_size(request: Request, limit: int, what: str) -> None:
    """Refuses bodies over the inline limit (20 MB by default), pointing to the Files API."""
    if len(request.body) > limit:
        raise EmulatedError(
            400,
            f"Request payload size exceeds the limit: {limit} bytes ({limit / 2**20:g} MB) for {what}. "
            "Upload the requests as a JSONL file with the Files API and create the batch from that file.",
            "INVALID_ARGUMENT",
        )
