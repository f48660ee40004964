"""The webhook receiver (`polars-gemini webhook serve`, `cli.webhook.WebhookReceiver`): signed events resume the run
they name and write its result file; forged, tampered, stale and replayed events do nothing; per-job deliveries are
verified as RS256 JWTs against a JWKS (a key made here, served on loopback; and the emulator's own); events naming no
checkpoint are matched by batch name under --root; and the emulator's deliveries pass the receiver end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from standardwebhooks import Webhook

import polars_gemini
from polars_gemini.cli.etl import record_output
from polars_gemini.cli.webhook import SEEN_FILE, Reply, WebhookReceiver
from polars_gemini.core.errors import ConfigurationError
from polars_gemini.emulator import Emulator
from testing_support import echo

SECRET = "whsec_" + "dGhlLXJlY2VpdmVyLXRlc3Qtc2lnbmluZy1rZXk="
OTHER = "whsec_" + "YW5vdGhlci1rZXktdGhhdC1zaWducy1mb3JnZXJpZXM="


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """Jobs pend for 600 s of the emulator's clock: `advance_time(601)` ends them."""
    with Emulator(responder=echo, pending_seconds=600, webhook_secret=SECRET, webhook_retry_seconds=0.01) as emulator:
        yield emulator


@pytest.fixture
def run_dir(emu: Emulator, tmp_path: Path) -> Path:
    """A submitted, still pending run whose result file is to be `out.parquet`."""
    checkpoint = tmp_path / "ckpt"
    record_output(checkpoint, str(tmp_path / "out.parquet"))
    frame = pl.DataFrame({"id": [1, 2, 3], "review": ["great", "bad", "fine"]})
    run = polars_gemini.submit(frame, "Label: {review}", model="gemini-2.5-flash", client=emu.client(),
                               checkpoint=checkpoint, progress=False)  # fmt: skip
    run.close()
    return checkpoint


def first_job(checkpoint: Path) -> str:
    return str(pl.read_parquet(checkpoint / "jobs.parquet").get_column("name")[0])


def event(checkpoint: Path | str | None, kind: str = "batch.succeeded", job: str | None = None) -> dict[str, Any]:
    """An event for `checkpoint`'s first job (`job` unless given), naming `checkpoint` in its metadata."""
    if job is None:
        jobs = Path(str(checkpoint)) / "jobs.parquet" if checkpoint is not None else None
        job = first_job(jobs.parent) if jobs is not None and jobs.exists() else "batches/x"
    data: dict[str, Any] = {"id": job}
    if checkpoint is not None:
        data["user_metadata"] = {"polars_gemini_checkpoint": str(checkpoint), "polars_gemini_run_id": "r"}
    return {"type": kind, "version": "v1", "timestamp": "2026-01-22T12:00:00Z", "data": data}


def signed(
    value: Any, msg_id: str = "msg_1", *, secret: str = SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """A delivery as the service makes it: the body and its Standard Webhooks headers (signed by the library)."""
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    stamp = int(time.time() if at is None else at)
    signature = Webhook(secret).sign(msg_id, _utc(stamp), body.decode())
    return body, {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def _utc(stamp: int) -> Any:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(stamp, tz=timezone.utc)


@pytest.fixture
def logs() -> list[str]:
    return []


@pytest.fixture
def receiver(emu: Emulator, logs: list[str]) -> WebhookReceiver:
    return WebhookReceiver(SECRET, jwks_url=emu.jwks_url, client=emu.client(), log=logs.append, settle_seconds=5)


def post(url: str, body: bytes, headers: dict[str, str]) -> Reply:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return Reply(reply.status, json.loads(reply.read()))
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, json.loads(exc.read()))


def test_a_signed_event_resumes_the_run_and_writes_its_result_file(
    emu: Emulator, run_dir: Path, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    emu.advance_time(601)
    with receiver.serve() as server:
        reply = post(server.url, *signed(event(run_dir)))
        assert reply == Reply(202, {"status": "accepted", "checkpoint": str(run_dir.resolve())})
        assert receiver.wait_idle(timeout=60)
    (outcome,) = receiver.outcomes
    assert (outcome.status, outcome.rows, outcome.failed_rows) == ("done", 3, 0)
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert out.get_column("id").to_list() == [1, 2, 3]
    assert out.get_column("response").to_list() == ["echo: Label: great", "echo: Label: bad", "echo: Label: fine"]


def test_an_event_for_a_run_still_running_leaves_it_pending_until_the_next(
    emu: Emulator, run_dir: Path, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    assert receiver.handle(*signed(event(run_dir), "msg_early")).status == 202
    assert receiver.wait_idle(timeout=60)
    assert [o.status for o in receiver.outcomes] == ["pending"] and not (tmp_path / "out.parquet").exists()
    emu.advance_time(601)
    assert receiver.handle(*signed(event(run_dir), "msg_late")).status == 202
    assert receiver.wait_idle(timeout=60)
    assert [o.status for o in receiver.outcomes] == ["pending", "done"]
    assert pl.read_parquet(tmp_path / "out.parquet").height == 3


@pytest.mark.parametrize(
    "tamper",
    ["other secret", "changed body", "bad base64", "no signature", "v2 only"],
)
def test_forged_deliveries_are_401_and_resume_nothing(
    emu: Emulator, run_dir: Path, receiver: WebhookReceiver, tmp_path: Path, tamper: str
) -> None:
    emu.advance_time(601)
    body, headers = signed(event(run_dir), secret=OTHER if tamper == "other secret" else SECRET)
    if tamper == "changed body":
        body = body.replace(b"batch.succeeded", b"batch.failed")
    elif tamper == "bad base64":
        headers["webhook-signature"] = "v1,***"
    elif tamper == "no signature":
        del headers["webhook-signature"]
    elif tamper == "v2 only":
        headers["webhook-signature"] = "v2," + headers["webhook-signature"].partition(",")[2]
    gets = emu.calls("batches.get")
    with receiver.serve() as server:
        reply = post(server.url, body, headers)
    assert reply.status == 401 and "error" in reply.body
    assert receiver.wait_idle(timeout=5) and receiver.outcomes == []
    assert emu.calls("batches.get") == gets and not (tmp_path / "out.parquet").exists()
    assert not (run_dir / SEEN_FILE).exists()


def test_a_rotated_secret_signature_list_passes_if_one_entry_matches(
    emu: Emulator, run_dir: Path, receiver: WebhookReceiver
) -> None:
    body, headers = signed(event(run_dir))
    _, other = signed(event(run_dir), secret=OTHER)
    headers["webhook-signature"] = f"{other['webhook-signature']} {headers['webhook-signature']}"
    assert receiver.handle(body, headers).status == 202
    assert receiver.wait_idle(timeout=60)


@pytest.mark.parametrize("offset", [-301, 301, -10_000])
def test_a_timestamp_outside_the_tolerance_is_refused(
    emu: Emulator, run_dir: Path, receiver: WebhookReceiver, offset: int
) -> None:
    reply = receiver.handle(*signed(event(run_dir), at=time.time() + offset))
    assert reply.status == 401 and "tolerance" in reply.body["error"]
    assert receiver.wait_idle(timeout=5) and receiver.outcomes == []


def test_the_tolerance_is_configurable(emu: Emulator, run_dir: Path, logs: list[str]) -> None:
    lenient = WebhookReceiver(SECRET, client=emu.client(), tolerance=1000, log=logs.append)
    assert lenient.handle(*signed(event(run_dir), at=time.time() - 600)).status == 202
    assert lenient.wait_idle(timeout=60)
    with pytest.raises(ConfigurationError, match="tolerance"):
        WebhookReceiver(SECRET, tolerance=0)


def test_a_replayed_event_is_ignored_also_by_a_restarted_receiver(
    emu: Emulator, run_dir: Path, receiver: WebhookReceiver, logs: list[str]
) -> None:
    emu.advance_time(601)
    delivery = signed(event(run_dir), "msg_replayed")
    assert receiver.handle(*delivery).status == 202
    assert receiver.handle(*delivery) == Reply(200, {"status": "duplicate"})
    assert receiver.wait_idle(timeout=60) and len(receiver.outcomes) == 1
    restarted = WebhookReceiver(SECRET, client=emu.client(), log=logs.append)
    again = signed(event(run_dir), "msg_replayed")  # re-signed now, as a retry is
    assert restarted.handle(*again) == Reply(200, {"status": "duplicate"})
    assert restarted.wait_idle(timeout=5) and restarted.outcomes == []
    assert json.loads((run_dir / SEEN_FILE).read_text())["webhook_ids"] == ["msg_replayed"]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"data": {}}', b'{"type": 3}', "caf\xe9".encode("latin-1")])
def test_a_signed_body_that_is_no_event_is_400(receiver: WebhookReceiver, body: bytes) -> None:
    utf8 = body.isascii()
    headers = signed(body if utf8 else b"{}")[1]  # a body that is not UTF-8 cannot even be checked
    assert receiver.handle(body, headers).status == 400
    assert receiver.wait_idle(timeout=5) and receiver.outcomes == []


def test_events_naming_no_usable_checkpoint_are_acknowledged_and_logged(
    emu: Emulator, run_dir: Path, tmp_path: Path, logs: list[str]
) -> None:
    (tmp_path / "plain").mkdir()
    receiver = WebhookReceiver(SECRET, client=emu.client(), root=tmp_path / "runs", log=logs.append)
    cases = {
        "none": event(None),
        "relative": event("ckpt"),
        "missing": event(tmp_path / "nowhere"),
        "plain dir": event(tmp_path / "plain"),
        "outside root": event(run_dir),
        "not a batch event": event(run_dir, kind="video.generated"),
    }
    for i, (case, value) in enumerate(cases.items()):
        reply = receiver.handle(*signed(value, f"msg_{i}"))
        assert reply.status == 200 and reply.body["status"] == "ignored", case
    assert receiver.wait_idle(timeout=5) and receiver.outcomes == []
    assert len([line for line in logs if "ignored" in line]) == len(cases)
    assert receiver.handle(*signed(event(None), "msg_0")).body == {"status": "duplicate"}


def test_the_secret_is_in_no_log_line_or_reply(emu: Emulator, run_dir: Path, receiver: WebhookReceiver,
                                               logs: list[str]) -> None:  # fmt: skip
    replies = [receiver.handle(*signed(event(run_dir), "msg_a")),
               receiver.handle(*signed(event(run_dir), secret=OTHER))]  # fmt: skip
    receiver.wait_idle(timeout=60)
    shown = json.dumps([r.body for r in replies]) + "\n".join(logs) + repr(receiver.__dict__)
    assert SECRET.removeprefix("whsec_")[:12] not in shown and OTHER.removeprefix("whsec_")[:12] not in shown


def test_a_bad_secret_or_a_missing_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="whsec_") as caught:
        WebhookReceiver("whsec_%%%not-base64%%%")
    assert "not-base64" not in str(caught.value)
    monkeypatch.setitem(sys.modules, "standardwebhooks", None)  # as if it were not installed
    with pytest.raises(ConfigurationError, match=r"polars-gemini\[webhooks\]"):
        WebhookReceiver(SECRET)


@pytest.mark.parametrize("signing", ["hmac", "jwt"])
def test_the_emulators_signed_delivery_resumes_a_run(tmp_path: Path, logs: list[str], signing: str) -> None:
    """A run submitted with a webhook: the emulator's event (HMAC with the standard library, or an RS256 JWT over
    the body) passes the receiver's check (standardwebhooks, or PyJWT against the emulator's JWKS) and finishes it."""
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.parquet"
    with Emulator(responder=echo, pending_seconds=600, webhook_secret=SECRET, webhook_signing=signing) as emu:
        receiver = WebhookReceiver(SECRET, jwks_url=emu.jwks_url, client=emu.client(), log=logs.append)
        with receiver.serve() as server:
            record_output(ckpt, str(out))
            frame = pl.DataFrame({"review": ["a", "b"]})
            run = polars_gemini.submit(frame, "R: {review}", model="gemini-2.5-flash", client=emu.client(),
                                       checkpoint=ckpt, webhook=server.url, progress=False)  # fmt: skip
            run.close()
            emu.advance_time(601)
            assert emu.wait_for_webhooks() and receiver.wait_idle(timeout=60)
        assert [(d.status, d.delivered, d.signing) for d in emu.webhook_deliveries] == [(202, True, signing)]
    assert [o.status for o in receiver.outcomes] == ["done"]
    assert any(f"{signing}-signed): resuming" in line for line in logs)
    assert pl.read_parquet(out).get_column("response").to_list() == ["echo: R: a", "echo: R: b"]


# -- per-job deliveries: RS256 JWTs against a JWKS (a key made here, served on loopback) ------------------------------


@dataclass
class Jwks:
    """A JWKS on 127.0.0.1 for an RSA key made here; `gets` counts the fetches; `up=False` answers 500."""

    key: Any
    kid: str = "test-key-1"
    gets: int = 0
    up: bool = True

    def __post_init__(self) -> None:
        import http.server
        import threading

        from jwt.algorithms import RSAAlgorithm

        jwk = {**json.loads(RSAAlgorithm.to_jwk(self.key.public_key())), "kid": self.kid, "alg": "RS256"}
        body, owner = json.dumps({"keys": [jwk]}).encode(), self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.gets += 1
                self.send_response(200 if owner.up else 500)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"


def _rsa() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[Any, Any]:
    return _rsa(), _rsa()


@pytest.fixture
def jwks(rsa_keys: tuple[Any, Any]) -> Iterator[Jwks]:
    served = Jwks(rsa_keys[0])
    yield served
    served.server.shutdown()
    served.server.server_close()


def jwt_signed(value: Any, key: Any, msg_id: str = "msg_j", *, claims: dict[str, Any] | None = None,
               kid: str = "test-key-1", at: float | None = None) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    """A per-job delivery: the body and a JWT over its SHA-256 (unless `claims` replace that)."""
    import hashlib

    import jwt

    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    now = int(time.time() if at is None else at)
    payload = {"iat": now, "exp": now + 300, "aud": "https://me.example/hook",
               "body_sha256": hashlib.sha256(body).hexdigest()} if claims is None else claims  # fmt: skip
    token = jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})
    return body, {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": token}


def jwt_receiver(emu: Emulator, jwks: Jwks, logs: list[str], **options: Any) -> WebhookReceiver:
    return WebhookReceiver(None, jwks_url=jwks.url, client=emu.client(), log=logs.append, **options)


def test_a_valid_jwt_delivery_resumes_the_run_and_the_jwks_is_fetched_once(
    emu: Emulator, run_dir: Path, jwks: Jwks, logs: list[str], tmp_path: Path
) -> None:
    receiver = jwt_receiver(emu, jwks, logs, audience="https://me.example/hook")
    emu.advance_time(601)
    with receiver.serve() as server:
        reply = post(server.url, *jwt_signed(event(run_dir), jwks.key, "msg_j1"))
        assert reply == Reply(202, {"status": "accepted", "checkpoint": str(run_dir.resolve())})
        assert receiver.wait_idle(timeout=60)
        assert post(server.url, *jwt_signed(event(run_dir), jwks.key, "msg_j2")).status == 202
        assert receiver.wait_idle(timeout=60)
    assert [o.status for o in receiver.outcomes] == ["done", "done"]
    assert pl.read_parquet(tmp_path / "out.parquet").height == 3
    assert jwks.gets == 1  # cached by PyJWKClient


@pytest.mark.parametrize("forgery", ["other key", "unknown kid", "expired", "stale iat", "wrong audience",
                                     "changed body", "no exp", "hs256", "not a jwt"])  # fmt: skip
def test_forged_jwt_deliveries_are_401_and_resume_nothing(
    emu: Emulator, run_dir: Path, jwks: Jwks, rsa_keys: tuple[Any, Any], logs: list[str], forgery: str
) -> None:
    import hashlib

    import jwt

    receiver = jwt_receiver(emu, jwks, logs, audience="https://me.example/hook")
    value, now = event(run_dir), int(time.time())
    key = rsa_keys[1] if forgery == "other key" else jwks.key
    claims = {"iat": now, "exp": now + 300, "aud": "https://me.example/hook",
              "body_sha256": hashlib.sha256(json.dumps(value).encode()).hexdigest()}  # fmt: skip
    if forgery == "expired":
        claims.update(iat=now - 200, exp=now - 100)
    elif forgery == "stale iat":
        claims.update(iat=now - 1000, exp=now + 300)
    elif forgery == "wrong audience":
        claims["aud"] = "https://someone-else.example/"
    elif forgery == "no exp":
        del claims["exp"]
    body, headers = jwt_signed(value, key, claims=claims, kid="nope" if forgery == "unknown kid" else "test-key-1")
    if forgery == "changed body":
        body = body.replace(b"batch.succeeded", b"batch.failed")
    elif forgery == "hs256":
        headers["webhook-signature"] = jwt.encode(claims, "a-guessed-secret-of-32-bytes-at-least!", algorithm="HS256",
                                                  headers={"kid": "test-key-1"})  # fmt: skip
    elif forgery == "not a jwt":
        headers["webhook-signature"] = "v1,AAAA"
    gets = emu.calls("batches.get")
    reply = receiver.handle(body, headers)
    assert reply.status == 401 and "error" in reply.body, reply
    assert receiver.wait_idle(timeout=5) and receiver.outcomes == [] and emu.calls("batches.get") == gets
    assert not (run_dir / SEEN_FILE).exists()
    assert headers["webhook-signature"] not in "\n".join(logs) + json.dumps(reply.body)


def test_a_token_carrying_the_event_is_trusted_over_the_body_and_one_covering_nothing_is_refused(
    emu: Emulator, run_dir: Path, jwks: Jwks, logs: list[str]
) -> None:
    receiver = jwt_receiver(emu, jwks, logs)  # no --audience: aud is not checked
    now, value = int(time.time()), event(run_dir)
    carrying = {"iat": now, "exp": now + 300, "aud": "whoever", **value}
    assert receiver.handle(*jwt_signed(value, jwks.key, "msg_c1", claims=carrying)).status == 202
    assert receiver.handle(*jwt_signed(b"", jwks.key, "msg_c2", claims=carrying)).status == 202  # no body at all
    other = event(run_dir, kind="batch.failed")
    lying = receiver.handle(*jwt_signed(other, jwks.key, "msg_c3", claims=carrying))
    assert lying.status == 401 and "differs" in lying.body["error"]
    bare = receiver.handle(*jwt_signed(value, jwks.key, "msg_c4", claims={"iat": now, "exp": now + 300}))
    assert bare.status == 401 and "covers neither" in bare.body["error"]
    assert receiver.wait_idle(timeout=60)
    assert json.loads((run_dir / SEEN_FILE).read_text())["webhook_ids"] == ["msg_c1", "msg_c2"]


def test_an_unreachable_jwks_is_503_so_the_service_retries(
    emu: Emulator, run_dir: Path, jwks: Jwks, logs: list[str]
) -> None:
    receiver = jwt_receiver(emu, jwks, logs)
    jwks.up = False
    reply = receiver.handle(*jwt_signed(event(run_dir), jwks.key))
    assert reply.status == 503 and "cannot fetch the signing keys" in reply.body["error"]
    jwks.up = True
    assert receiver.handle(*jwt_signed(event(run_dir), jwks.key)).status == 202  # the same delivery, retried
    assert receiver.wait_idle(timeout=60)


def test_each_scheme_is_refused_by_a_receiver_that_cannot_verify_it(
    emu: Emulator, run_dir: Path, jwks: Jwks, logs: list[str]
) -> None:
    hmac_only = WebhookReceiver(SECRET, jwks_url=None, client=emu.client(), log=logs.append)
    reply = hmac_only.handle(*jwt_signed(event(run_dir), jwks.key))
    assert reply.status == 401 and "verifies no JWTs" in reply.body["error"]
    jwt_only = jwt_receiver(emu, jwks, logs)
    reply = jwt_only.handle(*signed(event(run_dir)))
    assert reply.status == 401 and "no signing secret" in reply.body["error"]
    with pytest.raises(ConfigurationError, match="verifies nothing"):
        WebhookReceiver(None, jwks_url=None)


# -- which checkpoint: the one named, if the batch is its; else, under --root, the one that has the batch -----------


def test_an_event_naming_a_checkpoint_but_not_one_of_its_jobs_is_ignored(
    emu: Emulator, run_dir: Path, receiver: WebhookReceiver, logs: list[str]
) -> None:
    for i, job in enumerate(["batches/someone-elses", "", first_job(run_dir).removeprefix("batches/")]):
        reply = receiver.handle(*signed(event(run_dir, job=job), f"msg_m{i}"))
        assert reply.status == (202 if i == 2 else 200), job  # the bare id is the same batch
    assert receiver.wait_idle(timeout=60) and len(receiver.outcomes) == 1
    assert any("is not one of" in line and "forged" in line for line in logs)
    assert any("names no batch" in line for line in logs)


def test_an_event_without_metadata_finds_its_checkpoint_by_batch_name_under_root(
    emu: Emulator, tmp_path: Path, logs: list[str]
) -> None:
    root = tmp_path / "runs"

    def submit(name: str) -> Path:
        ckpt, frame = root / name, pl.DataFrame({"review": [f"{name} x", f"{name} y"]})
        record_output(ckpt, str(tmp_path / f"{name}.parquet"))
        polars_gemini.submit(frame, "R: {review}", model="gemini-2.5-flash", client=emu.client(), checkpoint=ckpt,
                             progress=False).close()  # fmt: skip
        return ckpt

    first = submit("first")
    receiver = WebhookReceiver(SECRET, jwks_url=None, client=emu.client(), root=root, log=logs.append)
    emu.advance_time(601)
    assert receiver.handle(*signed(event(None, job=first_job(first)), "msg_r1")).status == 202
    second = submit("nested/second")  # created after the index was built: found by the rescan of a miss
    emu.advance_time(601)
    reply = receiver.handle(*signed(event(None, job=first_job(second)), "msg_r2"))
    assert reply == Reply(202, {"status": "accepted", "checkpoint": str(second.resolve())})
    unknown = receiver.handle(*signed(event(None, job="batches/nobody"), "msg_r3"))
    assert unknown.status == 200 and "no checkpoint under --root" in unknown.body["reason"]
    assert receiver.wait_idle(timeout=60)
    assert [o.status for o in receiver.outcomes] == ["done", "done"]
    assert pl.read_parquet(tmp_path / "nested/second.parquet").height == 2
    index = receiver._jobs
    assert index is not None and index.find(first_job(first)) == first.resolve() and index.scans == 3


# -- the command, in a subprocess -----------------------------------------------------------------------------------


def _serve(emu: Emulator, *args: str, secret: str | None = SECRET) -> subprocess.Popen[str]:
    env = {**os.environ, "GEMINI_API_KEY": "cli-test-key", "GOOGLE_GEMINI_BASE_URL": emu.url}
    env.pop("POLARS_GEMINI_WEBHOOK_SECRET", None)
    if secret is not None:
        env["POLARS_GEMINI_WEBHOOK_SECRET"] = secret
    return subprocess.Popen([sys.executable, "-m", "polars_gemini.cli", "webhook", "serve", "--port", "0", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return out, err


def test_the_command_serves_resumes_and_reports_json_lines(emu: Emulator, run_dir: Path, tmp_path: Path) -> None:
    emu.advance_time(601)
    proc = _serve(emu, "--json")
    try:
        assert proc.stdout is not None
        listening = json.loads(proc.stdout.readline())
        assert listening["status"] == "listening"
        reply = post(listening["url"], *signed(event(run_dir)))
        assert reply.status == 202
        outcome = json.loads(proc.stdout.readline())  # one line per resume
        assert outcome["status"] == "done" and outcome["rows"] == 3
        assert outcome["output"] == str((tmp_path / "out.parquet").resolve())
        assert post(listening["url"], *signed(event(run_dir), secret=OTHER)).status == 401
    finally:
        out, err = _stop(proc)
    assert proc.returncode == 0, err
    assert pl.read_parquet(tmp_path / "out.parquet").height == 3
    assert "refused" in err and SECRET.removeprefix("whsec_")[:12] not in out + err


def test_the_command_with_nothing_to_verify_with_is_exit_2(emu: Emulator) -> None:
    proc = _serve(emu, "--jwks-url", "", secret=None)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "POLARS_GEMINI_WEBHOOK_SECRET" in err


def test_the_command_without_a_secret_verifies_jwts_only(emu: Emulator, run_dir: Path) -> None:
    proc = _serve(emu, "--json", "--jwks-url", emu.jwks_url, secret=None)
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        reply = post(url, *signed(event(run_dir)))
        assert reply.status == 401 and "no signing secret" in reply.body["error"]
    finally:
        _, err = _stop(proc)
    assert proc.returncode == 0, err


# -- end to end: submit --webhook, the emulator's event, the receiver's resume ----------------------------------------


def _cli(emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEMINI_API_KEY": "cli-test-key", "GOOGLE_GEMINI_BASE_URL": emu.url}
    return subprocess.run([sys.executable, "-m", "polars_gemini.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_submit_with_a_webhook_exits_and_the_receiver_writes_every_row(emu: Emulator, tmp_path: Path) -> None:
    src, ckpt, out = tmp_path / "reviews.csv", tmp_path / "runs" / "reviews", tmp_path / "labelled.parquet"
    pl.DataFrame({"id": range(6), "review": ["great", "bad", "fine", "great", "meh", "ok"]}).write_csv(src)
    proc = _serve(emu, "--json", "--root", str(tmp_path / "runs"), "--jwks-url", emu.jwks_url)
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        submitted = _cli(emu, "submit", str(src), "-t", "Label: {review}", "-m", "gemini-2.5-flash", "--checkpoint",
                         str(ckpt), "--webhook", url, "--output", str(out), "--json")  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        assert json.loads(submitted.stdout)["status"] == "submitted" and not out.exists()
        (job,) = emu.jobs.values()
        metadata = job["metadata"]["webhookConfig"]["userMetadata"]
        assert metadata["polars_gemini_checkpoint"] == str(ckpt.resolve())
        emu.advance_time(601)  # the job ends: the emulator POSTs its event, the receiver resumes the run
        outcome = json.loads(proc.stdout.readline())
        assert (outcome["status"], outcome["rows"], outcome["output"]) == ("done", 6, str(out.resolve()))
    finally:
        _, err = _stop(proc)
    assert proc.returncode == 0, err
    assert [(d.type, d.status, d.signing) for d in emu.webhook_deliveries] == [("batch.succeeded", 202, "jwt")]
    assert "jwt-signed): resuming" in err  # the per-job event went through the JWT path
    result = pl.read_parquet(out)
    assert result.get_column("id").to_list() == list(range(6))
    assert result.get_column("response").to_list()[:2] == ["echo: Label: great", "echo: Label: bad"]
    again = _cli(emu, "resume", str(ckpt), "--json")  # `resume` without -o writes the recorded file too
    assert again.returncode == 0 and json.loads(again.stdout)["output"] == str(out.resolve())


def test_a_retry_round_carries_the_webhook_and_its_event_finishes_the_run(
    emu: Emulator, tmp_path: Path, logs: list[str]
) -> None:
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.parquet"
    receiver = WebhookReceiver(SECRET, jwks_url=emu.jwks_url, client=emu.client(), log=logs.append)
    frame = pl.DataFrame({"review": ["a", "b", "c"]})
    with receiver.serve() as server:
        record_output(ckpt, str(out))
        emu.end_next_job("FAILED")  # the first job fails as a whole: its requests go again in a retry round
        run = polars_gemini.submit(frame, "R: {review}", model="gemini-2.5-flash", client=emu.client(),
                                   checkpoint=ckpt, webhook=server.url, progress=False)  # fmt: skip
        run.close()
        emu.advance_time(601)
        assert emu.wait_for_webhooks() and receiver.wait_idle(timeout=60)
        assert [o.status for o in receiver.outcomes] == ["pending"]  # the retry round was submitted, by the receiver
        emu.advance_time(601)
        assert emu.wait_for_webhooks() and receiver.wait_idle(timeout=60)
    assert [d.type for d in emu.webhook_deliveries] == ["batch.failed", "batch.succeeded"]
    assert [o.status for o in receiver.outcomes] == ["pending", "done"]
    assert pl.read_parquet(out).get_column("response").to_list() == ["echo: R: a", "echo: R: b", "echo: R: c"]


def test_the_command_on_a_port_in_use_is_exit_2(emu: Emulator) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": emu.url,
               "POLARS_GEMINI_WEBHOOK_SECRET": SECRET}  # fmt: skip
        port = str(taken.getsockname()[1])
        proc = subprocess.run([sys.executable, "-m", "polars_gemini.cli", "webhook", "serve", "--port", port],
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "cannot listen" in proc.stderr


# -- robustness: whatever a delivery or a checkpoint holds, the receiver answers, logs one line and stays up ----------


def _until(condition: Any, timeout: float = 30.0) -> bool:
    """Polls `condition()` until it is true (True) or `timeout` seconds pass (False): for events of other threads."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _seen(checkpoint: Path) -> list[str]:
    path = checkpoint / SEEN_FILE
    return json.loads(path.read_text())["webhook_ids"] if path.exists() else []


def test_a_resume_failing_with_any_exception_is_a_failed_outcome_and_a_redelivery_tries_again(
    emu: Emulator, run_dir: Path, receiver: WebhookReceiver, logs: list[str], tmp_path: Path
) -> None:
    """A raw exception from the resume (here a ValueError: the result path in cli.json holds a NUL byte) is one log
    line and a failed outcome; the worker lives on, and the webhook-id is forgotten, so the same event retries."""
    emu.advance_time(601)
    (run_dir / "cli.json").write_text(json.dumps({"format": 1, "output": f"{tmp_path}/bad\x00dir/out.parquet"}))
    delivery = signed(event(run_dir), "msg_broken")
    assert receiver.handle(*delivery).status == 202
    assert receiver.wait_idle(timeout=60)
    (failed,) = receiver.outcomes
    assert failed.status == "failed" and failed.error is not None and "ValueError" in failed.error
    (line,) = [line for line in logs if "resume failed" in line]
    assert "\n" not in line and "ValueError" in line
    assert "msg_broken" not in _seen(run_dir)  # forgotten: a redelivery is not a duplicate
    record_output(run_dir, str(tmp_path / "out.parquet"))  # the user repairs the checkpoint
    assert receiver.handle(*signed(event(run_dir), "msg_broken")).status == 202  # the service's redelivery
    assert receiver.wait_idle(timeout=60)
    assert [o.status for o in receiver.outcomes] == ["failed", "done"]
    assert pl.read_parquet(tmp_path / "out.parquet").height == 3 and _seen(run_dir) == ["msg_broken"]


def test_an_on_outcome_callback_that_raises_is_logged_and_resumes_go_on(
    emu: Emulator, run_dir: Path, logs: list[str]
) -> None:
    def explode(outcome: Any) -> None:
        raise RuntimeError("the callback broke")

    receiver = WebhookReceiver(SECRET, client=emu.client(), log=logs.append, on_outcome=explode, settle_seconds=5)
    assert receiver.handle(*signed(event(run_dir), "msg_o1")).status == 202
    assert receiver.wait_idle(timeout=60)
    emu.advance_time(601)
    assert receiver.handle(*signed(event(run_dir), "msg_o2")).status == 202
    assert receiver.wait_idle(timeout=60)
    assert [o.status for o in receiver.outcomes] == ["pending", "done"]
    assert len([line for line in logs if "on_outcome" in line and "RuntimeError" in line]) == 2


def _lock_as_another_process(checkpoint: Path) -> int:
    """Holds `checkpoint`'s lock file as a second process would (flock on a descriptor of its own)."""
    import fcntl

    fd = os.open(checkpoint / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, b"424242", 0)
    return fd


def test_an_event_for_a_checkpoint_another_process_holds_is_resumed_once_it_is_free(
    emu: Emulator, run_dir: Path, logs: list[str], tmp_path: Path
) -> None:
    emu.advance_time(601)
    receiver = WebhookReceiver(SECRET, client=emu.client(), log=logs.append, settle_seconds=60)
    fd = _lock_as_another_process(run_dir)
    try:
        assert receiver.handle(*signed(event(run_dir), "msg_busy")).status == 202
        assert _until(lambda: any("in use by another process" in line for line in logs))  # it waits, logged
    finally:
        os.close(fd)  # the other process ends
    assert receiver.wait_idle(timeout=60)
    assert [o.status for o in receiver.outcomes] == ["done"] and pl.read_parquet(tmp_path / "out.parquet").height == 3


def test_an_event_for_a_checkpoint_held_beyond_settle_seconds_fails_and_its_redelivery_resumes_the_run(
    emu: Emulator, run_dir: Path, logs: list[str], tmp_path: Path
) -> None:
    emu.advance_time(601)
    receiver = WebhookReceiver(SECRET, client=emu.client(), log=logs.append, settle_seconds=0.3)
    fd = _lock_as_another_process(run_dir)
    try:
        assert receiver.handle(*signed(event(run_dir), "msg_held")).status == 202
        assert receiver.wait_idle(timeout=60)
    finally:
        os.close(fd)
    (failed,) = receiver.outcomes
    assert failed.status == "failed" and failed.error is not None and "424242" in failed.error
    assert "msg_held" not in _seen(run_dir)  # not dropped: the redelivery is acted upon
    assert receiver.handle(*signed(event(run_dir), "msg_held")).status == 202
    assert receiver.wait_idle(timeout=60)
    assert [o.status for o in receiver.outcomes] == ["failed", "done"]
    assert pl.read_parquet(tmp_path / "out.parquet").height == 3


@pytest.mark.parametrize(
    "named",
    ["{dir}/ck\x00pt", "{dir}/" + "a" * 5000, "{dir}/" + "b" * 300 + "/ckpt", "{dir}/\ud800", "/" + "c/" * 3000],
    ids=["nul byte", "long path", "long name", "lone surrogate", "deep path"],
)
@pytest.mark.parametrize("root", [False, True])
def test_events_naming_a_path_the_system_refuses_are_ignored_and_never_raise(
    emu: Emulator, tmp_path: Path, logs: list[str], named: str, root: bool
) -> None:
    receiver = WebhookReceiver(SECRET, jwks_url=None, client=emu.client(), root=tmp_path if root else None,
                               log=logs.append)  # fmt: skip
    value = event(None, job="batches/x")
    value["data"]["user_metadata"] = {"polars_gemini_checkpoint": named.format(dir=tmp_path)}
    reply = receiver.handle(*signed(value, "msg_odd"))
    assert reply.status == 200 and reply.body["status"] == "ignored" and len(reply.body["reason"]) < 400
    assert any("ignored" in line for line in logs) and receiver.outcomes == []
    with receiver.serve() as server:  # over HTTP too: an answer, not a dropped connection
        assert post(server.url, *signed(value, "msg_odd2")).status == 200


def test_an_event_naming_a_checkpoint_in_object_storage_is_ignored_with_the_command_to_resume_it(
    emu: Emulator, logs: list[str]
) -> None:
    receiver = WebhookReceiver(SECRET, jwks_url=None, client=emu.client(), log=logs.append)
    value = event(None, job="batches/x")
    value["data"]["user_metadata"] = {"polars_gemini_checkpoint": "s3://pipeline-state/runs/reviews"}
    reply = receiver.handle(*signed(value, "msg_s3"))
    assert reply.status == 200 and reply.body["status"] == "ignored"
    assert "polars-gemini resume s3://pipeline-state/runs/reviews" in reply.body["reason"]
    assert receiver.outcomes == []


@pytest.mark.parametrize(
    "secret",
    ["whsec_%%%bad", "notwhsec", "whsec_YQ==", "whsec_", "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", "YWJj" * 8],
    ids=["not base64", "no prefix", "one byte", "empty", "23 bytes", "base64 without the prefix"],
)
def test_a_secret_that_is_no_standard_webhooks_secret_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="whsec_") as caught:
        WebhookReceiver(secret, jwks_url=None)
    shown = str(caught.value)
    assert secret.removeprefix("whsec_") not in shown or not secret.removeprefix("whsec_")


def test_a_secret_without_base64_padding_or_with_a_trailing_newline_is_the_same_key(
    emu: Emulator, run_dir: Path, logs: list[str]
) -> None:
    for variant, msg_id in ((SECRET.rstrip("="), "msg_p1"), (SECRET + "\n", "msg_p2")):
        receiver = WebhookReceiver(variant, jwks_url=None, client=emu.client(), log=logs.append)
        assert receiver.handle(*signed(event(run_dir), msg_id)).status == 202
        assert receiver.wait_idle(timeout=60)


def test_the_command_with_a_typod_secret_is_exit_2_and_does_not_show_it(emu: Emulator) -> None:
    proc = _serve(emu, "--jwks-url", "", secret="whsec_YQ==")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "24 bytes" in err and "YQ==" not in out + err


def _raw(url: str, data: bytes) -> bytes:
    """Sends `data` as is on one connection and returns all that comes back until the server closes it."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_chunked_delivery_is_read_whole_and_the_connection_stays_in_step(
    emu: Emulator, run_dir: Path, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    import http.client
    from urllib.parse import urlsplit

    emu.advance_time(601)
    body, headers = signed(event(run_dir), "msg_chunked")
    with receiver.serve() as server:
        conn = http.client.HTTPConnection(urlsplit(server.url).hostname, urlsplit(server.url).port, timeout=30)
        conn.request("POST", "/", body=iter([body[:10], body[10:]]), headers=headers, encode_chunked=True)
        reply = conn.getresponse()
        assert (reply.status, json.loads(reply.read())["status"]) == (202, "accepted")
        conn.request("GET", "/")  # the same connection: nothing of the body was left to read as a request
        health = conn.getresponse()
        assert (health.status, json.loads(health.read())) == (200, {"status": "ok"})
        conn.close()
        assert receiver.wait_idle(timeout=60)
        # refused at the line that makes them so (nothing sent after it, so that the close does not reset the reply)
        head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        big = _raw(server.url, head + b"80000\r\n" + b"x" * 0x80000 + b"\r\n80001\r\n")  # 1 MiB + 1 in all
        assert big.startswith(b"HTTP/1.1 413") and big.count(b"HTTP/1.1") == 1
        bad = _raw(server.url, head + b"zz\r\n")
        assert bad.startswith(b"HTTP/1.1 400") and bad.count(b"HTTP/1.1") == 1
        gzip = _raw(server.url, head.replace(b"chunked", b"gzip"))
        assert gzip.startswith(b"HTTP/1.1 501") and gzip.count(b"HTTP/1.1") == 1
    assert [o.status for o in receiver.outcomes] == ["done"] and pl.read_parquet(tmp_path / "out.parquet").height == 3


def test_a_client_hanging_up_before_the_reply_leaves_no_traceback(
    emu: Emulator, run_dir: Path, receiver: WebhookReceiver, capfd: pytest.CaptureFixture[str]
) -> None:
    import socket
    import struct
    import threading
    from urllib.parse import urlsplit

    body, headers = signed(event(run_dir), secret=OTHER)  # refused at once: the reply is ready before the RST lands
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
    request += b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n" + body
    def handlers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if "process_request" in t.name}

    with receiver.serve() as server:
        address = (urlsplit(server.url).hostname, urlsplit(server.url).port)
        # Other servers' request threads (the emulator's keep-alive connections, an earlier test's in the same
        # pytest-xdist worker) are not this receiver's: only threads started from here on count.
        before = handlers()
        for _ in range(20):
            sock = socket.create_connection(address, timeout=30)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            sock.sendall(request)
            sock.close()
        assert _until(lambda: not handlers() - before)
        assert post(server.url, *signed(event(run_dir), secret=OTHER)).status == 401  # still serving
    assert "Traceback" not in capfd.readouterr().err


def test_forged_tokens_with_random_kids_cause_at_most_one_jwks_refetch(
    emu: Emulator, run_dir: Path, jwks: Jwks, rsa_keys: tuple[Any, Any], logs: list[str]
) -> None:
    import secrets

    receiver = jwt_receiver(emu, jwks, logs)
    assert receiver.handle(*jwt_signed(event(run_dir), jwks.key, "msg_k0")).status == 202
    assert jwks.gets == 1
    for i in range(20):
        forged = jwt_signed(event(run_dir), rsa_keys[1], f"msg_f{i}", kid=secrets.token_hex(8))
        assert receiver.handle(*forged).status == 401
    assert jwks.gets <= 2  # one refetch for an unknown kid at most, then none for a minute
    assert receiver.handle(*jwt_signed(event(run_dir), jwks.key, "msg_k1")).status == 202  # the known kid: cached
    assert jwks.gets <= 2 and receiver.wait_idle(timeout=60)
