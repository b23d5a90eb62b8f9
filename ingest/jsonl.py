"""JSON → Avro datum by a record schema, naming the field at fault.

Timestamps are ISO-8601 strings with a UTC offset (``2026-11-20T08:00:00Z``,
``…+08:00``) or epoch milliseconds; dates are ``YYYY-MM-DD``. A naive timestamp is
refused: the SPEC says UTC, and guessing would shift a station's data by 8 hours.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from fueltrace.errors import RecordRejected

_EPOCH_DAY = date(1970, 1, 1)


def _fail(path: str, message: str) -> RecordRejected:
    return RecordRejected("schema_violation", f"{path}: {message}", field=path)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _timestamp_ms(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise _fail(path, "expected an ISO-8601 timestamp, got a boolean")
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise _fail(path, f"{value} is not a timestamp in milliseconds (out of range)")
        return value
    if not isinstance(value, str):
        raise _fail(path, f"expected an ISO-8601 timestamp, got {_type_name(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(path, f"{value!r} is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise _fail(path, f"{value!r} has no UTC offset; write it as …Z or …+08:00")
    return int(parsed.timestamp() * 1000)


def _date_days(value: Any, path: str) -> int:
    if not isinstance(value, str):
        raise _fail(path, f"expected a date YYYY-MM-DD, got {_type_name(value)}")
    try:
        return (date.fromisoformat(value) - _EPOCH_DAY).days
    except ValueError:
        raise _fail(path, f"{value!r} is not a date YYYY-MM-DD") from None


def convert(value: Any, schema: Any, path: str) -> Any:
    """``value`` (parsed JSON) as the Avro datum of ``schema``, or RecordRejected."""
    if isinstance(schema, list):
        if value is None:
            if "null" in schema:
                return None
            raise _fail(path, "is required")
        (inner,) = [s for s in schema if s != "null"]
        return convert(value, inner, path)
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical == "timestamp-millis":
            return _timestamp_ms(value, path)
        if logical == "date":
            return _date_days(value, path)
        kind = schema["type"]
        if kind == "record":
            return convert_record(value, schema, path)
        if kind == "enum":
            if value not in schema["symbols"]:
                raise _fail(path, f"{value!r} is not one of {', '.join(schema['symbols'])}")
            return value
        if kind == "array":
            if not isinstance(value, list):
                raise _fail(path, f"expected a list, got {_type_name(value)}")
            return [convert(v, schema["items"], f"{path}[{i}]") for i, v in enumerate(value)]
        return convert(value, kind, path)
    if value is None:
        raise _fail(path, "is required")
    if schema == "string":
        if not isinstance(value, str):
            raise _fail(path, f"expected a string, got {_type_name(value)} {value!r}")
        return value
    if schema in ("long", "int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, f"expected an integer, got {_type_name(value)} {value!r}")
        bits = 64 if schema == "long" else 32
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise _fail(path, f"{value} does not fit an Avro {schema} ({bits}-bit integer)")
        return value
    if schema in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, f"expected a number, got {_type_name(value)} {value!r}")
        if not math.isfinite(value):
            raise _fail(path, f"{value!r} is not a finite number")
        return float(value)
    if schema == "boolean":
        if not isinstance(value, bool):
            raise _fail(path, f"expected true or false, got {_type_name(value)} {value!r}")
        return value
    raise _fail(path, f"unsupported schema type {schema!r}")  # pragma: no cover


def convert_record(value: Any, schema: dict[str, Any], path: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path or "record", f"expected a JSON object, got {_type_name(value)}")
    out: dict[str, Any] = {}
    for f in schema["fields"]:
        name = f["name"]
        where = f"{path}.{name}" if path else name
        if name not in value:
            if "default" in f:
                out[name] = f["default"]
                continue
            raise _fail(where, "is required")
        out[name] = convert(value[name], f["type"], where)
    unknown = sorted(set(value) - {f["name"] for f in schema["fields"]})
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise _fail(where, f"is not a field of {schema['name']}")
    return out
