"""Decoded records → a typed Polars frame, with the columns the Avro schema says.

Records arrive from the decoder with timestamps as epoch milliseconds and dates as
epoch days (logical types stripped for speed); here they become
``Datetime("ms", "UTC")`` and ``Date`` columns.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import polars as pl

from schemas import default_registry

_PRIMITIVES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "long": pl.Int64(),
    "int": pl.Int32(),
    "double": pl.Float64(),
    "float": pl.Float32(),
    "boolean": pl.Boolean(),
}

#: Columns every record frame carries: where the record came from.
SOURCE_COLUMNS: dict[str, pl.DataType] = {
    "src_partition": pl.Int32(),
    "src_offset": pl.Int64(),
    "src_index": pl.Int32(),
}


def polars_type(avro: Any) -> pl.DataType:
    """The Polars type of an Avro type (as written in the .avsc)."""
    if isinstance(avro, str):
        return _PRIMITIVES[avro]
    if isinstance(avro, list):  # a union with null: nullable column
        (inner,) = [t for t in avro if t != "null"]
        return polars_type(inner)
    kind = avro["type"]
    logical = avro.get("logicalType")
    if logical == "timestamp-millis":
        return pl.Datetime("ms", "UTC")
    if logical == "date":
        return pl.Date()
    if kind == "enum":
        return pl.String()
    if kind == "array":
        return pl.List(polars_type(avro["items"]))
    if kind == "record":
        return pl.Struct({f["name"]: polars_type(f["type"]) for f in avro["fields"]})
    return polars_type(kind)


def _raw(dtype: Any) -> pl.DataType:
    """The type the decoder delivers: ints where the final type is temporal."""
    if isinstance(dtype, pl.Datetime):
        return pl.Int64()
    if isinstance(dtype, pl.Date):
        return pl.Int32()
    if isinstance(dtype, pl.List):
        return pl.List(_raw(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: _raw(f.dtype) for f in dtype.fields})
    return dtype


@cache
def frame_schema(record_type: str) -> dict[str, pl.DataType]:
    """Final column types of a record type's frame (without source columns)."""
    schema = default_registry().current(record_type).schema
    return {f["name"]: polars_type(f["type"]) for f in schema["fields"]}


def to_frame(record_type: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Build the typed frame of decoded records (each with its ``src_*`` keys)."""
    final = {**frame_schema(record_type), **SOURCE_COLUMNS}
    raw = {name: _raw(dtype) for name, dtype in final.items()}
    frame = pl.from_dicts(rows, schema=raw) if rows else pl.DataFrame(schema=raw)
    return frame.cast(final)  # type: ignore[arg-type]
