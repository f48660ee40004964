"""Google's error vocabulary: canonical status names, their gRPC and HTTP codes, and error bodies.

The same failure is spelled two ways on the wire: an HTTP reply carries the HTTP code
(`{"error": {"code": 503, "message": ..., "status": "UNAVAILABLE"}}`), while a per-request error
inside a batch result is a `google.rpc.Status` carrying the gRPC code (`{"code": 14, "message": ...}`).
`EmulatedError` accepts either code and converts.
"""

from __future__ import annotations

from typing import Any

# (status, gRPC code, HTTP code). For HTTP codes shared by several statuses the first row wins.
_TABLE: tuple[tuple[str, int, int], ...] = (
    ("CANCELLED", 1, 499),
    ("UNKNOWN", 2, 500),
    ("INVALID_ARGUMENT", 3, 400),
    ("DEADLINE_EXCEEDED", 4, 504),
    ("NOT_FOUND", 5, 404),
    ("ALREADY_EXISTS", 6, 409),
    ("PERMISSION_DENIED", 7, 403),
    ("RESOURCE_EXHAUSTED", 8, 429),
    ("FAILED_PRECONDITION", 9, 400),
    ("ABORTED", 10, 409),
    ("OUT_OF_RANGE", 11, 400),
    ("UNIMPLEMENTED", 12, 501),
    ("INTERNAL", 13, 500),
    ("UNAVAILABLE", 14, 503),
    ("DATA_LOSS", 15, 500),
    ("UNAUTHENTICATED", 16, 401),
)
_BY_STATUS = {status: (grpc, http) for status, grpc, http in _TABLE}
_BY_GRPC = {grpc: status for status, grpc, _ in _TABLE}
_BY_HTTP: dict[int, str] = {}
for _status, _, _http in _TABLE:
    _BY_HTTP.setdefault(_http, _status)
_BY_HTTP[500] = "INTERNAL"  # Google answers INTERNAL, not UNKNOWN, for a plain 500.

# Messages the real service sends for throttling and outages, so logs look familiar.
DEFAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}


def status_for(code: int) -> str:
    """The canonical status name of a gRPC (< 100) or HTTP (>= 100) code."""
    if code < 100:
        return _BY_GRPC.get(code, "UNKNOWN")
    return _BY_HTTP.get(code, "UNKNOWN" if code >= 500 else "FAILED_PRECONDITION")


class EmulatedError(Exception):
    """A failure the emulator reports: raise it from a responder, or configure it with `fail_keys`.

    `code` is either an HTTP code (400, 429, 500, 503, ...) or a gRPC code (3, 8, 13, 14, ...);
    `status` defaults to the canonical name of that code. In a batch the error becomes that
    request's result (`{"code": <gRPC>, "message": ...}`); in a synchronous call it becomes the
    HTTP reply (`{"error": {"code": <HTTP>, "message": ..., "status": ...}}`).

        >>> err = EmulatedError(503, "overloaded")
        >>> err.status, err.grpc_code, err.http_code
        ('UNAVAILABLE', 14, 503)
    """

    def __init__(
        self,
        code: int = 500,
        message: str = "Internal error encountered.",
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ):
        self.code = code
        self.message = message
        self.status = status or status_for(code)
        self.details = details
        super().__init__(f"{self.http_code} {self.status}: {message}")

    @property
    def grpc_code(self) -> int:
        return self.code if self.code < 100 else _BY_STATUS.get(self.status, (2, 500))[0]

    @property
    def http_code(self) -> int:
        return self.code if self.code >= 100 else _BY_STATUS.get(self.status, (2, 500))[1]

    def rpc_status(self) -> dict[str, Any]:
        """The `google.rpc.Status` of a failed batch request; no `details` (SDK 3.6.1 wants `list[str]`)."""
        return {"code": self.grpc_code, "message": self.message}

    def body(self) -> dict[str, Any]:
        """The JSON body of an HTTP error reply, as Google's front end sends it (`details` only if given)."""
        error: dict[str, Any] = {"code": self.http_code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def operation_error(code: int, message: str) -> dict[str, Any]:
    """The top-level `error` of a FAILED job's Operation: gRPC code, message, and the code's status name.

    A `google.rpc.Status` proper has no `status` field; the name rides along so that readers of the
    raw JSON need no code table (clients should key on `code`).
    """
    return {"code": code, "message": message, "status": status_for(code)}


# Batch creates refused for quota get the service's generic wording: the real reply does not say which
# batch limit was hit (discuss.ai.google.dev/t/107091, a refused batch create; python-genai #1901).
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more information on "
    "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, "
    "head to: https://ai.dev/rate-limit. "
)
_QUOTA_HELP = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}


def quota_exceeded(metric: str, limit: int, model: str) -> EmulatedError:
    """429 RESOURCE_EXHAUSTED for a batch quota, shaped like Google's per-minute quota replies.

    The metric names (`batch_active_jobs`, `batch_enqueued_tokens`) are the emulator's own: the real
    ones are unpublished. They appear in the message's `* Quota exceeded` line and a `QuotaFailure` detail.
    """
    full = f"generativelanguage.googleapis.com/{metric}"
    message = f"{QUOTA_MESSAGE}\n* Quota exceeded for metric: {full}, limit: {limit}, model: {model}"
    violation = {"quotaMetric": full, "quotaDimensions": {"model": model}, "quotaValue": str(limit)}
    failure = {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}
    return EmulatedError(429, message, "RESOURCE_EXHAUSTED", [_QUOTA_HELP, failure])


def invalid_argument(message: str) -> EmulatedError:
    return EmulatedError(400, message, "INVALID_ARGUMENT")


def not_found(message: str) -> EmulatedError:
    return EmulatedError(404, message, "NOT_FOUND")
