"""Building blocks of a `GenerateContentResponse`, shared by the default responder and `responses`.

Everything is a pure function of the request, so two runs of the same request agree byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from polars_gemini.core.models import ModelInfo, model_info, normalize_model
from polars_gemini.tokens.tokenizer import count_tokens

compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
"""`json.dumps` without building an encoder per call, which matters at 100k calls."""
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
_STOPWORDS = frozenset({"the", "and", "for", "with", "that", "this", "what", "how", "are", "you", "your", "from"})
_OPENERS = ("In short,", "Briefly,", "Put simply,", "Essentially,", "At its core,", "Simply put,")
_BODIES = (
    "the answer comes down to a few clear ideas.",
    "it is best understood through one concrete example.",
    "it depends mostly on context and on the goal at hand.",
    "it follows from a small number of well-known principles.",
    "there is one main answer and a couple of caveats.",
)


@dataclass(frozen=True)
class RequestTexts:
    """A request's texts, extracted once: prompt parts, system-instruction parts, response schema."""

    prompt: list[str]
    system: list[str]
    schema: dict[str, Any] | None

    @classmethod
    def of(cls, request: dict[str, Any]) -> RequestTexts:
        prompt = list(iter_texts(request.get("contents")))
        return cls(prompt, list(iter_texts(request.get("systemInstruction"))), schema_of(request))

    def counted(self) -> list[str]:
        """The texts whose tokens make up `promptTokenCount`.

        Assumption (unverified against the real service): a response schema is counted as its
        compact JSON text, the way the model sees it in its prompt.
        """
        return [*self.prompt, *self.system, *([compact_json(self.schema)] if self.schema is not None else [])]

    def seed(self, model: str, digests: Sequence[str] = ()) -> int:
        """A stable 64-bit seed from the model, these texts and the media `digests`: never the global `random` state.

        Only texts and media count (not options), so an answer does not change with the key order or spelling
        of the request's options, and hashing stays cheap at 100k requests.
        """
        media = ["\x00media", *digests] if digests else []
        text = "\x1f".join([normalize_model(model), *self.prompt, "\x00", *self.system, *media])
        digest = hashlib.blake2b(text.encode(errors="surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big")


def seed_of(model: str, request: dict[str, Any]) -> int:
    return RequestTexts.of(request).seed(model)


def iter_texts(content: Any) -> Iterator[str]:
    """The `text` of every part of a `Content` (or a list of them)."""
    for item in content if isinstance(content, list) else [content]:
        if isinstance(item, dict):
            for part in item.get("parts") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]


def prompt_text(request: dict[str, Any]) -> str:
    """The user-visible prompt: the text parts of `contents`, joined by newlines."""
    return "\n".join(iter_texts(request.get("contents")))


def counted_texts(request: dict[str, Any]) -> list[str]:
    """The texts whose tokens make up `promptTokenCount` (see `RequestTexts.counted`)."""
    return RequestTexts.of(request).counted()


def generation_config(request: dict[str, Any]) -> dict[str, Any]:
    config = request.get("generationConfig")
    return config if isinstance(config, dict) else {}


def schema_of(request: dict[str, Any]) -> dict[str, Any] | None:
    config = generation_config(request)
    schema = config.get("responseSchema") or config.get("responseJsonSchema")
    return schema if isinstance(schema, dict) else None


def info_of(model: str) -> ModelInfo:
    """What the emulator assumes of a model; models outside the table neither think nor stop early."""
    return model_info(model) or ModelInfo(normalize_model(model), False, 0, 0)


def topic_words(text: str, limit: int = 5) -> list[str]:
    words = [w for w in _WORD.findall(text) if w.lower() not in _STOPWORDS]
    return words[:limit]


def sentence(prompt: str, rng: random.Random) -> str:
    """A short, plausible one-sentence answer quoting the start of the prompt.

    >>> sentence("Explain how AI works in a few words.", random.Random(0))
    'Essentially, on "Explain how AI works in a few words", it follows from a small number of well-known principles.'
    """
    words = prompt.split()[:8]
    topic = f'"{" ".join(words).rstrip(".,;:!?")}"' if words else "this question"
    return f"{rng.choice(_OPENERS)} on {topic}, {rng.choice(_BODIES)}"


def response_id(seed: int) -> str:
    """17 bytes as 23 characters of unpadded URL-safe base64 (no `=`), the shape of real `responseId`s.

    >>> response_id(1), len(response_id(2**64 - 1))
    ('c47bFSfjI5P655ibF7d-5iE', 23)
    """
    digest = hashlib.blake2b(seed.to_bytes(8, "big"), digest_size=17).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def media_tag(digests: Sequence[str]) -> str:
    """How the default responder quotes a request's media: `[media <d1> <d2> ...]`, one digest per part in order.

    >>> media_tag(["9f86d081884c", "60303ae22b99"])
    '[media 9f86d081884c 60303ae22b99]'
    """
    return f"[media {' '.join(digests)}]"


def prompt_details(text_tokens: int, media: Sequence[tuple[str, int]] = ()) -> list[dict[str, Any]]:
    """`promptTokensDetails`: TEXT first, then each media modality (in order of appearance) with its tokens."""
    totals: dict[str, int] = {"TEXT": text_tokens}
    for modality, tokens in media:
        totals[modality] = totals.get(modality, 0) + tokens
    return [{"modality": modality, "tokenCount": tokens} for modality, tokens in totals.items()]


def usage(prompt: int, candidates: int, thoughts: int, media: Sequence[tuple[str, int]] = ()) -> dict[str, Any]:
    """`usageMetadata` with Google's habit of omitting zero counts; `prompt` counts text, `media` the
    (modality, tokens) of each media part, added to `promptTokenCount`."""
    total_prompt = prompt + sum(tokens for _, tokens in media)
    out: dict[str, Any] = {"promptTokenCount": total_prompt}
    if candidates:
        out["candidatesTokenCount"] = candidates
    out["totalTokenCount"] = total_prompt + candidates + thoughts
    out["promptTokensDetails"] = prompt_details(prompt, media)
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    return out


def candidate(parts: list[dict[str, Any]], finish_reason: str) -> dict[str, Any]:
    """One candidate; with no parts the content has only its role, as in real MAX_TOKENS replies."""
    content: dict[str, Any] = {"role": "model", "parts": parts} if parts else {"role": "model"}
    return {"content": content, "finishReason": finish_reason, "index": 0}


def response(model: str, seed: int, candidates: list[dict[str, Any]], usage_metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "candidates": candidates,
        "usageMetadata": usage_metadata,
        "modelVersion": normalize_model(model),
        "responseId": response_id(seed),
    }


def answer_part(model: str, text: str, seed: int) -> dict[str, Any]:
    """Gemini 3 models sign their parts; the SDK decodes `thoughtSignature` as base64 bytes."""
    part: dict[str, Any] = {"text": text}
    if normalize_model(model).startswith("gemini-3"):
        part["thoughtSignature"] = base64.b64encode(seed.to_bytes(8, "big") * 4).decode()
    return part


_TOKEN_CACHE: dict[str, int] = {}
_TOKEN_CACHE_LIMIT = 1_000_000
Counter = Callable[[list[str]], list[int]]
_COUNTER: list[Counter] = [count_tokens]  # the one in use: the estimator, or an exact tokenizer (`use_counter`)


def use_counter(counter: Counter) -> Counter:
    """Count with `counter` from now on (an exact tokenizer's `count`); returns the one it replaces.

    Process-wide, like the cache: an `Emulator(tokenizer=...)` installs it while it runs and restores the previous
    one when it stops, so emulators with different tokenizers should not run at the same time.
    """
    previous = _COUNTER[0]
    _COUNTER[0] = counter
    _TOKEN_CACHE.clear()
    return previous


def token_counts(texts: Iterable[str]) -> dict[str, int]:
    """Token counts by text: exact when an exact tokenizer is installed (`use_counter`), else the library's own
    estimator, so that estimates are compared with what the service would bill.

    One counter call for all texts not seen before: its per-call cost dwarfs the per-text cost,
    and a 100k-request job repeats its system instruction and schema 100k times.
    """
    known = {text: _TOKEN_CACHE.get(text) for text in dict.fromkeys(texts)}
    missing = [text for text, count in known.items() if count is None]
    if missing:
        fresh = dict(zip(missing, _COUNTER[0](missing), strict=True))
        if len(_TOKEN_CACHE) > _TOKEN_CACHE_LIMIT:
            _TOKEN_CACHE.clear()
        _TOKEN_CACHE.update(fresh)
        known.update(fresh)
    return {text: count or 0 for text, count in known.items()}
