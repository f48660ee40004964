"""Route handlers of the Batch API: `models/{m}:batchGenerateContent` and `batches/...`."""

from __future__ import annotations

from collections.abc import Mapping

from polars_gemini.emulator._http import Request, Response, Services, check_size, json_response, known_model
from polars_gemini.emulator._validate import parse_json, require_object


def create(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    check_size(request, services.settings.inline_limit_bytes, "inline batch requests")
    model = known_model(services, params, "batchGenerateContent")
    body = require_object(parse_json(request.body), "body")
    return json_response(services.batches.create(model, body))


def get(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    return json_response(services.batches.get(params["id"]))


def list_(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    listing = services.batches.list(request.query.get("pageSize"), request.query.get("pageToken"))
    return json_response(listing)


def cancel(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    services.batches.cancel(params["id"])
    return json_response({})


def delete(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    services.batches.delete(params["id"])
    return json_response({})
