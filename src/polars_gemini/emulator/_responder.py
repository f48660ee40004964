"""The default responder: deterministic, plausible answers with realistic usage metadata.

- Plain prompts get one short sentence quoting the start of the prompt.
- `responseMimeType: application/json` with `responseSchema` or `responseJsonSchema` gets JSON that
  conforms to the schema (`_schema.fake_value`); `text/x.enum` gets one enum member.
- A request with media parts gets answers that quote them: the text answer, the `answer` of JSON without
  a schema, and every free-text string a schema generates (type string, no `format`, `enum` or `const`)
  start with `[media <d1> <d2> ...] ` where each digest is `hashlib.sha256(part_bytes).hexdigest()[:12]`,
  one per media part in the order of `contents` and their parts (`responses.media_tag` builds it). A
  `maxLength` shorter than that cuts it; enum answers cannot carry it.
- Models that think by default (`ModelInfo.thinks_by_default`) spend `thoughtsTokenCount` tokens,
  none with `thinkingBudget: 0`, at most `thinkingBudget` when one is set; `includeThoughts` adds a
  `{"thought": true}` summary part before the answer.
- `maxOutputTokens` covers thinking and answer together, as on the real Gemini 2.5 models: the answer
  is cut to the room left and `finishReason` becomes `MAX_TOKENS` (which is how truncated JSON, and
  answers with no text at all, come about).
"""

from __future__ import annotations

import random
from typing import Any

from polars_gemini.emulator import _generate as g
from polars_gemini.emulator._drafts import Draft, Drafting, media_usage, thinking_tokens
from polars_gemini.emulator._schema import fake_value
from polars_gemini.emulator._types import ResponderRequest


def _draft(request: ResponderRequest) -> Draft:
    texts = g.RequestTexts.of(request.request)
    digests = [part.digest for part in request.media]
    seed = texts.seed(request.model, digests)
    rng = random.Random(seed)
    config = g.generation_config(request.request)
    thoughts = thinking_tokens(request.model, config, rng)
    include = bool((config.get("thinkingConfig") or {}).get("includeThoughts"))
    prompt = "\n".join(texts.prompt)
    max_output = config.get("maxOutputTokens")
    return Draft(
        model=request.model,
        seed=seed,
        prompt_texts=texts.counted(),
        answer=_answer(prompt, texts.schema, config, rng, g.media_tag(digests) if digests else ""),
        thought=_thought_summary(prompt) if include and thoughts else None,
        thoughts=thoughts,
        max_output=int(max_output) if max_output is not None else None,
        media=media_usage(request),
    )


def _answer(prompt: str, schema: dict[str, Any] | None, config: dict[str, Any], rng: random.Random,
            tag: str) -> str:  # fmt: skip
    mime = config.get("responseMimeType", "text/plain")
    if mime == "text/x.enum" and schema and schema.get("enum"):
        return str(rng.choice(schema["enum"]))
    prefix = f"{tag} " if tag else ""
    if mime != "application/json":
        return prefix + g.sentence(prompt, rng)
    if schema is None:
        return g.compact_json({"answer": prefix + g.sentence(prompt, rng)})
    words = tuple(g.topic_words(prompt, 12))
    value = fake_value(schema, rng, openapi="responseSchema" in config, words=words, prefix=prefix)
    return g.compact_json(value)


def _thought_summary(prompt: str) -> str:
    topic = " ".join(g.topic_words(prompt)) or "the request"
    return f"**Weighing the request**\n\nI am considering {topic} and settling on a concise answer."


class DefaultResponder(Drafting):
    """The responder used when `Emulator(responder=...)` is not given. Thread-safe and stateless.

    >>> req = ResponderRequest("gemini-2.0-flash", {"contents": [{"parts": [{"text": "Why is it blue?"}]}]})
    >>> default_responder(req)["candidates"][0]["finishReason"]
    'STOP'
    """

    def __init__(self) -> None:
        super().__init__(_draft)


default_responder = DefaultResponder()
