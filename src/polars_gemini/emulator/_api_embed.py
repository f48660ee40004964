"""Route handlers of the embeddings API: `models/{m}:embedContent`, `:batchEmbedContents`, `:asyncBatchEmbedContent`.

Wire shapes (google-genai 3.6.1 `models.embed_content` and `batches.create_embeddings`, Google's discovery document):

- `embedContent` (endpoint `models.embedContent`): an `EmbedContentRequest` -> `{"embedding": {"values": [...]}}`.
- `batchEmbedContents` (`models.batchEmbedContents`; what `client.models.embed_content` calls on the Developer API,
  even for one text): `{"requests": [{"model": "models/m", "content": ..., "taskType"?, ...}]}` ->
  `{"embeddings": [{"values": [...]}, ...]}` in request order. At most 100 requests (400 otherwise, see `_embed`);
  each request's `model`, when given, must be the URL's model (400 INVALID_ARGUMENT; the REST reference: "The model
  in each of these requests must match the model specified BatchEmbedContentsRequest.model"; *wording unverified*).
  One bad request fails the whole call, as a synchronous call does.
- `asyncBatchEmbedContent` (`batches.create_embeddings`): `{"batch": {"displayName", "inputConfig": {"fileName"} |
  {"requests": {"requests": [{"request": {...}, "metadata"?: {...}}]}}}}` -> the PENDING Operation, exactly as
  `batchGenerateContent` answers, with the `@type` of an EmbedContentBatch. The SDK sends inline requests without
  `metadata` (its `EmbedContentBatch` has no field for it); the REST API's `InlinedEmbedContentRequest` has one, and
  results echo it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polars_gemini.emulator import _embed
from polars_gemini.emulator._embed_models import EmbeddingModel
from polars_gemini.emulator._http import Request, Response, Services, check_size, embedding_model, json_response
from polars_gemini.emulator._jobs import Entry
from polars_gemini.emulator._status import EmulatedError, invalid_argument
from polars_gemini.emulator._validate import parse_json, require_object


def embed_content(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    check_size(request, services.settings.inline_limit_bytes, "embedContent")
    model = embedding_model(services, params, "embedContent")
    body = _embed.check(parse_json(request.body), model, "")
    outcome = _answer(services, model, [Entry(body, None)])[0]
    return json_response({"embedding": outcome["embedding"]})


def batch_embed_contents(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    check_size(request, services.settings.inline_limit_bytes, "batchEmbedContents")
    model = embedding_model(services, params, "batchEmbedContents")
    items = require_object(parse_json(request.body), "body").get("requests")
    if not isinstance(items, list) or not items:
        raise invalid_argument("* BatchEmbedContentsRequest.requests: requests is not specified.\n")
    if len(items) > _embed.MAX_BATCH_REQUESTS:
        raise invalid_argument(_embed.TOO_MANY)
    entries = [Entry(_batch_item(item, model.name, i, model), None) for i, item in enumerate(items)]
    return json_response({"embeddings": [outcome["embedding"] for outcome in _answer(services, model, entries)]})


def _batch_item(item: Any, url_model: str, index: int, model: EmbeddingModel) -> dict[str, Any]:
    request = _embed.check(item, model, f"requests[{index}]")
    named = request.get("model")
    if named is not None and str(named).removeprefix("models/") != url_model:
        raise invalid_argument(
            f"* BatchEmbedContentsRequest.requests[{index}].model: the model of each request must match the model of "
            f"the batch request, models/{url_model}; got {named!r}.\n"
        )
    return request


def _answer(services: Services, model: EmbeddingModel, entries: list[Entry]) -> list[dict[str, Any]]:
    """The outcomes of a synchronous call; the first failed request is the HTTP error of the whole call."""
    s = services.settings
    outcomes = _embed.answer(model, entries, s.embedder, "sync", services.batches.report)
    failed = next((outcome for outcome in outcomes if isinstance(outcome, EmulatedError)), None)
    if failed is not None:
        raise failed
    return [outcome for outcome in outcomes if isinstance(outcome, dict)]


def async_batch_embed_content(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    check_size(request, services.settings.inline_limit_bytes, "inline batch requests")
    model = embedding_model(services, params, "asyncBatchEmbedContent")
    body = require_object(parse_json(request.body), "body")
    return json_response(services.batches.create(model.name, body, kind="embed"))
