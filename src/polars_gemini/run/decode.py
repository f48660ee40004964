"""Decode model answers (JSON text) into exactly the declared dtypes, vectorized, row failures as values.

Polars' `str.json_decode` is lenient (it truncates 1.5 to 1 for an integer field and turns `true` into 1), so answers
are first decoded with every leaf as String and then converted leaf by leaf with strict checks, then checked against the
field's constraints (bounds, lengths, pattern: also the ones the response schema could not carry). A row whose JSON is
invalid, does not match the schema or breaks a constraint gets a null value and an error message naming the field and
what it broke; the others are unaffected.
"""

from __future__ import annotations

import operator

import polars as pl

from polars_gemini.core.json_columns import json_decode_tolerant, spread
from polars_gemini.prepare.schema import Constraints, Field


def loose_dtype(field: Field) -> pl.DataType:
    """`field`'s dtype with every leaf replaced by String (the form Polars decodes without coercing)."""
    if field.is_struct:
        return pl.Struct({name: loose_dtype(f) for name, f in field.children})
    if field.item is not None:
        return pl.List(loose_dtype(field.item))
    return pl.String()


def convert(expr: pl.Expr, field: Field, path: str) -> tuple[pl.Expr, pl.Expr]:
    """(value, problem) expressions turning a loosely decoded `expr` into `field.dtype`.

    `problem` is null when the value conforms (dtype and constraints), else a message naming the field at `path`.
    """
    if field.is_struct:
        value, problem = _convert_struct(expr, field, path)
    elif field.item is not None:
        value, problem = _convert_list(expr, field.item, path)
    else:
        value, problem = _convert_leaf(expr, field.dtype, path)
    if field.constraints != Constraints():
        problem = pl.coalesce(problem, violation(value, field, path))
    missing = pl.lit(None, pl.String) if field.nullable else pl.lit(f"missing value for field '{path}'")
    problem = pl.when(expr.is_null()).then(missing).otherwise(problem)
    return value, problem


def _convert_struct(expr: pl.Expr, field: Field, path: str) -> tuple[pl.Expr, pl.Expr]:
    # Fields are reached by position under names of our own: `struct.field` expands a name such as "*" or "^a.*$"
    # like a column selector, and a user may name a field anything.
    positional = expr.struct.rename_fields([f"f{i}" for i in range(len(field.children))])
    converted = [
        convert(positional.struct.field(f"f{i}"), f, f"{path}.{n}" if path else n)
        for i, (n, f) in enumerate(field.children)
    ]
    names = [n for n, _ in field.children]
    value = pl.when(expr.is_not_null()).then(
        pl.struct([v.alias(n) for (v, _), n in zip(converted, names, strict=True)])
    )
    return value, pl.coalesce([p for _, p in converted])


def _convert_list(expr: pl.Expr, item: Field, path: str) -> tuple[pl.Expr, pl.Expr]:
    value, problem = convert(pl.element(), item, f"{path}[]")
    problems = expr.list.eval(problem).list.drop_nulls()
    return expr.list.eval(value), pl.when(problems.list.len() > 0).then(problems.list.first())


def _message(head: str, got: pl.Expr) -> pl.Expr:
    # concat_str, not pl.format: a field name or an enum category may contain "{}".
    return pl.concat_str([pl.lit(head), got.str.slice(0, 80)])


def _convert_leaf(expr: pl.Expr, dtype: pl.DataType, path: str) -> tuple[pl.Expr, pl.Expr]:
    value, expected = _leaf_value(expr, dtype)
    bad = expr.is_not_null() & value.is_null()
    return value, pl.when(bad).then(_message(f"field '{path}': expected {expected}, got ", expr))


def violation(value: pl.Expr, field: Field, path: str) -> pl.Expr:
    """The first constraint of `field` that the converted `value` breaks, as a message; null if none (or null)."""
    checks = _length_checks(value, field) if field.is_list or isinstance(field.dtype, pl.String) else []
    checks += _bound_checks(value, field.constraints)
    head = f"field '{path}' breaks a constraint: expected "
    return pl.coalesce([pl.when(~ok).then(_message(f"{head}{what}, got ", got)) for ok, what, got in checks])


def _length_checks(value: pl.Expr, field: Field) -> list[tuple[pl.Expr, str, pl.Expr]]:
    c, checks = field.constraints, []
    if field.is_list:
        size, unit, got = value.list.len(), "items", value.list.len().cast(pl.String) + pl.lit(" items")
    else:
        size, unit, got = value.str.len_chars(), "characters", pl.lit("'") + value.str.slice(0, 80) + pl.lit("'")
    if c.min_length is not None:
        checks.append((size >= c.min_length, f"at least {c.min_length} {unit} (min_length)", got))
    if c.max_length is not None:
        checks.append((size <= c.max_length, f"at most {c.max_length} {unit} (max_length)", got))
    if c.pattern is not None:
        checks.append((value.str.contains(c.pattern), f"a string matching {c.pattern!r} (pattern)", got))
    return checks


_BOUND_OPS = (("ge", ">=", operator.ge), ("gt", ">", operator.gt), ("le", "<=", operator.le), ("lt", "<", operator.lt))


def _bound_checks(value: pl.Expr, c: Constraints) -> list[tuple[pl.Expr, str, pl.Expr]]:
    # `gt` and `lt` are checked here as stated: the response schema could only carry them as inclusive bounds.
    bounds = [(getattr(c, key), symbol, op, key) for key, symbol, op in _BOUND_OPS]
    return [
        (op(value, b), f"a value {symbol} {b} ({key})", value.cast(pl.String))
        for b, symbol, op, key in bounds
        if b is not None
    ]


def _leaf_value(expr: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, str]:
    if isinstance(dtype, pl.String):
        return expr, "a string"
    if dtype.is_integer():
        return expr.str.to_integer(strict=False).cast(dtype, strict=False), f"an integer ({dtype})"
    if dtype.is_float():
        return expr.cast(pl.Float64, strict=False).cast(dtype), "a number"
    if isinstance(dtype, pl.Boolean):
        return pl.when(expr == "true").then(True).when(expr == "false").then(False), "true or false"
    if isinstance(dtype, pl.Enum):
        cats = dtype.categories
        return pl.when(expr.is_in(cats.implode())).then(expr).cast(dtype), f"one of {cats.to_list()}"
    if isinstance(dtype, pl.Date):
        return expr.str.strip_chars().str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False), "a date YYYY-MM-DD"
    if isinstance(dtype, pl.Datetime):
        return _datetime(expr.str.strip_chars(), dtype), "an ISO 8601 date-time"
    raise AssertionError(f"unsupported leaf dtype {dtype}")  # _schema.from_dtype admits no other leaves


def _datetime(expr: pl.Expr, dtype: pl.Datetime) -> pl.Expr:
    unit = dtype.time_unit or "us"
    aware = expr.str.replace(r"Z$", "+00:00").str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit=unit, time_zone="UTC"
    )
    naive = pl.coalesce(
        expr.str.to_datetime(fmt, strict=False, time_unit=unit)
        for fmt in ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
    )
    if dtype.time_zone is None:
        return pl.coalesce(aware.dt.replace_time_zone(None), naive)
    return pl.coalesce(aware.dt.convert_time_zone(dtype.time_zone), naive.dt.replace_time_zone(dtype.time_zone))


_TEXT, _IS_OBJECT, _LOOSE, _ERR = "__pg_text", "__pg_is_object", "__pg_loose", "__pg_err"


def decode_answers(texts: pl.Series, field: Field) -> pl.DataFrame:
    """Decode JSON answers into a frame with the struct column `value` and the String column `problem`.

    `value` is null wherever `problem` is set: an answer that breaks its schema or a constraint is not half kept.
    """
    s = pl.col(_TEXT)
    stripped = pl.DataFrame({_TEXT: spread(texts)}).select(s.str.strip_chars())  # frame queries: see `_json.spread`
    checked = stripped.select(s, (s.str.starts_with("{") & s.str.json_path_match("$").is_not_null()).alias(_IS_OBJECT))
    is_object = checked.get_column(_IS_OBJECT).fill_null(False)
    candidates = checked.get_column(_TEXT).zip_with(is_object, pl.Series([None], dtype=pl.String))
    loose, decode_errors = json_decode_tolerant(candidates, loose_dtype(field))
    value, problem = convert(pl.col(_LOOSE), field, "")
    text = pl.col(_TEXT)
    invalid = pl.when(text.is_not_null() & ~pl.col(_IS_OBJECT)).then(
        _message("answer is not a valid JSON object: ", text)
    )
    frame = pl.DataFrame({_TEXT: texts, _IS_OBJECT: is_object, _LOOSE: loose, _ERR: decode_errors})
    problem = pl.coalesce(invalid, pl.col(_ERR), pl.when(text.is_not_null()).then(problem))
    both = frame.select(pl.when(pl.col(_ERR).is_null()).then(value).alias(_LOOSE), problem.alias(_ERR))
    return both.select(
        pl.when(pl.col(_ERR).is_null()).then(pl.col(_LOOSE)).alias("value"), pl.col(_ERR).alias("problem")
    )
