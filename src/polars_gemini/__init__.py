"""polars-gemini: Google's Gemini Batch API as a native Polars dataframe operation.

>>> import polars as pl
>>> import polars_gemini  # registers `df.gemini` and `lf.gemini`
"""

from __future__ import annotations

from polars_gemini import _namespace  # noqa: F401  # registers df.gemini / lf.gemini
from polars_gemini._api import batch, submit
from polars_gemini._errors import (
    APIError,
    BudgetExceededError,
    CheckpointCorruptedError,
    CheckpointError,
    CheckpointLockedError,
    ColumnClashError,
    ConfigurationError,
    GeminiBatchError,
    GeminiBatchWarning,
    MissingAPIKeyError,
    ModelError,
    RequestTooLargeError,
    RunTimeoutError,
    SchemaError,
    TemplateError,
)
from polars_gemini._estimate import Estimate
from polars_gemini._estimating import estimate, input_tokens
from polars_gemini._prices import PriceTable, load_prices
from polars_gemini._resume import resume
from polars_gemini._run import Run, RunCost, RunStatus
from polars_gemini._status import CheckpointStatus, checkpoint_status

__version__ = "0.1.0"

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
    "MissingAPIKeyError",
    "ModelError",
    "PriceTable",
    "RequestTooLargeError",
    "Run",
    "RunCost",
    "RunStatus",
    "RunTimeoutError",
    "SchemaError",
    "TemplateError",
    "__version__",
    "batch",
    "checkpoint_status",
    "estimate",
    "input_tokens",
    "load_prices",
    "resume",
    "submit",
]
