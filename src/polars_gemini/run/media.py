"""Media on the wire: the parts of a job's requests, with large and shared media uploaded once.

Before a job is created, `stage` gives the wire form of every media part its prompts hold: inline media are read
(and checked against the hash they were planned with), references pass through, and media to upload are looked up
first, so each content hash is uploaded once across rows, jobs and runs: in the checkpoint's `media_files.parquet`
(hash -> file name, URI, expiry), then on the service by display name (`polars-gemini-media-<media id>`: a crash
after an upload and before its record finds the file there). A file expiring within `EXPIRY_MARGIN` is uploaded
again (files live 48 hours; a job can run for 24). Uploads run concurrently, with a progress bar, and each is
recorded as it lands. When the run is done, `cleanup` deletes the files this run uploaded, unless `keep_files`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from google.genai import types

from polars_gemini.checkpoint.store import MEDIA_FILES_SCHEMA, Store
from polars_gemini.core.errors import APIError, MediaError
from polars_gemini.core.progress import live_progress
from polars_gemini.prepare.media import ID, PARTS_SCHEMA
from polars_gemini.prepare.plan import Plan
from polars_gemini.service import gemini as _client

if TYPE_CHECKING:
    from google import genai

PREFIX = "polars-gemini-media-"
EXPIRY_MARGIN = 24 * 3600.0  # seconds of life a file must have left to be used by a new job
ACTIVE_WAIT = 600.0  # seconds to wait for an uploaded file (a video, say) to become ACTIVE
_RECORD_EVERY = 1.0  # seconds between writes of media_files.parquet while uploads land


def stage(plan: Plan, prompts: pl.Series, store: Store, client: genai.Client | None, run_id: str,
          retry: types.HttpRetryOptions | None, concurrency: int, progress: bool) -> pl.DataFrame | None:  # fmt: skip
    """The wire form (`PARTS_SCHEMA`) of the media that `prompts` hold, uploading what must be; None without media."""
    table = plan.media_of(prompts)
    if table.is_empty():
        return None
    inline = table.filter(pl.col("transport") == "inline")
    refs = table.filter(pl.col("transport") == "uri")
    uploads = table.filter(pl.col("transport") == "upload")
    parts = [_inline(inline, concurrency)]
    if not refs.is_empty():
        refs_uris = [_ref_uri(client, kind, source) for kind, source in refs.select("kind", "source").iter_rows()]
        parts.append(refs.select(ID, "mime", pl.lit(None, pl.Binary).alias("data"), pl.Series("uri", refs_uris)))
    if not uploads.is_empty():
        if client is None:
            raise APIError("Media must be uploaded before the job is created, and this run has no client.")
        uris = _ensure_uploaded(uploads, store, client, run_id, retry, concurrency, progress)
        parts.append(uploads.select(ID, "mime", pl.lit(None, pl.Binary).alias("data"), pl.col(ID).replace_strict(uris)
                                    .alias("uri")))  # fmt: skip
    return pl.concat([p.select(pl.col(c).cast(t) for c, t in PARTS_SCHEMA.items()) for p in parts])


def _ref_uri(client: genai.Client | None, kind: str, source: str) -> str:
    if kind == "file" and not source.startswith(("http://", "https://")) and client is not None:
        return _client.file_uri(client, source)
    return source


def read_media(row: dict[str, object]) -> bytes:
    """A media's bytes: kept in the table (bytes cells), else read again from its path and checked against the
    hash it was planned with (a file changed since then would be sent under another file's key)."""
    kept = row["data"]
    if isinstance(kept, (bytes, bytearray, memoryview)):
        return bytes(kept)
    path = str(row["source"])
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MediaError(
            f"{path} was readable when the run was planned and is not now ({exc.strerror or exc}); restore it, "
            "or call batch(...) again so that the rows holding it are planned anew."
        ) from None
    if hashlib.sha256(data).hexdigest() != row["sha256"]:
        raise MediaError(
            f"{path} changed since the run was planned: its requests were keyed by its old content. Call "
            "batch(...) again: the rows holding it are planned (and keyed) by what it holds now."
        )
    return data


def _inline(inline: pl.DataFrame, concurrency: int) -> pl.DataFrame:
    rows = inline.select(ID, "mime", "data", "source", "sha256").to_dicts()
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, 16))) as pool:
        data = list(pool.map(read_media, rows))
    return inline.select(ID, "mime", pl.Series("data", data, pl.Binary), pl.lit(None, pl.String).alias("uri"))


def _ensure_uploaded(
    uploads: pl.DataFrame, store: Store, client: genai.Client, run_id: str, retry: types.HttpRetryOptions | None,
    concurrency: int, progress: bool,
) -> dict[str, str]:  # fmt: skip
    """Media id -> URI for every row of `uploads`, uploading those with no usable file."""
    # One listing of the service's media files (by display name) decides what is usable: a recorded file that
    # expired, was deleted (by another run's clean-up, say) or is about to expire is uploaded again.
    fresh = time.time() + EXPIRY_MARGIN
    listing: dict[str, _client.FileSnapshot] = {}
    for snap in _client.list_files(client, PREFIX, retry):
        if snap.state == "ACTIVE" and (snap.expires_at or float("inf")) > fresh:
            listing[(snap.display_name or "").removeprefix(PREFIX)] = snap
    live = {s.name for s in listing.values()}
    known = store.media_files.filter(pl.col("name").is_in(list(live)))
    uris = dict(known.join(uploads.select(ID), on=ID, how="semi").select(ID, "uri").iter_rows())
    todo = uploads.filter(~pl.col(ID).is_in(list(uris)))
    if todo.is_empty():
        return uris
    pending: list[dict[str, object]] = []
    lock, last = threading.Lock(), [time.monotonic()]
    adopted = [(m, s) for m in todo.get_column(ID).to_list() if (s := listing.get(m)) is not None]
    if adopted:  # uploaded before a crash, or by another run: used as they are, deleted by whoever uploaded them
        store.set_media_files(_records(adopted, run_id, ours=False))
        uris |= {m: s.uri for m, s in adopted}
    todo = todo.filter(~pl.col(ID).is_in(list(uris)))

    def flush() -> None:
        if pending:
            store.set_media_files(pl.DataFrame(pending, schema=MEDIA_FILES_SCHEMA))
            pending.clear()

    def upload(row: dict[str, object]) -> None:
        data = read_media(row)
        snap = _client.upload_media(client, data, str(row["mime"]), f"{PREFIX}{row[ID]}", retry)
        snap = _wait_active(client, snap, retry)
        with lock:
            uris[str(row[ID])] = snap.uri
            pending.append(_record(str(row[ID]), snap, run_id, ours=True))
            if time.monotonic() - last[0] > _RECORD_EVERY:
                flush()
                last[0] = time.monotonic()

    rows = todo.select(ID, "mime", "data", "source", "sha256").to_dicts()
    try:
        with (
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool,
            live_progress("uploading media", len(rows), "file", progress) as shown,
        ):
            try:
                for _ in pool.map(upload, rows):
                    shown.advance()
            except BaseException:  # stop the uploads not started yet: the next call resumes from the records
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        with lock:
            flush()
    return uris


def _wait_active(client: genai.Client, snap: _client.FileSnapshot, retry: types.HttpRetryOptions | None,
                 ) -> _client.FileSnapshot:  # fmt: skip
    """Videos (and some documents) are processed after upload: wait until the file is ACTIVE."""
    deadline, delay = time.monotonic() + ACTIVE_WAIT, 0.5
    while snap.state == "PROCESSING":
        if time.monotonic() > deadline:
            raise APIError(f"Media file {snap.name} was still PROCESSING after {ACTIVE_WAIT:.0f} s; call again later.")
        time.sleep(delay)
        delay = min(delay * 1.5, 10.0)
        got = _client.get_file(client, snap.name, retry)
        if got is None:
            raise APIError(f"Media file {snap.name} disappeared while it was being processed; call again.")
        snap = got
    if snap.state != "ACTIVE":
        raise MediaError(f"The service could not process media file {snap.name} (state {snap.state}).")
    return snap


def _record(media: str, snap: _client.FileSnapshot, run_id: str, *, ours: bool) -> dict[str, object]:
    return {"media_id": media, "name": snap.name, "uri": snap.uri, "expires_at": snap.expires_at, "run_id": run_id,
            "ours": ours}  # fmt: skip


def _records(pairs: list[tuple[str, _client.FileSnapshot]], run_id: str, *, ours: bool) -> pl.DataFrame:
    return pl.DataFrame([_record(m, s, run_id, ours=ours) for m, s in pairs], schema=MEDIA_FILES_SCHEMA)


def cleanup(store: Store, client: genai.Client | None, run_id: str, retry: types.HttpRetryOptions | None,
            concurrency: int) -> int:  # fmt: skip
    """Delete the media files this run uploaded; returns how many."""
    mine = store.media_files.filter((pl.col("run_id") == run_id) & pl.col("ours"))
    if mine.is_empty() or client is None:
        return 0
    names = mine.get_column("name").to_list()
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(lambda n: _client.delete_file(client, n, retry), names))
    store.set_media_files(pl.DataFrame(schema=MEDIA_FILES_SCHEMA), drop=names)
    return len(names)
