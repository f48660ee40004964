"""Known Gemini models and their behaviour that matters for batching and estimates.

Dated data, not scattered literals: `AS_OF` says when this was last checked against Google's model pages.
"""

from __future__ import annotations

from dataclasses import dataclass

AS_OF = "2026-11-24"
SOURCE = "ai.google.dev/gemini-api/docs/models and /pricing (snapshot in shared/gemini-api/README.md)"


@dataclass(frozen=True)
class ModelInfo:
    """What the library needs to know about a model.

    `thinks_by_default`: the model spends thinking tokens unless `thinking_budget=0` is set.
    `default_thinking_tokens`: expected thinking tokens per request when nothing is configured (a dated guess,
    overridable per call); `max_thinking_tokens`: the upper bound of the dynamic thinking budget.
    """

    name: str
    thinks_by_default: bool
    default_thinking_tokens: int
    max_thinking_tokens: int
    max_output_tokens: int = 65_536
    supports_batch: bool = True
    thinking_levels: tuple[tuple[str, int], ...] = ()  # Gemini 3: (level, expected thinking tokens per request)
    can_stop_thinking: bool = True  # whether thinking_budget=0 turns thinking off (2.5 Pro: it cannot)
    embeds: bool = False  # an embedding model (embedContent, asyncBatchEmbedContent), not a generation model
    embedding_dimensions: int = 0  # an embedding model's full output size (its default and maximum)
    input_token_limit: int | None = None  # tokens per request the model reads (embedding models: per text)

    def level_tokens(self, level: str) -> int | None:
        """Expected thinking tokens per request at `level` ("minimal" ... "high"), None if the model has no levels."""
        return dict(self.thinking_levels).get(level.lower())


# Gemini 3 thinks at a level (minimal, low, medium, high; the API default is high). Google publishes no token counts
# per level: these are dated guesses scaled from each model's default (high), to be replaced by `calibrate=`.
def _levels(high: int) -> tuple[tuple[str, int], ...]:
    return (("minimal", high // 20), ("low", high // 4), ("medium", high // 2), ("high", high), ("xhigh", 2 * high))


_M = ModelInfo
MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        _M("gemini-3.5-flash", True, 1_000, 24_576, thinking_levels=_levels(1_000)),
        _M("gemini-3.5-flash-lite", True, 500, 24_576, thinking_levels=_levels(500)),
        _M("gemini-3.1-pro-preview", True, 2_000, 32_768, thinking_levels=_levels(2_000)),
        _M("gemini-3-flash-preview", True, 1_000, 24_576, thinking_levels=_levels(1_000)),
        _M("gemini-3.1-flash-lite-preview", True, 500, 24_576, thinking_levels=_levels(500)),
        _M("gemini-2.5-pro", True, 2_000, 32_768, can_stop_thinking=False),
        _M("gemini-2.5-flash", True, 1_000, 24_576),
        _M("gemini-2.5-flash-lite", False, 0, 24_576),
        _M("gemini-2.0-flash", False, 0, 0, 8_192),
        _M("gemini-2.0-flash-lite", False, 0, 0, 8_192),
        # ai.google.dev/gemini-api/docs/embeddings: 3,072 dimensions (768 and 1,536 recommended smaller sizes),
        # 2,048 input tokens; batch embeddings since 2025-09 (developers.googleblog.com, "Gemini Batch API now
        # supports Embeddings").
        _M("gemini-embedding-001", False, 0, 0, 0, embeds=True, embedding_dimensions=3_072, input_token_limit=2_048),
        # Multimodal, 8,192 input tokens, 3,072 dimensions (Vertex AI model card); the pricing page of 2026-03-30 lists
        # no batch rate for gemini-embedding-2-preview ("Not available"): sync mode only, unless check_model=False.
        _M("gemini-embedding-2-preview", False, 0, 0, 0, supports_batch=False, embeds=True, embedding_dimensions=3_072,
           input_token_limit=8_192),
        _M("gemini-embedding-2", False, 0, 0, 0, supports_batch=False, embeds=True, embedding_dimensions=3_072,
           input_token_limit=8_192),
    )
}


def normalize_model(model: str) -> str:
    """`models/gemini-2.5-flash` and `gemini-2.5-flash` name the same model."""
    return model.removeprefix("models/")


def model_info(model: str) -> ModelInfo | None:
    return MODELS.get(normalize_model(model))
