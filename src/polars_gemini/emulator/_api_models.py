"""Route handlers of the Models API: synchronous `generateContent`, `countTokens`, `get` and `list` (generation and
embedding models; the embedding calls themselves are in `_api_embed`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polars_gemini.core.models import ModelInfo
from polars_gemini.emulator import _generate as g
from polars_gemini.emulator._http import Request, Response, Services, check_size, json_response, known_model
from polars_gemini.emulator._media import request_media
from polars_gemini.emulator._paging import page
from polars_gemini.emulator._status import invalid_argument
from polars_gemini.emulator._tiers import requested_tier, unavailable, with_tier
from polars_gemini.emulator._types import ResponderRequest
from polars_gemini.emulator._validate import check_request, parse_json, require_object


def generate_content(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    """Answers with the responder; an `EmulatedError` it raises becomes the HTTP error reply. The tier served
    (`_tiers`) is echoed in `usageMetadata.serviceTier`; Flex calls may be shed (503) and wait `flex_latency`."""
    settings = services.settings
    check_size(request, settings.inline_limit_bytes, "generateContent")
    model = known_model(services, params, "generateContent")
    body = check_request(parse_json(request.body), "body")
    tier = requested_tier(body, "body") or "standard"
    media = request_media(body, model, services.files)
    flex = tier == "flex"
    if flex and services.flex.shed(request.body, rate=settings.flex_unavailable_rate, seed=settings.flex_seed):
        raise unavailable()
    answer = settings.responder(ResponderRequest(model, body, None, "sync", media))
    services.answers.add_generate(model, tier, body)
    response = json_response(with_tier(answer, tier), headers={"x-gemini-service-tier": tier})
    response.hold_seconds = settings.flex_latency if flex else 0.0
    return response


def count_tokens(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    """Counts like `promptTokenCount` of `generateContent` (texts, then media parts), so the two always agree.
    Embedding models count too (they list countTokens among their methods)."""
    model = params["model"] if params["model"] in services.settings.embedding_models else None
    model = model or known_model(services, params, "countTokens")
    body = require_object(parse_json(request.body), "body")
    counted = body.get("generateContentRequest") or body
    if not isinstance(counted, dict) or not counted.get("contents"):
        raise invalid_argument("* CountTokensRequest.contents: contents is not specified.")
    media = [(part.modality, part.tokens) for part in request_media(counted, model, services.files)]
    texts = g.counted_texts(counted)
    counts = g.token_counts(texts)
    text_total = sum(counts[text] for text in texts)
    total = text_total + sum(tokens for _, tokens in media)
    return json_response({"totalTokens": total, "promptTokensDetails": g.prompt_details(text_total, media)})


def get(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    embedder = services.settings.embedding_models.get(params["model"])
    if embedder is not None:
        return json_response(embedder.json())
    model = known_model(services, params, "get")
    return json_response(_model_json(services.settings.models[model]))


def list_(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    """Generation models, then embedding models (the real listing has them after the Gemini and Gemma models)."""
    models = [_model_json(info) for info in services.settings.models.values()]
    models += [info.json() for info in services.settings.embedding_models.values()]
    chosen, token = page(
        models, request.query.get("pageSize"), request.query.get("pageToken"), default=50, maximum=1000
    )
    return json_response({"models": chosen, **({"nextPageToken": token} if token else {})})


def _model_json(info: ModelInfo) -> dict[str, Any]:
    return {
        "name": f"models/{info.name}",
        "version": "001",
        "displayName": info.name,
        "description": "A model served by the polars-gemini emulator.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": info.max_output_tokens,
        "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": info.max_thinking_tokens > 0,
    }
