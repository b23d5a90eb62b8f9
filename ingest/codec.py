"""Avro on the wire: single-object encoding and object container files.

A Kafka message value is either one record in Avro single-object encoding
(``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint + Avro binary) or a
batch: an Avro object container file (``Obj\\x01`` …) of records of one type.
Decoding reads every record as the *current* version of its type under Avro's
resolution rules; a record that cannot be read becomes a :class:`Reject`
carrying its own bytes, the rest of a batch still decodes.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import fastavro
from fastavro import schemaless_reader, schemaless_writer

from fueltrace.errors import RecordRejected
from schemas.registry import SchemaRegistry, SchemaVersion

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONTAINER_MAGIC = b"Obj\x01"
_DECODE_ERRORS = (EOFError, ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError,
                  zlib.error, OSError)  # fmt: skip


@dataclass
class Reject:
    """One record of a message that cannot be loaded, with its own bytes."""

    index: int  # position in the message (0 for a single-object message)
    reason: str
    detail: str
    raw: bytes
    field: str | None = None


@dataclass
class Decoded:
    """What one message holds: records read as the current schema, and rejects.

    Every record carries ``src_index``, its position in the message.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    container: bool = False
    message: bytes = b""
    # For a container: each record's own Avro datum by index, found on demand (only a
    # record rejected later needs it), and the single-object header of its writer.
    raw: dict[int, bytes] | None = None
    framing: bytes = b""
    # A container written with a schema no registry knows: its records are dead-lettered
    # re-encoded under this (current) version, so they stay readable on their own.
    reencode: SchemaVersion | None = None
    context: tuple[str, SchemaRegistry] | None = None  # (record type, registry) for raw

    def record_bytes(self, index: int) -> bytes:
        """The original bytes of the record at ``index``, self-describing."""
        if not self.container:
            return self.message
        if self.reencode is not None:
            (record,) = [r for r in self.records if r["src_index"] == index]
            return encode_single(self.reencode, {k: v for k, v in record.items()
                                                 if not k.startswith("src_")})  # fmt: skip
        if self.raw is None:
            assert self.context is not None
            self.raw = _decode_container_slowly(self.message, *self.context).raw or {}
        return self.framing + self.raw[index]


def encode_single(version: SchemaVersion, record: dict[str, Any]) -> bytes:
    """Encode one record in single-object encoding under ``version``."""
    out = io.BytesIO()
    out.write(SINGLE_OBJECT_MAGIC)
    out.write(version.fingerprint)
    schemaless_writer(out, version.writer, record)
    return out.getvalue()


def encode_container(
    version: SchemaVersion, records: Iterable[dict[str, Any]], codec: str = "deflate"
) -> bytes:
    """Encode records as an Avro object container file (the batch form)."""
    out = io.BytesIO()
    fastavro.writer(out, version.writer, records, codec=codec)
    return out.getvalue()


def decode_message(value: bytes | None, record_type: str, registry: SchemaRegistry) -> Decoded:
    """Decode one Kafka message value of a topic carrying ``record_type``.

    Raises :class:`RecordRejected` when the message as a whole cannot be read.
    """
    if not value:
        raise RecordRejected("malformed_message", "empty message value")
    if value[:2] == SINGLE_OBJECT_MAGIC:
        record = decode_single(value, record_type, registry)
        record["src_index"] = 0
        return Decoded(records=[record], message=value)
    if value[:4] == CONTAINER_MAGIC:
        return _decode_container(value, record_type, registry)
    raise _not_avro(value)


def _not_avro(value: bytes) -> RecordRejected:
    return RecordRejected(
        "malformed_message",
        f"starts with {value[:4].hex()}; expected c301 (single object) or 4f626a01 (container)",
    )


def _check_type(version: SchemaVersion, record_type: str) -> None:
    if version.record_type != record_type:
        raise RecordRejected(
            "wrong_record_type",
            f"writer schema is a {version.record_type} record but this topic carries "
            f"{record_type} records",
        )


def _read(data: io.BytesIO, writer: SchemaVersion, reader: SchemaVersion) -> dict[str, Any]:
    if writer is reader:
        return schemaless_reader(data, writer.plain, None)  # type: ignore[return-value]
    try:
        return schemaless_reader(data, writer.plain, reader.plain)  # type: ignore[return-value]
    except fastavro.read.SchemaResolutionError as exc:
        raise RecordRejected("incompatible_schema", str(exc)) from None


def decode_single(value: bytes, record_type: str, registry: SchemaRegistry) -> dict[str, Any]:
    """One single-object message → its record (the hot path: no wrapper objects)."""
    if len(value) < 10:
        raise RecordRejected("malformed_message", f"{len(value)} bytes: too short for a header")
    fp = value[2:10]
    writer = registry.by_fingerprint(fp)
    if writer is None:
        raise RecordRejected(
            "unknown_fingerprint", f"no known schema has fingerprint {fp.hex()}"
        )
    _check_type(writer, record_type)
    data = io.BytesIO(value)
    data.seek(10)
    try:
        record = _read(data, writer, registry.current(record_type))
    except _DECODE_ERRORS as exc:
        raise RecordRejected("malformed_avro", f"{type(exc).__name__}: {exc}") from None
    if data.tell() != len(value):
        raise RecordRejected(
            "malformed_avro", f"{len(value) - data.tell()} trailing bytes after the record"
        )
    return record


_METADATA = fastavro.parse_schema({"type": "map", "values": "bytes"})


def container_writer(value: bytes, registry: SchemaRegistry) -> tuple[SchemaVersion, bool]:
    """The writer schema of a container message, and whether the registry knows it."""
    _, _, writer, registered = _container_header(value, registry)
    return writer, registered


def _container_header(
    value: bytes, registry: SchemaRegistry
) -> tuple[dict[str, bytes], int, SchemaVersion, bool]:
    """(metadata, where the sync marker starts, writer version, registered?)"""
    try:
        data = io.BytesIO(value)
        data.seek(4)
        metadata: dict[str, bytes] = schemaless_reader(data, _METADATA)  # type: ignore[assignment]
        writer, registered = registry.for_container(metadata["avro.schema"])
    except RecordRejected:
        raise
    except Exception as exc:  # fastavro and json raise many kinds on a bad header
        raise RecordRejected("malformed_message", f"bad container header: {exc}") from None
    return metadata, data.tell(), writer, registered


def _decode_container(value: bytes, record_type: str, registry: SchemaRegistry) -> Decoded:
    """Fast path: the whole container in fastavro's C loop, with the embedded schema
    swapped for its logical-type-free twin (same bytes on the wire, ints out). Any
    trouble → the record-by-record path, which isolates what is bad."""
    metadata, body, writer, registered = _container_header(value, registry)
    _check_type(writer, record_type)
    reader = registry.current(record_type)
    header = io.BytesIO()
    header.write(CONTAINER_MAGIC)
    fastavro.schemaless_writer(header, _METADATA, {**metadata, "avro.schema": writer.plain_json})
    try:
        records: list[dict[str, Any]] = list(
            fastavro.reader(io.BytesIO(header.getvalue() + value[body:]),  # type: ignore[arg-type]
                            reader_schema=None if writer is reader else reader.plain)
        )  # fmt: skip
    except Exception:
        return _decode_container_slowly(value, record_type, registry)
    for index, record in enumerate(records):
        record["src_index"] = index
    return Decoded(records=records, container=True, message=value,
                   framing=SINGLE_OBJECT_MAGIC + writer.fingerprint,
                   reencode=None if registered else reader,
                   context=(record_type, registry))  # fmt: skip


def _decode_container_slowly(
    value: bytes, record_type: str, registry: SchemaRegistry
) -> Decoded:
    """Record by record, keeping each record's bytes; a bad record or block is a reject."""
    _, _, writer, registered = _container_header(value, registry)
    _check_type(writer, record_type)
    try:
        blocks = fastavro.block_reader(io.BytesIO(value))
    except Exception as exc:
        raise RecordRejected("malformed_message", f"bad container header: {exc}") from None
    reader = registry.current(record_type)
    framing = SINGLE_OBJECT_MAGIC + writer.fingerprint
    decoded = Decoded(container=True, message=value, raw={}, framing=framing,
                      reencode=None if registered else reader)  # fmt: skip
    assert decoded.raw is not None
    index = 0
    try:
        for block in blocks:
            data: io.BytesIO = block.bytes_  # type: ignore[attr-defined]
            buffer = data.getvalue()
            for _ in range(block.num_records):
                start = data.tell()
                try:
                    record = _read(data, writer, reader)
                except RecordRejected as exc:
                    raw = framing + buffer[start : data.tell()]
                    decoded.rejects.append(Reject(index, exc.reason, exc.detail, raw))
                else:
                    record["src_index"] = index
                    decoded.records.append(record)
                    decoded.raw[index] = buffer[start : data.tell()]
                index += 1
    except _DECODE_ERRORS as exc:
        # A corrupt block: what decoded before it stands, the rest cannot be located.
        decoded.rejects.append(
            Reject(index, "malformed_avro", f"corrupt block at record {index}: {exc}", value)
        )
    return decoded
