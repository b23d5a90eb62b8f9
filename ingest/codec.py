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
from schemas.registry import SchemaRegistry, SchemaVersion, make_version

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
    """What one message holds: records read as the current schema, and rejects."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    container: bool = False
    # For a container: each record's Avro datum, and the single-object header of its
    # writer schema, so a record rejected later is dead-lettered as its own bytes.
    raw: list[memoryview] = field(default_factory=list)
    framing: bytes = b""
    # A container written with a schema no registry knows: its records are dead-lettered
    # re-encoded under this (current) version, so they stay readable on their own.
    reencode: SchemaVersion | None = None

    def record_bytes(self, position: int, message: bytes) -> bytes:
        """The original bytes of ``records[position]``, self-describing."""
        if not self.container:
            return message
        if self.reencode is not None:
            record = {k: v for k, v in self.records[position].items() if not k.startswith("src_")}
            return encode_single(self.reencode, record)
        return self.framing + bytes(self.raw[position])


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
        record = _decode_single(value, record_type, registry)
        record["src_index"] = 0
        return Decoded(records=[record])
    if value[:4] == CONTAINER_MAGIC:
        return _decode_container(value, record_type, registry)
    raise RecordRejected(
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


def _decode_single(value: bytes, record_type: str, registry: SchemaRegistry) -> dict[str, Any]:
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


def _decode_container(value: bytes, record_type: str, registry: SchemaRegistry) -> Decoded:
    try:
        blocks = fastavro.block_reader(io.BytesIO(value))
        embedded: dict[str, Any] = blocks.writer_schema  # type: ignore[assignment]
        writer = registry.by_fingerprint(make_version(embedded).fingerprint)
        registered = writer is not None
        if writer is None:  # a container carries its schema: an unregistered one still reads
            writer = make_version(embedded)
    except RecordRejected:
        raise
    except Exception as exc:  # fastavro raises many kinds on a bad header
        raise RecordRejected("malformed_message", f"bad container header: {exc}") from None
    _check_type(writer, record_type)
    reader = registry.current(record_type)
    decoded = Decoded(container=True)
    framing = SINGLE_OBJECT_MAGIC + writer.fingerprint
    index = 0
    try:
        for block in blocks:
            data: io.BytesIO = block.bytes_  # type: ignore[attr-defined]
            buffer = data.getbuffer()
            for _ in range(block.num_records):
                start = data.tell()
                try:
                    record = _read(data, writer, reader)
                except RecordRejected as exc:
                    raw = framing + bytes(buffer[start : data.tell()])
                    decoded.rejects.append(Reject(index, exc.reason, exc.detail, raw))
                else:
                    record["src_index"] = index
                    decoded.records.append(record)
                    decoded.raw.append(buffer[start : data.tell()])
                index += 1
            del buffer
    except _DECODE_ERRORS as exc:
        # A corrupt block: what decoded before it stands, the rest cannot be located.
        decoded.rejects.append(
            Reject(index, "malformed_avro", f"corrupt block at record {index}: {exc}", value)
        )
    decoded.framing = framing
    if not registered:
        decoded.reencode = reader
    return decoded
