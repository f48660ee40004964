"""Frames other than Polars at the edges: pandas DataFrames, PyArrow Tables (and RecordBatchReaders), DuckDB relations
and whatever else narwhals reads are converted to Polars at the door of the public functions, and the result goes
back in the caller's kind. Everything in between stays Polars.

What comes back, by kind of input:

* **Polars** DataFrame or LazyFrame: untouched, as always (narwhals is never imported).
* **pandas** DataFrame: a pandas DataFrame with the caller's index and the caller's own columns carried through
  as they were (same objects, same dtypes), followed by the answer columns. Answer dtypes are decided by the output
  schema, never by the data (a failed row must not change a column's dtype): integers, floats and booleans as pandas'
  nullable `Int64`/`Float64`/`boolean` (a failed row is `<NA>`), strings as the pandas default string dtype of the
  installed pandas (`str` on pandas 3, `object` before), an Enum as an ordered `Categorical` with the Enum's
  categories, dates and datetimes as pyarrow's default conversion (`object` dates, `datetime64`), and structs, lists
  and embedding vectors as pyarrow-backed `pd.ArrowDtype` columns (typed, nullable, no copy; `Series.struct.field`,
  `Series.list`). `input_tokens` is a nullable `Int64` Series on the caller's index.
* **PyArrow** Table or RecordBatchReader: a `pyarrow.Table`, the input's columns (and schema metadata) as they were,
  then the answer columns; `input_tokens` is a `pyarrow.ChunkedArray`.
* **DuckDB** relation: a relation on the same connection as the input (so it joins with the caller's other
  relations), over an Arrow table of the input's columns and the answers (on DuckDB's default connection when the
  input's has `python_enable_replacements` off); `input_tokens` is a one-column relation.
* **narwhals** DataFrame or LazyFrame: a narwhals frame of the same backend. Other eager backends narwhals knows
  (modin, cuDF) come back through `narwhals.from_arrow`, other lazy ones (Dask, Ibis) through
  `narwhals.DataFrame.lazy(backend=...)`; Spark-like frames need a session and are refused at the door.

`submit`/`submit_embed` return a `Run`, whose `result()` is always Polars: `to_native(run.result(), like=frame)` turns
it into the caller's kind. Column names must be unique strings (pandas allows other labels; the templates and the
answer columns need names), checked before anything is sent.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import polars as pl
import pyarrow as pa

from polars_gemini.core.errors import ConfigurationError

if TYPE_CHECKING:
    import pandas as pd

NativeFrame: TypeAlias = Any
"""A frame of another library (pandas, PyArrow, DuckDB, anything narwhals reads), or what comes back for one."""

INSTALL = "pip install 'polars-gemini[pandas]' (or '[duckdb]')"
Kind = Literal["polars", "pandas", "pyarrow", "duckdb", "eager", "lazy"]
_KINDS = ("a polars DataFrame or LazyFrame, a pandas DataFrame, a pyarrow Table or RecordBatchReader, a DuckDB "
          "relation, or another frame narwhals supports")  # fmt: skip
# A name the DuckDB replacement scan finds among this module's locals: the result relation then lives on the input
# relation's own connection (a relation of the default connection cannot be joined with one of another connection).
_ANSWERS_VIEW = "__polars_gemini_input"


@dataclass(frozen=True)
class Edge:
    """A call's frame at the door: what the pipeline runs on (`frame`), and what is needed to hand the result back in
    the caller's kind (`native`: the caller's pandas frame or Arrow table of its columns; `backend`: narwhals'
    implementation for the generic kinds; `wrapped`: the caller passed a narwhals frame)."""

    kind: Kind
    frame: pl.DataFrame | pl.LazyFrame
    native: Any = None
    backend: Any = None
    wrapped: bool = False
    relation: Any = None  # the caller's DuckDB relation


def at_door(frame: object) -> Edge:
    """`frame` as Polars, with what `frame_out` needs; a `ConfigurationError` for anything that is not a frame."""
    if isinstance(frame, (pl.DataFrame, pl.LazyFrame)):
        return Edge("polars", frame)
    if isinstance(frame, pa.RecordBatchReader):
        frame = frame.read_all()  # a stream is read once; its batches are not copied
    narwhals = _narwhals(frame)
    if narwhals is None:
        raise ConfigurationError(_not_a_frame(frame))
    wrapped = isinstance(frame, (narwhals.DataFrame, narwhals.LazyFrame))
    native = narwhals.to_native(frame) if wrapped else frame
    return dataclasses.replace(_native_edge(native, narwhals), wrapped=wrapped)


def to_polars(frame: object) -> pl.DataFrame | pl.LazyFrame:
    """`frame` as a Polars frame (see `at_door`)."""
    return at_door(frame).frame


def frame_out(edge: Edge, result: pl.DataFrame) -> NativeFrame:
    """`result` (the input's columns, then the answers) in the caller's kind, the caller's own columns carried."""
    if edge.kind == "polars":
        return _wrap(result) if edge.wrapped else result
    answers = result.select([c for c in result.columns if c not in set(edge.frame.collect_schema().names())])
    if edge.kind == "pandas":
        out: Any = _pandas_out(edge.native, answers)
    elif edge.kind in ("pyarrow", "duckdb"):
        table = edge.native
        for name, column in zip(answers.columns, answers.to_arrow().columns, strict=True):
            table = table.append_column(name, column)
        out = table if edge.kind == "pyarrow" else _duckdb_out(edge.relation, table)
    else:
        out = _generic_out(edge, result)
    return _wrap(out) if edge.wrapped else out


def series_out(edge: Edge, series: pl.Series) -> NativeFrame:
    """A per-row column (`input_tokens`) in the caller's kind: a pandas Series on the caller's index, a pyarrow
    ChunkedArray, a one-column DuckDB relation."""
    if edge.kind == "polars":
        return _wrap(series, series=True) if edge.wrapped else series
    if edge.kind == "pandas":
        out: Any = _pandas_columns(series.to_frame(), edge.native.index)[series.name]
    elif edge.kind == "pyarrow":
        out = series.to_arrow()
        out = out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])
    elif edge.kind == "duckdb":
        out = _duckdb_out(edge.relation, series.to_frame().to_arrow())
    else:
        frame = _generic_out(edge, series.to_frame())
        out = frame[series.name] if edge.kind == "eager" else frame
    return _wrap(out, series=edge.kind in ("pandas", "pyarrow", "eager")) if edge.wrapped else out


def to_native(result: pl.DataFrame, like: object) -> NativeFrame:
    """A Polars result (such as `run.result()`) in the kind of `like`, the frame the run was submitted with: the same
    as `batch(like, ...)` returns.

    >>> import pandas as pd
    >>> reviews = pd.DataFrame({"review": ["great", "awful"]}, index=[7, 9])
    >>> result = pl.DataFrame({"review": ["great", "awful"], "response": ["pos", "neg"]})  # as run.result() returns
    >>> polars_gemini.to_native(result, like=reviews)
      review response
    7  great      pos
    9  awful      neg
    """
    edge = at_door(like)
    missing = [c for c in edge.frame.collect_schema().names() if c not in result.columns]
    if not isinstance(result, pl.DataFrame) or missing:
        got = f"columns {result.columns}" if isinstance(result, pl.DataFrame) else f"a {type(result).__name__}"
        raise ConfigurationError(
            f"to_native(result, like=frame) takes the Polars result of a run over `frame` (its columns, then the "
            f"answers); got {got}, missing {missing}. Pass run.result() and the frame the run was submitted with."
        )
    return frame_out(edge, result)


# --- the door ------------------------------------------------------------------------------------------------------


def _narwhals(frame: object) -> Any:
    """narwhals, if `frame` may be a frame it reads; None for plain Python values (said without importing it)."""
    if isinstance(frame, (str, bytes, list, tuple, dict, set, int, float)) or frame is None:
        return None
    try:
        import narwhals
    except ImportError:
        raise ConfigurationError(
            f"A {type(frame).__module__}.{type(frame).__name__} is read through narwhals, which is not installed: "
            f"{INSTALL}, or pass a polars DataFrame (pl.from_pandas(df), pl.from_arrow(table))."
        ) from None
    return narwhals


def _native_edge(native: Any, nw: Any) -> Edge:
    if _is_pandas(native):
        _check_pandas_columns(native)
    try:
        frame = nw.from_native(native)
    except TypeError:
        raise ConfigurationError(_not_a_frame(native)) from None
    except nw.exceptions.NarwhalsError as exc:  # duplicate column names, say
        raise ConfigurationError(f"The frame cannot be read: {exc} Give every column a unique name.") from None
    impl = frame.implementation
    if impl.is_pandas():
        return Edge("pandas", frame.to_polars(), native)
    if impl.is_pyarrow():
        return Edge("pyarrow", frame.to_polars(), native)
    if impl.is_polars():
        return Edge("polars", native)
    if impl.is_duckdb():
        table = frame.collect("pyarrow").to_native()
        return Edge("duckdb", nw.from_native(table).to_polars(), table, relation=native)
    if isinstance(frame, nw.DataFrame):
        return Edge("eager", frame.to_polars(), backend=impl)
    if impl.is_spark_like():
        raise ConfigurationError(
            f"A {impl} frame cannot be given back in its own kind (that needs a Spark session): collect it first, "
            "e.g. pl.from_arrow(df.toArrow()) or df.toPandas(), and pass that."
        )
    return Edge("lazy", frame.collect("polars").to_native(), backend=impl)


def _is_pandas(frame: object) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(frame, pd.DataFrame)


def _check_pandas_columns(frame: pd.DataFrame) -> None:
    """Unique string column names, one level: what templates and answer columns name (narwhals would turn a 0 or a
    tuple into a string silently, and the answers would come back under other names than the caller's)."""
    import pandas as pd

    columns = frame.columns
    if isinstance(columns, pd.MultiIndex):
        raise ConfigurationError(
            f"The pandas frame has MultiIndex columns ({columns.nlevels} levels, e.g. {columns[0]!r}): templates name "
            "one column by one string. Flatten them first, e.g. df.columns = ['_'.join(map(str, c)) for c in "
            "df.columns]."
        )
    odd = [c for c in columns if not isinstance(c, str)]
    if odd:
        raise ConfigurationError(
            f"The pandas frame has column names that are not strings: {odd[:5]!r} (of types "
            f"{sorted({type(c).__name__ for c in odd})}). Name them with strings, e.g. "
            "df.columns = df.columns.map(str)."
        )
    twice = sorted(set(columns[columns.duplicated()]))
    if twice:
        raise ConfigurationError(
            f"The pandas frame has duplicate column names: {twice[:5]!r}. Give every column a unique name, e.g. "
            "df = df.loc[:, ~df.columns.duplicated()] or df.columns = [...]."
        )


def _not_a_frame(frame: object) -> str:
    kind = f"{type(frame).__module__}.{type(frame).__name__}".removeprefix("builtins.")
    hint = "pl.DataFrame(your_dict)" if isinstance(frame, dict) else "pl.DataFrame(...)"
    if kind in ("pandas.Series", "polars.series.series.Series", "pyarrow.lib.ChunkedArray"):
        hint = "series.to_frame() (templates name columns)"
    return f"frame must be {_KINDS}; got a {kind}. Build a frame first, e.g. {hint}."


# --- the way out ---------------------------------------------------------------------------------------------------


def _pandas_out(original: pd.DataFrame, answers: pl.DataFrame) -> pd.DataFrame:
    """The caller's frame (its index and columns untouched) with the answer columns after them."""
    import pandas as pd

    added = _pandas_columns(answers, original.index)
    return pd.concat([original, added], axis=1) if len(added.columns) else original.copy(deep=False)


def _pandas_columns(frame: pl.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Polars columns as pandas ones whose dtype depends on the Polars dtype only (see the module docstring)."""
    columns: pd.DataFrame = frame.to_arrow().to_pandas(types_mapper=_pandas_dtype).set_axis(index, axis=0)
    return columns


def _pandas_dtype(arrow: pa.DataType) -> Any:
    import pandas as pd

    if pa.types.is_struct(arrow) or pa.types.is_list(arrow) or pa.types.is_large_list(arrow) or (
            pa.types.is_fixed_size_list(arrow)):  # fmt: skip
        return pd.ArrowDtype(arrow)
    nullable = {
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(), pa.float32(): pd.Float32Dtype(),
        pa.float64(): pd.Float64Dtype(), pa.bool_(): pd.BooleanDtype(),
    }  # fmt: skip
    return nullable.get(arrow)  # None: pyarrow's default (strings as pandas' default string dtype)


def _duckdb_out(relation: Any, table: pa.Table) -> Any:
    """`table` as a relation on `relation`'s connection: DuckDB's replacement scan finds the local Arrow table. A
    connection with `python_enable_replacements` off gets it on DuckDB's default connection instead: the answers,
    already paid for, are never lost to a setting."""
    import duckdb

    __polars_gemini_answers = table  # read by name by the query below
    try:
        return relation.query(_ANSWERS_VIEW, "select * from __polars_gemini_answers")
    except duckdb.CatalogException:
        return duckdb.from_arrow(table)


def _generic_out(edge: Edge, result: pl.DataFrame) -> Any:
    import narwhals as nw

    if edge.kind == "eager":
        return nw.from_arrow(result.to_arrow(), backend=edge.backend).to_native()
    return nw.from_native(result).lazy(backend=edge.backend).to_native()


def _wrap(native: Any, *, series: bool = False) -> Any:
    import narwhals as nw

    return nw.from_native(native, series_only=True) if series else nw.from_native(native)
