"""Media parts (issue 12): inline data and file data checked like the real API, counted, and quoted in answers.

Everything goes through the real google-genai SDK (raw HTTP only where the SDK cannot send the broken input).
PNGs are built here with zlib and struct; a local HTTP server stands in for public URLs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from emulator_support import raw, run_file_job
from google import genai
from google.genai import errors, types

from polars_gemini.emulator import Emulator, responses

MODEL = "gemini-2.0-flash"  # does not think: usage is prompt + answer only
PROMPT = "Describe the picture."


def png(width: int, height: int, shade: int = 0) -> bytes:
    """A grey PNG of `width` x `height` pixels; `shade` makes images of one size differ."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + bytes([shade % 256]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def mp4(seconds: int) -> bytes:
    """The boxes a duration probe reads: `ftyp`, then `moov` holding an `mvhd` (version 0, timescale 1000)."""
    mvhd = b"mvhd" + b"\x00\x00\x00\x00" + struct.pack(">IIII", 0, 0, 1000, seconds * 1000) + b"\x00" * 80
    moov = b"moov" + struct.pack(">I", len(mvhd) + 4) + mvhd
    return b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + struct.pack(">I", len(moov) + 4) + moov


def image(data: bytes, mime: str = "image/png", **extra: Any) -> types.Part:
    return types.Part.from_bytes(data=data, mime_type=mime, **extra)


def file_part(uri: str, mime: str | None = None) -> types.Part:
    return types.Part(file_data=types.FileData(file_uri=uri, mime_type=mime))


def put_upload(client: genai.Client, data: bytes, mime: str) -> types.File:
    return client.files.upload(file=io.BytesIO(data), config=types.UploadFileConfig(mime_type=mime))


def text_tokens(client: genai.Client, text: str, model: str = MODEL) -> int:
    return client.models.count_tokens(model=model, contents=text).total_tokens or 0


def ask(
    client: genai.Client, *parts: types.Part | str, model: str = MODEL, **config: Any
) -> types.GenerateContentResponse:
    cfg = types.GenerateContentConfig(**config) if config else None
    return client.models.generate_content(model=model, contents=list(parts), config=cfg)


def refusal(client: genai.Client, *parts: types.Part | str) -> errors.APIError:
    with pytest.raises(errors.APIError) as caught:
        ask(client, *parts, PROMPT)
    return caught.value


@pytest.fixture
def web() -> Iterator[tuple[str, dict[str, tuple[bytes, str]]]]:
    """A local web server: (base URL, path -> (bytes, content type)); other paths are 404."""
    served: dict[str, tuple[bytes, str]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in served:
                self.send_error(404)
                return
            body, kind = served[self.path]
            self.send_response(200)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- tokens -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "model", "config", "part_level", "tokens"),
    [
        ((300, 300), MODEL, {}, None, 258),  # both sides <= 384 px: one tile
        ((1000, 500), MODEL, {}, None, 516),  # 768 px tiles: 2 x 1
        ((1000, 500), MODEL, {"media_resolution": "MEDIA_RESOLUTION_LOW"}, None, 64),
        ((1000, 500), "gemini-3-flash-preview", {}, None, 1120),  # Gemini 3 default: HIGH
        ((1000, 500), "gemini-3-flash-preview", {"media_resolution": "MEDIA_RESOLUTION_MEDIUM"}, None, 560),
        ((1000, 500), "gemini-3-flash-preview", {"media_resolution": "MEDIA_RESOLUTION_MEDIUM"},
         "MEDIA_RESOLUTION_LOW", 280),  # the part's level wins
    ],
)  # fmt: skip
def test_png_tokens_in_usage_and_count_tokens(
    gemini_client: genai.Client,
    size: tuple[int, int],
    model: str,
    config: dict[str, Any],
    part_level: str | None,
    tokens: int,
) -> None:
    extra = {"media_resolution": {"level": part_level}} if part_level else {}
    part = image(png(*size), **extra)
    reply = ask(gemini_client, part, PROMPT, model=model, **config)
    usage = reply.usage_metadata
    assert usage is not None and usage.prompt_token_count == text_tokens(gemini_client, PROMPT, model) + tokens
    details = {d.modality.name: d.token_count for d in usage.prompt_tokens_details or () if d.modality}
    assert details == {"TEXT": text_tokens(gemini_client, PROMPT, model), "IMAGE": tokens}
    if not config:  # countTokens takes no generation config through the SDK
        counted = gemini_client.models.count_tokens(model=model, contents=[part, PROMPT])
        assert counted.total_tokens == usage.prompt_token_count


def test_text_documents_count_their_text(gemini_client: genai.Client) -> None:
    text = "A short plain-text document about owls and their habits."
    document = image(text.encode(), "text/plain")
    assert gemini_client.models.count_tokens(model=MODEL, contents=[document]).total_tokens == text_tokens(
        gemini_client, text
    )


def test_video_tokens_follow_its_duration(gemini_client: genai.Client) -> None:
    counted = gemini_client.models.count_tokens(model=MODEL, contents=[image(mp4(10), "video/mp4")])
    assert counted.total_tokens == 10 * 263


# -- answers quote the media ------------------------------------------------------------------------------


def test_text_answer_starts_with_each_parts_digest_in_order(gemini_client: genai.Client) -> None:
    first, second = png(10, 10, 1), png(10, 10, 2)
    text = ask(gemini_client, image(first), PROMPT, image(second)).text or ""
    tag = responses.media_tag(first, second)
    assert tag == f"[media {hashlib.sha256(first).hexdigest()[:12]} {hashlib.sha256(second).hexdigest()[:12]}]"
    assert text.startswith(tag + " ")
    assert ask(gemini_client, image(second), PROMPT, image(first)).text != text


def test_schema_strings_carry_the_digest(gemini_client: genai.Client) -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "caption": {"type": "STRING"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 1},
            "mood": {"type": "STRING", "enum": ["calm", "busy"]},
            "when": {"type": "STRING", "format": "date"},
        },
        "required": ["caption", "tags", "mood", "when"],
    }
    data = png(20, 20)
    reply = ask(gemini_client, image(data), PROMPT, response_mime_type="application/json", response_schema=schema)
    value = json.loads(reply.text or "")
    tag = responses.media_tag(data) + " "
    assert value["caption"].startswith(tag) and all(item.startswith(tag) for item in value["tags"])
    assert value["mood"] in ("calm", "busy") and len(value["when"]) == 10
    plain = json.loads(ask(gemini_client, image(data), PROMPT, response_mime_type="application/json").text or "")
    assert plain["answer"].startswith(tag)


def test_inline_and_file_data_agree(gemini_client: genai.Client) -> None:
    data = png(400, 100, 7)
    uploaded = put_upload(gemini_client, data, "image/png")
    inline = ask(gemini_client, image(data), PROMPT)
    by_file = ask(gemini_client, file_part(uploaded.uri or ""), PROMPT)
    assert inline.text == by_file.text and inline.text and inline.text.startswith(responses.media_tag(data))
    assert inline.usage_metadata == by_file.usage_metadata


@pytest.mark.parametrize(
    "uri",
    [
        "files/{id}",
        "https://generativelanguage.googleapis.com/v1beta/files/{id}",
        "https://elsewhere.test/v1/files/{id}",
    ],
)
def test_every_files_uri_form_names_the_file(gemini_client: genai.Client, uri: str) -> None:
    data = png(5, 5)
    uploaded = put_upload(gemini_client, data, "image/png")
    file_id = (uploaded.name or "").removeprefix("files/")
    assert (ask(gemini_client, file_part(uri.format(id=file_id)), PROMPT).text or "").startswith(
        responses.media_tag(data)
    )


def test_local_urls_are_fetched(gemini_client: genai.Client, web: tuple[str, dict[str, tuple[bytes, str]]]) -> None:
    base, served = web
    data = png(1000, 500)
    served["/pic.png"] = (data, "image/png")
    reply = ask(gemini_client, file_part(f"{base}/pic.png"), PROMPT)
    assert (reply.text or "").startswith(responses.media_tag(data))
    assert reply.usage_metadata and reply.usage_metadata.prompt_token_count == text_tokens(gemini_client, PROMPT) + 516


# -- refusals -------------------------------------------------------------------------------------------------


def test_unsupported_mime_type_is_400(gemini_client: genai.Client) -> None:
    error = refusal(gemini_client, image(b"GIF89a\x01\x00\x01\x00", "image/gif"))
    assert (error.code, error.status, error.message) == (400, "INVALID_ARGUMENT", "Unsupported MIME type: image/gif")


def test_bad_base64_is_400(gemini_emulator: Emulator) -> None:
    body = {"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": "not*base64!"}}]}]}
    reply = raw(gemini_emulator, "POST", f"/v1beta/models/{MODEL}:generateContent", body)
    error = reply.json()["error"]
    assert (reply.status_code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert "Base64 decoding failed" in error["message"] and "contents[0].parts[0].inline_data.data" in error["message"]


def test_unknown_media_resolution_is_400(gemini_emulator: Emulator) -> None:
    body = {
        "contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]}],
        "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_HUGE"},
    }
    reply = raw(gemini_emulator, "POST", f"/v1beta/models/{MODEL}:generateContent", body)
    assert reply.status_code == 400 and "media_resolution" in reply.json()["error"]["message"]


def _denied(file_id: str) -> str:
    return f"You do not have permission to access the File {file_id} or it may not exist."


def test_missing_deleted_and_expired_files_are_403(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    error = refusal(gemini_client, file_part("files/nosuchfile", "image/png"))
    assert (error.code, error.status, error.message) == (403, "PERMISSION_DENIED", _denied("nosuchfile"))
    deleted = put_upload(gemini_client, png(4, 4), "image/png")
    gemini_client.files.delete(name=deleted.name or "")
    file_id = (deleted.name or "").removeprefix("files/")
    assert refusal(gemini_client, file_part(deleted.uri or "")).message == _denied(file_id)
    expired = put_upload(gemini_client, png(4, 4), "image/png")
    gemini_emulator.expire_file(expired.name or "")
    assert refusal(gemini_client, file_part(expired.name or "")).code == 403
    assert expired.name not in gemini_emulator.files


def test_files_expire_48_hours_after_upload(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    uploaded = put_upload(gemini_client, png(4, 4), "image/png")
    assert uploaded.create_time and uploaded.expiration_time
    assert (uploaded.expiration_time - uploaded.create_time).total_seconds() == 48 * 3600
    gemini_emulator.advance_time(48 * 3600 - 60)
    assert ask(gemini_client, file_part(uploaded.name or ""), PROMPT).text
    gemini_emulator.advance_time(60)
    with pytest.raises(errors.ClientError) as caught:
        gemini_client.files.get(name=uploaded.name or "")
    assert caught.value.code == 403
    assert [f.name for f in gemini_client.files.list()] == []
    assert refusal(gemini_client, file_part(uploaded.name or "")).status == "PERMISSION_DENIED"


@pytest.mark.parametrize("gemini_emulator", [{"video_processing_seconds": 30}], indirect=True)
def test_videos_are_processing_until_ready(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    video = put_upload(gemini_client, mp4(4), "video/mp4")
    assert video.state and video.state.name == "PROCESSING"
    error = refusal(gemini_client, file_part(video.uri or ""))
    file_id = (video.name or "").removeprefix("files/")
    assert (error.code, error.status) == (400, "FAILED_PRECONDITION")
    assert error.message == f"The File {file_id} is not in an ACTIVE state and usage is not allowed."
    gemini_emulator.advance_time(30)
    ready = gemini_client.files.get(name=video.name or "")
    assert ready.state and ready.state.name == "ACTIVE" and ready.update_time != ready.create_time
    counted = gemini_client.models.count_tokens(model=MODEL, contents=[file_part(video.uri or "")])
    assert counted.total_tokens == 4 * 263
    still = put_upload(gemini_client, png(4, 4), "image/png")  # only video/* waits
    assert still.state and still.state.name == "ACTIVE"


def test_set_file_state(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    uploaded = put_upload(gemini_client, png(4, 4), "image/png")
    name = uploaded.name or ""
    assert gemini_emulator.set_file_state(name, "PROCESSING")["state"] == "PROCESSING"
    gemini_emulator.advance_time(3600)
    assert gemini_emulator.files[name]["state"] == "PROCESSING"  # without seconds: until set otherwise
    gemini_emulator.set_file_state(name, "FAILED")
    failed = gemini_client.files.get(name=name)
    assert failed.state and failed.state.name == "FAILED" and failed.error is not None
    assert refusal(gemini_client, file_part(name)).status == "FAILED_PRECONDITION"
    gemini_emulator.set_file_state(name, "ACTIVE")
    assert ask(gemini_client, file_part(name), PROMPT).text
    with pytest.raises(ValueError, match="Unknown file state"):
        gemini_emulator.set_file_state(name, "READY")


@pytest.mark.parametrize(
    "uri", ["gs://bucket/pic.png", "https://example.com/pic.png", "ftp://127.0.0.1/pic.png", "{base}/missing.png"]
)
def test_urls_that_cannot_be_read_are_400(
    gemini_client: genai.Client, web: tuple[str, dict[str, tuple[bytes, str]]], uri: str
) -> None:
    error = refusal(gemini_client, file_part(uri.format(base=web[0]), "image/png"))
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    if uri.startswith("gs://"):
        assert "gs://" in (error.message or "")
    else:
        assert error.message == "Cannot fetch content from the provided URL"


def test_count_tokens_refuses_like_generate_content(gemini_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        gemini_client.models.count_tokens(model=MODEL, contents=[file_part("files/gone", "image/png")])
    assert caught.value.code == 403


# -- uploads --------------------------------------------------------------------------------------------------


def test_uploads_are_listed_with_their_digest(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    data = png(8, 8)
    first, second = (put_upload(gemini_client, data, "image/png") for _ in range(2))
    gemini_emulator.put_file("direct", b"x", mime_type="text/plain")  # not an upload
    digest = hashlib.sha256(data).hexdigest()
    assert [tuple(u) for u in gemini_emulator.uploads] == [
        (first.name, "image/png", digest, len(data)),
        (second.name, "image/png", digest, len(data)),
    ]
    assert len({u.sha256 for u in gemini_emulator.uploads}) == 1


# -- batches ------------------------------------------------------------------------------------------------


def test_inline_batch_rows_get_their_own_media_and_a_bad_one_fails_alone(
    gemini_emulator: Emulator, gemini_client: genai.Client
) -> None:
    images = [png(10, 10, shade) for shade in range(3)]
    uploaded = put_upload(gemini_client, images[2], "image/png")
    contents: list[list[types.Part]] = [
        [image(images[0]), types.Part(text="Row zero")],
        [image(images[1]), types.Part(text="Row one")],
        [file_part("files/missing0000", "image/png"), types.Part(text="Bad row")],
        [file_part(uploaded.uri or ""), types.Part(text="Row three")],
        [image(b"GIF89a\x01\x00", "image/gif"), types.Part(text="Gif row")],
    ]
    src = [
        types.InlinedRequest(contents=[types.Content(role="user", parts=parts)], metadata={"key": f"k{i}"})
        for i, parts in enumerate(contents)
    ]
    job = gemini_client.batches.create(model=MODEL, src=src)
    done = gemini_client.batches.get(name=job.name or "")
    assert done.dest and done.dest.inlined_responses
    by_key = {(r.metadata or {})["key"]: r for r in done.dest.inlined_responses}
    for key, data in [("k0", images[0]), ("k1", images[1]), ("k3", images[2])]:
        reply = by_key[key].response
        assert reply and (reply.text or "").startswith(responses.media_tag(data) + " ")
        assert reply.usage_metadata and reply.usage_metadata.prompt_token_count == 258 + text_tokens(
            gemini_client, (contents[int(key[1])][1].text or "")
        )
    bad = by_key["k2"].error
    assert bad and (bad.code, bad.message) == (7, _denied("missing0000")) and by_key["k2"].response is None
    gif = by_key["k4"].error
    assert gif and (gif.code, gif.message) == (3, "Unsupported MIME type: image/gif")
    stats = gemini_emulator.jobs[job.name or ""]["metadata"]["batchStats"]
    assert (stats["successfulRequestCount"], stats["failedRequestCount"]) == ("3", "2")


def test_file_batch_lines_in_snake_case(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    data, video = png(1000, 500), put_upload(gemini_client, mp4(2), "video/mp4")
    uploaded = put_upload(gemini_client, data, "image/png")
    gemini_emulator.set_file_state(video.name or "", "PROCESSING")
    b64 = base64.b64encode(data).decode()
    low = {"level": "MEDIA_RESOLUTION_LOW"}
    lines = [
        _line("inline", {"inline_data": {"mime_type": "image/png", "data": b64}, "media_resolution": low}),
        _line("file", {"file_data": {"file_uri": uploaded.uri}}, generation_config={"media_resolution": low["level"]}),
        _line("plain", {"file_data": {"file_uri": uploaded.name}}),
        _line("camel", {"inlineData": {"mimeType": "image/png", "data": b64}}),
        _line("processing", {"file_data": {"file_uri": video.uri}}),
        _line("base64", {"inline_data": {"mime_type": "image/png", "data": "@@"}}),
    ]
    results = {line["key"]: line for line in run_file_job(gemini_client, lines)}
    text = text_tokens(gemini_client, PROMPT)
    for key, tokens in [("inline", 64), ("file", 64), ("plain", 516), ("camel", 516)]:
        answer = results[key]["response"]
        assert answer["usageMetadata"]["promptTokenCount"] == text + tokens
        assert answer["candidates"][0]["content"]["parts"][0]["text"].startswith(responses.media_tag(data))
    assert results["processing"]["error"]["code"] == 9
    assert results["base64"]["error"]["code"] == 3


def _line(key: str, part: dict[str, Any], **request: Any) -> dict[str, Any]:
    """A JSONL input line in proto (snake_case) names: the media part, then the prompt."""
    return {"key": key, "request": {"contents": [{"parts": [part, {"text": PROMPT}]}], **request}}


@pytest.mark.parametrize("gemini_emulator", [{"pending_seconds": 60}], indirect=True)
def test_files_are_read_when_the_job_runs(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    """A file that expires while its job waits fails that row: media are resolved when the job runs."""
    keep, lose = (put_upload(gemini_client, png(4, 4, shade), "image/png") for shade in (1, 2))
    parts = {key: [file_part(f.name or ""), types.Part(text="x")] for key, f in [("keep", keep), ("lose", lose)]}
    src = [types.InlinedRequest(contents=[types.Content(parts=p)], metadata={"key": key}) for key, p in parts.items()]
    job = gemini_client.batches.create(model=MODEL, src=src)
    gemini_emulator.expire_file(lose.name or "")
    gemini_emulator.advance_time(60)
    done = gemini_client.batches.get(name=job.name or "")
    assert done.state and done.state.name == "JOB_STATE_SUCCEEDED" and done.dest and done.dest.inlined_responses
    by_key = {(r.metadata or {})["key"]: r for r in done.dest.inlined_responses}
    assert by_key["keep"].response and by_key["lose"].error and by_key["lose"].error.code == 7


# -- faults still apply -----------------------------------------------------------------------------------


def test_faults_apply_to_media_requests(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    gemini_emulator.fail_http("models.generateContent", 503)
    with pytest.raises(errors.ServerError) as caught:
        ask(gemini_client, image(png(4, 4)), PROMPT)
    assert caught.value.code == 503
    assert ask(gemini_client, image(png(4, 4)), PROMPT).text
    gemini_emulator.fail_keys({"row-0": (13, "boom")})
    b64 = base64.b64encode(png(4, 4)).decode()
    line = {"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": b64}}]}]}
    results = run_file_job(gemini_client, [{"key": "row-0", "request": line}, {"key": "row-1", "request": line}])
    by_key = {r["key"]: r for r in results}
    assert by_key["row-0"]["error"] == {"code": 13, "message": "boom"} and "response" in by_key["row-1"]


def test_no_emulator_errors_after_media_traffic(gemini_emulator: Emulator, gemini_client: genai.Client) -> None:
    ask(gemini_client, image(png(4, 4)), PROMPT)
    refusal(gemini_client, file_part("https://example.com/x.png"))
    assert gemini_emulator.errors == []
