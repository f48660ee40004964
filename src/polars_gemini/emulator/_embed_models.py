"""The embedding models the emulator serves, as `models.get` / `models.list` show them (dated data with sources).

What was found (checked 2026-11; the real service is unreachable from here):

- `gemini-embedding-001`: version "001", displayName "Gemini Embedding 001", description "Obtain a distributed
  representation of a text.", inputTokenLimit 2048, outputTokenLimit 1, supportedGenerationMethods `["embedContent",
  "countTextTokens", "countTokens", "asyncBatchEmbedContent"]` (a models.list snapshot of early 2026 kept as a static
  catalogue in a public Go proxy; a mid-2025 dump, before batch embeddings, lists the first three only). Output 3072
  dimensions by default and at most, Matryoshka-truncatable (Google's announcement of the model,
  developers.googleblog.com/en/gemini-embedding-available-gemini-api, quoted in simonw/llm-gemini #102); the docs
  recommend 768, 1536 or 3072 and call the range "128-3072", but the cookbook's batch sample (samples/
  input_file_embeddings.jsonl, output_dimensionality 3 and 4) got 3 and 4 values back: the service takes any size from
  1.
- `gemini-embedding-2-preview` and `gemini-embedding-2` (multimodal; Vertex model card and OpenRouter: 8,192 input
  tokens, up to 3,072 dimensions with MRL). Whether the Gemini Batch API takes them is *unverified*; the emulator
  accepts them there too. Their supportedGenerationMethods are assumed equal to gemini-embedding-001's.
- `text-embedding-004` was shut down on the Gemini API on 2026-01-14 and `embedding-001` on 2025-08-14 (same
  announcement); `gemini-embedding-exp-03-07` ended in 2025. None of them is served: requests get the 404 of an
  unknown model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AS_OF = "2026-11"
_METHODS = ("embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent")


@dataclass(frozen=True)
class EmbeddingModel:
    """One embedding model: its input token limit (longer texts are silently truncated, see `_embed`) and its
    output size (`dimensions` is both the default and the maximum `outputDimensionality`)."""

    name: str
    version: str
    display_name: str
    input_token_limit: int
    dimensions: int = 3072
    methods: tuple[str, ...] = _METHODS

    def json(self) -> dict[str, Any]:
        """The `Model` resource of `models.get`, in the key order of the real listing."""
        return {
            "name": f"models/{self.name}",
            "version": self.version,
            "displayName": self.display_name,
            "description": "Obtain a distributed representation of a text.",
            "inputTokenLimit": self.input_token_limit,
            "outputTokenLimit": 1,
            "supportedGenerationMethods": list(self.methods),
        }


EMBEDDING_MODELS: dict[str, EmbeddingModel] = {
    model.name: model
    for model in (
        EmbeddingModel("gemini-embedding-001", "001", "Gemini Embedding 001", 2048),
        EmbeddingModel("gemini-embedding-2", "2", "Gemini Embedding 2", 8192),
        EmbeddingModel("gemini-embedding-2-preview", "2-preview", "Gemini Embedding 2 Preview", 8192),
    )
}
"""Served embedding models by bare name; `Settings.embedding_models` starts as a copy."""
