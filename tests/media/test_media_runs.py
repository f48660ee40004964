"""Media rows through the real SDK against the emulator: each row its own media, uploads once per content hash,
clean-up, expiry, resume after a crash during uploads, sync mode, references passed through."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini.core.errors import APIError
from polars_gemini.emulator import Emulator
from testing_support import FAST, digest, make_png

MODEL = "gemini-2.5-flash"


@pytest.fixture
def plain() -> Iterator[Emulator]:
    """An emulator with its default responder, whose answers carry a digest of each media part's bytes."""
    with Emulator() as emulator:
        yield emulator


def _images(root: Path, n: int, size: int = 16, start: int = 0) -> list[Path]:
    paths = []
    for i in range(start, start + n):
        paths.append(root / f"img{i}.png")
        paths[-1].write_bytes(make_png(size, size, i))
    return paths


def _image_uploads(emu: Emulator) -> list[object]:
    return [u for u in emu.uploads if u.mime_type == "image/png"]


@pytest.mark.parametrize("inline_bytes", [0, 10_000_000], ids=["uploaded", "inline"])
def test_each_row_gets_its_own_media(plain: Emulator, tmp_path: Path, inline_bytes: int) -> None:
    paths = _images(tmp_path, 12)
    df = pl.DataFrame({"photo": [str(p) for p in paths], "id": range(12)})
    client = plain.client()
    out = df.gemini.batch("Caption {photo} (item {id})", model=MODEL, media="photo", client=client,
                          media_inline_bytes=inline_bytes, **FAST)  # fmt: skip
    assert out.height == 12 and out.get_column("response_error").null_count() == 12
    for path, answer in zip(paths, out.get_column("response").to_list(), strict=True):
        assert digest(path.read_bytes()) in answer
    assert len(_image_uploads(plain)) == (12 if inline_bytes == 0 else 0)
    assert not [f for f in plain.files.values() if f.get("mimeType") == "image/png"]  # deleted when done


def test_duplicates_upload_once_and_keep_files(plain: Emulator, tmp_path: Path) -> None:
    shared = make_png(100, 100, 7)  # 30 kB: large enough to be shared by upload
    df = pl.DataFrame({"img": [shared] * 6 + [make_png(8, 8, 1)], "q": [f"question {i}" for i in range(7)]})
    client = plain.client()
    out = df.gemini.batch("{q}: {img}", model=MODEL, media="img", client=client, keep_files=True, **FAST)
    assert out.get_column("response_error").null_count() == 7
    assert all(digest(shared) in a for a in out.get_column("response").head(6).to_list())
    uploads = _image_uploads(plain)
    assert len(uploads) == 1 and uploads[0].sha256 == __import__("hashlib").sha256(shared).hexdigest()
    assert [f for f in plain.files.values() if f.get("mimeType") == "image/png"]  # kept
    # a second run over the same media finds the file on the service: nothing uploaded again
    more = pl.DataFrame({"img": [shared], "q": ["another question"]})
    more.gemini.batch("{q}: {img}", model=MODEL, media="img", client=client, **FAST)
    assert len(_image_uploads(plain)) == 1


def test_an_expired_upload_is_uploaded_again(plain: Emulator, tmp_path: Path) -> None:
    shared = make_png(100, 100, 3)
    df = pl.DataFrame({"img": [shared] * 3, "q": ["a", "b", "c"]})
    client = plain.client()
    checkpoint = tmp_path / "run"
    df.gemini.batch("{q} {img}", model=MODEL, media="img", client=client, checkpoint=checkpoint, keep_files=True,
                    **FAST)  # fmt: skip
    (first,) = _image_uploads(plain)
    plain.expire_file(first.name)
    grown = pl.concat([df, pl.DataFrame({"img": [shared], "q": ["d"]})])
    out = grown.gemini.batch("{q} {img}", model=MODEL, media="img", client=client, checkpoint=checkpoint, **FAST)
    assert out.get_column("response_error").null_count() == 4
    assert len(_image_uploads(plain)) == 2  # the expired file was uploaded again, once
    assert plain.calls("batches.create") == 2  # the incremental run sent only the new row


def test_a_crash_during_uploads_resumes_without_duplicates(plain: Emulator, tmp_path: Path) -> None:
    paths = _images(tmp_path, 6, size=20)
    df = pl.DataFrame({"photo": [str(p) for p in paths]})
    client = plain.client()
    checkpoint = tmp_path / "run"
    plain.fail_http("files.upload_start", 400, on_call=4, times=1, message="simulated crash")
    with pytest.raises(APIError):
        df.gemini.submit("Caption {photo}", model=MODEL, media="photo", client=client, checkpoint=checkpoint,
                         media_inline_bytes=0, max_concurrency=1, **FAST)  # fmt: skip
    done_before = len(_image_uploads(plain))
    assert 3 <= done_before < 6 and plain.calls("batches.create") == 0  # uploads stop soon after the failure
    out = polars_gemini.resume(checkpoint, client=client, poll_interval=0.01, progress=False).result()
    assert len(_image_uploads(plain)) == 6  # the three uploaded before the crash were not uploaded again
    assert plain.calls("batches.create") == 1
    for path, answer in zip(paths, out.get_column("response").to_list(), strict=True):
        assert digest(path.read_bytes()) in answer


def test_sync_mode_and_bytes_cells(plain: Emulator) -> None:
    images = [make_png(10, 10, i) for i in range(3)]
    df = pl.DataFrame({"img": images})
    out = df.gemini.batch("What is in {img}?", model=MODEL, media="img", client=plain.client(), mode="sync",
                          progress=False)  # fmt: skip
    assert [digest(b) in a for b, a in zip(images, out.get_column("response").to_list(), strict=True)] == [True] * 3
    assert plain.calls("models.generateContent") == 3


def test_references_pass_through(plain: Emulator, tmp_path: Path) -> None:
    served = make_png(30, 30, 4)
    (tmp_path / "cat.png").write_bytes(served)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = plain.client()
        stored = make_png(9, 9, 8)
        meta = plain.put_file("stored-image", stored, mime_type="image/png")
        url = f"http://127.0.0.1:{server.server_address[1]}/cat.png"
        df = pl.DataFrame({"ref": [url, meta["name"]]})
        out = df.gemini.batch("Look at {ref}", model=MODEL, media="ref", client=client, **FAST)
    finally:
        server.shutdown()
        server.server_close()
    answers = out.get_column("response").to_list()
    assert digest(served) in answers[0] and digest(stored) in answers[1]
    assert not _image_uploads(plain)  # references are never uploaded by the library


def test_media_tokens_estimate_matches_the_bill(plain: Emulator, tmp_path: Path) -> None:
    paths = _images(tmp_path, 4, size=500) + _images(tmp_path, 4, size=50, start=10)
    df = pl.DataFrame({"photo": [str(p) for p in paths]})
    client = plain.client()
    est = df.gemini.estimate("Caption {photo}", model=MODEL, media="photo", tokenizer="offline")
    run = df.gemini.submit("Caption {photo}", model=MODEL, media="photo", client=client, tokenizer="offline", **FAST)
    billed = run.result().height and run.cost().tokens["input"]
    assert est.media_tokens == 4 * 258 * 1 + 4 * 258  # 500 px: one 768 tile; 50 px: one small image
    assert abs(billed - est.input_tokens) <= 0.05 * billed
