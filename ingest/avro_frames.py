"""Avro straight into Polars frames, in Rust: the fast path of the ingest.

``pl.read_avro`` decodes a container file ~5× faster than fastavro builds dicts, and
hands back typed columns. Two uses:

* single-object messages of the current schema are read together: their datums are
  laid end to end in one synthetic container block;
* a container message written with the current schema: its blocks, framing checked and
  inflated by ``ingest.codec.container_blocks``, go into one such block too.

Because one bad datum could then shift its neighbours, the frame is accepted only if
the Avro-encoded sizes of the records, computed back from the decoded values
(:func:`encoded_size`), add up to the length of each message or block: every record is
then encoded minimally and consumed exactly its own bytes (a decoded value is never
larger than the bytes it came from). Polars reads a boolean byte other than 0 or 1 as
false where fastavro reads true; where a schema has booleans, each is checked. Polars is
never handed more records than the bytes could hold: it sizes its buffers by the count a
block claims, and a huge one aborts the process.

Anything else — an older or newer writer schema, a nested record type, a size that
does not add up, a decoding error — returns ``None`` and the caller takes the strict
record-by-record path, which isolates the bad message.
"""

from __future__ import annotations

import io
import json
import os
from itertools import accumulate
from typing import Any

import polars as pl
from fastavro import schemaless_writer

from fueltrace.errors import RecordRejected
from ingest.codec import DECODE_ERRORS, check_booleans, container_blocks, has_booleans
from ingest.frames import frame_schema
from schemas.registry import SchemaVersion

_SYNC = os.urandom(16)
_CONTAINER_MAGIC = b"Obj\x01"
_HEADER_SCHEMA: dict[str, Any] = {"type": "map", "values": "bytes"}
_headers: dict[bytes, bytes] = {}


def _varint_size(unsigned: pl.Expr) -> pl.Expr:
    """Bytes of an Avro varint holding ``unsigned`` (a UInt64 expression): 7 bits a byte,
    at least one (a few nodes: the size expression is evaluated once per batch, and its
    cost grows with its nodes, not its rows)."""
    bits = 64 - unsigned.bitwise_leading_zeros().cast(pl.Int64)
    return pl.max_horizontal(pl.lit(1, pl.Int64), (bits + 6) // 7)


def _long_size(value: pl.Expr) -> pl.Expr:
    v = value.cast(pl.Int64)
    # zigzag: 0, -1, 1, -2, … → 0, 1, 2, 3, … (|v| beyond 2^62 overflows: the sizes then
    # disagree and the strict path decides, which is what such a value deserves)
    zigzag = pl.when(v >= 0).then(v * 2).otherwise(-v * 2 - 1)
    return _varint_size(zigzag.cast(pl.UInt64, wrap_numerical=True))


def _string_size(value: pl.Expr) -> pl.Expr:
    n = value.str.len_bytes()
    return _long_size(n) + n


def _size(avro: Any, value: pl.Expr) -> pl.Expr | None:
    """Encoded size of one value of Avro type ``avro``, or None if not supported here."""
    if isinstance(avro, list):  # ["null", X]: a branch index (1 byte) + X when not null
        others = [t for t in avro if t != "null"]
        if len(avro) != 2 or len(others) != 1:
            return None
        inner = _size(others[0], value)
        if inner is None:
            return None
        return pl.when(value.is_null()).then(1).otherwise(1 + inner)
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        if logical == "timestamp-millis":
            return _long_size(value.dt.epoch("ms"))
        if logical == "date":
            return _long_size(value.dt.epoch("d"))
        kind = avro["type"]
        if kind == "enum" and len(avro["symbols"]) <= 64:  # index < 64: one zigzag byte
            return pl.lit(1, pl.Int64)
        if kind == "enum":
            index = value.cast(pl.String).replace_strict(
                {s: i for i, s in enumerate(avro["symbols"])}, return_dtype=pl.Int64
            )
            return _long_size(index)
        if kind == "array" and avro["items"] == "string":
            count = value.list.len()
            items = value.list.eval(_string_size(pl.element())).list.sum()
            return pl.when(count == 0).then(1).otherwise(_long_size(count) + items + 1)
        if kind in ("string", "long", "int", "double", "float", "boolean"):
            return _size(kind, value)
        return None
    if avro == "string":
        return _string_size(value)
    if avro in ("long", "int"):
        return _long_size(value)
    return {"double": pl.lit(8), "float": pl.lit(4), "boolean": pl.lit(1)}.get(avro)


def encoded_size(schema: dict[str, Any]) -> pl.Expr | None:
    """Per-row Avro binary size of a record of ``schema`` from its decoded columns."""
    total: pl.Expr = pl.lit(0, pl.Int64)
    for f in schema["fields"]:
        size = _size(f["type"], pl.col(f["name"]))
        if size is None:
            return None
        total = total + size
    return total


def _min_size(avro: Any) -> int:
    """The fewest bytes a value of Avro type ``avro`` (as :func:`_size` supports) takes."""
    if isinstance(avro, dict) and avro.get("type") not in ("enum", "array"):
        return _min_size(avro["type"])
    return {"double": 8, "float": 4, "null": 0}.get(avro, 1) if isinstance(avro, str) else 1


_sizes: dict[bytes, pl.Expr | None] = {}
# The size expression is many small nodes on a few columns: optimising it costs several
# times evaluating it.
_AS_WRITTEN = pl.QueryOptFlags.none()


def size_of(version: SchemaVersion) -> pl.Expr | None:
    """:func:`encoded_size` of a version, built once (the expression tree is not free)."""
    if version.fingerprint not in _sizes:
        _sizes[version.fingerprint] = encoded_size(version.schema)
    return _sizes[version.fingerprint]


def _header(version: SchemaVersion) -> bytes:
    header = _headers.get(version.fingerprint)
    if header is None:
        out = io.BytesIO()
        out.write(_CONTAINER_MAGIC)
        schemaless_writer(out, _HEADER_SCHEMA, {
            "avro.schema": json.dumps(version.schema, separators=(",", ":")).encode(),
            "avro.codec": b"null",
        })  # fmt: skip
        out.write(_SYNC)
        header = _headers[version.fingerprint] = out.getvalue()
    return header


def _varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _typed(record_type: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with exactly the columns and types ``ingest.frames`` builds."""
    return frame.select([pl.col(c).cast(t) for c, t in frame_schema(record_type).items()])


def read_single_objects(version: SchemaVersion, datums: list[bytes]) -> pl.DataFrame | None:
    """Decode datums of ``version`` (single-object payloads without their 10-byte header)
    into a typed frame, or None when the strict path must decide."""
    return read_blocks(version, [(1, d) for d in datums])


def container_blocks_of(version: SchemaVersion, value: bytes) -> list[tuple[int, bytes]] | None:
    """The blocks of a container message for :func:`read_blocks`: None if its framing
    does not hold or its counts are more than its bytes can hold."""
    try:
        blocks = list(container_blocks(value))
    except (RecordRejected, *DECODE_ERRORS):
        return None
    return blocks if plausible(version, blocks) else None


def read_container(version: SchemaVersion, value: bytes) -> pl.DataFrame | None:
    """A container message of the current schema as a typed frame, or None."""
    if size_of(version) is None:  # nested records: the dict path is simpler
        return None
    blocks = container_blocks_of(version, value)
    return None if blocks is None else read_blocks(version, blocks)


def plausible(version: SchemaVersion, blocks: list[tuple[int, bytes]]) -> bool:
    """Whether each block's bytes can hold the records it claims (and it claims some
    if it has bytes)."""
    least = sum(_min_size(f["type"]) for f in version.schema["fields"])
    return all(n * least <= len(data) and (n or not data) for n, data in blocks)


def read_blocks(version: SchemaVersion, blocks: list[tuple[int, bytes]]) -> pl.DataFrame | None:
    """Blocks of (record count, their records' bytes) — single-object datums, container
    blocks — as one typed frame, in order, or None when the strict path must decide."""
    size = size_of(version)
    if size is None or not plausible(version, blocks):
        return None
    blocks = [(n, data) for n, data in blocks if n]
    if not blocks:
        return None
    if has_booleans(version) and not _booleans_fit(version, blocks):
        return None
    body = b"".join(data for _, data in blocks)
    total = sum(n for n, _ in blocks)
    container = b"".join((_header(version), _varint(total), _varint(len(body)), body, _SYNC))
    try:
        frame = pl.read_avro(io.BytesIO(container))
        if frame.height != total:
            return None
        # the records of each block add up to exactly the block
        ends = pl.Series(list(accumulate(n for n, _ in blocks)), dtype=pl.Int64) - 1
        expected = pl.Series(list(accumulate(len(data) for _, data in blocks)), dtype=pl.Int64)
        added = (frame.lazy().select(size.cum_sum().alias("added"))
                 .collect(optimizations=_AS_WRITTEN)["added"].gather(ends))  # fmt: skip
        if not (added == expected).all():
            return None
        return _typed(version.record_type, frame)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # a decoding error — Polars may even panic on garbage — anywhere:
        return None  # the strict path finds the culprit


def _booleans_fit(version: SchemaVersion, blocks: list[tuple[int, bytes]]) -> bool:
    """Every boolean of every record is 0 or 1, and the records fill their blocks."""
    try:
        for n, data in blocks:
            pos = 0
            for _ in range(n):
                pos = check_booleans(version, data, pos)
            if pos != len(data):
                return False
    except RecordRejected:
        return False
    return True
