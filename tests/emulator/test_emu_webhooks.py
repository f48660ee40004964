"""Webhook delivery: jobs created through the SDK with a `webhook_config` get one signed Standard Webhooks event per
URI when they end, however they end; retried after failures, duplicated on request, only to loopback hosts.

Signatures are checked with the `standardwebhooks` library (the emulator signs with the standard library alone), and
the per-job JWTs with PyJWT against the emulator's own JWKS."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from emulator_support import jsonl, raw, upload
from google import genai
from standardwebhooks import Webhook

from polars_gemini.emulator import Emulator, WebhookDelivery


@dataclass
class Hook:
    """A webhook endpoint on 127.0.0.1 that records every POST and answers `answers` in turn, then 204."""

    answers: list[int] = field(default_factory=list)
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with hook.lock:
                    hook.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = hook.answers.pop(0) if hook.answers else 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/gemini"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    endpoint = Hook()
    yield endpoint
    endpoint.close()


def _create(client: genai.Client, uris: list[str], metadata: dict[str, Any] | None = None, **extra: Any) -> str:
    config: dict[str, Any] = {"uris": uris}
    if metadata is not None:
        config["user_metadata"] = metadata
    job = client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}],
                                config={"webhook_config": config, **extra})  # fmt: skip
    assert job.name is not None
    return job.name


def test_a_succeeded_job_posts_one_signed_event_with_its_user_metadata(hook: Hook) -> None:
    with Emulator(webhook_signing="hmac") as emu:
        client = emu.client()
        name = _create(client, [hook.uri], {"polars_gemini_checkpoint": "/runs/a", "n": 1}, display_name="d")
        assert emu.wait_for_webhooks()
        assert len(hook.posts) == 1
        headers, body = hook.posts[0]
        event = Webhook(emu.webhook_secret).verify(body, headers)  # raises unless the signature is right
        assert event["type"] == "batch.succeeded" and event["version"] == "v1"
        assert event["data"] == {"id": name, "user_metadata": {"polars_gemini_checkpoint": "/runs/a", "n": 1}}
        assert event["timestamp"] == emu.jobs[name]["metadata"]["endTime"]
        assert headers["webhook-id"].startswith("msg_") and headers["content-type"] == "application/json"
        assert emu.webhook_deliveries == [
            WebhookDelivery(hook.uri, headers["webhook-id"], "batch.succeeded", name, 1, 204, True, None, 1, "hmac")
        ]


def test_the_job_echoes_its_webhook_config_in_camel_case(hook: Hook) -> None:
    with Emulator() as emu:
        name = _create(emu.client(), [hook.uri], {"k": "v"})
        reply = raw(emu, "GET", f"/v1beta/{name}")
        assert reply.json()["metadata"]["webhookConfig"] == {"uris": [hook.uri], "userMetadata": {"k": "v"}}


def test_a_file_job_event_points_to_its_results_file(hook: Hook) -> None:
    with Emulator() as emu:
        client = emu.client()
        uploaded = upload(client, jsonl([{"key": "a", "request": {"contents": [{"parts": [{"text": "Hi"}]}]}}]))
        job = client.batches.create(model="gemini-2.0-flash", src=uploaded.name or "",
                                    config={"webhook_config": {"uris": [hook.uri]}})  # fmt: skip
        assert emu.wait_for_webhooks()
        (event,) = hook.events()
        results = event["data"]["output_file_uri"]
        assert results == emu.jobs[job.name or ""]["metadata"]["output"]["responsesFile"]
        assert b'"key":"a"' in emu.file_bytes(results).replace(b" ", b"")


def test_failed_expired_and_cancelled_jobs_post_their_events(hook: Hook) -> None:
    with Emulator(pending_seconds=600) as emu:
        client = emu.client()
        emu.end_next_job("FAILED", code=3, message="bad input")
        failed = _create(client, [hook.uri])
        emu.end_next_job("EXPIRED")
        expired = _create(client, [hook.uri])
        cancelled = _create(client, [hook.uri])
        assert emu.wait_for_webhooks() and hook.posts == []  # all three are still pending
        client.batches.cancel(name=cancelled)
        assert emu.wait_for_webhooks()
        assert [e["type"] for e in hook.events()] == ["batch.cancelled"]
        emu.advance_time(601)  # the other two end now, on the emulator's clock
        assert emu.wait_for_webhooks()
        by_job = {e["data"]["id"]: e for e in hook.events()}
        assert by_job[failed]["type"] == "batch.failed"
        assert (by_job[failed]["data"]["error_code"], by_job[failed]["data"]["error_message"]) == (3, "bad input")
        assert by_job[expired]["type"] == "batch.expired" and by_job[cancelled]["type"] == "batch.cancelled"
        assert len(hook.posts) == 3


def test_a_job_ending_on_its_own_time_posts_without_anyone_polling(hook: Hook) -> None:
    with Emulator(running_seconds=0.05) as emu:
        name = _create(emu.client(), [hook.uri])
        assert emu.wait_for_webhooks(running=True)
        assert [(e["type"], e["data"]["id"]) for e in hook.events()] == [("batch.succeeded", name)]
        assert emu.calls("batches.get") == 0


def test_a_500_is_retried_with_the_same_webhook_id_and_a_fresh_signature() -> None:
    hook = Hook(answers=[500, 503])
    try:
        with Emulator(webhook_retry_seconds=0.01, webhook_signing="hmac") as emu:
            _create(emu.client(), [hook.uri])
            assert emu.wait_for_webhooks()
            (delivery,) = emu.webhook_deliveries
            assert (delivery.attempts, delivery.status, delivery.delivered) == (3, 204, True)
            assert len({headers["webhook-id"] for headers, _ in hook.posts}) == 1 and len(hook.posts) == 3
            for headers, body in hook.posts:
                Webhook(emu.webhook_secret).verify(body, headers)
    finally:
        hook.close()


def test_an_unreachable_receiver_is_given_up_after_max_attempts() -> None:
    gone = Hook()
    gone.close()  # nothing listens on its port any more
    with Emulator(webhook_retry_seconds=0.01, webhook_max_attempts=3) as emu:
        _create(emu.client(), [gone.uri])
        assert emu.wait_for_webhooks()
        (delivery,) = emu.webhook_deliveries
        assert (delivery.attempts, delivery.status, delivery.delivered) == (3, None, False)
        assert delivery.error


def test_webhook_duplicate_delivers_every_event_twice(hook: Hook) -> None:
    with Emulator(webhook_duplicate=True) as emu:
        _create(emu.client(), [hook.uri])
        assert emu.wait_for_webhooks()
        assert [d.copy for d in emu.webhook_deliveries] == [1, 2]
        ids = [headers["webhook-id"] for headers, _ in hook.posts]
        assert len(ids) == 2 and ids[0] == ids[1]


def test_every_uri_gets_the_event_and_other_hosts_get_nothing(hook: Hook) -> None:
    other = Hook()
    try:
        with Emulator() as emu:
            _create(emu.client(), [hook.uri, other.uri, "https://192.0.2.7/hook"])
            assert emu.wait_for_webhooks()
            assert len(hook.posts) == len(other.posts) == 1
            outside = [d for d in emu.webhook_deliveries if "192.0.2.7" in d.uri]
            assert outside[0].attempts == 0 and not outside[0].delivered and "loopback" in (outside[0].error or "")
    finally:
        other.close()


def test_registered_webhooks_get_events_of_jobs_whose_config_names_no_uris(hook: Hook) -> None:
    with Emulator(webhook_uris=[hook.uri]) as emu:
        client = emu.client()
        job = client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}],
                                    config={"webhook_config": {"user_metadata": {"k": 1}}})  # fmt: skip
        client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Ho"}])
        assert emu.wait_for_webhooks()
        events = hook.events()
        assert len(events) == 2
        assert {"id": job.name, "user_metadata": {"k": 1}} in [e["data"] for e in events]


def test_jobs_without_a_webhook_send_nothing(hook: Hook) -> None:
    with Emulator() as emu:
        client = emu.client()
        client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}])
        assert emu.wait_for_webhooks()
        assert emu.webhook_deliveries == [] and hook.posts == []
        assert not [t for t in threading.enumerate() if t.name.startswith("emulator-webhooks")]


@pytest.mark.parametrize(
    "config",
    [{"uris": "http://127.0.0.1/"}, {"uris": ["ftp://127.0.0.1/"]}, {"user_metadata": [1]}, {"url": "x"}, [1]],
)
def test_a_malformed_webhook_config_is_400_and_creates_nothing(config: Any) -> None:
    with Emulator() as emu:
        batch = {"inputConfig": {"requests": {"requests": [{"request": {"contents": [{"parts": [{"text": "a"}]}]}}]}},
                 "webhookConfig": config}  # fmt: skip
        reply = raw(emu, "POST", "/v1beta/models/gemini-2.0-flash:batchGenerateContent", {"batch": batch})
        assert reply.status_code == 400 and b"webhook_config" in reply.content
        assert emu.jobs == {}


def test_the_secret_signs_but_is_never_shown(hook: Hook) -> None:
    secret = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="
    with Emulator(webhook_secret=secret, webhook_signing="hmac") as emu:
        _create(emu.client(), [hook.uri])
        assert emu.wait_for_webhooks()
        headers, body = hook.posts[0]
        Webhook(secret).verify(body, headers)
        shown = repr(emu.settings) + repr(emu.webhook_deliveries) + repr(emu.requests)
        assert "c2VjcmV0" not in shown
    with pytest.raises(ValueError, match="not shown") as caught:
        Emulator(webhook_secret="whsec_not base64!")
    assert "not base64!" not in str(caught.value)


def test_stopping_the_emulator_stops_delivery() -> None:
    failing = Hook(answers=[500] * 1000)
    try:
        emu = Emulator(webhook_retry_seconds=0.01, webhook_max_attempts=1000).start()
        _create(emu.client(), [failing.uri])
        assert not emu.wait_for_webhooks(timeout=0.2)  # still retrying
        emu.stop()
        assert not [t for t in threading.enumerate() if t.name.startswith("emulator-webhooks")]
        assert emu.webhook_deliveries[0].attempts >= 1 and not emu.webhook_deliveries[0].delivered
    finally:
        failing.close()


# -- per-job webhooks are signed with an RS256 JWT (the documented way), registered ones with HMAC --------------------


def _jwks_client(emu: Emulator) -> Any:
    import jwt

    return jwt.PyJWKClient(emu.jwks_url)


def test_a_per_job_webhook_carries_an_rs256_jwt_over_the_body_verified_by_the_emulators_jwks(hook: Hook) -> None:
    import hashlib

    import jwt

    with Emulator() as emu:
        name = _create(emu.client(), [hook.uri], {"k": "v"})
        assert emu.wait_for_webhooks()
        ((headers, body),) = hook.posts
        token = headers["webhook-signature"]
        assert not token.startswith("v1,") and token.count(".") == 2
        key = _jwks_client(emu).get_signing_key_from_jwt(token).key
        claims = jwt.decode(token, key, algorithms=["RS256"], audience=hook.uri, issuer="polars-gemini-emulator",
                            options={"require": ["exp", "iat"]})  # fmt: skip
        assert claims["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert claims["jti"] == headers["webhook-id"] and claims["iat"] == int(headers["webhook-timestamp"])
        assert claims["exp"] - claims["iat"] == 300
        assert jwt.get_unverified_header(token)["kid"] == _jwks_client(emu).get_jwk_set().keys[0].key_id
        assert json.loads(body)["data"]["id"] == name
        assert [d.signing for d in emu.webhook_deliveries] == ["jwt"]
        with pytest.raises(jwt.InvalidAudienceError):
            jwt.decode(token, key, algorithms=["RS256"], audience="https://elsewhere.example/")


def test_the_audience_setting_names_the_tokens_aud(hook: Hook) -> None:
    import jwt

    with Emulator(webhook_audience="my-receiver") as emu:
        _create(emu.client(), [hook.uri])
        assert emu.wait_for_webhooks()
        token = hook.posts[0][0]["webhook-signature"]
        key = _jwks_client(emu).get_signing_key_from_jwt(token).key
        assert jwt.decode(token, key, algorithms=["RS256"], audience="my-receiver")["aud"] == "my-receiver"


def test_registered_webhooks_stay_hmac_signed_and_the_switch_forces_either(hook: Hook) -> None:
    with Emulator(webhook_uris=[hook.uri]) as emu:
        client = emu.client()  # kept: a collected Client closes its connections
        client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}])
        assert emu.wait_for_webhooks()
        headers, body = hook.posts[-1]
        Webhook(emu.webhook_secret).verify(body, headers)
        assert [d.signing for d in emu.webhook_deliveries] == ["hmac"]
    with Emulator(webhook_uris=[hook.uri], webhook_signing="jwt") as emu:
        client = emu.client()
        client.batches.create(model="gemini-2.0-flash", src=[{"contents": "Hi"}])
        assert emu.wait_for_webhooks()
        assert [d.signing for d in emu.webhook_deliveries] == ["jwt"]
        assert hook.posts[-1][0]["webhook-signature"].count(".") == 2
    with pytest.raises(ValueError, match="webhook_signing"):
        Emulator(webhook_signing="rsa")


def test_the_jwks_needs_no_api_key_and_is_404_when_signing_hmac_only() -> None:
    import urllib.request

    with Emulator(api_key="k") as emu:
        with urllib.request.urlopen(emu.jwks_url, timeout=30) as reply:  # no key sent
            keys = json.loads(reply.read())["keys"]
        assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [("RSA", "RS256", "sig")] and "d" not in keys[0]
        assert emu.calls("webhooks.jwks") == 1
    with Emulator(webhook_signing="hmac") as emu:
        assert raw(emu, "GET", "/.well-known/jwks.json").status_code == 404


def test_without_pyjwt_auto_falls_back_to_hmac_and_jwt_is_a_clear_error(
    hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "jwt", None)  # as if PyJWT were not installed
    with pytest.raises(ValueError, match=r"PyJWT\[crypto\]"):
        Emulator(webhook_signing="jwt")
    with Emulator() as emu:
        _create(emu.client(), [hook.uri])
        assert emu.wait_for_webhooks()
        headers, body = hook.posts[0]
        Webhook(emu.webhook_secret).verify(body, headers)
        assert [d.signing for d in emu.webhook_deliveries] == ["hmac"]
