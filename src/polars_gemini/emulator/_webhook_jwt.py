"""The RS256 JWT that signs per-job (dynamic) webhook deliveries, and the JWKS that verifies it.

What is documented (https://ai.google.dev/gemini-api/docs/webhooks, "Verify dynamic signatures (JWKS)", page of
2026-05-19): a per-job delivery carries a JWT in `webhook-signature`, RS256, whose header `kid` names a key of the
JWKS at https://generativelanguage.googleapis.com/.well-known/jwks.json; the sample checks it with
`jwt.decode(token, key, algorithms=["RS256"], audience="your-configured-audience")`.

What is not, and what the emulator chooses (guesses, kept minimal and explicit):

* the claims: `iss` "polars-gemini-emulator" (Google's issuer is not documented), `aud` the `webhook_audience`
  setting, else the delivery's URI (what the hookdeck/webhook-skills guide expects: "your endpoint URL"), `iat` the
  attempt's time (the same as `webhook-timestamp`), `exp` five minutes later, `jti` the `webhook-id`, and
  `body_sha256`, the hex SHA-256 of the exact body, so that the token covers the event (the documentation does not say
  whether, or how, Google's token covers the body);
* the key: one RSA-2048 key per emulator, made when first needed (a JWT signed or the JWKS asked for), with a random
  `kid`; the JWKS is served at `GET /.well-known/jwks.json` on the emulator's own port (no API key needed).

PyJWT and cryptography are optional for the emulator: `available()` says whether they are installed; without them
`webhook_signing="auto"` signs every delivery with the HMAC scheme, and `"jwt"` is a ValueError with the install hint.
The private key never leaves this object (no repr, no log).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from typing import Any

ISSUER = "polars-gemini-emulator"
LIFETIME_SECONDS = 300
INSTALL = "pip install 'PyJWT[crypto]'"


def available() -> bool:
    """Whether PyJWT and cryptography can be imported (then per-job deliveries can be JWT-signed)."""
    try:
        import cryptography.hazmat.primitives.asymmetric.rsa  # noqa: F401
        import jwt  # noqa: F401
    except ImportError:
        return False
    return True


class JwtSigner:
    """Signs deliveries with one lazily made RSA key; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Any = None
        self.kid = "emu-" + secrets.token_hex(8)

    def __repr__(self) -> str:
        return f"JwtSigner(kid={self.kid!r})"

    def _private(self) -> Any:
        with self._lock:
            if self._key is None:
                from cryptography.hazmat.primitives.asymmetric import rsa

                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key

    def sign(self, msg_id: str, timestamp: int, body: bytes, audience: str) -> str:
        """The `webhook-signature` value: a compact RS256 JWT over the claims the module names."""
        import jwt

        claims = {"iss": ISSUER, "aud": audience, "iat": timestamp, "exp": timestamp + LIFETIME_SECONDS,
                  "jti": msg_id, "body_sha256": hashlib.sha256(body).hexdigest()}  # fmt: skip
        return jwt.encode(claims, self._private(), algorithm="RS256", headers={"kid": self.kid})

    def jwks(self) -> dict[str, Any]:
        """The public JWKS: `{"keys": [{"kty": "RSA", "kid", "use": "sig", "alg": "RS256", "n", "e"}]}`."""
        from jwt.algorithms import RSAAlgorithm

        jwk = json.loads(RSAAlgorithm.to_jwk(self._private().public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}
