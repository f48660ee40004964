"""Prompt templates rendered as one vectorized Polars expression.

`"Classify: {review}"` becomes `concat_str([lit("Classify: "), col("review").cast(String)])`. Only plain column names
are allowed between braces: `str.format` would let `{x.attr}` or `{x[0]}` reach object internals, and conversions or
format specs have no vectorized meaning. `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import polars as pl

from polars_gemini._errors import TemplateError

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


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if dtype == pl.String:
        return col
    if isinstance(dtype, pl.Struct):
        return col.struct.json_encode()
    if isinstance(dtype, (pl.List, pl.Array)):
        return pl.struct(col.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")
    return col.cast(pl.String)


def render_exprs(tpl: Template, schema: pl.Schema) -> tuple[pl.Expr, pl.Expr]:
    """Expressions for the rendered prompt and for the first referenced column that is null (else null)."""
    check_columns(tpl, schema)
    parts: list[pl.Expr] = []
    cols = iter(tpl.columns)
    for piece in tpl.pieces:
        parts.append(pl.lit(piece, pl.String) if piece is not None else _as_text(c := next(cols), schema[c]))
    if not tpl.columns:  # a constant prompt still needs one value per row
        return pl.repeat(tpl.source.replace("{{", "{").replace("}}", "}"), pl.len()).alias(PROMPT), pl.lit(
            None, pl.String
        ).alias(NULL_COLUMN)
    prompt = pl.concat_str(parts, ignore_nulls=False)
    null_col = pl.coalesce([pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in tpl.referenced])
    return prompt.alias(PROMPT), null_col.alias(NULL_COLUMN)


def prompt_exprs(template: str | pl.Expr, schema: pl.Schema) -> tuple[pl.Expr, pl.Expr]:
    """Prompt and null-column expressions for a template string or a user expression."""
    if isinstance(template, pl.Expr):
        null_col = pl.when(template.is_null()).then(pl.lit("<prompt expression>"))
        return template.cast(pl.String).alias(PROMPT), null_col.alias(NULL_COLUMN)
    if not isinstance(template, str):
        raise TemplateError(f"template must be a str or a polars Expr, got {type(template).__name__}.")
    return render_exprs(parse_template(template), schema)
