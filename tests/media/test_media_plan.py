"""Media columns planned locally: resolution, keys by content, errors per row, token rules, wire parts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini.core.errors import MediaError, TemplateError
from polars_gemini.prepare.media import media_columns
from polars_gemini.prepare.plan import SKIP, Limits, make_plan
from polars_gemini.prepare.requests import KEY, PROMPT, build_spec, encode_jsonl, inline_requests
from polars_gemini.tokens import media as rules
from testing_support import make_png

SPEC = build_spec("gemini-2.5-flash")


def _plan(df: pl.DataFrame, template: str, media: object, **kwargs: object) -> object:
    return make_plan(df, template, SPEC, Limits(), media_columns(media, template, df.schema), **kwargs)  # type: ignore[arg-type]


def test_the_key_covers_the_content_not_the_path(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.png", tmp_path / "renamed.png", tmp_path / "other.png"
    a.write_bytes(make_png(8, 8, 1))
    b.write_bytes(make_png(8, 8, 1))  # the same bytes under another name
    c.write_bytes(make_png(8, 8, 2))
    df = pl.DataFrame({"photo": [str(a), str(b), str(c)]})
    keys = _plan(df, "Describe {photo}", "photo").rows.get_column(KEY).to_list()  # type: ignore[attr-defined]
    assert keys[0] == keys[1] != keys[2]
    before = keys[2]
    c.write_bytes(make_png(8, 8, 3))  # the file's bytes change: its answer is bought again
    assert _plan(df, "Describe {photo}", "photo").rows.get_column(KEY).to_list()[2] != before  # type: ignore[attr-defined]


def test_cells_of_every_kind_and_their_errors(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    png.write_bytes(make_png(10, 10))
    (tmp_path / "x.gif").write_bytes(b"GIF89a\x01\x00\x01\x00" + b"\x00" * 20)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "noise").write_bytes(b"\x01\x02\x03 not a media file")
    cells = [str(png), str(tmp_path / "missing.png"), None, str(tmp_path / "x.gif"), str(tmp_path / "empty.png"),
             str(tmp_path / "noise"), "https://example.com/cat.jpg", "files/abc123", "gs://bucket/x.png",
             str(tmp_path)]  # fmt: skip
    plan = _plan(pl.DataFrame({"photo": cells}), "Describe {photo}", "photo")
    reasons = plan.rows.get_column(SKIP).to_list()  # type: ignore[attr-defined]
    assert reasons[0] is None and reasons[6] is None and reasons[7] is None
    assert "no such file" in reasons[1] and "media column 'photo'" in reasons[1]
    assert reasons[2] == "not sent: column 'photo' is null in this row"
    assert "does not take image/gif" in reasons[3]
    assert "empty" in reasons[4]
    assert "cannot tell its media type" in reasons[5] and "media={'col': 'image/png'}" in reasons[5]
    assert "register" in reasons[8] and "signed https:// URL" in reasons[8]
    assert "directory" in reasons[9]
    media = plan.media  # type: ignore[attr-defined]
    transports = dict(media.select("kind", "transport").unique().iter_rows())
    assert transports["url"] == "uri" and transports["file"] == "uri" and transports["path"] == "inline"


def test_bytes_and_pathlib_cells(tmp_path: Path) -> None:
    data = make_png(12, 12, 5)
    (tmp_path / "p.png").write_bytes(data)
    by_bytes = _plan(pl.DataFrame({"img": [data]}), "{img}", ["img"])
    by_path = _plan(pl.DataFrame({"img": [tmp_path / "p.png"]}, schema={"img": pl.Object}), "{img}", {"img": None})
    # the same content as bytes or as a Path is the same request
    assert by_bytes.rows.item(0, KEY) == by_path.rows.item(0, KEY)  # type: ignore[attr-defined]


def test_image_tokens_follow_the_dated_rules(tmp_path: Path) -> None:
    sizes = [(100, 100), (384, 384), (385, 100), (800, 900), (1536, 768)]
    paths = []
    for i, (w, h) in enumerate(sizes):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(make_png(w, h, i))
    df = pl.DataFrame({"p": [str(p) for p in paths]})
    plan = _plan(df, "{p}", "p")
    assert plan.requests.get_column("media_tokens").to_list() == [258, 258, 258, 4 * 258, 2 * 258]  # type: ignore[attr-defined]
    gemini3 = make_plan(df, "{p}", build_spec("gemini-3-flash-preview"), Limits(), media_columns("p", "{p}", df.schema))
    assert gemini3.requests.get_column("media_tokens").to_list() == [1120] * 5
    low = build_spec("gemini-3-flash-preview", config={"media_resolution": "MEDIA_RESOLUTION_LOW"})
    assert (
        make_plan(df, "{p}", low, Limits(), media_columns("p", "{p}", df.schema)).requests.item(0, "media_tokens")
        == 280
    )


def test_probes_read_headers() -> None:
    assert rules.probe(make_png(33, 44), "image/png") == rules.MediaInfo(33, 44)
    fmt = bytes.fromhex("01000100401f0000803e000002001000")  # PCM mono 8 kHz 16-bit: 16,000 bytes a second
    header = b"RIFF" + (36 + 16000).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little") + fmt
    wav = header + b"data" + (16000).to_bytes(4, "little") + b"\0" * 16000
    assert rules.sniff_mime(wav[:16]) == "audio/wav"
    assert rules.probe(wav, "audio/wav").seconds == pytest.approx(1.0)
    assert rules.media_tokens("audio/wav", rules.probe(wav, "audio/wav"), "gemini-2.5-flash")[0] == 32
    pdf = b"%PDF-1.4\n1 0 obj<</Type /Pages /Count 3>>\n" + b"<</Type /Page>>\n" * 3
    assert rules.probe(pdf, "application/pdf").pages == 3
    assert rules.media_tokens("application/pdf", rules.MediaInfo(pages=3), "gemini-2.5-flash")[0] == 3 * 258
    tokens, note = rules.media_tokens("video/mp4", rules.MediaInfo(), "gemini-2.5-flash")
    assert tokens == 60 * 263 and note is not None and "60 s" in note


def test_wire_parts_interleave_text_and_media(tmp_path: Path) -> None:
    one, two = make_png(5, 5, 1), make_png(6, 6, 2)
    df = pl.DataFrame({"a": [one], "b": [two]})
    plan = _plan(df, "First {a} then {b}.", ["a", "b"])
    media = plan.media  # type: ignore[attr-defined]
    parts = media.select("media_id", "mime", "data", pl.lit(None, pl.String).alias("uri"))
    line = json.loads(encode_jsonl(plan.requests.select(KEY, PROMPT), SPEC, parts))  # type: ignore[attr-defined]
    got = line["request"]["contents"][0]["parts"]
    assert [next(iter(p)) for p in got] == ["text", "inline_data", "text", "inline_data", "text"]
    assert got[0]["text"] == "First " and got[2]["text"] == " then " and got[4]["text"] == "."
    import base64

    assert (
        base64.b64decode(got[1]["inline_data"]["data"]) == one
        and base64.b64decode(got[3]["inline_data"]["data"]) == two
    )
    sdk = inline_requests(plan.requests.select(KEY, PROMPT), SPEC, parts)[0]  # type: ignore[attr-defined]
    sdk_parts = sdk.contents[0].parts  # type: ignore[index,union-attr]
    assert sdk_parts[1].inline_data.data == one and sdk_parts[3].inline_data.data == two  # type: ignore[index,union-attr]
    only = _plan(pl.DataFrame({"a": [one]}), "{a}", "a")
    line = json.loads(encode_jsonl(only.requests.select(KEY, PROMPT), SPEC, parts))  # type: ignore[attr-defined]
    assert [next(iter(p)) for p in line["request"]["contents"][0]["parts"]] == ["inline_data"]  # no empty text parts


def test_shared_and_large_media_are_uploaded(tmp_path: Path) -> None:
    big = make_png(300, 300, 9)
    small = make_png(4, 4, 1)
    df = pl.DataFrame({"img": [big, big, small], "n": [1, 2, 3]})
    plan = _plan(df, "{img} #{n}", "img", inline_media_bytes=len(big) + 1)
    transports = dict(plan.media.select("data", "transport").iter_rows())  # type: ignore[attr-defined]
    assert transports[small] == "inline"
    assert transports[big] == ("upload" if len(big) >= 16_384 else "inline")
    alone = _plan(pl.DataFrame({"img": [big]}), "{img}", "img", inline_media_bytes=10)
    assert alone.media.item(0, "transport") == "upload"  # type: ignore[attr-defined]


def test_bad_arguments_are_library_errors(tmp_path: Path) -> None:
    df = pl.DataFrame({"photo": ["a.png"], "n": [1]})
    with pytest.raises(TemplateError, match="not a placeholder"):
        media_columns("photo", "Describe it", df.schema)
    with pytest.raises(TemplateError, match="not in the frame"):
        media_columns("nope", "{nope}", df.schema)
    with pytest.raises(TemplateError, match=r"dtype (i64|Int64)"):
        media_columns("n", "{n}", df.schema)
    with pytest.raises(polars_gemini.ConfigurationError, match="does not take"):
        media_columns({"photo": "image/gif"}, "{photo}", df.schema)
    with pytest.raises(polars_gemini.ConfigurationError, match="memory_budget"):
        polars_gemini.submit(df.lazy(), "{photo}", model="gemini-2.5-flash", media="photo", memory_budget=10**9)
    with pytest.raises(MediaError, match="1 row"):
        polars_gemini.estimate(df, "{photo}", model="gemini-2.5-flash", media="photo", on_media_error="raise")


def test_estimate_reports_media_tokens_and_rows_not_sent(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(make_png(800, 800, 1))
    df = pl.DataFrame({"photo": [str(tmp_path / "a.png"), str(tmp_path / "gone.png"), None]})
    est = polars_gemini.estimate(df, "Caption {photo}", model="gemini-2.5-flash", media="photo", tokenizer="offline")
    assert est.rows_not_sent == 2 and est.requests == 1
    assert est.media_tokens == 4 * 258 and est.input_tokens > est.media_tokens
    assert any("cannot be sent" in note for note in est.assumptions)
    assert re.search(r"^  rows not sent +2$", repr(est), re.MULTILINE)
    assert re.search(r"^  of which media +1,032$", repr(est), re.MULTILINE)
    per_row = polars_gemini.input_tokens(df, "Caption {photo}", model="gemini-2.5-flash", media="photo",
                                         tokenizer="offline")  # fmt: skip
    assert per_row.to_list()[0] == est.input_tokens and per_row.to_list()[1:] == [None, None]
