"""Embedding requests (`EmbedContentRequest`) checked and answered the way the real API does.

A request is `{content: {parts: [{text}]}, taskType?, title?, outputDimensionality?, model?}`; key spellings are
normalized on input (`task_type`, `output_dimensionality` work alike, as in proto JSON), and the options may also sit
in an `embedContentConfig` object (the shape of Vertex AI's embedding batch lines). Verdicts, with their sources:

- `taskType` outside the enum (TASK_TYPE_UNSPECIFIED, RETRIEVAL_QUERY, RETRIEVAL_DOCUMENT, SEMANTIC_SIMILARITY,
  CLASSIFICATION, CLUSTERING, QUESTION_ANSWERING, FACT_VERIFICATION, CODE_RETRIEVAL_QUERY; Google's discovery
  document, as generated into Effect-TS/effect packages/ai/google/src/Generated.ts): 400 `Invalid value at 'task_type'
  (type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), "X"` (curl-tested wording quoted in a public
  repository's notes; enum names are case-sensitive, their numbers are accepted as proto JSON allows).
- `outputDimensionality`: 0 or absent is the full size; 1 to the model's size returns the first values (the cookbook
  sample asked for 3 and 4 and got them); negative or above the size is 400 (*wording unverified*).
- `title` without RETRIEVAL_DOCUMENT: the REST reference says "only applicable when TaskType is RETRIEVAL_DOCUMENT";
  every refusal found was client-side (google-generativeai, gemini-api-php), none from the service: the emulator
  accepts it and ignores it (*unverified*).
- Empty content (no text part, or only empty texts): that request's error, 400 INVALID_ARGUMENT (the wording of
  generateContent's empty-parts error; *unverified* for embeddings). In a batch job it is that row's error value.
- Input over the model's input token limit (2,048 for gemini-embedding-001): truncated silently, no error. Three
  independent public codebases say so from experience ("gemini-embedding-001 silently truncates at 2048 tokens");
  the SDK's `EmbedContentResponse.truncated` is documented "not supported in Gemini API". `tokenCount` then counts
  the tokens embedded, at most the limit (*unverified*: the service may bill the whole text).
- Tokens are counted like generation prompts (`_generate.token_counts`: exact with the Gemma 3 tokenizer when loaded,
  else the library's estimator), one counter call per batch.

`batchEmbedContents` takes at most 100 requests ("* BatchEmbedContentsRequest.requests: at most 100 requests can be in
one batch\\n", 400 INVALID_ARGUMENT: geldata/gel #9032, langchain-ai/langchainjs #4491, weaviate/weaviate #11277).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from polars_gemini.emulator import _generate as g
from polars_gemini.emulator._drafts import truncate
from polars_gemini.emulator._embed_models import EMBEDDING_MODELS, EmbeddingModel
from polars_gemini.emulator._faults import Faults
from polars_gemini.emulator._jobs import Entry
from polars_gemini.emulator._results import guarded, internal
from polars_gemini.emulator._status import EmulatedError, invalid_argument
from polars_gemini.emulator._types import BatchEmbedder, Embedder, EmbeddingRequest, Outcome
from polars_gemini.emulator._validate import require_object
from polars_gemini.emulator._vectors import Spec, vectors

TASK_TYPES = (
    "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY", "CLASSIFICATION",
    "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY",
)  # fmt: skip
MAX_BATCH_REQUESTS = 100
TOO_MANY = "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n"
_ENUM = "type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType"
_OPTIONS = ("taskType", "title", "outputDimensionality")
Mode = Literal["batch", "sync"]
OnError = Callable[[BaseException], None]


def _field(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def check(value: Any, model: EmbeddingModel, where: str) -> dict[str, Any]:
    """An `EmbedContentRequest` (camelCase) whose options are valid for `model`; 400 for the whole call otherwise.
    Options found only in `embedContentConfig` are moved to the top level."""
    request = require_object(value, where or "body")
    nested = request.get("embedContentConfig")
    if isinstance(nested, dict):
        request = {**{k: v for k, v in nested.items() if k in _OPTIONS}, **request}
    task = request.get("taskType")
    if task is not None:
        request = {**request, "taskType": _task_type(task, _field(where, "task_type"))}
    dims = request.get("outputDimensionality")
    if dims is not None:
        request = {**request, "outputDimensionality": _dimensions(dims, model, _field(where, "output_dimensionality"))}
    return request


def _task_type(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(TASK_TYPES):
        return TASK_TYPES[value]
    if isinstance(value, str) and value in TASK_TYPES:
        return value
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    raise invalid_argument(f"Invalid value at '{where}' ({_ENUM}), {shown}")


def _dimensions(value: Any, model: EmbeddingModel, where: str) -> int:
    try:
        number = int(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None:
        raise invalid_argument(f"Invalid value at '{where}' (TYPE_INT32), {value!r}")
    if not 0 <= number <= model.dimensions:
        raise invalid_argument(
            f"* EmbedContentRequest.output_dimensionality: {number} is out of range; models/{model.name} "
            f"outputs 1 to {model.dimensions} dimensions (at '{where}')."
        )
    return number


def text_of(request: dict[str, Any]) -> str:
    """The text parts of `content`, joined by newlines (other parts are not embedded)."""
    return "\n".join(g.iter_texts(request.get("content")))


def content_error(request: dict[str, Any]) -> EmulatedError | None:
    """The error of a request with nothing to embed, else None."""
    content = request.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        return invalid_argument("* EmbedContentRequest.content.parts: contents.parts must not be empty.")
    if not any(text for text in g.iter_texts(content)):
        return invalid_argument(
            "* EmbedContentRequest.content.parts[0].data: required oneof field 'data' must have one initialized field"
        )
    return None


def answer(
    model: EmbeddingModel,
    entries: Sequence[Entry],
    embedder: Embedder,
    mode: Mode,
    on_error: OnError,
    faults: Faults | None = None,
) -> list[Outcome]:
    """One outcome per entry: `{"tokenCount": "N", "embedding": {"values": [...]}}`, or that request's error (an
    injected key failure, empty content, or what the embedder raised)."""
    outcomes: list[Outcome | None] = [
        (faults.key_error(entry.key) if faults is not None else None) or content_error(entry.request)
        for entry in entries
    ]
    todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
    texts = [text_of(entries[i].request) for i in todo]
    counts = g.token_counts(texts)
    fitted = [fit(text, counts[text], model.input_token_limit) for text in texts]
    requests = [_request(model, entries[i], cut, mode) for i, (cut, _) in zip(todo, fitted, strict=True)]
    for i, (_, tokens), values in zip(todo, fitted, _embed(embedder, requests, on_error), strict=True):
        outcomes[i] = values if isinstance(values, EmulatedError) else _response(tokens, values)
    return [EmulatedError(13, "unanswered") if o is None else o for o in outcomes]


def fit(text: str, tokens: int, limit: int) -> tuple[str, int]:
    """`text` cut to the model's input token limit (silently, as the Developer API does) and its token count."""
    return (text, tokens) if tokens <= limit else truncate(text, tokens, limit)


def _request(model: EmbeddingModel, entry: Entry, text: str, mode: Mode) -> EmbeddingRequest:
    request = entry.request
    task = request.get("taskType")
    return EmbeddingRequest(
        model=model.name,
        text=text,
        task_type=None if task in (None, "TASK_TYPE_UNSPECIFIED") else str(task),
        title=request.get("title") if isinstance(request.get("title"), str) else None,
        dimensions=request.get("outputDimensionality") or None,
        key=entry.key,
        mode=mode,
        request=request,
    )


def _response(tokens: int, values: Sequence[float]) -> dict[str, Any]:
    """Key order of the real result file: `tokenCount` (an int64, so a string) before `embedding`."""
    return {"tokenCount": str(tokens), "embedding": {"values": values if isinstance(values, list) else list(values)}}


def _embed(embedder: Embedder, requests: list[EmbeddingRequest], on_error: OnError) -> list[Any]:
    if isinstance(embedder, BatchEmbedder):
        try:
            return list(embedder.embed_many(requests))
        except Exception as exc:  # a broken embedder must not take the server down; tests see `emu.errors`
            on_error(exc)
            return [internal(exc, "embedder")] * len(requests)
    return [_embed_one(embedder, request, on_error) for request in requests]


def _embed_one(embedder: Embedder, request: EmbeddingRequest, on_error: OnError) -> Sequence[float] | EmulatedError:
    return guarded(embedder, request, on_error, "embedder")


def spec(request: EmbeddingRequest) -> Spec:
    return Spec(request.text, request.model, request.task_type, request.title, request.dimensions)


class DefaultEmbedder:
    """The embedder used unless `Emulator(embedder=...)` says otherwise: `responses.embedding` of each request."""

    def __call__(self, request: EmbeddingRequest) -> Sequence[float]:
        return vectors([spec(request)])[0]

    def embed_many(self, requests: Sequence[EmbeddingRequest]) -> list[Sequence[float] | EmulatedError]:
        return list(vectors([spec(request) for request in requests]))


default_embedder = DefaultEmbedder()


def embedding_values(
    text: str, model: str, task_type: str | None, title: str | None, dimensions: int | None
) -> list[float]:
    """What the default embedder serves for `text` (cut to the model's input token limit first)."""
    info = EMBEDDING_MODELS.get(model.removeprefix("models/"))
    limit = info.input_token_limit if info is not None else 2048
    cut, _ = fit(text, g.token_counts([text])[text], limit)
    task = None if task_type in (None, "TASK_TYPE_UNSPECIFIED") else task_type
    return vectors([Spec(cut, model.removeprefix("models/"), task, title, dimensions or None)])[0]


def inline_entries(input_config: dict[str, Any], model: EmbeddingModel) -> list[Entry]:
    """The requests of an `asyncBatchEmbedContent` body, each checked; metadata (optional) echoed as sent."""
    items = require_object(input_config.get("requests"), "batch.input_config.requests").get("requests")
    if not isinstance(items, list) or not items:
        where = "AsyncBatchEmbedContentRequest.batch.input_config.requests.requests"
        raise invalid_argument(f"* {where}: no requests given.")
    return list(_inline(items, model))


def _inline(items: list[Any], model: EmbeddingModel) -> Iterator[Entry]:
    for i, item in enumerate(items):
        where = f"batch.input_config.requests.requests[{i}]"
        item = require_object(item, where)
        request = check(item.get("request"), model, f"{where}.request")
        metadata = item.get("metadata")
        key = metadata.get("key") if isinstance(metadata, dict) else None
        yield Entry(request, None if key is None else str(key), metadata)
