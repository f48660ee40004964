"""Uploads share one client across threads: each must declare its own size and leave no headers behind.

google-genai's `files.upload` writes its upload headers into the `http_options` it is given; the library once
shared one options object, so concurrent uploads declared each other's sizes (the emulator refused them) and
later calls carried `X-Goog-Upload-*` headers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from polars_gemini.emulator import Emulator
from polars_gemini.service import gemini


def test_concurrent_uploads_through_one_client_each_keep_their_own_bytes(emu: Emulator) -> None:
    client = emu.client()
    payloads = [(b'{"key": "%d"}\n' % i) * (50 + i) for i in range(48)]  # every size different
    with ThreadPoolExecutor(max_workers=16) as pool:
        names = list(pool.map(lambda p: gemini.upload_jsonl(client, p[1], f"upload-{p[0]}"), enumerate(payloads)))
        media = list(pool.map(lambda p: gemini.upload_media(client, p[1], "text/plain", f"media-{p[0]}"),
                              enumerate(payloads)))  # fmt: skip
    assert len(set(names)) == len(payloads)
    for name, payload in zip(names, payloads, strict=True):
        assert emu.file_bytes(name) == payload
    for snap, payload in zip(media, payloads, strict=True):
        assert emu.file_bytes(snap.name) == payload


def test_calls_after_an_upload_carry_no_upload_headers(emu: Emulator) -> None:
    client = emu.client()
    name = gemini.upload_jsonl(client, b'{"key": "a", "request": {"contents": []}}\n', "one-upload")
    emu.clear_requests()
    gemini.get_file(client, name)
    gemini.find_jobs(client, "one-upload")
    sent = [r for r in emu.requests if not r.endpoint.startswith("files.upload")]
    assert sent, "no call recorded"
    for request in sent:
        leaked = [h for h in request.headers if h.lower().startswith("x-goog-upload")]
        assert not leaked, f"{request.endpoint} sent {leaked}"
