"""JSON lines → JSON values → Avro datums by a record schema, naming the line or field
at fault.

A JSON-lines file is read as bytes, a line at a time and never more than
:data:`MAX_LINE_BYTES` of one line in memory: a line must be UTF-8 (a UTF-8 byte-order
mark is skipped), hold no NUL byte and be at most that long; a file that is UTF-16,
compressed or an archive is refused as a whole, by its first bytes.

Timestamps are ISO-8601 strings with a UTC offset (``2026-11-20T08:00:00Z``,
``…+08:00``) or epoch milliseconds; dates are ``YYYY-MM-DD``. A naive timestamp is
refused: the SPEC says UTC, and guessing would shift a station's data by 8 hours.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, BinaryIO

from fueltrace.errors import RecordRejected

_EPOCH_DAY = date(1970, 1, 1)
#: The longest line (bytes, newline excluded) `fueltrace push` reads: a record is a few
#: hundred bytes, a station's registry record with every licence a few kB; 1 MiB, the
#: gateway's whole request (FUELTRACE_GATEWAY_MAX_BODY_BYTES' default), is far beyond.
MAX_LINE_BYTES = 1024 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"
#: First bytes of files that are not UTF-8 JSON lines, and what to do about them.
_NOT_JSON_LINES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xfe\x00\x00", "UTF-32 text (byte-order mark FF FE 00 00); save it as UTF-8"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (byte-order mark 00 00 FE FF); save it as UTF-8"),
    (b"\xff\xfe", "UTF-16 text (byte-order mark FF FE); save it as UTF-8 "
                  "(iconv -f UTF-16 -t UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (byte-order mark FE FF); save it as UTF-8 "
                  "(iconv -f UTF-16 -t UTF-8)"),
    (b"\x1f\x8b", "gzip-compressed; decompress it first (gunzip)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed; decompress it first (unzstd)"),
    (b"\xfd7zXZ\x00", "xz-compressed; decompress it first (unxz)"),
    (b"BZh", "bzip2-compressed; decompress it first (bunzip2)"),
    (b"PK\x03\x04", "a zip archive; extract the JSON-lines file first"),
    (b"Obj\x01", "an Avro object container file, not JSON lines"),
    (b"PAR1", "a Parquet file, not JSON lines"),
)  # fmt: skip


def not_json_lines(head: bytes) -> str | None:
    """What a file starting with ``head`` is, if it cannot be UTF-8 JSON lines."""
    for magic, what in _NOT_JSON_LINES:
        if head.startswith(magic):
            return what
    return None


def _skip_rest_of_line(handle: BinaryIO) -> bool:
    """Read past the rest of an over-long line, 64 kB at a time; False at end of file."""
    while chunk := handle.readline(65536):
        if chunk.endswith(b"\n"):
            return True
    return False


def decode_line(raw: bytes) -> str:
    """A line's bytes as text, or RecordRejected ``invalid_encoding`` saying where."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise RecordRejected("invalid_encoding", f"a NUL byte at byte {nul + 1} of the line: "
                             "a binary file, or UTF-16 without a byte-order mark? push reads "
                             "UTF-8 JSON lines")  # fmt: skip
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        try:
            raw.decode("gb18030")
            guess = "GBK (iconv -f GBK -t UTF-8)"
        except UnicodeDecodeError:
            guess = "Latin-1 or Windows-1252 (iconv -f CP1252 -t UTF-8)"
        raise RecordRejected("invalid_encoding", f"not UTF-8: byte 0x{raw[exc.start]:02x} at "
                             f"byte {exc.start + 1} of the line; if the file is {guess}, "
                             "convert it to UTF-8") from None  # fmt: skip


def read_lines(handle: BinaryIO, max_bytes: int = MAX_LINE_BYTES,
               ) -> Iterator[tuple[int, str | RecordRejected]]:  # fmt: skip
    """(line number, text with its newline, or why the line cannot be text) for each line
    of a binary file; at most ``max_bytes`` + 1 bytes of a line are held at once."""
    number = 0
    while raw := handle.readline(max_bytes + 1):
        number += 1
        if number == 1 and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM):]
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            yield number, RecordRejected("line_too_long", f"line longer than {max_bytes} "
                                         "bytes (one record per line; the limit of `fueltrace "
                                         "push`): not read")  # fmt: skip
            if not _skip_rest_of_line(handle):
                return
            continue
        try:
            yield number, decode_line(raw)
        except RecordRejected as exc:
            yield number, exc


def parse_json(text: str) -> Any:
    """One JSON value, or RecordRejected ``malformed_json`` saying what is wrong (never
    Python's RecursionError or integer-digits limit)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordRejected("malformed_json", f"not JSON: {exc.msg} at column {exc.colno}"
                             ) from None  # fmt: skip
    except RecursionError:
        raise RecordRejected("malformed_json", "JSON nested too deeply (a record nests three "
                             "levels: facility → licences → licence)") from None  # fmt: skip
    except ValueError:  # int() of more digits than sys.get_int_max_str_digits()
        raise RecordRejected("malformed_json", "a number with thousands of digits: no field "
                             "holds one") from None  # fmt: skip



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
