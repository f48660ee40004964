"""Media columns: cells that become image, audio, video or document parts of a request.

`media=["photo"]` makes `{photo}` in a template a media part at that place. Each distinct cell is resolved once
into the media table (`MEDIA_SCHEMA`): a local path or `pathlib.Path` is read and hashed, raw bytes (a Binary
column) are hashed, a Files API name or URI and an `http(s)://` URL are passed through by reference (the Developer
API fetches public and signed URLs itself since January 2026), and `gs://` URIs are refused with the way to
register them. The MIME type comes from the bytes (magic numbers), else the extension, unless the column forces one.

In the rendered prompt a media part is a marker, `\\ue000<media id>\\ue001`, where the id hashes the MIME type and
the content (or the reference): so a request's key covers the media's bytes and not its path, renaming a file never
buys its answer again, and changing its bytes always does. `encode` turns markers into wire parts.

A cell that cannot be sent (missing or unreadable file, unsupported type, over a size limit) is an error of that
media id; the rows holding it are not sent and say which column and why.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import polars as pl

from polars_gemini.core.errors import ConfigurationError, TemplateError
from polars_gemini.tokens import media as rules

MediaLike = str | Sequence[str] | Mapping[str, str | None] | None
START, END = "\ue000", "\ue001"
MARKER = START + "[0-9a-f]{32}" + END
ID = "media_id"
MEDIA_TOKENS = "media_tokens"
MEDIA_BYTES = "media_bytes"
MEDIA_SCHEMA: dict[str, pl.DataType] = {
    ID: pl.String(), "kind": pl.String(), "source": pl.String(), "mime": pl.String(), "size": pl.Int64(),
    "sha256": pl.String(), "tokens": pl.Int64(), "note": pl.String(), "error": pl.String(), "data": pl.Binary(),
    "transport": pl.String(),
}  # fmt: skip
FILES_URI = r"^https?://[^/]+/(v1beta|v1|v1alpha)/(files/[a-z0-9-]+)$"
FILES_NAME = r"^files/[a-z0-9-]+$"
# A media is sent inline when it is at most this large and used by one request; larger ones, and ones that several
# requests share (from `SHARED_UPLOAD_BYTES`), are uploaded once through the Files API and referenced by URI.
INLINE_MEDIA_BYTES = 1_000_000
SHARED_UPLOAD_BYTES = 16_384
_URI_PART_BYTES = 160  # a file_data part on the wire: its URI and MIME type


@dataclass(frozen=True)
class MediaColumns:
    """The media columns of a call and the MIME type each one forces (None: detected per cell)."""

    columns: Mapping[str, str | None]
    cloud_storage: bool = False  # Vertex AI: gs:// cells are references it reads itself, and nothing is uploaded

    def __bool__(self) -> bool:
        return bool(self.columns)


def media_columns(media: MediaLike, template: object, schema: pl.Schema) -> MediaColumns:
    """Check `media=` against the template and the frame: every column exists, is a placeholder of the template,
    and holds paths, URIs or bytes."""
    if media is None:
        return MediaColumns({})
    if isinstance(media, str):
        wanted: dict[str, str | None] = {media: None}
    elif isinstance(media, Mapping):
        wanted = {str(k): v for k, v in media.items()}
    elif isinstance(media, Sequence) and all(isinstance(c, str) for c in media):
        wanted = dict.fromkeys(media)
    else:
        raise ConfigurationError(
            f"media must be a column name, a list of them, or a dict of column -> MIME type; got {media!r:.80}."
        )
    if not isinstance(template, str):
        raise TemplateError("media= needs a template string, such as 'Describe {photo}': it places each media part.")
    for column, mime in wanted.items():
        if column not in schema:
            raise TemplateError(f"media column {column!r} is not in the frame; columns: {', '.join(schema.names())}.")
        if "{" + column + "}" not in template:
            raise TemplateError(
                f"media column {column!r} is not a placeholder of the template {template!r}: write {{{column}}} "
                "where the media part goes."
            )
        dtype = schema[column]
        if not isinstance(dtype, (pl.String, pl.Binary, pl.Object, pl.Categorical, pl.Enum, pl.Null)):
            raise TemplateError(
                f"media column {column!r} has dtype {dtype}: a media cell is a path or URI (String), a pathlib.Path "
                "or raw bytes (Binary)."
            )
        if mime is not None and rules.normalize_mime(mime) not in rules.SUPPORTED:
            raise ConfigurationError(
                f"media={{{column!r}: {mime!r}}}: the Gemini API does not take {mime}; supported: "
                f"{', '.join(sorted(rules.SUPPORTED))}."
            )
    return MediaColumns({c: rules.normalize_mime(m) if m else None for c, m in wanted.items()})


def marker(media_id: pl.Expr) -> pl.Expr:
    return pl.concat_str(pl.lit(START), media_id, pl.lit(END))


def strip_markers(prompt: pl.Expr) -> pl.Expr:
    """The text of a prompt without its media markers (what the tokenizer counts)."""
    return prompt.str.replace_all(MARKER, "")


@dataclass(frozen=True)
class Resolved:
    """A frame whose media columns hold markers (null where the cell is null or cannot be sent), the media table,
    and per row the first media error (`column 'photo': why`), else null."""

    frame: pl.DataFrame
    table: pl.DataFrame
    errors: pl.Series


def resolve(frame: pl.DataFrame, media: MediaColumns, model: str, resolution: str | None) -> Resolved:
    """Resolve every distinct media cell of `frame` once (files are read and hashed on a thread pool)."""
    tables, replaced, errors = [], {}, []
    for column, forced in media.columns.items():
        cells = _cells(frame.get_column(column))
        distinct = cells.drop_nulls().unique(maintain_order=True)
        table = _resolve_cells(distinct, forced, model, resolution, media.cloud_storage)
        lookup = pl.DataFrame({"cell": distinct}).hstack(table.select(ID, "error"))
        joined = cells.to_frame("cell").join(lookup, on="cell", how="left", maintain_order="left")
        replaced[column] = pl.when(joined["error"].is_null()).then(marker(pl.col(ID))).otherwise(None)
        ids = joined.select(replaced[column].alias(column)).get_column(column)
        frame = frame.with_columns(ids)
        errors.append(joined.select(pl.format(f"media column '{column}': {{}}", pl.col("error"))).to_series())
        tables.append(table)
    table = pl.concat(tables).unique(ID, keep="first", maintain_order=True) if tables else empty_table()
    first = pl.DataFrame({f"e{i}": e for i, e in enumerate(errors)}).select(pl.coalesce(pl.all())).to_series()
    return Resolved(frame, table, first.alias("media_error"))


def empty_table() -> pl.DataFrame:
    return pl.DataFrame(schema=MEDIA_SCHEMA)


def _cells(column: pl.Series) -> pl.Series:
    """A media column as String (paths, URIs) or Binary (bytes): `pathlib.Path` objects become their text."""
    if column.dtype == pl.Object:  # Python objects (pathlib.Path) have no Polars kernel: one pass to make them text
        values = column.to_list()
        if all(v is None or isinstance(v, (bytes, bytearray, memoryview)) for v in values):
            return pl.Series(column.name, [bytes(v) if v is not None else None for v in values], pl.Binary)
        bad = next((v for v in values if v is not None and not isinstance(v, (str, PurePath))), None)
        if bad is not None:
            raise TemplateError(
                f"media column {column.name!r} holds a {type(bad).__name__}; a media cell is a path, a URI or bytes."
            )
        return pl.Series(column.name, [os.fspath(v) if v is not None else None for v in values], pl.String)
    if column.dtype == pl.Binary:
        return column
    cast: pl.Series = column.cast(pl.String)
    return cast


def _resolve_cells(
    cells: pl.Series, forced: str | None, model: str, resolution: str | None, gcs: bool = False
) -> pl.DataFrame:
    # One Python call per *distinct* media, deliberately: each is a file to read or bytes to hash (sha256 has no
    # column kernel), I/O-bound and done once per content, never once per row.
    if cells.dtype == pl.Binary:
        rows = [_from_bytes(bytes(b), forced, model, resolution) for b in cells.to_list()]
    else:
        texts = cells.to_list()
        with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 4)) as pool:
            rows = list(pool.map(lambda t: _from_text(t, forced, model, resolution, gcs), texts))
    return pl.DataFrame(rows, schema=MEDIA_SCHEMA, orient="row") if rows else empty_table()


def _row(media_id: str, kind: str, source: str | None, mime: str | None, size: int | None, sha: str | None,
         tokens: int = 0, note: str | None = None, error: str | None = None, data: bytes | None = None,
         transport: str = "inline") -> tuple[Any, ...]:  # fmt: skip
    return (media_id, kind, source, mime, size, sha, tokens, note, error, data, transport)


def media_id(mime: str | None, identity: str) -> str:
    return hashlib.sha256(f"{mime or ''}\x00{identity}".encode()).hexdigest()[:32]


def _from_bytes(data: bytes, forced: str | None, model: str, resolution: str | None,
                source: str | None = None, kind: str = "bytes") -> tuple[Any, ...]:  # fmt: skip
    sha = hashlib.sha256(data).hexdigest()
    sniffed = rules.sniff_mime(data[:64])
    named = rules.mime_from_name(source) if source else None
    mime = forced or sniffed or named
    mid = media_id(mime, "sha256:" + sha)
    keep = data if kind == "bytes" else None
    if mime is None:
        what = f"{source}: " if source else ""
        why = f"{what}cannot tell its media type (not an image, audio, video or PDF by its first bytes or its name)"
        return _row(mid, kind, source, None, len(data), sha, error=why + "; force one with media={'col': 'image/png'}")
    problem = _check(mime, len(data))
    if problem:
        return _row(mid, kind, source, mime, len(data), sha, error=(f"{source}: " if source else "") + problem)
    text = data.decode("utf-8", "replace") if mime.startswith("text/") or mime == "application/json" else None
    tokens, note = rules.media_tokens(mime, rules.probe(data, mime), model, resolution, text)
    return _row(mid, kind, source, mime, len(data), sha, tokens, note, data=keep)


def _check(mime: str, size: int) -> str | None:
    if mime not in rules.SUPPORTED:
        return (
            f"the Gemini API does not take {mime} (supported: images png/jpeg/webp/heic/heif, audio, video, PDF, text)"
        )
    if size == 0:
        return "the file is empty"
    if size > rules.MAX_FILE_BYTES:
        return f"{size:,} bytes is over the Files API's {rules.MAX_FILE_BYTES:,}-byte limit per file"
    if mime == "application/pdf" and size > rules.MAX_PDF_BYTES:
        return f"a PDF of {size:,} bytes is over the API's {rules.MAX_PDF_BYTES:,}-byte limit for documents"
    return None


def _from_text(cell: str, forced: str | None, model: str, resolution: str | None, gcs: bool = False
               ) -> tuple[Any, ...]:  # fmt: skip
    text = cell.strip()
    files = pl.Series([text]).str.extract(FILES_URI, 2).item() if "://" in text else None
    if files is not None or pl.Series([text]).str.contains(FILES_NAME).item():
        name = files or text
        return _reference("file", name, forced, model, resolution)
    if text.startswith("gs://") and gcs:  # Vertex AI reads Cloud Storage objects itself
        return _reference("gcs", text, forced, model, resolution)
    if text.startswith("gs://"):
        why = (f"{text}: the Gemini Developer API does not read gs:// URIs directly; register the object first "
               "(client.files.register_files(auth=credentials, uris=[...])) and pass the files/... name it returns, "
               "or pass a signed https:// URL")  # fmt: skip
        return _row(media_id(forced, text), "gcs", text, forced, None, None, error=why)
    if text.startswith(("http://", "https://")):
        return _reference("url", text, forced, model, resolution)
    return _from_path(text, forced, model, resolution)


def _reference(kind: str, ref: str, forced: str | None, model: str, resolution: str | None) -> tuple[Any, ...]:
    """A Files API file or a URL, sent by reference: its bytes are not read here, so its tokens are assumed."""
    mime = forced or (rules.mime_from_name(ref.split("?")[0]) if kind in ("url", "gcs") else None)
    mid = media_id(mime, f"{kind}:{ref}")
    if mime is not None and mime not in rules.SUPPORTED:
        return _row(mid, kind, ref, mime, None, None, error=f"{ref}: the Gemini API does not take {mime}")
    if kind in ("url", "gcs") and mime is None:
        why = f"{ref}: cannot tell its media type from the URL; force one with media={{'col': 'image/jpeg'}}"
        return _row(mid, kind, ref, None, None, None, error=why)
    tokens, note = rules.media_tokens(mime or "image/png", rules.MediaInfo(), model, resolution)
    what = {"file": "a Files API file", "gcs": "a Cloud Storage object"}.get(kind, "a URL")
    note = f"{what} sent by reference ({mime or 'type unknown'}): not read here, " + (
        note or f"counted as {tokens} tokens"
    )
    return _row(mid, kind, ref, mime, None, None, tokens, note, transport="uri")


def _from_path(text: str, forced: str | None, model: str, resolution: str | None) -> tuple[Any, ...]:
    path = Path(text).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _row(media_id(forced, "path:" + text), "path", text, forced, None, None, error=f"{text}: no such file")
    except IsADirectoryError:
        return _row(media_id(forced, "path:" + text), "path", text, forced, None, None, error=f"{text}: a directory")
    except OSError as exc:
        why = f"{text}: cannot be read ({exc.strerror or exc})"
        return _row(media_id(forced, "path:" + text), "path", text, forced, None, None, error=why)
    return _from_bytes(data, forced, model, resolution, source=str(path.resolve()), kind="path")


def choose_transport(
    table: pl.DataFrame, prompts: pl.Series, inline_bytes: int = INLINE_MEDIA_BYTES, share_uploads: bool = True
) -> pl.DataFrame:
    """The table with `transport` set: `inline` for a media of at most `inline_bytes` used by one request,
    `upload` for larger or (`share_uploads`: the Files API) shared ones, `uri` for references."""
    uses = media_uses(prompts)
    counted = table.join(uses, on=ID, how="left").with_columns(pl.col("uses").fill_null(0))
    shared = (pl.col("uses") > 1) & (pl.col("size") >= SHARED_UPLOAD_BYTES) & pl.lit(share_uploads)
    upload = (pl.col("size") > inline_bytes) | shared
    reference = pl.col("kind").is_in(["file", "url", "gcs"])
    transport = pl.when(reference).then(pl.lit("uri")).when(upload).then(pl.lit("upload"))
    return counted.with_columns(transport.otherwise(pl.lit("inline")).alias("transport")).drop("uses")


def media_uses(prompts: pl.Series) -> pl.DataFrame:
    """How many of `prompts` hold each media id."""
    ids = prompts.to_frame("p").select(pl.col("p").str.extract_all(MARKER).list.unique().alias(ID)).explode(ID)
    ids = ids.drop_nulls().select(pl.col(ID).str.slice(1, 32))
    return ids.group_by(ID).agg(pl.len().cast(pl.Int64).alias("uses"))


def per_prompt(prompts: pl.Series, table: pl.DataFrame) -> pl.DataFrame:
    """Per prompt (in order): its media tokens and the bytes its media parts add on the wire."""
    wire = (
        pl.when(pl.col("transport") == "inline")
        .then((pl.col("size") + 2) // 3 * 4 + 64)
        .otherwise(pl.col("source").str.len_bytes().fill_null(0) + _URI_PART_BYTES)
    )
    costs = table.select(ID, pl.col("tokens").alias(MEDIA_TOKENS), wire.alias(MEDIA_BYTES))
    found = prompts.to_frame("p").with_row_index("_i").select("_i", pl.col("p").str.extract_all(MARKER).alias(ID))
    exploded = found.explode(ID).with_columns(pl.col(ID).str.slice(1, 32)).join(costs, on=ID, how="left")
    summed = exploded.group_by("_i").agg(pl.col(MEDIA_TOKENS).sum(), pl.col(MEDIA_BYTES).sum()).sort("_i")
    return summed.select(pl.col(MEDIA_TOKENS).cast(pl.Int64), pl.col(MEDIA_BYTES).cast(pl.Int64))


def notes(table: pl.DataFrame) -> list[str]:
    """The assumptions behind the media tokens (one line per kind of assumption, with how many media)."""
    counted = table.filter(pl.col("error").is_null() & pl.col("note").is_not_null())
    grouped = counted.group_by("note", maintain_order=True).agg(pl.len())
    return [f"{n} media: {note}" if n > 1 else note for note, n in grouped.iter_rows()][:5]


# -- wire parts ---------------------------------------------------------------------------------------------------

PARTS_SCHEMA: dict[str, pl.DataType] = {ID: pl.String(), "mime": pl.String(), "data": pl.Binary(), "uri": pl.String()}


def wire_json(parts: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """Markers and what replaces each one inside a JSON-encoded text part: the text part is closed, the media
    part (`inline_data` with base64 data, or `file_data` with its URI) follows, and a new text part opens."""
    inline = pl.concat_str(
        pl.lit('"inline_data":{"mime_type":'), _json_str(pl.col("mime")), pl.lit(',"data":"'),
        pl.col("data").bin.encode("base64"), pl.lit('"}'),
    )  # fmt: skip
    mime = pl.when(pl.col("mime").is_not_null()).then(pl.lit(',"mime_type":') + _json_str(pl.col("mime")))
    uri = pl.concat_str(
        pl.lit('"file_data":{"file_uri":'), _json_str(pl.col("uri")), mime.otherwise(pl.lit("")), pl.lit("}")
    )
    part = pl.when(pl.col("data").is_not_null()).then(inline).otherwise(uri)
    out = parts.select(marker(pl.col(ID)).alias("m"), pl.concat_str(pl.lit('"},{'), part, pl.lit('},{"text":"')))
    return out.to_series(0), out.to_series(1)


def _json_str(expr: pl.Expr) -> pl.Expr:
    return pl.struct(expr.alias("s")).struct.json_encode().str.slice(5).str.strip_suffix("}")


def replace_markers(parts_json: pl.Expr, parts: pl.DataFrame) -> pl.Expr:
    """`parts_json` (a JSON list of text parts holding markers) with every marker made its media part, and the
    empty text parts that leaves at the edges dropped (the API refuses empty text parts)."""
    patterns, replacements = wire_json(parts)
    replaced = parts_json.str.replace_many(patterns.to_list(), replacements.to_list())
    return replaced.str.replace_many(['{"text":""},', ',{"text":""}'], ["", ""])


def sdk_parts(prompt: str, parts: Mapping[str, tuple[str | None, bytes | None, str | None]]) -> list[Any]:
    """A prompt's `types.Part`s for the inline transport: text, and each marker's media (`parts`: id -> (mime,
    bytes, uri))."""
    import re

    from google.genai import types

    out: list[Any] = []
    for i, piece in enumerate(re.split(f"({MARKER})", prompt)):
        if i % 2 == 0:
            if piece:
                out.append(types.Part(text=piece))
            continue
        mime, data, uri = parts[piece[1:-1]]
        if data is not None:
            out.append(types.Part(inline_data=types.Blob(data=data, mime_type=mime)))
        else:
            out.append(types.Part(file_data=types.FileData(file_uri=uri, mime_type=mime)))
    return out
