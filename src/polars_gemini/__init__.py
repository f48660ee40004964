"""polars-gemini: Google's Gemini Batch API as a native Polars dataframe operation.

    >>> import polars as pl
    >>> import polars_gemini  # registers `df.gemini` and `lf.gemini`
"""

from __future__ import annotations

from polars_gemini._errors import (
    APIError,
    BudgetExceededError,
    CheckpointCorruptedError,
    CheckpointError,
    CheckpointLockedError,
    ColumnClashError,
    ConfigurationError,
    GeminiBatchError,
    MissingAPIKeyError,
    ModelError,
    RequestTooLargeError,
    RunTimeoutError,
    SchemaError,
    TemplateError,
)

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "BudgetExceededError",
    "CheckpointCorruptedError",
    "CheckpointError",
    "CheckpointLockedError",
    "ColumnClashError",
    "ConfigurationError",
    "GeminiBatchError",
    "MissingAPIKeyError",
    "ModelError",
    "RequestTooLargeError",
    "RunTimeoutError",
    "SchemaError",
    "TemplateError",
    "__version__",
]
