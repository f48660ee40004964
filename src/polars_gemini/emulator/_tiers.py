"""Service tiers of `generateContent`: the request's `serviceTier`, checked, and the Flex tier's shedding.

The SDK (google-genai 3.6.1) sends `service_tier` as the request-body field `serviceTier` with the lowercase value of
`types.ServiceTier` ("flex", "standard", "priority", "unspecified"); Google's REST example writes "FLEX". Both are
accepted, in any case. Anything else is refused with 400 INVALID_ARGUMENT in the wording of a proto-JSON enum error,
before the model is run. No tier, or "unspecified", is the standard tier.

The tier served is echoed as `usageMetadata.serviceTier` ("standard", "flex", "priority": the lowercase spelling of
recorded 2026 generateContent responses) and in the `x-gemini-service-tier` reply header (reported by a third-party
benchmark of the tiers). Batch jobs run in their own batch tier whatever their requests say.

Flex (ai.google.dev/gemini-api/docs/flex-inference: half price, minutes of latency, best-effort availability) is
modelled by `Emulator(flex_latency=, flex_unavailable_rate=, flex_seed=)`: shed calls get 503 UNAVAILABLE with
Google's overload message, which the SDK's `HttpRetryOptions` retry.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from polars_gemini.emulator._status import DEFAULT_MESSAGES, EmulatedError, invalid_argument

TIERS = ("standard", "flex", "priority")
"""The tiers a generateContent call can be served in."""
_ACCEPTED = {"unspecified": "standard", **{tier: tier for tier in TIERS}}


def requested_tier(request: dict[str, Any], where: str) -> str | None:
    """The request's `serviceTier` as a served tier ("unspecified" is "standard"); `None` without one.

    >>> requested_tier({"serviceTier": "FLEX"}, "body"), requested_tier({}, "body")
    ('flex', None)
    """
    value = request.get("serviceTier")
    if value is None:
        return None
    tier = _ACCEPTED.get(value.lower()) if isinstance(value, str) else None
    if tier is None:
        field = "service_tier" if where == "body" else f"{where}.service_tier"
        raise invalid_argument(
            f"Invalid value at '{field}' (type.googleapis.com/google.ai.generativelanguage.v1beta.ServiceTier), "
            f"{json.dumps(value)}. Expected one of: {', '.join(_ACCEPTED)}."
        )
    return tier


class FlexGate:
    """Decides which Flex calls are shed: deterministic for a seed, whatever the order of concurrent calls.

    Attempt n of a given request body is shed when a hash of (seed, body, n) falls under the rate, so a retry of a
    shed call has a fresh chance and two runs with the same seed shed the same attempts.

    >>> gate = FlexGate()
    >>> [gate.shed(b'{"contents": []}', rate=0.5, seed=0) for _ in range(6)]
    [True, True, False, False, False, False]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: dict[bytes, int] = {}

    def shed(self, body: bytes, *, rate: float, seed: int) -> bool:
        if rate <= 0:
            return False
        digest = hashlib.blake2b(body, digest_size=16).digest()
        with self._lock:
            attempt = self._attempts.get(digest, 0)
            self._attempts[digest] = attempt + 1
        draw = hashlib.blake2b(digest + f":{seed}:{attempt}".encode(), digest_size=8).digest()
        return int.from_bytes(draw, "big") / 2**64 < rate


def unavailable() -> EmulatedError:
    """What a shed Flex call gets: 503 UNAVAILABLE, as the real API answers an overloaded model."""
    return EmulatedError(503, DEFAULT_MESSAGES[503], "UNAVAILABLE")


def with_tier(response: dict[str, Any], tier: str) -> dict[str, Any]:
    """`response` with `usageMetadata.serviceTier` set (a responder that set one itself is left alone)."""
    usage = response.get("usageMetadata")
    if not isinstance(usage, dict) or "serviceTier" in usage:
        return response
    return {**response, "usageMetadata": {**usage, "serviceTier": tier}}
