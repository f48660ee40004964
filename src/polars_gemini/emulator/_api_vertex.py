"""Route handlers of the Vertex AI API: `batchPredictionJobs` and the publisher models' `generateContent` and
`countTokens`, under `/v1` and `/v1beta1` `projects/{project}/locations/{location}/...`.

Vertex calls carry `Authorization: Bearer <token>` (google-genai sends the credentials' token); the emulator wants
`Settings.vertex_token` and answers 401 UNAUTHENTICATED with Google's wording when the header is missing or the token
differs. The project in the path may be any id (or the number): names in replies carry `vertex_project_number`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polars_gemini.emulator import _api_models as models
from polars_gemini.emulator._http import Request, Response, Services, json_response
from polars_gemini.emulator._status import EmulatedError
from polars_gemini.emulator._validate import parse_json, require_object
from polars_gemini.emulator._vertex import VertexService

_SEE = "Expected OAuth 2 access token, login cookie or other valid authentication credential. See " \
    "https://developers.google.com/identity/sign-in/web/devconsole-project."  # fmt: skip


def _unauthenticated(missing: bool) -> EmulatedError:
    reason = "CREDENTIALS_MISSING" if missing else "ACCESS_TOKEN_TYPE_UNSUPPORTED"
    message = ("Request is missing required authentication credential. " if missing
               else "Request had invalid authentication credentials. ") + _SEE  # fmt: skip
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com",
            "metadata": {"service": "aiplatform.googleapis.com", "method": "google.cloud.aiplatform.v1beta1"}}
    return EmulatedError(401, message, "UNAUTHENTICATED", [info])


def _service(services: Services, request: Request) -> VertexService:
    """The Vertex service, once the request's bearer token is checked."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated(missing=True)
    if token.strip() != services.settings.vertex_token:
        raise _unauthenticated(missing=False)
    if services.vertex is None:
        raise EmulatedError(501, "This emulator was built without Vertex AI support.", "UNIMPLEMENTED")
    return services.vertex


def create(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    vertex = _service(services, request)
    body = require_object(parse_json(request.body), "batch_prediction_job")
    return json_response(vertex.create(params["project"], params["location"], body))


def get(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    return json_response(_service(services, request).get(params["location"], params["id"]))


def list_(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    q = request.query
    listing = _service(services, request).list_jobs(params["location"], q.get("pageSize"), q.get("pageToken"),
                                               q.get("filter"))  # fmt: skip
    return json_response(listing)


def cancel(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    _service(services, request).cancel(params["location"], params["id"])
    return json_response({})


def delete(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    return json_response(_service(services, request).delete(params["location"], params["id"]))


def _model_params(params: Mapping[str, str]) -> dict[str, Any]:
    return {"model": params["model"], "version": params["version"]}


def generate_content(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    """The Developer API's generateContent (same responder, tiers, answered log) behind Vertex authentication."""
    _service(services, request)
    return models.generate_content(services, request, _model_params(params))


def count_tokens(services: Services, request: Request, params: Mapping[str, str]) -> Response:
    _service(services, request)
    return models.count_tokens(services, request, _model_params(params))
