"""Requests: the canonical request per distinct prompt, its key, and JSONL encoding for the file transport.

Everything but the prompt text is the same for every row of a call (model, system instruction, generation config,
response schema), so it is serialized once (`RequestSpec.tail`) and spliced into each line; per-row work is Polars'
own JSON writer over the prompt column.
"""

from __future__ import annotations

import hashlib
import io
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl
import pydantic
from google.genai import types

from polars_gemini.core.errors import ConfigurationError, ModelError
from polars_gemini.core.models import MODELS, normalize_model
from polars_gemini.prepare.media import ID, media_uses, replace_markers, sdk_parts
from polars_gemini.prepare.schema import Field, SchemaLike, response_schema, to_field

KEY = "key"
PROMPT = "prompt"
NBYTES = "request_bytes"

# Fields of GenerateContentConfig that live at request level in a GenerateContentRequest, not in generationConfig.
_REQUEST_LEVEL = ("system_instruction", "safety_settings", "tools", "tool_config", "cached_content")
# Client-side options that never reach the wire.
_CLIENT_ONLY = ("http_options", "automatic_function_calling", "should_return_http_response", "labels")
# Rows per batch where work goes batch by batch: a batch's temporaries (tens of MB) are freed and their memory
# reused by the next one. Whole-column temporaries of a million prompts cost more in first-touch page faults than
# the work itself (measured: a fresh 1.4 GB buffer takes ~0.8 s to fault in on a 2-core VM).
_BATCH_ROWS = 20_000
_MEDIA_BATCH_ROWS = 500


GENERATE = "generate"
EMBED = "embed"
# The task types of EmbedContentRequest (ai.google.dev/api/embeddings#TaskType, checked 2026-12-01).
TASK_TYPES = (
    "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY", "CLASSIFICATION",
    "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY",
)  # fmt: skip


@dataclass(frozen=True)
class RequestSpec:
    """Everything shared by the requests of one call. `tail` is the request JSON after `contents` (after `content`
    for an embedding request: `task_type`, `title`, `output_dimensionality`); `task` is `generate` or `embed`."""

    model: str
    config: types.GenerateContentConfig
    field: Field | None
    tail: dict[str, Any]
    task: str = GENERATE

    @property
    def embeds(self) -> bool:
        return self.task == EMBED

    @property
    def dimensions(self) -> int | None:
        """The embedding size asked for (`output_dimensionality`), None for the model's default."""
        value = self.tail.get("output_dimensionality")
        return int(value) if value is not None else None

    @property
    def tail_json(self) -> str:
        return json.dumps(self.tail, separators=(",", ":"), ensure_ascii=False, sort_keys=True)

    @property
    def fingerprint(self) -> str:
        """Stable hash of everything but the prompt: model, system instruction, config and schema."""
        identity: dict[str, Any] = {"model": self.model, "request": self.tail}
        if self.embeds:  # generation keys stay what they were: only embedding requests name their task
            identity["task"] = EMBED
        canonical = json.dumps(identity, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def build_spec(
    model: str,
    *,
    schema: SchemaLike | None = None,
    system_instruction: str | None = None,
    config: types.GenerateContentConfig | Mapping[str, Any] | None = None,
    check_model: bool = True,
) -> RequestSpec:
    """Validate the call's arguments locally and build its `RequestSpec`."""
    name = _check_model(model, check_model)
    if check_model and MODELS[name].embeds:
        raise ModelError(f"{model!r} is an embedding model: use embed() (df.gemini.embed) with it, not batch().")
    cfg = _to_config(config)
    field = to_field(schema) if schema is not None else None
    updates: dict[str, Any] = {}
    if field is not None:
        if cfg.response_schema is not None or cfg.response_json_schema is not None:
            raise ConfigurationError(
                "Both `schema=` and a response schema in `config` were given: pass the schema once, as `schema=`."
            )
        updates |= {"response_mime_type": "application/json", "response_schema": response_schema(field)}
    if system_instruction is not None:
        if cfg.system_instruction is not None:
            raise ConfigurationError("`system_instruction` was given both as an argument and in `config`.")
        updates["system_instruction"] = system_instruction
    # Client-side options never belong to the request (and may carry headers with a key): the library sets its own.
    updates["http_options"] = None
    cfg = cfg.model_copy(update=updates)
    _check_limits(cfg)
    if field is not None:
        cfg = types.GenerateContentConfig.model_validate(cfg.model_dump(exclude_none=True))
    return RequestSpec(name, cfg, field, _tail(cfg))


def build_embed_spec(
    model: str,
    *,
    task_type: str | None = None,
    title: str | None = None,
    output_dimensionality: int | None = None,
    check_model: bool = True,
) -> RequestSpec:
    """Validate an embedding call's arguments locally and build its `RequestSpec` (`task="embed"`)."""
    name = _check_model(model, check_model, kind="embedding")
    info = MODELS.get(name)
    if check_model and info is not None and not info.embeds:
        raise ModelError(
            f"{model!r} is a generation model; embeddings need an embedding model such as 'gemini-embedding-001'. "
            "Use batch() to generate text with it."
        )
    tail: dict[str, Any] = {}
    if task_type is not None:
        upper = task_type.upper() if isinstance(task_type, str) else task_type
        if upper not in TASK_TYPES:
            raise ConfigurationError(f"task_type must be one of {', '.join(TASK_TYPES)}; got {task_type!r}.")
        tail["task_type"] = upper
    if title is not None:
        if not isinstance(title, str) or not title:
            raise ConfigurationError(f"title must be a non-empty string, got {title!r}.")
        if tail.get("task_type") != "RETRIEVAL_DOCUMENT":
            raise ConfigurationError("title= applies only with task_type='RETRIEVAL_DOCUMENT' (the API's rule).")
        tail["title"] = title
    if output_dimensionality is not None:
        most = info.embedding_dimensions if info is not None and info.embeds else None
        bad = isinstance(output_dimensionality, bool) or not isinstance(output_dimensionality, numbers.Integral)
        if bad or output_dimensionality < 1 or (most is not None and output_dimensionality > most):
            hint = f"1 to {most}" if most else ">= 1"
            raise ConfigurationError(
                f"output_dimensionality must be an integer {hint} (768, 1536 and 3072 are recommended); "
                f"got {output_dimensionality!r}."
            )
        tail["output_dimensionality"] = int(output_dimensionality)  # numpy integers too
    return RequestSpec(name, types.GenerateContentConfig(), None, tail, EMBED)


def _check_limits(cfg: types.GenerateContentConfig) -> None:
    """Generation limits that can only be wrong: refused before anything is sent (the service would bill a job of
    MAX_TOKENS errors, and a negative bound would blind the budget guard)."""
    if cfg.max_output_tokens is not None and cfg.max_output_tokens < 1:
        raise ConfigurationError(f"config max_output_tokens must be >= 1, got {cfg.max_output_tokens}.")
    budget = cfg.thinking_config.thinking_budget if cfg.thinking_config else None
    if budget is not None and budget < -1:
        raise ConfigurationError(f"thinking_budget must be -1 (dynamic), 0 (off) or more, got {budget}.")


def _check_model(model: str, check: bool, kind: str = "generation") -> str:
    example = "gemini-embedding-001" if kind == "embedding" else "gemini-2.5-flash"
    if not isinstance(model, str) or not model.strip():
        raise ModelError(f"model must be a model name such as {example!r}, got {model!r}.")
    name = normalize_model(model.strip())
    if check and name not in MODELS:
        known = ", ".join(sorted(m.name for m in MODELS.values() if m.embeds == (kind == "embedding")))
        raise ModelError(
            f"Unknown model {model!r}. Known models: {known}. Hint: check the spelling; for a model newer than "
            "this library, pass check_model=False."
        )
    return name


def _to_config(config: types.GenerateContentConfig | Mapping[str, Any] | None) -> types.GenerateContentConfig:
    if config is None:
        return types.GenerateContentConfig()
    if isinstance(config, types.GenerateContentConfig):
        return config
    if not isinstance(config, Mapping):
        raise ConfigurationError(
            f"config must be a google.genai.types.GenerateContentConfig or a dict, got {type(config).__name__}."
        )
    try:
        return types.GenerateContentConfig.model_validate(dict(config))
    except pydantic.ValidationError as exc:
        # Where and what, never the values: a misplaced API key (config={"api_key": ...}) must not be echoed.
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(
            f"Invalid `config`: {problems}. The fields are those of google.genai.types.GenerateContentConfig."
        ) from None


def _tail(cfg: types.GenerateContentConfig) -> dict[str, Any]:
    """The GenerateContentRequest fields other than `contents`, in proto (snake_case) names as file lines want."""
    dumped = cfg.model_dump(mode="json", exclude_none=True)
    for name in _CLIENT_ONLY:
        dumped.pop(name, None)
    tail = {name: dumped.pop(name) for name in _REQUEST_LEVEL if name in dumped}
    if isinstance(tail.get("system_instruction"), str):
        tail["system_instruction"] = {"parts": [{"text": tail["system_instruction"]}]}
    if dumped:
        tail["generation_config"] = dumped
    return tail


def request_keys(prompts: pl.Series, spec: RequestSpec) -> pl.Series:
    """The key of each prompt's request: a hash of the canonical request, stable across processes and versions.

    A Python loop, deliberately: Polars' own `hash` is documented as unstable across versions, and keys must survive
    upgrades so a checkpoint never pays twice. Callers pass distinct prompts only.
    """
    base = hashlib.sha256((spec.fingerprint + "\x00").encode())
    digests = []
    # UTF-8 bytes straight from Polars (no str objects to encode again), the shared prefix hashed once, the hex
    # conversion vectorized, and prompts taken in batches (see _BATCH_ROWS): about half the time of
    # `sha256(prefix + p.encode()).hexdigest()` per prompt.
    for start in range(0, len(prompts), _BATCH_ROWS):
        for prompt in prompts.slice(start, _BATCH_ROWS).cast(pl.Binary).to_list():
            h = base.copy()
            h.update(prompt)
            digests.append(h.digest()[:16])
    keys: pl.Series = pl.Series(KEY, digests, dtype=pl.Binary).bin.encode("hex").cast(pl.String)
    return keys


def escaped_size(prompt: pl.Expr) -> pl.Expr:
    """Upper bound of a prompt's size once JSON-escaped: quotes and backslashes double, control bytes take six."""
    return (
        prompt.str.len_bytes() + prompt.str.count_matches(r'["\\]') + 5 * prompt.str.count_matches(r"[\x00-\x1f]")
    ).cast(pl.Int64)


def encode_jsonl(requests: pl.DataFrame, spec: RequestSpec, parts: pl.DataFrame | None = None) -> bytes:
    """JSONL file lines `{"key":..,"request":{"contents":[..],<tail>}}` for a frame with `key` and `prompt`.

    With `parts` (media id, mime, data or uri: `prepare.media.PARTS_SCHEMA`), each media marker of a prompt
    becomes its media part, in place (`prepare.media.replace_markers`).

    Polars JSON-escapes each prompt (`struct.json_encode`) and its CSV writer lays out the lines: four unquoted
    columns joined by the separator `,`, which is exactly the comma the JSON needs between them. The shared tail is
    a literal column, so no line is ever searched or copied again (a `bytes.replace` splice of a 1.4 GB file took
    longer than writing it).
    """
    media = parts is not None and parts.height > 0
    tail = spec.tail_json[1:-1]
    if spec.embeds:
        return _encode_embed_jsonl(requests, tail)

    def columns(batch_parts: pl.DataFrame | None) -> list[pl.Expr]:
        text = pl.struct(pl.col(PROMPT).alias("text")).struct.json_encode()
        if batch_parts is not None and batch_parts.height:
            text = replace_markers(text, batch_parts)
        return [
            pl.concat_str(pl.lit('{"key":"'), pl.col(KEY), pl.lit('"')).alias("k"),
            pl.concat_str(pl.lit('"request":{"contents":[{"parts":['), text, pl.lit("]")).alias("p"),
            pl.lit('"role":"user"}]' + ("" if tail else "}}")).alias("r"),
            *([pl.lit(tail + "}}").alias("t")] if tail else []),
        ]

    shared = columns(None)
    # With media, small batches, each given only its own media: their base64 is built batch by batch, never all
    # at once (the file's inline media would otherwise be in memory three times over).
    step = _MEDIA_BATCH_ROWS if media else _BATCH_ROWS
    buf = io.BytesIO()
    for start in range(0, requests.height, step):  # batches, not rows: see _BATCH_ROWS
        rows = requests.slice(start, step)
        if media:
            assert parts is not None
            mine = parts.join(media_uses(rows.get_column(PROMPT)).select(ID), on=ID, how="semi")
            batch = rows.select(columns(mine))
        else:
            batch = rows.select(shared)
        batch.write_csv(buf, include_header=False, separator=",", quote_style="never")
    return buf.getvalue()


def _encode_embed_jsonl(requests: pl.DataFrame, tail: str) -> bytes:
    """Embedding request lines `{"key":..,"request":{"content":{"parts":[{"text":..}]},<tail>}}`, as in Google's
    own sample (proto names: `task_type`, `output_dimensionality`); laid out as `encode_jsonl` does."""
    text = pl.struct(pl.col(PROMPT).alias("text")).struct.json_encode()
    columns = [
        pl.concat_str(pl.lit('{"key":"'), pl.col(KEY), pl.lit('"')).alias("k"),
        pl.concat_str(pl.lit('"request":{"content":{"parts":['), text, pl.lit("]}" + ("" if tail else "}}"))),
        *([pl.lit(tail + "}}").alias("t")] if tail else []),
    ]
    buf = io.BytesIO()
    for start in range(0, requests.height, _BATCH_ROWS):  # batches, not rows: see _BATCH_ROWS
        requests.slice(start, _BATCH_ROWS).select(columns).write_csv(
            buf, include_header=False, separator=",", quote_style="never"
        )
    return buf.getvalue()


def inline_embed_requests(requests: pl.DataFrame, spec: RequestSpec) -> list[dict[str, Any]]:
    """The REST `InlinedEmbedContentRequest`s of an inline embedding job, each with its key in `metadata`.

    The SDK's `batches.create_embeddings` takes contents without per-request metadata, so results could only be
    matched by position; the REST API takes `metadata` per request and echoes it in each response, so they are
    matched by key, as every other result. Bounded like `inline_requests` (the inline transport's limits).
    """
    return [
        {"request": {"content": {"parts": [{"text": prompt}]}, **spec.tail}, "metadata": {KEY: key}}
        for key, prompt in requests.select(KEY, PROMPT).iter_rows()
    ]


def inline_requests(
    requests: pl.DataFrame, spec: RequestSpec, parts: pl.DataFrame | None = None
) -> list[types.InlinedRequest]:
    """SDK request objects for the inline transport (`parts`: the media of the prompts' markers, as for
    `encode_jsonl`).

    One Python object per request is what the SDK takes; the inline transport is only chosen while the payload stays
    under the inline limit, so this loop is bounded (tens of thousands of rows at most).
    """
    media = {m: (mime, data, uri) for m, mime, data, uri in parts.iter_rows()} if parts is not None else {}

    def content(prompt: str) -> list[types.Part]:
        return sdk_parts(prompt, media) if media else [types.Part(text=prompt)]

    return [
        types.InlinedRequest(
            contents=[types.Content(role="user", parts=content(prompt))], config=spec.config, metadata={KEY: key}
        )
        for key, prompt in requests.select(KEY, PROMPT).iter_rows()
    ]


def line_overhead(spec: RequestSpec) -> int:
    """Bytes of one file line beyond its escaped prompt, measured on the encoder itself (a 32-character key)."""
    return len(encode_jsonl(pl.DataFrame({KEY: ["0" * 32], PROMPT: [""]}), spec))


def build_spec_from_config(
    model: str, config: types.GenerateContentConfig, field: Field | None, embed: Mapping[str, Any] | None = None
) -> RequestSpec:
    """A spec from an already merged config (as saved in a checkpoint manifest); `embed`: an embedding spec's
    tail (`task_type`, `title`, `output_dimensionality`)."""
    if embed is not None:
        return RequestSpec(normalize_model(model), types.GenerateContentConfig(), None, dict(embed), EMBED)
    return RequestSpec(normalize_model(model), config, field, _tail(config))
