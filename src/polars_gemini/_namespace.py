"""`df.gemini` and `lf.gemini`: stateless shims over the functions in `_api` (as Polars' own namespaces are)."""

from __future__ import annotations

from typing import Any

import polars as pl

from polars_gemini import _api, _estimating
from polars_gemini._estimate import Estimate
from polars_gemini._run import Run


@pl.api.register_dataframe_namespace("gemini")
class GeminiFrame:
    """Gemini Batch API operations on a DataFrame. See `polars_gemini.batch` for the arguments."""

    def __init__(self, df: pl.DataFrame) -> None:
        self._df = df

    def batch(self, template: str | pl.Expr, **kwargs: Any) -> pl.DataFrame:
        return _api.batch(self._df, template, **kwargs)

    def submit(self, template: str | pl.Expr, **kwargs: Any) -> Run:
        return _api.submit(self._df, template, **kwargs)

    def estimate(self, template: str | pl.Expr, **kwargs: Any) -> Estimate:
        return _estimating.estimate(self._df, template, **kwargs)

    def input_tokens(self, template: str | pl.Expr, **kwargs: Any) -> pl.Series:
        return _estimating.input_tokens(self._df, template, **kwargs)


@pl.api.register_lazyframe_namespace("gemini")
class GeminiLazyFrame:
    """Gemini Batch API operations on a LazyFrame; the frame is collected when the call runs."""

    def __init__(self, lf: pl.LazyFrame) -> None:
        self._lf = lf

    def batch(self, template: str | pl.Expr, **kwargs: Any) -> pl.DataFrame:
        return _api.batch(self._lf, template, **kwargs)

    def submit(self, template: str | pl.Expr, **kwargs: Any) -> Run:
        return _api.submit(self._lf, template, **kwargs)

    def estimate(self, template: str | pl.Expr, **kwargs: Any) -> Estimate:
        return _estimating.estimate(self._lf, template, **kwargs)

    def input_tokens(self, template: str | pl.Expr, **kwargs: Any) -> pl.Series:
        return _estimating.input_tokens(self._lf, template, **kwargs)
