"""Small composable responders for tests: fixed answers, refusals, errors, and routing by key or predicate; and
`embedding`, the vectors the emulator serves for a text (with `cosine` to compare them).

Each function returns a responder (a callable taking a `ResponderRequest`). Usage metadata stays
realistic (prompt tokens counted, thinking tokens spent by thinking models), and every responder here
answers whole batches with one tokenizer call, so they stay fast on 100k-request jobs.

    >>> from polars_gemini.emulator import Emulator, responses
    >>> failing = responses.error(500, "boom")
    >>> responder = responses.when(lambda r: "FAIL" in r.text, failing, responses.text("ok"))
    >>> with Emulator(responder=responder) as emu:
    ...     client = emu.client()  # keep a reference: a collected Client closes its connections
    ...     client.models.generate_content(model="gemini-2.0-flash", contents="hi").text
    'ok'
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from polars_gemini.emulator import _embed as g_embed
from polars_gemini.emulator import _generate as g
from polars_gemini.emulator._drafts import Drafting, plain_draft
from polars_gemini.emulator._flaws import FLAWS, Flawed
from polars_gemini.emulator._responder import default_responder
from polars_gemini.emulator._status import EmulatedError
from polars_gemini.emulator._types import BatchResponder, Outcome, Responder, ResponderRequest
from polars_gemini.emulator._vectors import FULL_DIMENSIONS

Answer = Responder | dict[str, Any]
"""A responder, or a fixed `GenerateContentResponse` dict returned as is."""

__all__ = [
    "FLAWS", "Answer", "blocked", "by_key", "cosine", "embedding", "error", "finish", "flawed", "json_value",
    "media_digest", "media_tag", "text", "when", "with_thought",
]  # fmt: skip


def embedding(
    text: str,
    *,
    model: str = "gemini-embedding-001",
    task_type: str | None = None,
    title: str | None = None,
    dimensions: int | None = None,
) -> list[float]:
    """Exactly the values the emulator serves for `text` (embedContent, batchEmbedContents and embedding batch jobs).

    A bag of words (see `_vectors`): near-duplicate texts are close (cosine near 1), unrelated ones near 0, task types
    move a vector slightly, `title` counts only with RETRIEVAL_DOCUMENT. The full size (3072) is unit length; a
    smaller `dimensions` is the first values of it, not renormalized, as on the real service. Texts over the model's
    input token limit are cut first, as the service does silently.

    >>> full, short = embedding("A red fox"), embedding("A red fox", dimensions=768)
    >>> len(full), len(short), short == full[:768], round(sum(v * v for v in full), 6)
    (3072, 768, True, 1.0)
    >>> round(cosine(embedding("The red fox sleeps"), embedding("the red fox sleeps.")), 2) > 0.9
    True
    """
    known = g_embed.TASK_TYPES
    if task_type is not None and task_type not in known:
        raise ValueError(f"Unknown task_type {task_type!r}; expected one of {', '.join(known)}.")
    if dimensions is not None and not 1 <= dimensions <= FULL_DIMENSIONS:
        raise ValueError(f"dimensions must be between 1 and {FULL_DIMENSIONS}, got {dimensions}.")
    return g_embed.embedding_values(text, model, task_type, title, dimensions)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (of the same length): what near-duplicate searches rank by.

    >>> cosine([1.0, 0.0], [0.0, 2.0]), cosine([3.0, 4.0], [3.0, 4.0])
    (0.0, 1.0)
    """
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def media_digest(data: bytes) -> str:
    """The digest the default responder quotes for a media part: the first 12 hex characters of its SHA-256.

    >>> media_digest(b"test")
    '9f86d081884c'
    """
    return hashlib.sha256(data).hexdigest()[:12]


def media_tag(*datas: bytes) -> str:
    """What the default responder's answers (text, and each free-text schema string) start with, followed by
    a space, for a request whose media parts hold `datas` (in the order of `contents` and their parts).

    >>> media_tag(b"test", b"png")
    '[media 9f86d081884c 8f8cbb7dcf46]'
    """
    return g.media_tag([media_digest(data) for data in datas])


def text(answer: str, *, finish_reason: str = "STOP") -> Responder:
    """Always answer `answer` (no part at all when it is empty)."""
    return Drafting(lambda request: plain_draft(request, answer, finish_reason=finish_reason))


def reply(answer: Callable[[ResponderRequest], str], *, finish_reason: str = "STOP") -> Responder:
    """Answer each request with the text `answer(request)` computes (an echo of its prompt, say). Unlike a function
    that returns `text(...)(request)`, a batch's tokens are counted in one pass, not once per request.

    >>> from polars_gemini.emulator import Emulator
    >>> with Emulator(responder=reply(lambda request: "echo: " + request.text)) as emu:
    ...     emu.client().models.generate_content(model="gemini-2.0-flash", contents="Hi").text
    'echo: Hi'
    """
    return Drafting(lambda request: plain_draft(request, answer(request), finish_reason=finish_reason))


def json_value(value: Any) -> Responder:
    """Always answer `value` encoded as JSON, whatever the schema says (for invalid-output tests)."""
    return text(json.dumps(value))


def finish(reason: str, answer: str = "") -> Responder:
    """Stop with `finishReason` `reason` (SAFETY, RECITATION, MAX_TOKENS, OTHER) after `answer`."""
    return text(answer, finish_reason=reason)


def with_thought(
    answer: str, thought: str = "**Thinking**\n\nWorking it out.", thoughts_tokens: int = 100
) -> Responder:
    """Answer `answer` after a `{"thought": true}` summary part, spending `thoughts_tokens`."""
    return Drafting(lambda request: plain_draft(request, answer, thought=thought, thoughts=thoughts_tokens))


def flawed(
    rate: float, *, kinds: Sequence[str] = FLAWS, seed: int = 0, answer: Responder = default_responder
) -> Responder:
    """`answer`'s answers, with about `rate` of them flawed the way models fail now and then: "off_schema" (valid
    JSON breaking the response schema: a word where a number, boolean, enum member or date belongs, else a required
    property missing), "invalid_json" (the JSON in a Markdown code fence) or "truncated" (cut in half, finishReason
    MAX_TOKENS; the only kind a plain-text answer can get). Seeded by `seed`; each attempt of a request draws afresh,
    so sending a flawed request again usually gets a good answer (see `_flaws`).

    >>> from polars_gemini.emulator import Emulator
    >>> with Emulator(responder=flawed(1.0, kinds=["truncated"])) as emu:
    ...     client = emu.client()
    ...     reply = client.models.generate_content(model="gemini-2.0-flash", contents="Hi there")
    ...     reply.candidates[0].finish_reason.name
    'MAX_TOKENS'
    """
    return Flawed(answer, rate, kinds, seed)


def blocked(reason: str = "SAFETY") -> Responder:
    """Refuse the prompt: `promptFeedback.blockReason` and no candidates."""
    return Drafting(lambda request: plain_draft(request, "", block_reason=reason, thoughts=0))


def error(code: int = 500, message: str = "Internal error encountered.", status: str | None = None) -> Responder:
    """Fail every request with `EmulatedError(code, message, status)`."""

    def respond(request: ResponderRequest) -> dict[str, Any]:
        raise EmulatedError(code, message, status)

    return respond


def when(
    predicate: Callable[[ResponderRequest], bool], then: Answer, otherwise: Answer = default_responder
) -> Responder:
    """Answer with `then` where `predicate(request)` holds, else with `otherwise`."""
    return _Router(lambda request: then if predicate(request) else otherwise)


def by_key(answers: Mapping[str, Answer], default: Answer = default_responder) -> Responder:
    """Answer each batch key with its own responder or fixed response (e.g. replay a real results file)."""
    return _Router(lambda request: answers.get(request.key or "", default))


class _Router:
    """Sends each request to the answer `choose` picks; batches go to each answer as sub-batches."""

    def __init__(self, choose: Callable[[ResponderRequest], Answer]) -> None:
        self._choose = choose

    def __call__(self, request: ResponderRequest) -> dict[str, Any]:
        answer = self._choose(request)
        return answer if isinstance(answer, dict) else answer(request)

    def respond_many(self, requests: Sequence[ResponderRequest]) -> list[Outcome]:
        groups: dict[int, tuple[Answer, list[int]]] = {}
        for i, request in enumerate(requests):
            answer = self._choose(request)
            groups.setdefault(id(answer), (answer, []))[1].append(i)
        outcomes: list[Outcome] = [EmulatedError(13, "unanswered")] * len(requests)
        for answer, positions in groups.values():
            answered = _many(answer, [requests[i] for i in positions])
            for i, outcome in zip(positions, answered, strict=True):
                outcomes[i] = outcome
        return outcomes


def _many(answer: Answer, requests: list[ResponderRequest]) -> list[Outcome]:
    if isinstance(answer, dict):
        return [answer] * len(requests)
    if isinstance(answer, BatchResponder):
        return list(answer.respond_many(requests))
    return [_one(answer, request) for request in requests]


def _one(answer: Responder, request: ResponderRequest) -> Outcome:
    try:
        return answer(request)
    except EmulatedError as exc:
        return exc
