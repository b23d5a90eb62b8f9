"""Schema registry in code: every version of every record schema, by fingerprint.

The current version of a record type is ``schemas/<type>.avsc``; earlier versions
live in ``schemas/history/<type>.v<N>.avsc`` and are never edited. A message names
its writer's schema by the CRC-64-AVRO fingerprint of the schema's Parsing
Canonical Form (Avro single-object encoding); the reader then resolves it to the
current version under Avro's rules (added fields take their defaults, removed
fields are skipped).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from fueltrace.errors import TerminalError

SCHEMA_DIR = Path(__file__).resolve().parent
NAMESPACE = "fueltrace.records"

#: Record type → Avro record name. The order is the order of loading and reporting.
RECORD_NAMES: dict[str, str] = {
    "facility": "Facility",
    "dispatch": "Dispatch",
    "delivery": "Delivery",
    "tank_reading": "TankReading",
    "sale": "Sale",
    "vapor": "Vapor",
    "device_status": "DeviceStatus",
}
RECORD_TYPES: tuple[str, ...] = tuple(RECORD_NAMES)
_TYPE_BY_FULLNAME = {f"{NAMESPACE}.{name}": t for t, name in RECORD_NAMES.items()}


def strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without ``logicalType``: same bytes on the wire, but
    timestamps decode as plain ints (ms) and dates as ints (days), which is what the
    Polars frames want and ~3× cheaper than building datetime objects."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    return schema


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one record schema."""

    record_type: str
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO, as in the single-object header
    schema: dict[str, Any] = field(repr=False)  # as written in the .avsc
    writer: dict[str, Any] = field(repr=False)  # parsed, with logical types (for encoding)
    plain: dict[str, Any] = field(repr=False)  # parsed, logical types stripped (for decoding)
    plain_json: bytes = field(repr=False, default=b"")  # the same, as JSON text


    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def make_version(schema: dict[str, Any]) -> SchemaVersion:
    """Parse one schema and compute its fingerprint."""
    fullname = schema.get("name", "")
    if "." not in fullname:
        fullname = f"{schema.get('namespace', '')}.{fullname}"
    record_type = _TYPE_BY_FULLNAME.get(fullname)
    if record_type is None:
        raise TerminalError(f"schema {fullname!r} is not a fueltrace record type")
    writer: dict[str, Any] = parse_schema(copy.deepcopy(schema), named_schemas={})  # type: ignore[assignment]
    plain: dict[str, Any] = parse_schema(  # type: ignore[assignment]
        strip_logical_types(copy.deepcopy(schema)), named_schemas={}
    )
    canonical = to_parsing_canonical_form(writer)
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    plain_json = json.dumps(strip_logical_types(schema), separators=(",", ":")).encode()
    return SchemaVersion(record_type, fp, schema, writer, plain, plain_json)


class SchemaRegistry:
    """Every known schema version, findable by fingerprint or by record type."""

    def __init__(self) -> None:
        self._by_fp: dict[bytes, SchemaVersion] = {}
        self._current: dict[str, SchemaVersion] = {}
        self._by_text: dict[bytes, tuple[SchemaVersion, bool]] = {}

    @classmethod
    def from_directory(cls, directory: Path = SCHEMA_DIR) -> SchemaRegistry:
        registry = cls()
        for path in sorted((directory / "history").glob("*.avsc")):
            registry.register(json.loads(path.read_text(encoding="utf-8")))
        for record_type in RECORD_TYPES:
            path = directory / f"{record_type}.avsc"
            registry.register(json.loads(path.read_text(encoding="utf-8")), current=True)
        return registry

    def register(self, schema: dict[str, Any], *, current: bool = False) -> SchemaVersion:
        """Add a version; ``current=True`` makes it the one records are read as."""
        version = make_version(schema)
        self._by_fp.setdefault(version.fingerprint, version)
        if current:
            self._current[version.record_type] = version
        return version

    def current(self, record_type: str) -> SchemaVersion:
        try:
            return self._current[record_type]
        except KeyError:
            raise TerminalError(
                f"unknown record type {record_type!r}; known: {', '.join(RECORD_TYPES)}"
            ) from None

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fp.get(fp)

    def for_container(self, schema_text: bytes) -> tuple[SchemaVersion, bool]:
        """The version a container's embedded schema is, and whether it is registered.

        A container carries its writer's schema in full, so an unregistered one can still
        be read; parsed once per distinct text, not once per message.
        """
        found = self._by_text.get(schema_text)
        if found is None:
            parsed = make_version(json.loads(schema_text))
            known = self._by_fp.get(parsed.fingerprint)
            found = (known, True) if known is not None else (parsed, False)
            if len(self._by_text) < 1000:  # bounded: a producer could vary the text
                self._by_text[schema_text] = found
        return found

    def versions(self, record_type: str) -> list[SchemaVersion]:
        return [v for v in self._by_fp.values() if v.record_type == record_type]


@cache
def default_registry() -> SchemaRegistry:
    """The registry of the schemas shipped in this package (loaded once)."""
    return SchemaRegistry.from_directory()
