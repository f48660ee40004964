"""Prompt templates rendered as one vectorized Polars expression.

`"Classify: {review}"` becomes `concat_str([lit("Classify: "), col("review").cast(String)])`. Only plain column names
are allowed between braces: `str.format` would let `{x.attr}` or `{x[0]}` reach object internals, and conversions or
format specs have no vectorized meaning. `{{` and `}}` are literal braces.

Values render as text the way a reader would write them: Struct, List, Array and Map as compact JSON, Duration as
ISO 8601 (`P1DT2H3M`, also inside nested values), everything else through Polars' string cast. Binary, Object and
extension dtypes have no text form: they are a `TemplateError` naming the column and the cast that fixes it, raised
from the schema alone, before anything is rendered or sent. A row with a null in any referenced column (or whose
expression is null) gets a null prompt, so it is never sent.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl
from polars.datatypes import DataTypeClass

from polars_gemini.core.errors import TemplateError

PROMPT = "__pg_prompt"
NULL_COLUMN = "__pg_null_column"


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text pieces interleaved with column references."""

    source: str
    pieces: tuple[str | None, ...]  # str: literal text; None: the next column of `columns`
    columns: tuple[str, ...]

    @property
    def referenced(self) -> list[str]:
        """Distinct referenced columns in first-use order."""
        return list(dict.fromkeys(self.columns))


def parse_template(template: str) -> Template:
    """Parse `template`, rejecting anything but plain `{column}` fields."""
    if not template.strip():
        raise TemplateError(
            f"The template {template!r} is empty: every row would send an empty prompt. Write the prompt with "
            "placeholders for the columns, e.g. 'Classify: {review}', or pass a Polars expression."
        )
    pieces: list[str | None] = []
    columns: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"Cannot parse template {template!r}: {exc}. Hint: write literal braces as '{{{{' and '}}}}'."
        ) from None
    for literal, field, spec, conversion in parsed:
        if literal:
            pieces.append(literal)
        if field is None:
            continue
        _check_field(template, field, spec, conversion)
        pieces.append(None)
        columns.append(field)
    return Template(template, tuple(pieces), tuple(columns))


def _check_field(template: str, field: str, spec: str | None, conversion: str | None) -> None:
    if field == "":
        raise TemplateError(
            f"Template {template!r} has an empty field '{{}}'. Name a column, e.g. '{{review}}', "
            "or write literal braces as '{{}}'."
        )
    bad = next((c for c in ".[" if c in field), None)
    if bad is not None or conversion or spec:
        what = f"'{bad}'" if bad else ("a conversion '!'" if conversion else "a format spec ':'")
        raise TemplateError(
            f"Template field {{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
            f"uses {what}; only plain column names are allowed. Hint: compute the value as a column first "
            "(df.with_columns(...)) or pass a Polars expression as the template."
        )


def check_columns(tpl: Template, schema: pl.Schema) -> None:
    """Fail before any network call when the template names a column the frame lacks."""
    missing = [c for c in tpl.referenced if c not in schema]
    if missing:
        available = ", ".join(repr(c) for c in schema.names())
        raise TemplateError(
            f"Template {tpl.source!r} references column(s) {', '.join(map(repr, missing))} "
            f"that the frame does not have. Available columns: {available}."
        )


DType = pl.DataType | DataTypeClass  # nested dtypes type their children as either
# Dtypes that older supported Polars versions lack (Map and extension types: Polars 2).
_MAP = tuple(getattr(pl, name) for name in ("Map",) if hasattr(pl, name))
_EXTENSION = tuple(getattr(pl, name) for name in ("BaseExtension",) if hasattr(pl, name))
_TEXT_LEAVES = (pl.String, pl.Boolean, pl.Date, pl.Datetime, pl.Time, pl.Duration, pl.Categorical, pl.Enum, pl.Null)


def _leaves(dtype: DType) -> Iterator[DType]:
    """The non-nested dtypes inside `dtype` (itself when it is not nested)."""
    if isinstance(dtype, pl.Struct):
        for field in dtype.fields:
            yield from _leaves(field.dtype)
    elif isinstance(dtype, (pl.List, pl.Array)):
        yield from _leaves(dtype.inner)
    elif isinstance(dtype, _MAP):
        yield from _leaves(dtype.key)
        yield from _leaves(dtype.value)
    else:
        yield dtype


def _code(dtype: DType) -> str:
    """Python source of `dtype` with Binary replaced by String: the dtype to cast a Binary-holding column to."""
    if isinstance(dtype, pl.Struct):
        return "pl.Struct({" + ", ".join(f"{f.name!r}: {_code(f.dtype)}" for f in dtype.fields) + "})"
    if isinstance(dtype, pl.List):
        return f"pl.List({_code(dtype.inner)})"
    if isinstance(dtype, pl.Array):
        return f"pl.Array({_code(dtype.inner)}, {dtype.size})"
    if isinstance(dtype, _MAP):
        return f"pl.Map({_code(dtype.key)}, {_code(dtype.value)})"
    return "pl.String" if isinstance(dtype, pl.Binary) else f"pl.{dtype!r}"


def _hint(subject: str, dtype: DType, bad: DType) -> str:
    if isinstance(bad, pl.Binary) and bad == dtype:
        return (
            f"decode the bytes to text first: {subject}.cast(pl.String) for UTF-8 bytes, or "
            f"{subject}.bin.encode('base64') (or 'hex') for arbitrary bytes"
        )
    if isinstance(bad, pl.Binary):
        return f"cast it with String in place of Binary first: {subject}.cast({_code(dtype)})"
    if isinstance(bad, pl.Object):
        return f"convert the Python objects to text first, e.g. {subject}.map_elements(str, return_dtype=pl.String)"
    if isinstance(bad, _EXTENSION):
        return f"render its storage instead, {subject}.ext.storage() (a nested one: unpack it first)"
    return f"cast it to a String first: {subject}.cast(pl.String)"


def check_renderable(what: str, subject: str, dtype: DType, where: str = "") -> None:
    """Raise a TemplateError when values of `dtype` have no text form; `subject` is the code that selects them."""
    bad = next((d for d in _leaves(dtype) if not (d.is_numeric() or isinstance(d, _TEXT_LEAVES))), None)
    if bad is None:
        return
    inside = "" if bad == dtype else f", which contains {bad}"
    raise TemplateError(
        f"{what} has dtype {dtype}{inside}: it has no text form to put in a prompt. "
        f"Hint: {_hint(subject, dtype, bad)}{where}."
    )


def _iso_durations(expr: pl.Expr, dtype: DType) -> pl.Expr:
    """`expr` with every Duration in it as ISO 8601 text, so that nested durations read like top-level ones."""
    if isinstance(dtype, pl.Duration):
        return expr.dt.to_string("iso")
    if not any(isinstance(d, pl.Duration) for d in _leaves(dtype)):
        return expr
    if isinstance(dtype, pl.Struct):  # with_fields keeps a null struct null and evaluates `expr` once
        return expr.struct.with_fields(*(_iso_durations(pl.field(f.name), f.dtype) for f in dtype.fields))
    if isinstance(dtype, pl.List):
        return expr.list.eval(_iso_durations(pl.element(), dtype.inner))
    if isinstance(dtype, pl.Array):
        return expr.arr.to_list().list.eval(_iso_durations(pl.element(), dtype.inner))  # the same JSON
    return expr  # Map: Polars' JSON writer already spells durations in ISO 8601 (as seconds)


def _as_text(expr: pl.Expr, dtype: DType) -> pl.Expr:
    if isinstance(dtype, pl.String):
        return expr
    if isinstance(dtype, pl.Struct):
        return _iso_durations(expr, dtype).struct.json_encode()
    if dtype.is_nested():  # List, Array, Map: the JSON of a one-field struct, without the wrapper
        wrapped = pl.struct(_iso_durations(expr, dtype).alias("v")).struct.json_encode()
        return wrapped.str.slice(5).str.strip_suffix("}")
    return _iso_durations(expr, dtype).cast(pl.String)


def column(name: str, schema: pl.Schema) -> pl.Expr:
    """The column `name`, whatever its name: by position, since `pl.col("*")` means every column and
    `pl.col("^a.*$")` a regex."""
    return pl.nth(schema.names().index(name))


def render_exprs(tpl: Template, schema: pl.Schema) -> tuple[pl.Expr, pl.Expr]:
    """Expressions for the rendered prompt (null when a referenced column is) and for the first referenced column
    that is null (else null)."""
    check_columns(tpl, schema)
    for c in tpl.referenced:
        where = " (with df.with_columns(...), or in a prompt expression passed as the template)"
        check_renderable(f"Template {tpl.source!r}: column {c!r}", f"pl.col({c!r})", schema[c], where)
    if not tpl.columns:  # a constant prompt still needs one value per row
        return pl.repeat(tpl.source.replace("{{", "{").replace("}}", "}"), pl.len()).alias(PROMPT), pl.lit(
            None, pl.String
        ).alias(NULL_COLUMN)
    parts: list[pl.Expr] = []
    cols = iter(tpl.columns)
    for piece in tpl.pieces:
        parts.append(pl.lit(piece, pl.String) if piece is not None else _as_text(column(c := next(cols), schema),
                                                                                  schema[c]))  # fmt: skip
    null_col = pl.coalesce([pl.when(column(c, schema).is_null()).then(pl.lit(c)) for c in tpl.referenced])
    # A null List/Struct renders as the text "null": only the null test keeps such a row from being sent.
    prompt = pl.when(null_col.is_null()).then(pl.concat_str(parts, ignore_nulls=False))
    return prompt.alias(PROMPT), null_col.alias(NULL_COLUMN)


def _expr_dtype(expr: pl.Expr, schema: pl.Schema) -> DType:
    """The dtype `expr` yields over a frame of `schema`, from the schema alone: nothing runs (a user function in the
    expression may be slow, costly or fail on an empty input)."""
    try:
        out = pl.LazyFrame(schema=schema).select(expr).collect_schema()
    except pl.exceptions.PolarsError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise TemplateError(
            f"The prompt expression {expr} does not fit this frame: {reason}. Hint: try it with "
            "df.select(expr) and fix what Polars reports there."
        ) from exc
    if len(out) != 1:
        raise TemplateError(
            f"The prompt expression {expr} yields {len(out)} columns ({', '.join(map(repr, out.names()))}); a prompt "
            "is one column. Hint: combine them, e.g. pl.format('{} {}', pl.col('a'), pl.col('b'))."
        )
    return out.dtypes()[0]


def expr_prompt_exprs(expr: pl.Expr, schema: pl.Schema) -> tuple[pl.Expr, pl.Expr]:
    """Prompt and null-column expressions for a user expression (the prompt is null wherever the expression is)."""
    dtype = _expr_dtype(expr, schema)
    check_renderable(f"The prompt expression {expr}", f"({expr})", dtype, " at the end of the expression")
    null_col = pl.when(expr.is_null()).then(pl.lit("<prompt expression>"))
    # The cast is a no-op unless a user function without return_dtype yields another dtype than the schema says.
    prompt = _as_text(expr, dtype).cast(pl.String)
    if dtype.is_nested():  # a null List/Struct/Map encodes as the text "null", which no value encodes as
        prompt = prompt.replace("null", None)  # (not a when/then on `expr`: that would evaluate it once more)
    return prompt.alias(PROMPT), null_col.alias(NULL_COLUMN)


def prompt_exprs(template: str | pl.Expr, schema: pl.Schema) -> tuple[pl.Expr, pl.Expr]:
    """Prompt and null-column expressions for a template string or a user expression."""
    if isinstance(template, pl.Expr):
        return expr_prompt_exprs(template, schema)
    if not isinstance(template, str):
        raise TemplateError(
            f"template must be a str or a polars Expr, got {type(template).__name__} ({template!r:.60}). "
            "Hint: pass a string such as 'Classify: {review}' or an expression such as pl.format('Q: {}', pl.col('q'))."
        )
    return render_exprs(parse_template(template), schema)
