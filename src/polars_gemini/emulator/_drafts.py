"""Two-phase responses: a draft per request (no tokenizer), then one token count for a whole batch.

`count_tokens` has a fixed cost per call (a Polars query, ~2 ms) and a tiny cost per text, so a
responder that counted request by request would spend minutes on a 100k-request job. `Drafting`
turns any draft function into a responder that also answers batches with a single count.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from polars_gemini.emulator import _generate as g
from polars_gemini.emulator._status import EmulatedError
from polars_gemini.emulator._types import ManyAtOnce, Outcome, ResponderRequest


@dataclass(frozen=True)
class Draft:
    """A response before token counting: everything that does not need the tokenizer."""

    model: str
    seed: int
    prompt_texts: list[str]
    answer: str
    thought: str | None = None
    thoughts: int = 0
    max_output: int | None = None
    finish_reason: str = "STOP"
    block_reason: str | None = None
    media: tuple[tuple[str, int], ...] = ()  # (modality, tokens) per media part of the prompt


class Drafting(ManyAtOnce):
    """A thread-safe responder built from a draft function; `respond_many` counts tokens once per batch."""

    def __init__(self, draft: Callable[[ResponderRequest], Draft]) -> None:
        self._draft = draft

    def respond_many(self, requests: Sequence[ResponderRequest]) -> list[Outcome]:
        drafts = [_try(self._draft, request) for request in requests]
        ready = [d for d in drafts if isinstance(d, Draft)]
        counts = g.token_counts(text for d in ready for text in (*d.prompt_texts, d.answer))
        return [finish(d, counts) if isinstance(d, Draft) else d for d in drafts]


def _try(draft: Callable[[ResponderRequest], Draft], request: ResponderRequest) -> Draft | EmulatedError:
    try:
        return draft(request)
    except EmulatedError as error:
        return error


def plain_draft(request: ResponderRequest, answer: str, **fields: Any) -> Draft:
    """A draft answering `answer`, spending the thinking tokens the model and config imply."""
    texts = g.RequestTexts.of(request.request)
    seed = texts.seed(request.model, [part.digest for part in request.media])
    config = g.generation_config(request.request)
    thoughts = thinking_tokens(request.model, config, random.Random(seed))
    media = media_usage(request)
    return Draft(request.model, seed, texts.counted(), answer, **{"thoughts": thoughts, "media": media, **fields})


def media_usage(request: ResponderRequest) -> tuple[tuple[str, int], ...]:
    """(modality, tokens) of each media part, for `Draft.media`."""
    return tuple((part.modality, part.tokens) for part in request.media)


def thinking_tokens(model: str, config: dict[str, Any], rng: random.Random) -> int:
    """Deterministic thinking spend: around `ModelInfo.default_thinking_tokens`, capped by the budget."""
    info = g.info_of(model)
    thinking = config.get("thinkingConfig") or {}
    budget, level = thinking.get("thinkingBudget"), thinking.get("thinkingLevel")
    asked = (budget is not None and budget != 0) or level is not None
    if info.max_thinking_tokens == 0 or budget == 0 or not (info.thinks_by_default or asked):
        return 0
    typical = info.default_thinking_tokens or info.max_thinking_tokens // 8
    tokens = rng.randint(typical // 2, typical * 3 // 2)
    if str(level).lower() in ("minimal", "low"):
        tokens //= 4
    cap = info.max_thinking_tokens if budget in (None, -1) else int(budget)
    return max(1, min(tokens, cap))


def finish(draft: Draft, counts: dict[str, int]) -> dict[str, Any]:
    """The `GenerateContentResponse` of a draft, given token counts that include its texts."""
    prompt_tokens = sum(counts[text] for text in draft.prompt_texts)
    if draft.block_reason is not None:
        return _blocked(draft, prompt_tokens)
    answer, answer_tokens, thoughts, reason = draft.answer, counts[draft.answer], draft.thoughts, draft.finish_reason
    if draft.max_output is not None and thoughts + answer_tokens > draft.max_output:
        thoughts = min(thoughts, draft.max_output)
        answer, answer_tokens = truncate(answer, answer_tokens, draft.max_output - thoughts)
        reason = "MAX_TOKENS"
    parts = [{"text": draft.thought, "thought": True}] if draft.thought else []
    parts += [g.answer_part(draft.model, answer, draft.seed)] if answer else []
    usage = g.usage(prompt_tokens, answer_tokens, thoughts, draft.media)
    return g.response(draft.model, draft.seed, [g.candidate(parts, reason)], usage)


def _blocked(draft: Draft, prompt_tokens: int) -> dict[str, Any]:
    """A refused prompt: `promptFeedback.blockReason` and no candidates at all."""
    response = g.response(draft.model, draft.seed, [], g.usage(prompt_tokens, 0, 0, draft.media))
    del response["candidates"]
    return {"promptFeedback": {"blockReason": draft.block_reason}, **response}


def truncate(text: str, tokens: int, room: int) -> tuple[str, int]:
    """`text` cut to at most `room` tokens (by proportion, then trimmed), with its new token count."""
    if room <= 0 or not text:
        return "", 0
    cut = text[: max(1, len(text) * room // max(tokens, 1))]
    count = g.token_counts([cut])[cut]
    while count > room and len(cut) > 1:
        cut = cut[: len(cut) * 9 // 10]
        count = g.token_counts([cut])[cut]
    return cut, count
