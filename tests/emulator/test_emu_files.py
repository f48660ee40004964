"""The Files API: resumable uploads (SDK and raw protocol), get, list, delete, download, limits."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from emulator_support import Reply, raw, upload
from google import genai
from google.genai import errors, types

from polars_gemini.emulator import Emulator


def _start(emu: Emulator, size: int, mime: str = "application/jsonl") -> Reply:
    headers = {
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size),
        "X-Goog-Upload-Header-Content-Type": mime,
    }
    return raw(emu, "POST", "/upload/v1beta/files", {"file": {"display_name": "raw"}}, headers=headers)


def _chunk(emu: Emulator, url: str, data: bytes, offset: int, command: str = "upload") -> Reply:
    path = url.removeprefix(emu.url)
    headers = {"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)}
    return raw(emu, "POST", path, data, headers={**headers, "x-goog-api-key": ""})


def test_upload_metadata_matches_the_real_resource(gemini_client: genai.Client) -> None:
    data = b'{"key":"a","request":{"contents":[{"parts":[{"text":"x"}]}]}}\n'
    file = upload(gemini_client, data, display_name="df-input")
    assert file.name and len(file.name.removeprefix("files/")) == 12
    assert (file.display_name, file.mime_type, file.size_bytes) == ("df-input", "application/jsonl", len(data))
    assert file.state and file.state.name == "ACTIVE" and file.source and file.source.name == "UPLOADED"
    assert file.sha256_hash == base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()
    assert file.expiration_time and file.create_time
    assert (file.expiration_time - file.create_time).total_seconds() == 48 * 3600


def test_multi_chunk_upload_through_the_sdk(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    data = (b"x" * 1023 + b"\n") * (9 * 1024)  # 9 MiB: the SDK sends 8 MiB chunks
    file = upload(gemini_client, data)
    chunks = [r for r in gemini_emulator.requests if r.endpoint == "files.upload_chunk"]
    assert [r.headers["x-goog-upload-command"] for r in chunks] == ["upload", "upload, finalize"]
    assert [r.headers["x-goog-upload-offset"] for r in chunks] == ["0", str(8 * 2**20)]
    assert gemini_emulator.file_bytes(file.name or "") == data


def test_raw_protocol_checks_offsets(gemini_emulator: Emulator) -> None:
    start = _start(gemini_emulator, 10)
    assert start.headers["x-goog-upload-status"] == "active"
    url = start.headers["x-goog-upload-url"]
    assert _chunk(gemini_emulator, url, b"01234", 0).headers["x-goog-upload-status"] == "active"
    wrong = _chunk(gemini_emulator, url, b"56789", 3)
    assert (wrong.status_code, wrong.headers["x-goog-upload-status"]) == (400, "final")
    assert "received so far" in wrong.json()["error"]["message"]
    final = _chunk(gemini_emulator, url, b"56789", 5, "upload, finalize")
    assert (final.status_code, final.headers["x-goog-upload-status"]) == (200, "final")
    assert final.json()["file"]["sizeBytes"] == "10" and final.json()["file"]["displayName"] == "raw"


def test_finalize_short_of_the_declared_size_fails(gemini_emulator: Emulator) -> None:
    url = _start(gemini_emulator, 10).headers["x-goog-upload-url"]
    short = _chunk(gemini_emulator, url, b"0123", 0, "upload, finalize")
    assert short.status_code == 400 and "10 bytes were declared" in short.json()["error"]["message"]


def test_query_command_reports_progress(gemini_emulator: Emulator) -> None:
    url = _start(gemini_emulator, 10).headers["x-goog-upload-url"]
    _chunk(gemini_emulator, url, b"0123", 0)
    assert _chunk(gemini_emulator, url, b"", 0, "query").headers["x-goog-upload-size-received"] == "4"


def test_file_limit_default_and_configured() -> None:
    assert Emulator().settings.file_limit_bytes == 2 * 1024**3
    with Emulator(file_limit_bytes=100) as emu:
        with pytest.raises(errors.ClientError) as caught:
            upload(emu.client(), b"x" * 101)
        assert caught.value.code == 400 and "exceeds the maximum of 100 bytes" in (caught.value.message or "")
        assert emu.calls("files.upload_chunk") == 0


def test_declared_two_gigabytes_refused_without_sending_them(gemini_emulator: Emulator) -> None:
    reply = _start(gemini_emulator, 2 * 1024**3 + 1)
    assert reply.status_code == 400 and "2 GB" in reply.json()["error"]["message"]


def test_bare_jsonl_mime_type_refused(gemini_emulator: Emulator) -> None:
    assert _start(gemini_emulator, 10, mime="jsonl").status_code == 400


def test_get_list_delete(gemini_client: genai.Client) -> None:
    names = [upload(gemini_client, b"{}\n", display_name=f"f{i}").name for i in range(3)]
    assert gemini_client.files.get(name=names[0] or "").display_name == "f0"
    assert [f.name for f in gemini_client.files.list(config={"page_size": 2})] == names[::-1]
    gemini_client.files.delete(name=names[1] or "")
    with pytest.raises(errors.ClientError) as caught:
        gemini_client.files.get(name=names[1] or "")
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED")


def test_download_at_both_paths(gemini_emulator: Emulator) -> None:
    gemini_emulator.put_file("batch-abc", b'{"key":"a"}\n')
    for prefix in ("", "/download"):
        reply = raw(gemini_emulator, "GET", f"{prefix}/v1beta/files/batch-abc:download?alt=media")
        assert (reply.status_code, reply.content) == (200, b'{"key":"a"}\n')
    assert gemini_emulator.calls("files.download") == 2


def test_uploaded_files_cannot_be_downloaded(gemini_client: genai.Client) -> None:
    file = upload(gemini_client, b"{}\n")
    with pytest.raises(errors.ClientError) as caught:
        gemini_client.files.download(file=file.name or "")
    assert caught.value.code == 400 and "only generated files" in (caught.value.message or "")


def test_named_upload(gemini_client: genai.Client) -> None:
    config = types.UploadFileConfig(name="my-input", mime_type="application/jsonl")
    assert gemini_client.files.upload(file=io.BytesIO(b"{}\n"), config=config).name == "files/my-input"
