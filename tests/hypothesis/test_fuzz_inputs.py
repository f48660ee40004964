"""Fuzzing the inputs of `df.gemini.batch`: random schemas (dtype dicts and pydantic models) and random frames.

The property: a call either raises a `GeminiBatchError` before any request reaches the emulator, or returns exactly
the input rows, in order, plus the output columns, where every row has an answer or a non-null error (never neither).
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Optional

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydantic import Field, create_model

import polars_gemini  # noqa: F401
from polars_gemini import GeminiBatchError
from polars_gemini.emulator import Emulator, default_responder

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
# Names the library uses internally, names Polars would read as selectors, and names that clash with added columns.
ODD_NAMES = [
    "key", "prompt", "value", "problem", "text", "error", "err", "loose", "is_object", "s", "o", "t", "shard",
    "response", "response_error", "__pg_key", "__pg_skip", "*", "^a.*$", "{}", "x.y", "a[0]", "", " ", "é名",
]  # fmt: skip
IDENTIFIERS = st.one_of(
    st.sampled_from(["key", "value", "problem", "text", "error", "s", "t"]),
    st.from_regex(r"[a-z]{1,3}", fullmatch=True),
)
NAMES = st.one_of(IDENTIFIERS, st.sampled_from(ODD_NAMES), st.text(alphabet="ab_{}*.", max_size=3))
_SERIAL = itertools.count()


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(responder=default_responder) as emulator:
        yield emulator


# --- (a) schemas -------------------------------------------------------------------------------------------------


def _rarely(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], one_in: int = 6) -> st.SearchStrategy[Any]:
    """`rare` about one time in `one_in` (`one_of` draws its distinct branches evenly, so it cannot weigh them)."""
    return st.integers(1, one_in).flatmap(lambda i: rare if i == 1 else common)


SUPPORTED_LEAVES = st.sampled_from(
    [
        pl.String, pl.Int64, pl.Int8, pl.UInt8, pl.UInt64, pl.Float32, pl.Float64, pl.Boolean, pl.Date,
        pl.Datetime("us"), pl.Datetime("ms", "Europe/Paris"), pl.Categorical,
    ]
)  # fmt: skip
UNSUPPORTED_LEAVES = st.sampled_from(
    [pl.Decimal(10, 2), pl.Duration("us"), pl.Binary, pl.Null, pl.Time, pl.List, pl.Struct]
)
LEAF_DTYPES = _rarely(SUPPORTED_LEAVES, UNSUPPORTED_LEAVES, one_in=4)


ENUM_VALUES = st.lists(st.sampled_from(["a", "b", "", "{}", "*", "é", "a b"]), unique=True, min_size=1, max_size=3)
ENUMS = _rarely(ENUM_VALUES.map(pl.Enum), st.just(pl.Enum([])))
SCHEMA_DTYPES = st.recursive(
    st.one_of(LEAF_DTYPES, ENUMS),
    lambda inner: st.one_of(
        inner.map(pl.List),
        inner.map(lambda d: pl.Array(d, 2)),
        _rarely(st.dictionaries(NAMES, inner, min_size=1, max_size=3).map(pl.Struct), st.just(pl.Struct({}))),
    ),
    max_leaves=6,
)
DTYPE_SCHEMAS = _rarely(st.dictionaries(NAMES, SCHEMA_DTYPES, min_size=1, max_size=4), st.just({}))

NUMBER = st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False))
NUMBER_CONSTRAINTS = _rarely(
    st.fixed_dictionaries({}, optional={"ge": NUMBER, "gt": NUMBER, "le": NUMBER, "lt": NUMBER}),
    st.fixed_dictionaries({"multiple_of": st.sampled_from([2, 0.5])}),
)
LENGTH_CONSTRAINTS = st.fixed_dictionaries(
    {}, optional={"min_length": st.integers(0, 3), "max_length": st.integers(0, 4)}
)
STRING_CONSTRAINTS = st.fixed_dictionaries(
    {},
    optional={
        "min_length": st.integers(0, 3),
        "max_length": st.integers(0, 6),
        "pattern": st.sampled_from([r"^[a-z ]+$", r"\w", "^$", "a|e", "[0-9]"]),
    },
)


def _constrained(base: Any, constraints: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    return constraints.map(lambda kw: Annotated[base, Field(**kw)] if kw else base)


def _literal(values: list[Any]) -> Any:
    return Literal[tuple(values)] if values else str  # type: ignore[valid-type]


def _enum(values: list[Any]) -> Any:
    return enum.Enum("E", {f"m{i}": v for i, v in enumerate(values)}) if values else bool


LITERAL_VALUES = _rarely(ENUM_VALUES, st.lists(st.sampled_from(["a", 1]), unique=True, max_size=2))
ANNOTATION_LEAVES = st.one_of(
    st.sampled_from([int, float, str, bool, dt.date, dt.datetime, dict, Any, tuple]),
    _constrained(int, NUMBER_CONSTRAINTS),
    _constrained(float, NUMBER_CONSTRAINTS),
    _constrained(str, STRING_CONSTRAINTS),
    LITERAL_VALUES.map(_literal),
    LITERAL_VALUES.map(_enum),
)


def _model(fields: dict[str, Any]) -> Any:
    """A pydantic model with these fields, or None when pydantic itself refuses it (not what is tested here)."""
    try:
        return create_model(f"M{next(_SERIAL)}", **{name: (tp, ...) for name, tp in fields.items()})
    except Exception:  # pydantic's own verdict on a model it cannot build (and its warnings, which are errors)
        return None


def _annotations(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        inner.map(lambda tp: list[tp]),  # type: ignore[valid-type]
        inner.map(lambda tp: Optional[tp]),  # noqa: UP045
        inner.map(lambda tp: tuple[tp, ...]),  # type: ignore[valid-type]
        st.tuples(inner, inner).map(lambda tps: tuple[tps]),  # type: ignore[valid-type]
        st.tuples(inner, LENGTH_CONSTRAINTS).map(lambda a: Annotated[list[a[0]], Field(**a[1])]),  # type: ignore[valid-type]
        st.dictionaries(IDENTIFIERS, inner, max_size=3).map(_model).filter(lambda m: m is not None),
    )


ANNOTATIONS = st.recursive(ANNOTATION_LEAVES, _annotations, max_leaves=6)
MODELS = st.dictionaries(IDENTIFIERS, ANNOTATIONS, min_size=1, max_size=4).map(_model).filter(lambda m: m is not None)


# --- (b) frames --------------------------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=8)
COLUMN_KINDS: dict[str, tuple[Any, st.SearchStrategy[Any]]] = {
    "string": (pl.String, TEXT),
    "int64": (pl.Int64, st.integers(-(2**63), 2**63 - 1)),
    "int8": (pl.Int8, st.integers(-128, 127)),
    "uint32": (pl.UInt32, st.integers(0, 2**32 - 1)),
    "float64": (pl.Float64, st.floats()),
    "float32": (pl.Float32, st.floats(width=32)),
    "bool": (pl.Boolean, st.booleans()),
    "date": (pl.Date, st.dates()),
    "datetime": (pl.Datetime("us"), st.datetimes()),
    "datetime_tz": (pl.Datetime("ms", "UTC"), st.datetimes(timezones=st.just(dt.timezone.utc))),
    "duration": (pl.Duration("us"), st.timedeltas(min_value=dt.timedelta(days=-999), max_value=dt.timedelta(days=999))),
    "binary": (pl.Binary, st.binary(max_size=6)),
    "list": (pl.List(pl.String), st.lists(st.one_of(st.none(), TEXT), max_size=3)),
    "list_int": (pl.List(pl.Int64), st.lists(st.integers(-9, 9), max_size=3)),
    "struct": (
        pl.Struct({"a": pl.Int64, "b": pl.String}),
        st.fixed_dictionaries({"a": st.one_of(st.none(), st.integers(-9, 9)), "b": st.one_of(st.none(), TEXT)}),
    ),
    "array": (pl.Array(pl.Int64, 2), st.lists(st.integers(-9, 9), min_size=2, max_size=2)),
    "categorical": (pl.Categorical, st.sampled_from(["x", "y", "{z}"])),
    "enum": (pl.Enum(["x", "y"]), st.sampled_from(["x", "y"])),
    "null": (pl.Null, st.none()),
}


@st.composite
def frames(draw: st.DrawFn) -> pl.DataFrame:
    height = draw(st.integers(0, 5))
    names = draw(st.lists(_rarely(IDENTIFIERS, NAMES, one_in=3), min_size=1, max_size=4, unique=True))
    columns = []
    for name in names:
        dtype, values = COLUMN_KINDS[draw(st.sampled_from(sorted(COLUMN_KINDS)))]
        cells = draw(st.lists(st.one_of(st.none(), values), min_size=height, max_size=height))
        columns.append(pl.Series(name, cells, dtype=dtype))
    return pl.DataFrame(columns)


@st.composite
def templates(draw: st.DrawFn, columns: list[str]) -> str:
    """A template over some of `columns` (sometimes one the frame lacks), with literal text and escaped braces."""
    picked = draw(st.lists(_rarely(st.sampled_from(columns), st.just("missing"), one_in=10), max_size=3))
    literal = st.sampled_from(["", "Q: ", " and ", "{{x}}", "\n", "é "])
    return "".join(draw(literal) + "{" + name + "}" for name in picked) + draw(literal) or "Say hi"


# --- the property ------------------------------------------------------------------------------------------------


def _sent(emu: Emulator) -> tuple[int, int]:
    return emu.calls("batches.create"), emu.calls("files.upload_start")


def _check(emu: Emulator, df: pl.DataFrame, template: str, schema: Any, prefix: str, file_transport: bool) -> None:
    before = _sent(emu)
    try:
        out = df.gemini.batch(
            template, model="gemini-2.5-flash", schema=schema, prefix=prefix, client=emu.client(),
            # A distinct system instruction per call: the same work twice would re-attach to the earlier job.
            system_instruction=f"call {next(_SERIAL)}", inline_limit_bytes=1 if file_transport else None, **FAST,
        )  # fmt: skip
    except GeminiBatchError as exc:
        event(f"raised {type(exc).__name__}")
        assert _sent(emu) == before, "a GeminiBatchError was raised after requests were sent"
        return
    event("returned a frame")
    assert out.height == df.height
    assert_frame_equal(pl.DataFrame(out.get_columns()[: df.width]), df)  # by position: names may be selectors
    added = out.get_columns()[df.width :]
    error = added[-1]
    if schema is None:
        assert [s.name for s in added] == ["response", "response_error"]
        assert (added[0].is_null() ^ error.is_null()).all(), "a row with neither an answer nor an error, or both"
        return
    assert added[-1].name == "response_error" and all(s.name.startswith(prefix) for s in added[:-1])
    for column in added[:-1]:
        assert column.filter(error.is_not_null()).null_count() == error.is_not_null().sum()  # failed: no half value
    required = [s for s, nullable in zip(added[:-1], _nullable(schema), strict=True) if not nullable]
    for column in required:  # an answered row has every required field
        assert column.filter(error.is_null()).null_count() == 0, "a row with neither an answer nor an error"


def _nullable(schema: Any) -> list[bool]:
    if isinstance(schema, dict):
        return [False] * len(schema)
    return [
        not f.is_required() or type(None) in getattr(f.annotation, "__args__", ()) for f in schema.model_fields.values()
    ]


@SETTINGS
@given(schema=st.one_of(DTYPE_SCHEMAS, MODELS), prefix=st.sampled_from(["", "p_"]), file_transport=st.booleans())
def test_random_schemas(emu: Emulator, schema: Any, prefix: str, file_transport: bool) -> None:
    df = pl.DataFrame({"t": ["a", "b", "a", None, "c"], "n": [1, 2, 1, 3, None]})
    _check(emu, df, "Item {t} #{n}", schema, prefix, file_transport)


@SETTINGS
@given(data=st.data(), df=frames(), schema=st.sampled_from([None, {"label": pl.String, "score": pl.Float64}]))
def test_random_frames(emu: Emulator, data: st.DataObject, df: pl.DataFrame, schema: Any) -> None:
    template = data.draw(templates(df.columns))
    _check(emu, df, template, schema, "", data.draw(st.booleans()))
