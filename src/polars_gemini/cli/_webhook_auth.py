"""Who signed a webhook delivery: the Standard Webhooks HMAC scheme (registered webhooks) or an RS256 JWT (per-job
webhooks), for `cli.webhook.WebhookReceiver`.

`authenticate(body, headers)` answers `Authentic(msg_id, scheme, event)` (`event`: the event the token carries, or
None when the body is the event) or raises `Refused(status, message)`. Messages never quote a secret or a token.

The JWT path follows the documentation's sample (https://ai.google.dev/gemini-api/docs/webhooks, "Verify dynamic
signatures (JWKS)": the token in `webhook-signature`, its `kid` looked up in the JWKS at
https://generativelanguage.googleapis.com/.well-known/jwks.json, `jwt.decode(..., algorithms=["RS256"],
audience=...)`), and adds what the sample leaves out: `exp` and `iat` are required, `iat` within the tolerance, the
issuer checked when one is given, and the token must cover what is acted upon, because the documentation does not
say that it covers the body:

* a `body_sha256` claim (hex SHA-256 of the exact body; what the emulator sends — a guess at Google's form) must
  match the body;
* else claims that are the event (`type` and `data`, as the sample's `event = jwt.decode(...)` suggests, and as the
  hookdeck/webhook-skills guide says: "the JWT payload contains the event"), or an `event` claim holding it: that
  event is acted upon, and a body that says otherwise is refused;
* else the token proves that the service sent something, not what: refused (401), since nothing it does not
  authenticate is resumed.

The JWKS is fetched once and cached for an hour; a `kid` not in it makes the receiver fetch it again at most once
every `REFETCH_SECONDS` (a key Google has just rotated in is found, while forged tokens with made-up kids cannot make
the receiver fetch Google's JWKS on every request). The rate limit is kept here, not left to PyJWT's
`cooldown_duration`, which only PyJWT 2.11 and later have.

The HMAC secret is checked at start against the Standard Webhooks rule (spec/standard-webhooks.md, "Signature
scheme": a symmetric signing secret is "Random. At least 24 bytes (192 bits, 512 maximum)", serialized "base64
encoded, prefixed with `whsec_`"): a typo fails at start instead of refusing every real delivery.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from polars_gemini.core.errors import ConfigurationError

GOOGLE_JWKS_URL = "https://generativelanguage.googleapis.com/.well-known/jwks.json"
"""Where the Gemini API publishes the public keys of its per-job webhook JWTs (the documentation's sample)."""
INSTALL = "pip install 'polars-gemini[webhooks]'"
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_SKEW_SECONDS = 30  # clock skew allowed on exp and a future iat
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
"""The shortest HMAC key a Standard Webhooks secret may hold (the spec: "At least 24 bytes (192 bits...)")."""
REFETCH_SECONDS = 60.0
"""At most one JWKS fetch this often for tokens whose `kid` the cached JWKS does not have."""


@dataclass(frozen=True)
class Authentic:
    """A delivery whose signature checked out: its id, "hmac" or "jwt", and the event its token carries (None: the
    body is the event, covered by the signature)."""

    msg_id: str
    scheme: str
    event: dict[str, Any] | None = None


class Refused(Exception):
    """A delivery not acted upon: the HTTP status to answer and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def is_jwt(signature: str) -> bool:
    """Whether a `webhook-signature` value is a compact JWT (three base64url segments), not `v1,` entries."""
    return _JWT.fullmatch(signature.strip()) is not None


def load_verifier(secret: str) -> Any:
    """A `standardwebhooks.Webhook` for `secret`; a `ConfigurationError` (never quoting the secret) when the
    library is missing or the secret is no Standard Webhooks secret (`secret_key`).

    >>> type(load_verifier("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).__name__
    'Webhook'
    """
    try:
        from standardwebhooks import Webhook
    except ImportError:
        raise ConfigurationError(f"The webhook receiver needs the standardwebhooks library: {INSTALL}.") from None
    return Webhook(secret_key(secret))  # bytes: the library's own decoding would accept any typo


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: `whsec_` + standard base64 (padding optional, surrounding whitespace
    ignored) of at least `MIN_SECRET_BYTES` bytes; else a `ConfigurationError` saying what is wrong, not the secret.

    >>> len(secret_key("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
    24
    """
    where = "as the Gemini API returns it when the webhook is created (or the emulator's `webhook_secret`)"
    text = secret.strip()
    if not text.startswith(SECRET_PREFIX):
        raise ConfigurationError(
            f"The webhook signing secret must start with '{SECRET_PREFIX}', {where}; the one given does not (it is "
            "not shown). Check that the whole secret was copied into the variable."
        )
    encoded = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"The webhook signing secret must be '{SECRET_PREFIX}' followed by base64, {where}; what follows "
            f"'{SECRET_PREFIX}' in the one given is not base64 (it is not shown)."
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"The webhook signing secret holds a key of {len(key)} bytes; a Standard Webhooks secret "
            f"('{SECRET_PREFIX}' and base64) holds at least {MIN_SECRET_BYTES} bytes, {where}. The secret is not "
            "shown: check that all of it was copied."
        )
    return key


def jwt_available() -> bool:
    """Whether PyJWT with its crypto extra can be imported."""
    try:
        import cryptography  # noqa: F401
        import jwt  # noqa: F401
    except ImportError:
        return False
    return True


class HmacCheck:
    """The Standard Webhooks scheme: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the secret."""

    def __init__(self, secret: str, tolerance: float) -> None:
        self._verifier, self.tolerance = load_verifier(secret), tolerance

    def __repr__(self) -> str:
        return "HmacCheck(<secret not shown>)"

    def check(self, body: bytes, headers: Mapping[str, str]) -> Authentic:
        msg_id, stamp, signature = (headers.get(f"webhook-{name}") for name in ("id", "timestamp", "signature"))
        if not (msg_id and stamp and signature):
            raise Refused(401, "missing webhook-id, webhook-timestamp or webhook-signature header")
        seconds = check_timestamp(stamp, self.tolerance)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "the body is not UTF-8 text") from None
        if not self._signed(msg_id, seconds, text, signature):
            raise Refused(401, "no webhook-signature entry matches (a wrong secret, or a changed body)")
        return Authentic(msg_id, "hmac")

    def _signed(self, msg_id: str, seconds: int, text: str, signature: str) -> bool:
        """Whether some `v1,` entry of `signature` is the library's signature of this delivery (several entries
        appear while the service rotates its secret)."""
        expected = self._verifier.sign(msg_id, datetime.fromtimestamp(seconds, tz=timezone.utc), text)
        want = base64.b64decode(expected.partition(",")[2])
        for entry in signature.split():
            version, _, value = entry.partition(",")
            try:
                got = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            if version == "v1" and hmac.compare_digest(got, want):
                return True
        return False


def check_timestamp(stamp: str, tolerance: float) -> int:
    """`webhook-timestamp` as Unix seconds, or `Refused` when it is no number or more than `tolerance` off now."""
    try:
        seconds = int(stamp)
    except ValueError:
        raise Refused(401, "webhook-timestamp is not a whole number of seconds") from None
    off = time.time() - seconds
    if abs(off) > tolerance:
        when = "past" if off > 0 else "future"
        problem = f"webhook-timestamp is {abs(off):.0f} s in the {when}, beyond the tolerance"
        raise Refused(401, f"{problem} of {tolerance:g} s (a replay, or a clock off)")
    return seconds


class JwtCheck:
    """Per-job deliveries: an RS256 JWT in `webhook-signature`, its key from the JWKS at `jwks_url` (fetched once,
    then cached by PyJWT's `PyJWKClient` for an hour, and fetched again for a `kid` it does not know at most once
    every `refetch_seconds`)."""

    def __init__(
        self,
        jwks_url: str,
        audience: str | None,
        issuer: str | None,
        tolerance: float,
        refetch_seconds: float = REFETCH_SECONDS,
    ) -> None:
        try:
            import jwt
        except ImportError:
            raise ConfigurationError(f"Verifying per-job (JWT-signed) webhooks needs PyJWT: {INSTALL}.") from None
        self._jwt = jwt
        self._keys = jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=3600, timeout=10)
        self.jwks_url, self.audience, self.issuer, self.tolerance = jwks_url, audience, issuer, tolerance
        self.refetch_seconds = refetch_seconds
        self._refetch_lock = threading.Lock()
        self._last_refetch = float("-inf")

    def _signing_key(self, token: str) -> Any:
        """The key of the token's `kid`: from the cached JWKS; else from a fresh fetch, unless one was made in the
        last `refetch_seconds` (PyJWKClientError when there is none)."""
        kid = self._jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str):
            raise self._jwt.PyJWKClientError("the token names no kid")
        key = self._keys.match_kid(self._keys.get_signing_keys(), kid)  # fetched only when not cached (or expired)
        if key is None:
            with self._refetch_lock:
                now = time.monotonic()
                refetch = now - self._last_refetch >= self.refetch_seconds
                if refetch:
                    self._last_refetch = now
                # without a refetch, look again: another thread may have refetched meanwhile
                key = self._keys.match_kid(self._keys.get_signing_keys(refresh=refetch), kid)
        if key is None:
            raise self._jwt.PyJWKClientError("no key in the JWKS has the token's kid")
        return key.key

    def check(self, body: bytes, headers: Mapping[str, str]) -> Authentic:
        token = headers.get("webhook-signature", "").strip()
        claims = self._claims(token)
        msg_id = headers.get("webhook-id") or claims.get("jti")
        if not isinstance(msg_id, str) or not msg_id:
            raise Refused(401, "missing webhook-id header (and the token has no jti)")
        if headers.get("webhook-timestamp"):
            check_timestamp(headers["webhook-timestamp"], self.tolerance)
        return Authentic(msg_id, "jwt", covered_event(claims, body))

    def _claims(self, token: str) -> dict[str, Any]:
        jwt = self._jwt
        try:
            key = self._signing_key(token)
        except jwt.PyJWKClientConnectionError:
            raise Refused(503, f"cannot fetch the signing keys from {self.jwks_url}; try again later") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError):
            where = f"the JWKS at {self.jwks_url}"
            raise Refused(401, f"the token is malformed, or its key (kid) is not in {where}") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=["RS256"], audience=self.audience, issuer=self.issuer, leeway=_SKEW_SECONDS,
                options={"require": ["exp", "iat"], "verify_aud": self.audience is not None},
            )  # fmt: skip
        except jwt.InvalidTokenError as exc:
            raise Refused(401, f"the token does not verify: {type(exc).__name__}: {exc}") from None
        age = time.time() - float(claims["iat"])
        if age > self.tolerance:
            raise Refused(401, f"the token was issued {age:.0f} s ago, beyond the tolerance of {self.tolerance:g} s")
        return claims


def covered_event(claims: Mapping[str, Any], body: bytes) -> dict[str, Any] | None:
    """The event to act upon when the token covers it (None: the body, whose digest the token holds); `Refused`
    when the body contradicts the token or the token covers neither (see the module)."""
    digest = claims.get("body_sha256")
    if isinstance(digest, str):
        if not hmac.compare_digest(digest.lower(), hashlib.sha256(body).hexdigest()):
            raise Refused(401, "the body is not the one the token signs (body_sha256 differs): a changed body")
        return None
    event = claims if "type" in claims and "data" in claims else claims.get("event")
    if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
        raise Refused(401, "the token covers neither the body (no body_sha256 claim) nor the event (no type and data "
                           "claims); an event it does not authenticate is not acted upon")  # fmt: skip
    carried = {key: event[key] for key in ("type", "version", "timestamp", "data") if key in event}
    if body.strip():
        try:
            sent = json.loads(body)
        except ValueError:
            sent = None
        if not isinstance(sent, dict) or any(sent.get(key) != carried.get(key) for key in ("type", "data")):
            raise Refused(401, "the body differs from the event the token carries: a changed body")
    return carried
