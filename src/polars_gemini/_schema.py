"""Output schemas: user input (dict of dtypes, `pl.Schema`, pydantic model) -> one tree of `Field`s.

From the tree come the three things the library needs: the Gemini `responseSchema` (OpenAPI subset, the form that is
reliable in batch mode), the Polars dtype of the decoded columns, and the decoder in `_decode.py`.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

import polars as pl

from polars_gemini._errors import SchemaError

SchemaLike = Mapping[str, Any] | pl.Schema | type


@dataclass(frozen=True)
class Field:
    """A node of an output schema. `children` for Struct, `item` for List, neither for leaves."""

    dtype: pl.DataType
    nullable: bool = False
    children: tuple[tuple[str, Field], ...] = ()
    item: Field | None = None

    @property
    def is_struct(self) -> bool:
        return isinstance(self.dtype, pl.Struct)

    @property
    def is_list(self) -> bool:
        return isinstance(self.dtype, pl.List)


_INTS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
_FLOATS = (pl.Float32, pl.Float64)


def from_dtype(dtype: Any, *, where: str, nullable: bool = False) -> Field:
    """A `Field` for a Polars dtype (class or instance)."""
    if isinstance(dtype, type) and issubclass(dtype, pl.DataType):
        if dtype in (pl.List, pl.Struct, pl.Enum, pl.Array):
            raise SchemaError(f"Field {where!r}: {dtype.__name__} needs parameters, e.g. pl.List(pl.String).")
        dtype = dtype()
    if not isinstance(dtype, pl.DataType):
        raise SchemaError(f"Field {where!r}: expected a Polars dtype, got {dtype!r}.")
    if isinstance(dtype, pl.Struct):
        kids = tuple((f.name, from_dtype(f.dtype, where=f"{where}.{f.name}")) for f in dtype.fields)
        return _struct(kids, nullable)
    if isinstance(dtype, (pl.List, pl.Array)):
        item = from_dtype(dtype.inner, where=f"{where}[]")
        return Field(pl.List(item.dtype), nullable, item=item)
    if isinstance(dtype, pl.Categorical):
        dtype = pl.String()
    if not isinstance(dtype, (pl.String, pl.Boolean, pl.Enum, pl.Date, pl.Datetime, *_INTS, *_FLOATS)):
        raise SchemaError(
            f"Field {where!r}: dtype {dtype} is not supported. Supported: String, integers, floats, Boolean, "
            "Enum, Date, Datetime, List, Struct."
        )
    return Field(dtype, nullable)


def _struct(kids: tuple[tuple[str, Field], ...], nullable: bool) -> Field:
    dtype = pl.Struct({name: f.dtype for name, f in kids})
    return Field(dtype, nullable, children=kids)


def from_pydantic(model: type, *, where: str = "", nullable: bool = False) -> Field:
    """A `Field` for a pydantic model class; `Optional[...]` fields become nullable."""
    fields = getattr(model, "model_fields", None)
    if fields is None:
        raise SchemaError(f"{model!r} is not a pydantic model class.")
    hints = typing.get_type_hints(model)
    kids = tuple(
        (name, from_annotation(hints.get(name, f.annotation), where=f"{where}{name}")) for name, f in fields.items()
    )
    return _struct(kids, nullable)


_SCALARS: dict[Any, pl.DataType] = {
    str: pl.String(),
    int: pl.Int64(),
    float: pl.Float64(),
    bool: pl.Boolean(),
    dt.date: pl.Date(),
    dt.datetime: pl.Datetime("us"),
}


def from_annotation(tp: Any, *, where: str, nullable: bool = False) -> Field:
    """A `Field` for a Python type annotation as used in pydantic models."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise SchemaError(f"Field {where!r}: unions other than Optional[X] are not supported ({tp}).")
        return from_annotation(rest[0], where=where, nullable=True)
    if origin is Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        values = args if origin is Literal else tuple(m.value for m in tp)
        if not values or not all(isinstance(v, str) for v in values):
            raise SchemaError(f"Field {where!r}: Literal/Enum members must be strings, got {values!r}.")
        return Field(pl.Enum(list(dict.fromkeys(values))), nullable)
    if origin in (list, tuple, set, frozenset, typing.Sequence) or tp in (list,):
        if not args:
            raise SchemaError(f"Field {where!r}: give the item type, e.g. list[str].")
        item = from_annotation(args[0], where=f"{where}[]")
        return Field(pl.List(item.dtype), nullable, item=item)
    if tp in _SCALARS:
        return Field(_SCALARS[tp], nullable)
    if isinstance(tp, type) and hasattr(tp, "model_fields"):
        return from_pydantic(tp, where=f"{where}.", nullable=nullable)
    raise SchemaError(f"Field {where!r}: type {tp!r} is not supported in a response schema.")


def to_field(schema: SchemaLike) -> Field:
    """Normalize any accepted schema form to a root struct `Field`."""
    if isinstance(schema, type) and hasattr(schema, "model_fields"):
        return from_pydantic(schema)
    if isinstance(schema, (pl.Schema, Mapping)):
        if not schema:
            raise SchemaError("The schema is empty: give at least one field, e.g. {'label': pl.String}.")
        kids = tuple((str(k), from_dtype(v, where=str(k))) for k, v in schema.items())
        return _struct(kids, False)
    raise SchemaError(
        f"schema must be a dict of column -> Polars dtype, a pl.Schema or a pydantic model class; got {schema!r}."
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
    if field.nullable:
        out["nullable"] = True
    return out


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
