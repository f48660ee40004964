"""polars-gemini: Google's Gemini Batch API as a native Polars dataframe operation.

>>> import polars as pl
>>> import polars_gemini  # registers `df.gemini` and `lf.gemini` (and `pdf.gemini` on pandas frames)
"""

from __future__ import annotations

from polars_gemini.api import namespace as _namespace  # noqa: F401  # registers df.gemini / lf.gemini
from polars_gemini.api.embed import embed, estimate_embed, submit_embed
from polars_gemini.api.frames import to_native
from polars_gemini.api.functions import batch, estimate, input_tokens, sink_parquet, submit
from polars_gemini.api.resume import resume
from polars_gemini.api.tables import batch_table
from polars_gemini.checkpoint.status import CheckpointStatus, checkpoint_status
from polars_gemini.core.errors import (
    APIError,
    BudgetExceededError,
    CheckpointCorruptedError,
    CheckpointError,
    CheckpointLockedError,
    ColumnClashError,
    ConfigurationError,
    GeminiBatchError,
    GeminiBatchWarning,
    MediaError,
    MissingAPIKeyError,
    ModelError,
    RequestTooLargeError,
    RunTimeoutError,
    SchemaError,
    TemplateError,
)
from polars_gemini.core.version import __version__
from polars_gemini.cost.charts import tokens_histogram
from polars_gemini.cost.estimate import Estimate
from polars_gemini.cost.prices import PriceTable, load_prices
from polars_gemini.run.lifecycle import Run, RunCost, RunStatus, SinkReport

try:  # pandas frames get `pdf.gemini` when pandas is installed
    import pandas as _pandas  # noqa: F401
except ImportError:  # pragma: no cover - pandas is in the dev extra
    pass
else:
    from polars_gemini.api import pandas_accessor as _pandas_accessor  # noqa: F401  # registers pdf.gemini

__all__ = [
    "APIError",
    "BudgetExceededError",
    "CheckpointCorruptedError",
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointStatus",
    "ColumnClashError",
    "ConfigurationError",
    "Estimate",
    "GeminiBatchError",
    "GeminiBatchWarning",
    "MediaError",
    "MissingAPIKeyError",
    "ModelError",
    "PriceTable",
    "RequestTooLargeError",
    "Run",
    "RunCost",
    "RunStatus",
    "RunTimeoutError",
    "SchemaError",
    "SinkReport",
    "TemplateError",
    "__version__",
    "batch",
    "batch_table",
    "checkpoint_status",
    "embed",
    "estimate",
    "estimate_embed",
    "input_tokens",
    "load_prices",
    "resume",
    "sink_parquet",
    "submit",
    "submit_embed",
    "to_native",
    "tokens_histogram",
]
