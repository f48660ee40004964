"""Plain data passed between the emulator and the code that configures it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol, runtime_checkable

from polars_gemini.emulator._generate import prompt_text
from polars_gemini.emulator._status import EmulatedError


@dataclass(frozen=True)
class MediaPart:
    """One media part of a request (`inlineData` or `fileData`), resolved and checked: its bytes and tokens.

    `mime_type` is normalized (`image/jpg` -> `image/jpeg`); `modality` is how `promptTokensDetails`
    names it (IMAGE, AUDIO, VIDEO, DOCUMENT, TEXT); `tokens` are its prompt tokens for the request's model
    and media resolution (`polars_gemini.tokens.media`); `source` is "inline", the file's name
    (`files/<id>`) or the fetched URL.
    """

    mime_type: str
    data: bytes = field(repr=False)
    modality: str
    tokens: int
    source: str = "inline"

    @property
    def digest(self) -> str:
        """The first 12 hex characters of the SHA-256 of the bytes: what the default responder quotes."""
        return hashlib.sha256(self.data).hexdigest()[:12]


@dataclass(frozen=True)
class ResponderRequest:
    """One `GenerateContentRequest` for a responder to answer.

    `request` is the request as the API received it, with every field name in camelCase.
    `key` is the batch line's `key` (file input) or `metadata["key"]` (inline input), `None` for
    synchronous calls. `mode` says which API it came through. `media` holds the request's media parts
    in the order of `contents` and their parts, already checked (a request whose media fail never reaches
    a responder).
    """

    model: str
    request: dict[str, Any]
    key: str | None = None
    mode: Literal["batch", "sync"] = "sync"
    media: tuple[MediaPart, ...] = ()

    @property
    def text(self) -> str:
        """The text of every part of `contents`, joined by newlines: handy for predicates."""
        return prompt_text(self.request)


Responder = Callable[[ResponderRequest], dict[str, Any]]
"""Answers one request with a `GenerateContentResponse` dict, or raises `EmulatedError`."""

Outcome = dict[str, Any] | EmulatedError


@runtime_checkable
class BatchResponder(Protocol):
    """A responder that can also answer many requests at once (the default does, to count tokens in bulk)."""

    def __call__(self, request: ResponderRequest) -> dict[str, Any]: ...

    def respond_many(self, requests: Sequence[ResponderRequest]) -> list[Outcome]: ...


class ManyAtOnce:
    """Base of responders that answer in bulk (`respond_many`): one request is a batch of one, and its error is
    raised."""

    def __call__(self, request: ResponderRequest) -> dict[str, Any]:
        outcome = self.respond_many([request])[0]
        if isinstance(outcome, EmulatedError):
            raise outcome
        return outcome

    def respond_many(self, requests: Sequence[ResponderRequest]) -> list[Outcome]:
        raise NotImplementedError


@dataclass(frozen=True)
class EmbeddingRequest:
    """One `EmbedContentRequest` for an embedder (`Emulator(embedder=...)`) to answer with its vector.

    `text` is what gets embedded: the text parts of `content` joined by newlines, cut to the model's input token
    limit (the real API truncates silently; see `_embed`). `task_type` is None for none or TASK_TYPE_UNSPECIFIED,
    `dimensions` None for the model's full size. `key` is the batch line's `key` or `metadata["key"]`, `None` in
    synchronous calls; `request` is the request as received, field names in camelCase.
    """

    model: str
    text: str
    task_type: str | None = None
    title: str | None = None
    dimensions: int | None = None
    key: str | None = None
    mode: Literal["batch", "sync"] = "sync"
    request: dict[str, Any] = field(default_factory=dict, repr=False)


Embedder = Callable[[EmbeddingRequest], Sequence[float]]
"""Answers one embedding request with its values, or raises `EmulatedError` (that row's error in a batch)."""


@runtime_checkable
class BatchEmbedder(Protocol):
    """An embedder that can also answer many requests at once (the default does, to round them in one pass)."""

    def __call__(self, request: EmbeddingRequest) -> Sequence[float]: ...

    def embed_many(self, requests: Sequence[EmbeddingRequest]) -> list[Sequence[float] | EmulatedError]: ...


@dataclass(frozen=True)
class AnsweredRequest:
    """One generation request the emulator answered, as `emu.answered()` lists them: what the real service would bill.

    `route` is "batch" (a request of batch job `job`, "batches/<id>") or "generate" (a synchronous `generateContent`
    call; `job` is None). `tier` is the tier it was served in: "batch" for every batch-job request (whatever its
    `serviceTier` says), else "standard", "flex" or "priority" as requested (none, or "unspecified": "standard").
    `model` is the bare model name, `prompt` the text parts of `contents` joined by newlines (`ResponderRequest.text`),
    `key` the batch line's `key` or inline `metadata["key"]` (None for generateContent).

        >>> AnsweredRequest("batch", "batch", "gemini-2.5-flash", "Hi", key="r1", job="batches/a")
        AnsweredRequest(route='batch', tier='batch', model='gemini-2.5-flash', prompt='Hi', key='r1', job='batches/a')
    """

    route: Literal["batch", "generate"]
    tier: str
    model: str
    prompt: str
    key: str | None = None
    job: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the emulator received. The API key is never stored (header nor `key=` parameter).

    `query` holds the last value of each query parameter; `body_json` is the parsed JSON body
    (parsed on first access), or `None` for empty, non-JSON (uploaded JSONL) or dropped bodies:
    chunk uploads over 1 MiB are not kept. `body_size` is the body's length in bytes.
    """

    endpoint: str
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = field(default=b"", repr=False)
    body_size: int = 0

    @cached_property
    def body_json(self) -> Any:
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError:  # JSONL uploads, binary data, malformed bodies sent on purpose
            return None
