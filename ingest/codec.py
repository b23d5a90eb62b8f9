"""Avro on the wire: single-object encoding and object container files.

A Kafka message value is either one record in Avro single-object encoding
(``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint + Avro binary) or a
batch: an Avro object container file (``Obj\\x01`` …) of records of one type.
Decoding reads every record as the *current* version of its type under Avro's
resolution rules; a record that cannot be read becomes a :class:`Reject`
carrying its own bytes, the rest of a batch still decodes.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fastavro
from fastavro import schemaless_reader, schemaless_writer

from fueltrace.errors import RecordRejected
from schemas.registry import SchemaRegistry, SchemaVersion

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONTAINER_MAGIC = b"Obj\x01"
#: What reading bytes that are not what they claim raises (fastavro, zlib, bz2, lzma, ours).
DECODE_ERRORS = (EOFError, ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError,
                 OverflowError, RecursionError, zlib.error, OSError, lzma.LZMAError)  # fmt: skip


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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
    # For a container: each record's own Avro datum by index (for a container read on the
    # fast path, found on demand: only a record rejected later needs it), and the
    # single-object header of its writer.
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
            try:
                self.raw = _decode_container(self.message, *self.context).raw or {}
            except RecordRejected:
                self.raw = {}
        own = self.raw.get(index)
        return self.message if own is None else self.framing + own  # the whole, if in doubt


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
    """One record, read as ``reader``. With another writer the bytes are first read as
    written: resolving *skips* the fields the reader lacks, and fastavro's skipping
    checks no length (a message cut inside such a field would pass). On a resolution
    error the position is still past the record, so the records after it stay aligned."""
    if writer is reader:
        return schemaless_reader(data, writer.plain, None)  # type: ignore[return-value]
    start = data.tell()
    schemaless_reader(data, writer.plain, None)
    end = data.tell()
    data.seek(start)
    try:
        record: dict[str, Any] = schemaless_reader(data, writer.plain, reader.plain)  # type: ignore[assignment]
    except fastavro.read.SchemaResolutionError as exc:
        data.seek(end)
        raise RecordRejected("incompatible_schema", str(exc)) from None
    data.seek(end)
    return record


def decode_single(value: bytes, record_type: str, registry: SchemaRegistry) -> dict[str, Any]:
    """One single-object message → its record (the hot path: no wrapper objects)."""
    if len(value) < 10:
        raise RecordRejected("malformed_message", f"{len(value)} bytes: too short for a header")
    fp = value[2:10]
    writer = registry.by_fingerprint(fp)
    if writer is None:
        raise RecordRejected("unknown_fingerprint", f"no known schema has fingerprint {fp.hex()}")
    _check_type(writer, record_type)
    data = io.BytesIO(value)
    data.seek(10)
    try:
        record = _read(data, writer, registry.current(record_type))
    except DECODE_ERRORS as exc:
        raise RecordRejected("malformed_avro", _describe(exc)) from None
    if data.tell() != len(value):
        raise RecordRejected(
            "malformed_avro", f"{len(value) - data.tell()} trailing bytes after the record"
        )
    if has_booleans(writer):
        check_booleans(writer, value, 10)
    return record


_METADATA = fastavro.parse_schema({"type": "map", "values": "bytes"})
_CODECS = ("null", "deflate", "bzip2", "xz")
#: A container block inflating to more than this is refused: no gateway writes blocks
#: this large (fastavro cuts them at 16 KB, Java at 64 KB), and a few kilobytes of
#: deflate can claim gigabytes.
MAX_BLOCK_BYTES = 64 << 20


def container_writer(value: bytes, registry: SchemaRegistry) -> tuple[SchemaVersion, bool]:
    """The writer schema of a container message, and whether the registry knows it."""
    _, _, writer, registered = _container_header(value, registry)
    return writer, registered


def _header(value: bytes) -> tuple[dict[str, bytes], str, int]:
    """A container's header: (metadata, codec, where the sync marker starts)."""
    try:
        data = io.BytesIO(value)
        data.seek(4)
        metadata: dict[str, bytes] = schemaless_reader(data, _METADATA)  # type: ignore[assignment]
        codec = metadata.get("avro.codec", b"null").decode()
    except Exception as exc:  # fastavro raises many kinds on a bad header
        raise RecordRejected("malformed_message", f"bad container header: {exc}") from None
    if codec not in _CODECS:
        raise RecordRejected(
            "malformed_message", f"container codec {codec!r} is not one of {', '.join(_CODECS)}"
        )
    return metadata, codec, data.tell()


def _container_header(
    value: bytes, registry: SchemaRegistry
) -> tuple[str, int, SchemaVersion, bool]:
    """(codec, where the sync marker starts, writer version, registered?)"""
    metadata, codec, at = _header(value)
    try:
        writer, registered = registry.for_container(metadata["avro.schema"])
    except Exception as exc:  # json and fastavro raise many kinds on a bad schema
        raise RecordRejected("malformed_message", f"bad container header: {exc}") from None
    return codec, at, writer, registered


def container_blocks(value: bytes) -> Iterator[tuple[int, bytes]]:
    """Each block of a container message: (its record count, its records' bytes).

    The framing is checked, not trusted: every block ends in the header's sync marker,
    the last one ends the message, and a compressed block inflates exactly. Raises
    :class:`RecordRejected` for a bad header, one of ``DECODE_ERRORS`` for a bad block.
    """
    _, codec, at = _header(value)
    return _blocks(value, at, codec)


def _long(buf: bytes, pos: int) -> tuple[int, int]:
    """The Avro long (zigzag varint) at ``pos``, and where it ends."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise EOFError(f"the data ends inside a number at byte {pos}")
        if shift > 63:
            raise ValueError(f"a number longer than 10 bytes at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _blocks(value: bytes, at: int, codec: str) -> Iterator[tuple[int, bytes]]:
    sync = value[at : at + 16]
    if len(sync) != 16:
        raise EOFError("the message ends before the header's sync marker")
    pos = at + 16
    while pos < len(value):
        count, pos = _long(value, pos)
        size, pos = _long(value, pos)
        if count < 0 or size < 0:
            raise ValueError(f"a block claims {count} records in {size} bytes")
        end = pos + size
        if end + 16 > len(value):
            raise EOFError(f"a block of {size} bytes at byte {pos} runs past the end of "
                           f"the message ({len(value)} bytes)")  # fmt: skip
        if value[end : end + 16] != sync:
            raise ValueError(f"no sync marker after the block at byte {pos}")
        yield count, _inflate(codec, value[pos:end])
        pos = end + 16


def _inflate(codec: str, data: bytes) -> bytes:
    """A block's bytes, inflated. Bytes after the compressed stream are ignored, as every
    Avro reader does: fastavro's own writer leaves three there (of zlib's checksum)."""
    if codec == "null":
        return data
    stream: Any
    if codec == "deflate":
        stream = zlib.decompressobj(-15)
    else:
        stream = bz2.BZ2Decompressor() if codec == "bzip2" else lzma.LZMADecompressor()
    out: bytes = stream.decompress(data, MAX_BLOCK_BYTES)
    if not stream.eof:
        if len(out) >= MAX_BLOCK_BYTES:
            raise ValueError(f"a {codec} block inflates to more than {MAX_BLOCK_BYTES} bytes")
        raise EOFError(f"a {codec} block ends inside its compressed stream")
    return out


def _decode_container(value: bytes, record_type: str, registry: SchemaRegistry) -> Decoded:
    """Record by record, keeping each record's bytes; a bad record or block is a reject.

    A block must hold exactly its records: bytes left over after them mean a count that
    was damaged, and records that would otherwise vanish unseen."""
    codec, at, writer, registered = _container_header(value, registry)
    _check_type(writer, record_type)
    reader = registry.current(record_type)
    framing = SINGLE_OBJECT_MAGIC + writer.fingerprint
    decoded = Decoded(container=True, message=value, raw={}, framing=framing,
                      reencode=None if registered else reader)  # fmt: skip
    assert decoded.raw is not None
    index = 0
    try:
        for count, block in _blocks(value, at, codec):
            data = io.BytesIO(block)
            for n in range(count):
                if data.tell() == len(block):  # also bounds the loop for a huge count
                    raise EOFError(f"the block ends after {n} of its {count} records")
                start = data.tell()
                try:
                    record = _read(data, writer, reader)
                    if has_booleans(writer):
                        check_booleans(writer, block, start)
                except RecordRejected as exc:
                    raw = framing + block[start : data.tell()]
                    decoded.rejects.append(Reject(index, exc.reason, exc.detail, raw))
                else:
                    record["src_index"] = index
                    decoded.records.append(record)
                    decoded.raw[index] = block[start : data.tell()]
                index += 1
            if data.tell() != len(block):
                raise ValueError(f"{len(block) - data.tell()} bytes left in a block after "
                                 f"its {count} records")  # fmt: skip
    except DECODE_ERRORS as exc:
        # A corrupt block: what decoded before it stands, the rest cannot be located.
        decoded.rejects.append(Reject(
            index, "malformed_avro", f"corrupt block at record {index}: {_describe(exc)}", value
        ))  # fmt: skip
    return decoded


# -- booleans: fastavro reads any byte but 0 as true, Polars any byte but 1 as false ----

_has_boolean: dict[bytes, bool] = {}


def has_booleans(version: SchemaVersion) -> bool:
    """Whether records of ``version`` hold a boolean (whose byte must then be checked)."""
    found = _has_boolean.get(version.fingerprint)
    if found is None:
        found = _has_boolean[version.fingerprint] = b'"boolean"' in version.plain_json
    return found


def check_booleans(version: SchemaVersion, buf: bytes, pos: int) -> int:
    """Where the datum of ``version`` at ``pos`` ends; :class:`RecordRejected` if one of
    its booleans is a byte other than 0 or 1 (the Avro specification allows no other)."""
    try:
        return _skip(version.plain, buf, pos, {}, version.record_type)
    except DECODE_ERRORS as exc:
        raise RecordRejected("malformed_avro", _describe(exc)) from None


def _ahead(buf: bytes, pos: int, size: int, path: str) -> int:
    """``pos`` moved over ``size`` bytes that must be there."""
    if size < 0 or pos + size > len(buf):
        raise EOFError(f"{path}: {size} bytes claimed at byte {pos} of {len(buf)}")
    return pos + size


def _skip(schema: Any, buf: bytes, pos: int, named: dict[str, Any], path: str) -> int:
    """Where the datum of ``schema`` (parsed, as fastavro gives it) at ``pos`` ends."""
    if isinstance(schema, list):
        branch, pos = _long(buf, pos)
        if not 0 <= branch < len(schema):
            raise ValueError(f"{path}: union branch {branch} of {len(schema)}")
        return _skip(schema[branch], buf, pos, named, path)
    if isinstance(schema, str):
        if schema in named:
            return _skip(named[schema], buf, pos, named, path)
        if schema == "boolean":
            end = _ahead(buf, pos, 1, path)
            if buf[pos] > 1:
                raise ValueError(f"{path}: boolean byte {buf[pos]:#04x} at byte {pos}; "
                                 "Avro allows 0 or 1")  # fmt: skip
            return end
        if schema in ("string", "bytes"):
            size, pos = _long(buf, pos)
            return _ahead(buf, pos, size, path)
        fixed = {"null": 0, "float": 4, "double": 8}.get(schema)
        return _ahead(buf, pos, fixed, path) if fixed is not None else _long(buf, pos)[1]
    kind = schema["type"]
    if "name" in schema:
        named[schema["name"]] = schema
    if kind == "record":
        for f in schema["fields"]:
            pos = _skip(f["type"], buf, pos, named, f"{path}.{f['name']}")
        return pos
    if kind == "enum":
        return _long(buf, pos)[1]
    if kind == "fixed":
        return _ahead(buf, pos, int(schema["size"]), path)
    if kind in ("array", "map"):
        items = schema["items" if kind == "array" else "values"]
        while True:
            count, pos = _long(buf, pos)
            if count == 0:
                return pos
            if count < 0:
                count = -count
                pos = _long(buf, pos)[1]  # the block's size in bytes
            if count > len(buf) - pos and (kind == "map" or items != "null"):
                raise EOFError(f"{path}: {count} items claimed in {len(buf) - pos} bytes")
            for _ in range(count):
                if kind == "map":
                    pos = _skip("string", buf, pos, named, path)
                pos = _skip(items, buf, pos, named, f"{path}[]")
    return _skip(kind, buf, pos, named, path)
