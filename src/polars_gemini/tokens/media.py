"""Media parts: MIME types from magic bytes, what a header says (pixels, seconds, pages), and their token counts.

Shared by the estimator (`prepare.media`) and the emulator, so both count a media part by the same dated rules.
Nothing here decodes a whole file: images are read to their size fields, audio and video to their duration
fields, PDFs are searched for their page objects.

Token rules (as of `AS_OF`; sources in `SOURCES`):

- Gemini 2.x: an image with both sides <= 384 px is 258 tokens; a larger one is cut into 768x768 tiles of 258
  tokens each (`ceil(w/768) * ceil(h/768)`); `media_resolution` LOW makes any image 64 tokens, MEDIUM 256. A PDF
  page counts as an image: 258 tokens (64 at LOW). Video: 263 tokens per second (frames at 1 fps plus the audio
  track); at LOW 98 (64 per frame plus 32 of audio, an assumption). Audio: 32 tokens per second.
- Gemini 3: `media_resolution` sets a fixed budget per image (LOW 280, MEDIUM 560, HIGH 1120 = the default,
  ULTRA_HIGH 2240), per PDF page (280 / 560 = the default / 1120 / 1120) and per video frame at 1 fps (70 / 70 =
  the default / 280 / 280), plus 32 tokens per second of audio in a video. Audio: 32 tokens per second.
- Text documents (`text/*`): the tokens of their text.
"""

from __future__ import annotations

import math
import mimetypes
import re
import struct
from dataclasses import dataclass

from polars_gemini.tokens.tokenizer import count_tokens

AS_OF = "2026-12-01"
SOURCES = {
    "gemini-2": "https://ai.google.dev/gemini-api/docs/tokens (images 258 tokens up to 384 px, 768x768 tiles of "
    "258 above; video 263 tokens/s; audio 32 tokens/s); https://ai.google.dev/gemini-api/docs/document-processing "
    "(PDF page = 258 tokens); https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/media-resolution "
    "(Gemini 2.5 LOW 64, MEDIUM 256 per image or frame)",
    "gemini-3": "https://ai.google.dev/gemini-api/docs/media-resolution#token-counts (images 280/560/1120/2240, "
    "PDF pages 280/560/1120, video frames 70/70/280; defaults HIGH for images, MEDIUM for PDFs and video)",
}

# Media the Gemini API accepts (https://ai.google.dev/gemini-api/docs/image-understanding, .../audio,
# .../video-understanding, .../document-processing), with the common aliases mapped onto their names.
SUPPORTED = frozenset(
    {
        *("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"),
        *("audio/wav", "audio/mp3", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac"),
        *("video/mp4", "video/mpeg", "video/mov", "video/avi", "video/x-flv", "video/mpg", "video/webm"),
        *("video/wmv", "video/3gpp", "application/pdf"),
        *("text/plain", "text/html", "text/css", "text/csv", "text/xml", "text/markdown", "text/rtf"),
        *("application/json", "application/x-javascript", "text/javascript", "application/x-python", "text/x-python"),
    }
)
ALIASES = {
    "image/jpg": "image/jpeg", "audio/mpeg": "audio/mp3", "audio/x-wav": "audio/wav", "audio/wave": "audio/wav",
    "audio/x-aiff": "audio/aiff", "audio/x-flac": "audio/flac", "audio/mp4": "audio/aac", "audio/x-m4a": "audio/aac",
    "video/quicktime": "video/mov", "video/x-msvideo": "video/avi", "video/x-ms-wmv": "video/wmv",
    "application/ogg": "audio/ogg",
}  # fmt: skip
# Size limits per media file (https://ai.google.dev/gemini-api/docs/files: 2 GB per file;
# https://ai.google.dev/gemini-api/docs/document-processing: PDFs up to 50 MB).
MAX_FILE_BYTES = 2 * 1024**3
MAX_PDF_BYTES = 50 * 1024**2
LEVELS = ("MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH", "MEDIA_RESOLUTION_ULTRA_HIGH")
AUDIO_PER_SECOND = 32
_GEMINI3 = {  # per level: image, PDF page, video frame
    "MEDIA_RESOLUTION_LOW": (280, 280, 70),
    "MEDIA_RESOLUTION_MEDIUM": (560, 560, 70),
    "MEDIA_RESOLUTION_HIGH": (1120, 1120, 280),
    "MEDIA_RESOLUTION_ULTRA_HIGH": (2240, 1120, 280),
}
_GEMINI3_DEFAULT = (1120, 560, 70)
# Assumed when a header does not say (stated in the estimate): one tile, one page, a minute.
ASSUMED_SECONDS = 60.0


@dataclass(frozen=True)
class MediaInfo:
    """What a media file's header says; None where it does not (or the format is not parsed)."""

    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    pages: int | None = None


def normalize_mime(mime: str) -> str:
    mime = mime.strip().lower().split(";")[0]
    return ALIASES.get(mime, mime)


def sniff_mime(head: bytes) -> str | None:
    """The MIME type that a file's first bytes (16 or more) show, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head[:4] == b"RIFF":
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/avi"}.get(head[8:12])
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio/mp3"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"heim", b"heis"):
            return "image/heic"
        if brand in (b"mif1", b"msf1", b"heif"):
            return "image/heif"
        if brand == b"qt  ":
            return "video/mov"
        if brand in (b"M4A ", b"M4B "):
            return "audio/aac"
        if brand.startswith(b"3g"):
            return "video/3gpp"
        return "video/mp4"
    return None


def mime_from_name(name: str) -> str | None:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed is None and name.lower().endswith((".md", ".markdown")):
        return "text/markdown"
    return normalize_mime(guessed) if guessed else None


def probe(data: bytes, mime: str) -> MediaInfo:
    """Sizes, duration or pages from the header of `data` (a whole file); empty where the format is not parsed or
    the header is damaged."""
    try:
        return _probe(data, mime)
    except (struct.error, IndexError, ValueError, ZeroDivisionError):
        return MediaInfo()


def _probe(data: bytes, mime: str) -> MediaInfo:
    if mime == "image/png" and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return MediaInfo(w, h)
    if mime == "image/jpeg":
        return _jpeg(data)
    if mime == "image/gif":
        w, h = struct.unpack("<HH", data[6:10])
        return MediaInfo(w, h)
    if mime == "image/webp":
        return _webp(data)
    if mime == "application/pdf":
        return MediaInfo(pages=len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data)) or None)
    if mime == "audio/wav":
        return _wav(data)
    if mime == "audio/flac":
        return _flac(data)
    if mime in ("video/mp4", "video/mov", "video/3gpp", "audio/aac"):
        return _mvhd(data)
    if mime == "audio/mp3":
        return _mp3(data)
    return MediaInfo()


def _jpeg(data: bytes) -> MediaInfo:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return MediaInfo(w, h)
        i += 2 + length
    return MediaInfo()


def _webp(data: bytes) -> MediaInfo:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return MediaInfo(w, h)
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return MediaInfo((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return MediaInfo(w & 0x3FFF, h & 0x3FFF)
    return MediaInfo()


def _wav(data: bytes) -> MediaInfo:
    i, rate, size = 12, None, None
    while i + 8 <= len(data):
        cid, n = data[i : i + 4], struct.unpack("<I", data[i + 4 : i + 8])[0]
        if cid == b"fmt ":
            rate = struct.unpack("<I", data[i + 16 : i + 20])[0]  # bytes per second
        elif cid == b"data":
            size = min(n, len(data) - i - 8)
            break
        i += 8 + n + (n & 1)
    return MediaInfo(seconds=size / rate) if rate and size is not None else MediaInfo()


def _flac(data: bytes) -> MediaInfo:
    info = data[8 : 8 + 34] if data[:4] == b"fLaC" else b""
    if len(info) < 18:
        return MediaInfo()
    packed = int.from_bytes(info[10:18], "big")
    rate, samples = packed >> 44, packed & ((1 << 36) - 1)
    return MediaInfo(seconds=samples / rate) if rate and samples else MediaInfo()


def _mvhd(data: bytes) -> MediaInfo:
    i = data.find(b"mvhd")
    if i < 4:
        return MediaInfo()
    version = data[i + 4]
    if version == 1:
        scale, duration = struct.unpack(">IQ", data[i + 24 : i + 36])
    else:
        scale, duration = struct.unpack(">II", data[i + 16 : i + 24])
    return MediaInfo(seconds=duration / scale) if scale else MediaInfo()


_MP3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)


def _mp3(data: bytes) -> MediaInfo:
    start = 0
    if data.startswith(b"ID3"):
        size = data[6:10]
        start = 10 + ((size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3])
    if start + 4 > len(data) or data[start] != 0xFF:
        return MediaInfo()
    index = data[start + 2] >> 4
    kbps = _MP3_KBPS[index] if index < len(_MP3_KBPS) else 0
    return MediaInfo(seconds=(len(data) - start) * 8 / (kbps * 1000)) if kbps else MediaInfo()


def family(model: str) -> str:
    """'gemini-3' for Gemini 3.x models, else 'gemini-2' (the 2.x rules)."""
    return "gemini-3" if re.match(r"(models/)?gemini-[3-9]", model) else "gemini-2"


def media_tokens(mime: str, info: MediaInfo, model: str, resolution: str | None = None,
                 text: str | None = None) -> tuple[int, str | None]:  # fmt: skip
    """Tokens of one media part for `model` at `resolution` (a `MEDIA_RESOLUTION_*` level or None), and the
    assumption made when the header did not say enough (else None). `text`: a text document's content."""
    level = resolution if resolution in LEVELS else None
    gemini3 = family(model) == "gemini-3"
    kind = mime.split("/")[0]
    if mime == "application/pdf":
        pages, note = (info.pages, None) if info.pages else (1, "a PDF whose page count could not be read: 1 page")
        per_page = (_GEMINI3.get(level or "", _GEMINI3_DEFAULT)[1] if gemini3 else
                    64 if level == "MEDIA_RESOLUTION_LOW" else 258)  # fmt: skip
        return pages * per_page, note
    if kind == "image":
        if gemini3:
            return _GEMINI3.get(level or "", _GEMINI3_DEFAULT)[0], None
        if level == "MEDIA_RESOLUTION_LOW":
            return 64, None
        if level == "MEDIA_RESOLUTION_MEDIUM":
            return 256, None
        if info.width is None or info.height is None:
            return 258, f"an image ({mime}) whose size could not be read: one tile, 258 tokens"
        if info.width <= 384 and info.height <= 384:
            return 258, None
        return math.ceil(info.width / 768) * math.ceil(info.height / 768) * 258, None
    if kind in ("audio", "video"):
        seconds, note = info.seconds, None
        if seconds is None:
            seconds, note = ASSUMED_SECONDS, f"a {kind} file ({mime}) whose duration could not be read: 60 s"
        if kind == "audio":
            rate = AUDIO_PER_SECOND
        elif gemini3:
            rate = _GEMINI3.get(level or "", _GEMINI3_DEFAULT)[2] + AUDIO_PER_SECOND
        else:
            rate = 98 if level == "MEDIA_RESOLUTION_LOW" else 263
        return math.ceil(seconds * rate), note
    if text is not None:
        return sum(count_tokens([text])), None
    return 0, f"a {mime} part: its tokens are not known"


__all__ = ["AS_OF", "SOURCES", "SUPPORTED", "MediaInfo", "media_tokens", "mime_from_name", "probe", "sniff_mime"]
