"""Output schemas: user input (dict of dtypes, `pl.Schema`, pydantic model) -> one tree of `Field`s.

From the tree come the three things the library needs: the Gemini `responseSchema` (OpenAPI subset, the form that is
reliable in batch mode), the Polars dtype of the decoded columns, and the decoder in `_decode.py`. Value constraints of
pydantic models (`Field(ge=...)`, `annotated_types`, `conint`/`constr`) travel on the tree as `Constraints`: they
reach the `responseSchema` where it has a field for them and are enforced again when decoding.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime as dt
import enum
import math
import numbers
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import annotated_types as at
import polars as pl
from pydantic.fields import FieldInfo

from polars_gemini.core.errors import SchemaError

SchemaLike = Mapping[str, Any] | pl.Schema | type
Number = int | float


@dataclass(frozen=True)
class Constraints:
    """Constraints on a field's values, as pydantic states them; `None` where there is none.

    `min_length`/`max_length` count the characters of a string or the items of a list; `pattern` is searched, not
    anchored (as pydantic does). Bounds apply to numbers.
    """

    ge: Number | None = None
    gt: Number | None = None
    le: Number | None = None
    lt: Number | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


_NONE = Constraints()


@dataclass(frozen=True)
class Field:
    """A node of an output schema. `children` for Struct, `item` for List, neither for leaves."""

    dtype: pl.DataType
    nullable: bool = False
    children: tuple[tuple[str, Field], ...] = ()
    item: Field | None = None
    constraints: Constraints = _NONE

    @property
    def is_struct(self) -> bool:
        return isinstance(self.dtype, pl.Struct)

    @property
    def is_list(self) -> bool:
        return isinstance(self.dtype, pl.List)


_INTS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
_FLOATS = (pl.Float32, pl.Float64)
_HINT_EMPTY = "Hint: give it at least one field, or leave it out."


def from_dtype(dtype: Any, *, where: str, nullable: bool = False) -> Field:
    """A `Field` for a Polars dtype (class or instance)."""
    if isinstance(dtype, type) and issubclass(dtype, pl.DataType):
        if dtype in (pl.List, pl.Struct, pl.Enum, pl.Array):
            raise SchemaError(f"Field {where!r}: {dtype.__name__} needs parameters, e.g. pl.List(pl.String).")
        dtype = dtype()
    if not isinstance(dtype, pl.DataType):
        raise SchemaError(f"Field {where!r}: expected a Polars dtype, got {dtype!r}.")
    if isinstance(dtype, pl.Struct):
        if not dtype.fields:
            raise SchemaError(f"Field {where!r}: pl.Struct({{}}) has no fields, so it has no JSON form. {_HINT_EMPTY}")
        kids = tuple((f.name, from_dtype(f.dtype, where=f"{where}.{f.name}")) for f in dtype.fields)
        return _struct(kids, nullable, where)
    if isinstance(dtype, (pl.List, pl.Array)):
        item = from_dtype(dtype.inner, where=f"{where}[]")
        return Field(pl.List(item.dtype), nullable, item=item)
    if isinstance(dtype, pl.Categorical):
        dtype = pl.String()
    if isinstance(dtype, pl.Enum) and dtype.categories.len() == 0:
        raise SchemaError(
            f"Field {where!r}: pl.Enum([]) has no categories, so no answer could match it. "
            "Hint: list the allowed values, e.g. pl.Enum(['yes', 'no'])."
        )
    if not isinstance(dtype, (pl.String, pl.Boolean, pl.Enum, pl.Date, pl.Datetime, *_INTS, *_FLOATS)):
        raise SchemaError(
            f"Field {where!r}: dtype {dtype} is not supported. Supported: String, integers, floats, Boolean, "
            "Enum, Date, Datetime, List, Struct."
        )
    return Field(dtype, nullable)


def _struct(kids: tuple[tuple[str, Field], ...], nullable: bool, where: str) -> Field:
    names = [name for name, _ in kids]
    if "" in names:
        raise SchemaError(f"Field {where or 'the schema'!r} has a field with an empty name. Hint: name every field.")
    if len(set(names)) < len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SchemaError(f"Field {where or 'the schema'!r} has two fields named {dup!r}. Hint: rename one of them.")
    return Field(pl.Struct({name: f.dtype for name, f in kids}), nullable, children=kids)


def from_pydantic(model: type, *, where: str = "", nullable: bool = False) -> Field:
    """A `Field` for a pydantic model class; `Optional[...]` fields become nullable, constraints are kept."""
    return _model(model, where, nullable, ())


def _model(model: type, where: str, nullable: bool, seen: tuple[type, ...]) -> Field:
    if getattr(model, "model_fields", None) is None:
        raise SchemaError(f"{model!r} is not a pydantic model class.")
    name = getattr(model, "__name__", repr(model))
    if model in seen:
        chain = " -> ".join(getattr(m, "__name__", "?") for m in (*seen, model))
        raise SchemaError(
            f"Field {where.rstrip('.') or name!r}: model {name} contains itself ({chain}), so its answers have no "
            "fixed column dtype. Hint: unroll it to a fixed depth with separate models (e.g. Node with "
            "children: list[Leaf]), or ask for the nested part as a JSON string field."
        )
    _complete(model, name)
    fields = model.model_fields  # type: ignore[attr-defined]
    if not fields:
        raise SchemaError(f"Model {name} has no fields, so it has no JSON form. {_HINT_EMPTY}")
    # pydantic's own resolved annotations: `typing.get_type_hints` cannot see models defined inside a function.
    kids = tuple(
        (n, _annotation(f.annotation, f"{where}{n}", False, tuple(f.metadata), (*seen, model)))
        for n, f in fields.items()
    )
    return _struct(kids, nullable, where.rstrip("."))


def _complete(model: type, name: str) -> None:
    """Make pydantic resolve the model's forward references now, or say which name it cannot find."""
    if getattr(model, "__pydantic_complete__", True):
        return
    from pydantic import PydanticUndefinedAnnotation

    try:
        model.model_rebuild()  # type: ignore[attr-defined]
    except PydanticUndefinedAnnotation as exc:
        raise SchemaError(
            f"Model {name} is not fully defined: pydantic cannot resolve {exc.name!r}. Hint: define {exc.name} "
            f"before {name}, or call {name}.model_rebuild() once it is defined."
        ) from None


_SCALARS: dict[Any, pl.DataType] = {
    str: pl.String(),
    int: pl.Int64(),
    float: pl.Float64(),
    bool: pl.Boolean(),
    dt.date: pl.Date(),
    dt.datetime: pl.Datetime("us"),
}
_SEQUENCES = (list, set, frozenset, collections.abc.Sequence, collections.abc.Set)


def from_annotation(tp: Any, *, where: str, nullable: bool = False) -> Field:
    """A `Field` for a Python type annotation as used in pydantic models."""
    return _annotation(tp, where, nullable, (), ())


def _annotation(tp: Any, where: str, nullable: bool, meta: tuple[Any, ...], seen: tuple[type, ...]) -> Field:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return _annotation(args[0], where, nullable, (*meta, *args[1:]), seen)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise SchemaError(f"Field {where!r}: unions other than Optional[X] are not supported ({tp}).")
        return _annotation(rest[0], where, True, meta, seen)
    if origin is tuple or tp is tuple:
        return _tuple(args, where, nullable, meta, seen)
    if origin in _SEQUENCES or tp in _SEQUENCES:
        if not args:
            raise SchemaError(f"Field {where!r}: give the item type, e.g. list[str].")
        return _list(_annotation(args[0], f"{where}[]", False, (), seen), nullable, meta, where)
    if isinstance(tp, type) and hasattr(tp, "model_fields"):
        return _constrained(_model(tp, f"{where}.", nullable, seen), meta, where)
    return _constrained(_leaf(tp, origin, args, where, nullable), meta, where)


def _leaf(tp: Any, origin: Any, args: tuple[Any, ...], where: str, nullable: bool) -> Field:
    if origin is Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        values = args if origin is Literal else tuple(m.value for m in tp)
        if not values or not all(isinstance(v, str) for v in values):
            raise SchemaError(f"Field {where!r}: Literal/Enum members must be strings (at least one), got {values!r}.")
        return Field(pl.Enum(list(dict.fromkeys(values))), nullable)
    if tp in _SCALARS:
        return Field(_SCALARS[tp], nullable)
    raise SchemaError(f"Field {where!r}: type {tp!r} is not supported in a response schema.")


def _tuple(args: tuple[Any, ...], where: str, nullable: bool, meta: tuple[Any, ...], seen: tuple[type, ...]) -> Field:
    """`tuple[X, ...]` is a list of X; `tuple[X, X]` a list of exactly two; mixed item types have no list form."""
    if len(args) == 2 and args[1] is Ellipsis:
        return _list(_annotation(args[0], f"{where}[]", False, (), seen), nullable, meta, where)
    if not args:
        raise SchemaError(f"Field {where!r}: give the item types, e.g. tuple[int, ...] for a list of integers.")
    items = [_annotation(a, f"{where}[]", False, (), seen) for a in args]
    if any(item != items[0] for item in items):
        raise SchemaError(
            f"Field {where!r}: a tuple of {', '.join(str(i.dtype) for i in items)} has no list form (its items differ "
            "in type or constraints). Hint: use a nested model with one field per position, or tuple[X, ...] for a "
            "list of X."
        )
    exact = (at.MinLen(len(args)), at.MaxLen(len(args)))
    return _list(items[0], nullable, (*exact, *meta), where)


def _list(item: Field, nullable: bool, meta: tuple[Any, ...], where: str) -> Field:
    return _constrained(Field(pl.List(item.dtype), nullable, item=item), meta, where)


def _constrained(field: Field, meta: tuple[Any, ...], where: str) -> Field:
    if not meta:
        return field
    constraints = _constraints(meta, where)
    check_constraints(field.dtype, constraints, where)
    return dataclasses.replace(field, constraints=constraints)


# Keys of pydantic's general metadata that constrain nothing a JSON answer could break (decoding is strict anyway).
_HARMLESS = frozenset({"strict", "allow_inf_nan", "coerce_numbers_to_str", "union_mode", "fail_fast"})
_BOUNDS = {at.Ge: "ge", at.Gt: "gt", at.Le: "le", at.Lt: "lt", at.MinLen: "min_length", at.MaxLen: "max_length"}
_TIGHTER = {"ge": max, "gt": max, "min_length": max, "le": min, "lt": min, "max_length": min}


def _constraints(meta: Iterable[Any], where: str) -> Constraints:
    """The constraints in pydantic field metadata; SchemaError for those that could be neither sent nor checked."""
    found: dict[str, Any] = {}
    for key, value in _metadata_items(meta, where):
        if key in found and key == "pattern" and found[key] != value:
            raise SchemaError(f"Field {where!r}: two patterns ({found[key]!r}, {value!r}). Hint: merge them into one.")
        found[key] = _TIGHTER[key](found[key], value) if key in found and key in _TIGHTER else value
    return Constraints(**found)


def _metadata_items(meta: Iterable[Any], where: str) -> Iterator[tuple[str, Any]]:
    for item in meta:
        if isinstance(item, FieldInfo):  # `Annotated[int, Field(ge=0)]` nested in another annotation
            yield from _metadata_items(item.metadata, where)
        elif isinstance(item, at.GroupedMetadata):  # Interval, Len, pydantic's StringConstraints
            yield from _metadata_items(item, where)
        elif type(item) in _BOUNDS:
            key = _BOUNDS[type(item)]
            yield key, _number(getattr(item, key), key, where)
        elif isinstance(item, (at.MultipleOf, at.Predicate, at.Timezone, at.Unit)):
            _unsupported(item, where)
        elif isinstance(item, at.BaseMetadata):  # pydantic's general metadata: pattern, strict, max_digits, ...
            values = dict(vars(item)) if hasattr(item, "__dict__") else dataclasses.asdict(item)  # type: ignore[call-overload]
            for key, value in values.items():
                if key == "pattern" and value is not None:
                    yield "pattern", value if isinstance(value, str) else value.pattern
                elif value is not None and key not in _HARMLESS:
                    _unsupported(f"{key}={value!r}", where)
        # Anything else (docs, validators, JSON-schema hints) states nothing the API or the decoder could check.


def _number(value: Any, key: str, where: str) -> Number:
    """A bound as int or float (pydantic also takes Decimal and Fraction); SchemaError for anything else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise SchemaError(f"Field {where!r}: {key} must be a finite number, got {value!r}.")
    return value if isinstance(value, int) else float(value)


def _unsupported(what: Any, where: str) -> typing.NoReturn:
    raise SchemaError(
        f"Field {where!r}: the constraint {what} is not supported: the response schema cannot state it and "
        "polars-gemini does not check it when decoding. Supported: ge, gt, le, lt (numbers), min_length, max_length "
        "(strings, lists), pattern (strings). Hint: remove it and check the column after the run."
    )


def check_constraints(dtype: pl.DataType, c: Constraints, where: str) -> None:
    """SchemaError unless every constraint in `c` applies to `dtype` and some value can satisfy them all."""
    bounds = [b for b in (c.ge, c.gt, c.le, c.lt) if b is not None]
    numeric = dtype.is_integer() or dtype.is_float()
    lengths = c.min_length is not None or c.max_length is not None
    if bounds and not numeric:
        _misplaced("ge/gt/le/lt", "numbers", dtype, where)
    if lengths and not isinstance(dtype, (pl.String, pl.List)):
        _misplaced("min_length/max_length", "strings and lists", dtype, where)
    if c.pattern is not None and not isinstance(dtype, pl.String):
        _misplaced("pattern", "strings", dtype, where)
    for key in ("ge", "gt", "le", "lt"):
        if getattr(c, key) is not None:
            _number(getattr(c, key), key, where)
    low, high = inclusive_bounds(c, integer=dtype.is_integer())
    # A single point is empty when an exclusive bound sits on it (integers' bounds are already exact).
    no_number = low is not None and high is not None and (low > high or (low == high and low in (c.gt, c.lt)))
    if no_number or (c.max_length is not None and (c.min_length or 0) > c.max_length):
        raise SchemaError(f"Field {where!r}: no value can satisfy {c.to_json()}. Hint: check the bounds.")
    if c.pattern is not None:
        _check_pattern(c.pattern, where)


def _misplaced(what: str, applies_to: str, dtype: pl.DataType, where: str) -> typing.NoReturn:
    raise SchemaError(f"Field {where!r}: {what} applies to {applies_to}, not to {dtype}. Hint: remove it.")


def _check_pattern(pattern: str, where: str) -> None:
    """The pattern is checked on decode by Polars (Rust regex, as pydantic's default engine): it must compile."""
    try:
        pl.Series([""]).str.contains(pattern)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SchemaError(
            f"Field {where!r}: pattern {pattern!r} is not a regex Polars can check ({first}). Hint: avoid "
            "look-around and back-references, which Rust regex (and pydantic's default engine) do not support."
        ) from None


def to_field(schema: SchemaLike) -> Field:
    """Normalize any accepted schema form to a root struct `Field`."""
    if isinstance(schema, type) and hasattr(schema, "model_fields"):
        return from_pydantic(schema)
    if isinstance(schema, (pl.Schema, Mapping)):
        if not schema:
            raise SchemaError("The schema is empty: give at least one field, e.g. {'label': pl.String}.")
        kids = tuple((str(k), from_dtype(v, where=str(k))) for k, v in schema.items())
        return _struct(kids, False, "")
    raise SchemaError(
        f"schema must be a dict of column -> Polars dtype, a pl.Schema or a pydantic model class; got {schema!r}."
    )


# The columns `_estimate.usage_columns` adds with `usage=True`, after `{output}_`.
_USAGE = ("input_tokens", "output_tokens", "thinking_tokens", "cached_tokens")


def check_names(field: Field | None, output: str, prefix: str = "", *, usage: bool = False) -> None:
    """SchemaError when a field's column (`prefix` + name) would take the name of the error or a usage column.

    Nothing to check in text mode (`field` None). Call it before sending: only the call knows `output` and `prefix`.

    >>> check_names(to_field({"response_error": pl.String}), "response", "llm_")  # 'llm_response_error': fine
    """
    if field is None:
        return
    taken = {f"{output}_error": "the error column"}
    if usage:
        taken |= {f"{output}_{suffix}": "a usage column (usage=True)" for suffix in _USAGE}
    for name, _ in field.children:
        column = f"{prefix}{name}"
        if column in taken:
            raise SchemaError(
                f"Schema field {name!r} would become the column {column!r}, which is {taken[column]} of "
                f"output={output!r}. Hint: pass prefix='llm_' or another output=, or rename the field."
            )


def response_schema(field: Field) -> dict[str, Any]:
    """The Gemini `responseSchema` (OpenAPI subset, proto field names) for `field`."""
    out: dict[str, Any] = _leaf_schema(field.dtype) if not (field.is_struct or field.is_list) else {}
    if field.is_struct:
        names = [n for n, _ in field.children]
        out = {
            "type": "OBJECT",
            "properties": {n: response_schema(f) for n, f in field.children},
            "required": [n for n, f in field.children if not f.nullable],
            "property_ordering": names,
        }
    elif field.item is not None:
        out = {"type": "ARRAY", "items": response_schema(field.item)}
    if field.constraints != _NONE:
        out |= _constraint_schema(field, out.get("minimum"))
    if field.nullable:
        out["nullable"] = True
    return out


def _constraint_schema(field: Field, floor: float | None) -> dict[str, Any]:
    c, out = field.constraints, dict[str, Any]()
    if field.is_list:
        out = {"min_items": c.min_length, "max_items": c.max_length}
    elif isinstance(field.dtype, pl.String):
        out = {"min_length": c.min_length, "max_length": c.max_length, "pattern": c.pattern}
    else:
        low, high = inclusive_bounds(c, integer=field.dtype.is_integer())
        lows = [b for b in (floor, low) if b is not None]  # `floor`: 0 for unsigned integers
        out = {"minimum": max(lows) if lows else None, "maximum": high}
    return {k: v for k, v in out.items() if v is not None}


def inclusive_bounds(c: Constraints, *, integer: bool) -> tuple[float | None, float | None]:
    """The (minimum, maximum) to send: the Schema has no exclusiveMinimum/exclusiveMaximum, so an exclusive bound is
    sent as an inclusive one (exact for integers, whose neighbour is known) and enforced as stated when decoding."""
    gt = None if c.gt is None else (math.floor(c.gt) + 1 if integer else c.gt)
    lt = None if c.lt is None else (math.ceil(c.lt) - 1 if integer else c.lt)
    low = [float(b) for b in (c.ge, gt) if b is not None]
    high = [float(b) for b in (c.le, lt) if b is not None]
    return (max(low) if low else None), (min(high) if high else None)


def _leaf_schema(dtype: pl.DataType) -> dict[str, Any]:
    if isinstance(dtype, pl.Enum):
        return {"type": "STRING", "enum": dtype.categories.to_list(), "format": "enum"}
    if isinstance(dtype, pl.Boolean):
        return {"type": "BOOLEAN"}
    if isinstance(dtype, _INTS):
        unsigned = {"minimum": 0} if dtype.is_unsigned_integer() else {}
        return {"type": "INTEGER", **unsigned}
    if isinstance(dtype, _FLOATS):
        return {"type": "NUMBER"}
    if isinstance(dtype, pl.Date):
        return {"type": "STRING", "format": "date"}
    if isinstance(dtype, pl.Datetime):
        return {"type": "STRING", "format": "date-time"}
    return {"type": "STRING"}


def field_to_json(field: Field) -> dict[str, Any]:
    """`field`'s tree as JSON, without dtypes (save those as a Polars schema): nullability and constraints per node.

    >>> field_to_json(to_field({"a": pl.Int64}))
    {'children': [['a', {}]]}
    """
    out: dict[str, Any] = {"nullable": True} if field.nullable else {}
    if field.constraints != _NONE:
        out["constraints"] = field.constraints.to_json()
    if field.children:
        out["children"] = [[name, field_to_json(f)] for name, f in field.children]
    if field.item is not None:
        out["item"] = field_to_json(field.item)
    return out


def field_from_json(data: Mapping[str, Any], dtype: Any, *, where: str = "value") -> Field:
    """The `Field` that `field_to_json` saved, given its dtype; SchemaError if the two do not fit together.

    >>> f = to_field({"a": pl.Int64}); field_from_json(field_to_json(f), f.dtype) == f
    True
    """
    try:
        constraints = Constraints(**data.get("constraints", {}))
    except TypeError as exc:
        raise SchemaError(
            f"Field {where!r}: saved constraints {data.get('constraints')!r} are invalid ({exc})."
        ) from None
    if isinstance(dtype, type):  # nested dtypes may be classes (`pl.Int64`), as in `from_dtype`
        dtype = dtype()
    check_constraints(dtype, constraints, where)
    nullable = bool(data.get("nullable", False))
    if isinstance(dtype, pl.Struct):
        saved = data.get("children") or []
        if [name for name, _ in saved] != [f.name for f in dtype.fields]:
            raise SchemaError(f"Field {where!r}: saved fields {[n for n, _ in saved]} do not match dtype {dtype}.")
        kids = tuple(
            (f.name, field_from_json(d, f.dtype, where=f"{where}.{f.name}"))
            for f, (_, d) in zip(dtype.fields, saved, strict=True)
        )
        return Field(dtype, nullable, children=kids, constraints=constraints)
    if isinstance(dtype, pl.List):
        item = field_from_json(data.get("item") or {}, dtype.inner, where=f"{where}[]")
        return Field(dtype, nullable, item=item, constraints=constraints)
    return dataclasses.replace(from_dtype(dtype, where=where), nullable=nullable, constraints=constraints)
