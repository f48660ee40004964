"""Requests: the canonical request per distinct prompt, its key, and JSONL encoding for the file transport.

Everything but the prompt text is the same for every row of a call (model, system instruction, generation config,
response schema), so it is serialized once (`RequestSpec.tail`) and spliced into each line; per-row work is Polars'
own JSON writer over the prompt column.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl
from google.genai import types

from polars_gemini._errors import ConfigurationError, ModelError
from polars_gemini._models import MODELS, normalize_model
from polars_gemini._schema import Field, SchemaLike, response_schema, to_field

KEY = "key"
PROMPT = "prompt"
NBYTES = "request_bytes"

# Fields of GenerateContentConfig that live at request level in a GenerateContentRequest, not in generationConfig.
_REQUEST_LEVEL = ("system_instruction", "safety_settings", "tools", "tool_config", "cached_content")
# Client-side options that never reach the wire.
_CLIENT_ONLY = ("http_options", "automatic_function_calling", "should_return_http_response", "labels")
# Bytes a request line needs beyond its escaped prompt: '{"key":"<32 hex>","request":{"contents":[...' and newline.
_LINE_OVERHEAD = 96


@dataclass(frozen=True)
class RequestSpec:
    """Everything shared by the requests of one call. `tail` is the request JSON after `contents`."""

    model: str
    config: types.GenerateContentConfig
    field: Field | None
    tail: dict[str, Any]

    @property
    def tail_json(self) -> str:
        return json.dumps(self.tail, separators=(",", ":"), ensure_ascii=False, sort_keys=True)

    @property
    def fingerprint(self) -> str:
        """Stable hash of everything but the prompt: model, system instruction, config and schema."""
        canonical = json.dumps({"model": self.model, "request": self.tail}, sort_keys=True, ensure_ascii=False)
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
    cfg = cfg.model_copy(update=updates) if updates else cfg
    if field is not None:
        cfg = types.GenerateContentConfig.model_validate(cfg.model_dump(exclude_none=True))
    return RequestSpec(name, cfg, field, _tail(cfg))


def _check_model(model: str, check: bool) -> str:
    if not isinstance(model, str) or not model.strip():
        raise ModelError(f"model must be a model name such as 'gemini-2.5-flash', got {model!r}.")
    name = normalize_model(model.strip())
    if check and name not in MODELS:
        known = ", ".join(sorted(MODELS))
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
    try:
        return types.GenerateContentConfig.model_validate(dict(config))
    except Exception as exc:  # pydantic's ValidationError lists every bad field; keep its text
        raise ConfigurationError(f"Invalid `config`: {exc}") from None


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
    prefix = (spec.fingerprint + "\x00").encode()
    keys = [hashlib.sha256(prefix + p.encode()).hexdigest()[:32] for p in prompts.to_list()]
    return pl.Series(KEY, keys, dtype=pl.String)


def escaped_size(prompt: pl.Expr) -> pl.Expr:
    """Upper bound of a prompt's size once JSON-escaped: quotes and backslashes double, control bytes take six."""
    return (
        prompt.str.len_bytes() + prompt.str.count_matches(r'["\\]') + 5 * prompt.str.count_matches(r"[\x00-\x1f]")
    ).cast(pl.Int64)


def encode_jsonl(requests: pl.DataFrame, spec: RequestSpec) -> bytes:
    """JSONL file lines `{"key":..,"request":{"contents":[..],<tail>}}` for a frame with `key` and `prompt`.

    Polars writes the per-row part; the shared tail is spliced in before each line's closing `}}`. A raw newline byte
    only ever ends a line (JSON escapes newlines inside strings), so `]}}\n` marks exactly the line ends.
    """
    body = requests.select(
        pl.col(KEY),
        pl.struct(
            contents=pl.concat_list(
                pl.struct(parts=pl.concat_list(pl.struct(text=pl.col(PROMPT))), role=pl.lit("user"))
            )
        ).alias("request"),
    )
    buf = io.BytesIO()
    body.write_ndjson(buf)
    tail = spec.tail_json
    if tail == "{}":
        return buf.getvalue()
    return buf.getvalue().replace(b"]}}\n", b"]," + tail[1:-1].encode() + b"}}\n")


def inline_requests(requests: pl.DataFrame, spec: RequestSpec) -> list[types.InlinedRequest]:
    """SDK request objects for the inline transport.

    One Python object per request is what the SDK takes; the inline transport is only chosen while the payload stays
    under the inline limit, so this loop is bounded (tens of thousands of rows at most).
    """
    return [
        types.InlinedRequest(
            contents=[types.Content(role="user", parts=[types.Part(text=prompt)])],
            config=spec.config,
            metadata={KEY: key},
        )
        for key, prompt in requests.select(KEY, PROMPT).iter_rows()
    ]


def line_overhead(spec: RequestSpec) -> int:
    """Bytes of one file line beyond its escaped prompt."""
    return _LINE_OVERHEAD + len(spec.tail_json.encode())


def build_spec_from_config(model: str, config: types.GenerateContentConfig, field: Field | None) -> RequestSpec:
    """A spec from an already merged config (as saved in a checkpoint manifest)."""
    return RequestSpec(normalize_model(model), config, field, _tail(config))
