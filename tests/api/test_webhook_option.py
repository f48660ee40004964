"""`webhook=` on submit/batch: per-job URIs, or "registered" (the project's registered webhooks get the events, with the
run's identity in the metadata)."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import polars as pl

from polars_gemini.emulator import Emulator
from testing_support import FAST, echo


class Recorder:
    """A registered webhook endpoint on 127.0.0.1: records every event body, answers 204."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                recorder.events.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        self.uri = f"http://127.0.0.1:{self.server.server_port}/gemini"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_registered_sends_the_runs_identity_without_uris_and_the_projects_webhook_gets_it(tmp_path: Path) -> None:
    hook = Recorder()
    try:
        with Emulator(responder=echo, webhook_uris=[hook.uri]) as emu:
            frame = pl.DataFrame({"text": ["a", "b"]})
            frame.gemini.batch("{text}", model="gemini-2.5-flash", client=emu.client(), checkpoint=tmp_path / "ck",
                               webhook="registered", **FAST)  # fmt: skip
            assert emu.wait_for_webhooks()
            creates = [r.body_json for r in emu.requests if r.endpoint == "batches.create" and r.body_json]
    finally:
        hook.close()
    config = creates[0]["batch"]["webhookConfig"]
    assert "uris" not in config  # the job names no endpoint of its own
    meta = config.get("user_metadata") or config["userMetadata"]
    assert meta["polars_gemini_checkpoint"] == str((tmp_path / "ck").resolve())
    assert [e["type"] for e in hook.events] == ["batch.succeeded"]
    assert hook.events[0]["data"]["user_metadata"]["polars_gemini_checkpoint"] == str((tmp_path / "ck").resolve())


def test_without_webhook_no_config_is_sent(emu: Emulator) -> None:
    pl.DataFrame({"text": ["a"]}).gemini.batch("{text}", model="gemini-2.5-flash", client=emu.client(), **FAST)
    creates = [r.body_json for r in emu.requests if r.endpoint == "batches.create" and r.body_json]
    assert creates and "webhookConfig" not in creates[0]["batch"]
