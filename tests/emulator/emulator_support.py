"""Helpers shared by the emulator tests: raw HTTP, JSONL files, a schema checker, the real samples."""

from __future__ import annotations

import http.client
import io
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from google import genai
from google.genai import types

from polars_gemini.emulator import Emulator

SAMPLES = Path(__file__).parents[1] / "data" / "samples"  # copies of the real samples (see each .source.txt)
KEY_HEADER = {"x-goog-api-key": "test-key"}


def sample_json(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


@dataclass(frozen=True)
class Reply:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def raw(emu: Emulator, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    """One request without the SDK (stdlib only); `body` is JSON-encoded unless it is bytes."""
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    url = urlsplit(emu.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request(method, path, body=content, headers={**KEY_HEADER, **(headers or {})})
        response = connection.getresponse()
        lowered = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, lowered, response.read())
    finally:
        connection.close()


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def prompt_lines(count: int, **request_extra: Any) -> list[dict[str, Any]]:
    return [
        {"key": f"row-{i}", "request": {"contents": [{"parts": [{"text": f"Prompt {i} about owls"}]}], **request_extra}}
        for i in range(count)
    ]


def upload(client: genai.Client, data: bytes, display_name: str = "input") -> types.File:
    config = types.UploadFileConfig(mime_type="application/jsonl", display_name=display_name)
    return client.files.upload(file=io.BytesIO(data), config=config)


def run_file_job(client: genai.Client, lines: list[dict[str, Any]], model: str = "gemini-2.0-flash") -> list[Any]:
    """Upload, create, get, download: the parsed result lines."""
    uploaded = upload(client, jsonl(lines))
    job = client.batches.create(model=model, src=uploaded.name or "")
    done = client.batches.get(name=job.name or "")
    assert done.dest is not None and done.dest.file_name is not None
    return [json.loads(line) for line in client.files.download(file=done.dest.file_name).splitlines()]


def text_request(text: str, **config: Any) -> dict[str, Any]:
    return {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        **({"generationConfig": config} if config else {}),
    }


def shape(value: Any) -> Any:
    """Keys and value types, recursively: what fidelity tests compare."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


# -- a small independent checker for both schema dialects ------------------------------------------------


def conforms(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> bool:
    """Does `value` satisfy `schema` (OpenAPI subset or JSON Schema subset)?"""
    root = root or schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        return conforms(value, target, root)
    if "anyOf" in schema:
        return any(conforms(value, branch, root) for branch in schema["anyOf"])
    kinds = _kinds(schema)
    if value is None:
        return "null" in kinds
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = next((k for k in kinds if k != "null"), "string")
    return _CHECKS[kind](value, schema, root)


def _kinds(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type", [])
    kinds = [k.lower() for k in (declared if isinstance(declared, list) else [declared])]
    return [*kinds, "null"] if schema.get("nullable") else kinds


def _object(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    props = schema.get("properties", {})
    return (
        isinstance(value, dict)
        and set(schema.get("required", [])) <= value.keys()
        and value.keys() <= props.keys()
        and all(conforms(item, props[name], root) for name, item in value.items())
    )


def _array(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    return (
        isinstance(value, list)
        and schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", math.inf)
        and all(conforms(item, schema.get("items", {}), root) for item in value)
    )


def _number(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    low, high = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
    above = value > schema["exclusiveMinimum"] if ok and "exclusiveMinimum" in schema else True
    below = value < schema["exclusiveMaximum"] if ok and "exclusiveMaximum" in schema else True
    return ok and low <= value <= high and above and below


def _integer(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    return isinstance(value, int) and _number(value, schema, root)


def _string(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    if not isinstance(value, str):
        return False
    fmt = schema.get("format")
    if fmt in ("date", "date-time"):
        return _is_iso(value, fmt)
    return schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", math.inf)


def _is_iso(value: str, fmt: str) -> bool:
    try:
        if fmt == "date":
            return date.fromisoformat(value).isoformat() == value
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return bool(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value))


_CHECKS = {
    "object": _object,
    "array": _array,
    "number": _number,
    "integer": _integer,
    "boolean": lambda v, s, r: isinstance(v, bool),
    "string": _string,
}
