"""The Avro contract: one ``.avsc`` per record type (the source of truth) and the
in-code registry that knows every version by its CRC-64-AVRO fingerprint."""

from schemas.registry import RECORD_TYPES, SchemaRegistry, SchemaVersion, default_registry

__all__ = ["RECORD_TYPES", "SchemaRegistry", "SchemaVersion", "default_registry"]
