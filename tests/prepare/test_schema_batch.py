"""Schemas end to end, through the real SDK against the emulator: mistakes caught before any request, any field
name, pydantic models defined in functions, constraints sent and enforced."""

from __future__ import annotations

import json
from typing import Annotated, Any

import polars as pl
import pytest
from pydantic import BaseModel, Field, create_model

import polars_gemini  # noqa: F401
from polars_gemini import SchemaError
from polars_gemini.emulator import Emulator, ResponderRequest, default_responder, responses
from testing_support import FAST


def _answer_the_prompt(request: ResponderRequest) -> dict[str, Any]:
    """Answer with the prompt itself, so a test decides each row's JSON answer."""
    return responses.text(request.text)(request)


def _nothing_sent(emu: Emulator) -> None:
    assert emu.calls("batches.create") == 0 and emu.calls("files.upload_start") == 0


class Empty(BaseModel):
    pass


class Node(BaseModel):
    value: int
    children: list[Node]


BAD_SCHEMAS: dict[str, Any] = {
    "empty model": (Empty, "Empty has no fields"),
    "empty struct": ({"a": pl.Struct({})}, r"'a': pl.Struct\(\{\}\) has no fields"),
    "nested empty struct": ({"a": pl.List(pl.Struct({"b": pl.Struct({})}))}, r"'a\[\]\.b'"),
    "empty enum": ({"a": pl.Enum([])}, r"pl.Enum\(\[\]\) has no categories"),
    "self reference": (Node, "contains itself"),
    "mixed tuple": (create_model("T", pair=(tuple[int, str], ...)), "nested model"),
    "dropped constraint": (create_model("M", x=(Annotated[float, Field(multiple_of=0.5)], ...)), "multiple_of"),
}


@pytest.mark.parametrize("case", BAD_SCHEMAS)
def test_schema_mistakes_are_caught_before_any_request(emu: Emulator, case: str) -> None:
    schema, match = BAD_SCHEMAS[case]
    df = pl.DataFrame({"t": ["x"] * 3})
    for transport in (None, 1):  # inline, and the file transport (nothing uploaded either)
        with pytest.raises(SchemaError, match=match):
            df.gemini.batch("{t}", model="gemini-2.5-flash", schema=schema, client=emu.client(),
                            inline_limit_bytes=transport, **FAST)  # fmt: skip
    _nothing_sent(emu)


def test_a_field_named_like_the_error_column_is_caught_before_any_request(emu: Emulator) -> None:
    df = pl.DataFrame({"t": ["x"]})
    with pytest.raises(SchemaError, match="error column"):
        df.gemini.batch("{t}", model="gemini-2.5-flash", schema={"response_error": pl.String}, client=emu.client(),
                        **FAST)  # fmt: skip
    _nothing_sent(emu)


INTERNAL = ["key", "prompt", "value", "problem", "text", "error", "err", "loose", "is_object", "s", "o", "t"]


@pytest.mark.parametrize("file_transport", [False, True])
def test_internal_names_never_collide_with_columns_or_fields(emu: Emulator, file_transport: bool) -> None:
    emu.settings.responder = default_responder
    frame = pl.DataFrame({name: [f"{name}{i % 3}" for i in range(6)] for name in INTERNAL})
    schema = {"key": pl.String, "value": pl.Int64, "problem": pl.String} | dict.fromkeys(INTERNAL[3:], pl.Boolean)
    out = frame.gemini.batch("{key} {prompt} {value} {t}", model="gemini-2.5-flash", schema=schema, prefix="llm_",
                             client=emu.client(), inline_limit_bytes=1 if file_transport else None, **FAST)  # fmt: skip
    assert out.columns == [*INTERNAL, *(f"llm_{n}" for n in schema), "response_error"]
    assert out.select(INTERNAL).equals(frame)
    assert out.get_column("response_error").null_count() == 6, out.get_column("response_error").to_list()
    assert out.schema["llm_value"] == pl.Int64 and out.get_column("llm_key").null_count() == 0
    # Without a prefix the fields themselves are named like internal columns (none of them in the input frame).
    bare = pl.DataFrame({"in": ["a", "b", "a"]}).gemini.batch(
        "{in}", model="gemini-2.5-flash", schema=schema, client=emu.client(), **FAST
    )
    assert bare.columns == ["in", *schema, "response_error"]
    assert bare.get_column("response_error").null_count() == 3
    assert bare.row(0) == bare.row(2)


def test_text_mode_output_named_key(emu: Emulator) -> None:
    out = pl.DataFrame({"prompt": ["a", None]}).gemini.batch(
        "{prompt}", model="gemini-2.5-flash", output="key", client=emu.client(), **FAST
    )
    assert out.columns == ["prompt", "key", "key_error"]
    assert out.get_column("key").to_list() == ["echo: a", None]
    assert out.get_column("key_error")[1] == "not sent: column 'prompt' is null in this row"


def test_models_defined_inside_the_test_run_end_to_end(emu: Emulator) -> None:
    class Part(BaseModel):
        name: str
        qty: Annotated[int, Field(ge=1, le=9)]

    class Order(BaseModel):
        parts: list[Part] = Field(min_length=1, max_length=2)
        note: str | None = Field(None, max_length=5)

    emu.settings.responder = default_responder
    out = pl.DataFrame({"t": ["a", "b", "c"]}).gemini.batch(
        "{t}", model="gemini-2.5-flash", schema=Order, client=emu.client(), **FAST
    )
    assert out.get_column("response_error").null_count() == 3, out.get_column("response_error").to_list()
    parts = out.get_column("parts").explode().struct.field("qty")
    assert parts.min() >= 1 and parts.max() <= 9  # type: ignore[operator]
    sent = next(r for r in emu.requests if r.endpoint == "batches.create").body_json
    schema = sent["batch"]["inputConfig"]["requests"]["requests"][0]["request"]["generationConfig"]["responseSchema"]
    props = schema["properties"]
    assert props["parts"]["min_items"] == 1 and props["parts"]["max_items"] == 2
    assert props["parts"]["items"]["properties"]["qty"] == {"type": "INTEGER", "minimum": 1.0, "maximum": 9.0}
    assert props["note"]["max_length"] == 5


class Rated(BaseModel):
    score: float = Field(gt=0, le=1)
    code: str = Field(pattern=r"^[A-Z]{2}$")
    tags: list[str] = Field(max_length=2)


@pytest.mark.parametrize("file_transport", [False, True])
def test_constraint_violations_become_row_errors(emu: Emulator, file_transport: bool) -> None:
    emu.settings.responder = _answer_the_prompt
    good = {"score": 0.5, "code": "AB", "tags": ["x"]}
    answers = [good, good | {"score": 0}, good | {"code": "abc"}, good | {"tags": ["a", "b", "c"]}, good]
    df = pl.DataFrame({"j": [json.dumps(a) for a in answers]})
    out = df.gemini.batch("{j}", model="gemini-2.5-flash", schema=Rated, client=emu.client(),
                          inline_limit_bytes=1 if file_transport else None, **FAST)  # fmt: skip
    errors = out.get_column("response_error").to_list()
    assert errors[0] is None and errors[4] is None
    assert "field 'score'" in errors[1] and "> 0 (gt)" in errors[1]
    assert "field 'code'" in errors[2] and "(pattern)" in errors[2]
    assert "field 'tags'" in errors[3] and "at most 2 items (max_length)" in errors[3]
    assert out.get_column("score").is_null().to_list() == [False, True, True, True, False]
    assert out.get_column("code").to_list() == ["AB", None, None, None, "AB"]
