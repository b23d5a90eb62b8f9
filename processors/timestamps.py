"""Timestamps as the processors compare them: Datetime(us, UTC)."""

from __future__ import annotations

import polars as pl

UTC_US = pl.Datetime("us", "UTC")


def utc(frame: pl.DataFrame, column: str) -> pl.Expr:
    """``column`` as Datetime(us, UTC); a naive column is taken to be UTC already."""
    dtype = frame.schema[column]
    col = pl.col(column)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        col = col.dt.replace_time_zone("UTC")
    elif isinstance(dtype, pl.Datetime):
        col = col.dt.convert_time_zone("UTC")
    return col.cast(UTC_US)
