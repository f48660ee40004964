"""The exception tree of polars-gemini. Everything the library raises derives from `GeminiBatchError`.

    GeminiBatchError
    ├── ConfigurationError          bad arguments, caught before any request is sent
    │   ├── TemplateError           a template that cannot be rendered (unknown column, unsafe field)
    │   ├── SchemaError             a schema that cannot be mapped to a response schema / dtype
    │   ├── ModelError              an unknown or unsupported model
    │   ├── MissingAPIKeyError      no client and no GEMINI_API_KEY / GOOGLE_API_KEY
    │   └── ColumnClashError        an output column would overwrite an input column
    ├── BudgetExceededError         the estimate's upper bound is above `max_cost`
    ├── RequestTooLargeError        one request is larger than the API accepts
    ├── APIError                    the service refused a call the library made (wraps google.genai errors)
    ├── RunTimeoutError             `wait(timeout=...)` ran out; the run can be picked up again
    └── CheckpointError             a checkpoint directory that is locked, corrupted or from another run
        ├── CheckpointLockedError
        └── CheckpointCorruptedError

    GeminiBatchWarning (UserWarning)  something the caller should know that lost nothing: jobs re-attached instead
                                      of paid for again, unreadable result lines (their requests are retried)

Row-level failures are never exceptions: they are values in the `{output}_error` column.
Messages say what was wrong, where, and how to fix it. They never contain the API key.
"""

from __future__ import annotations


class GeminiBatchError(Exception):
    """Base class of every error raised by polars-gemini."""


class ConfigurationError(GeminiBatchError, ValueError):
    """Invalid arguments, detected locally before anything is sent."""


class TemplateError(ConfigurationError):
    """A prompt template that cannot be rendered against the frame."""


class SchemaError(ConfigurationError):
    """A schema that cannot be turned into a Gemini response schema and Polars dtypes."""


class ModelError(ConfigurationError):
    """An unknown or unsupported model name."""


class MissingAPIKeyError(ConfigurationError):
    """No client was given and no API key was found in the environment."""


class ColumnClashError(ConfigurationError):
    """A result column would overwrite a column of the input frame."""


class BudgetExceededError(GeminiBatchError):
    """The estimated cost upper bound is above the `max_cost` the caller set."""


class RequestTooLargeError(ConfigurationError):
    """A single request is larger than the API accepts."""


class MediaError(ConfigurationError):
    """A media cell cannot be sent (missing or unreadable file, unsupported type, over a size limit), raised only with
    `on_media_error="raise"`; otherwise the row is not sent and its error says why."""


class APIError(GeminiBatchError):
    """The Gemini API refused a call. `code` is the HTTP status when known."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RunTimeoutError(GeminiBatchError, TimeoutError):
    """Waiting for a run ran out of time. The jobs keep running; the message says how to resume."""


class CheckpointError(GeminiBatchError):
    """A checkpoint directory that cannot be used."""


class CheckpointLockedError(CheckpointError):
    """Another process holds the checkpoint's lock."""


class CheckpointCorruptedError(CheckpointError):
    """A checkpoint file is truncated or unreadable; its path is in the message."""


class GeminiBatchWarning(UserWarning):
    """Something worth knowing that lost nothing (re-attached jobs, unreadable result lines that are retried)."""


__all__ = [
    "APIError",
    "BudgetExceededError",
    "CheckpointCorruptedError",
    "CheckpointError",
    "CheckpointLockedError",
    "ColumnClashError",
    "ConfigurationError",
    "GeminiBatchError",
    "GeminiBatchWarning",
    "MediaError",
    "MissingAPIKeyError",
    "ModelError",
    "RequestTooLargeError",
    "RunTimeoutError",
    "SchemaError",
    "TemplateError",
]
