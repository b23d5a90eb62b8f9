"""The schema registry: fingerprints, documentation, evolution both ways."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
from fastavro import schemaless_writer

from ingest.codec import decode_message, encode_container, encode_single
from schemas import RECORD_TYPES, SchemaRegistry
from schemas.registry import SCHEMA_DIR, make_version


def crc64_avro(data: bytes) -> int:
    """The Avro specification's reference CRC-64-AVRO, written out independently."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_every_record_type_has_a_current_schema() -> None:
    registry = SchemaRegistry.from_directory()
    assert {registry.current(t).record_type for t in RECORD_TYPES} == set(RECORD_TYPES)


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_every_field_is_documented(record_type: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{record_type}.avsc").read_text())
    assert schema.get("doc")

    def fields(s: Any) -> list[dict[str, Any]]:
        out = []
        for f in s.get("fields", []):
            out.append(f)
            t = f["type"]
            if isinstance(t, dict) and t.get("type") == "array" and isinstance(t["items"], dict):
                out.extend(fields(t["items"]))
        return out

    undocumented = [f["name"] for f in fields(schema) if not f.get("doc")]
    assert undocumented == []


def test_fingerprint_is_crc64_avro_of_the_canonical_form() -> None:
    from fastavro.schema import to_parsing_canonical_form

    registry = SchemaRegistry.from_directory()
    version = registry.current("sale")
    canonical = to_parsing_canonical_form(version.writer).encode()
    assert version.fingerprint == crc64_avro(canonical).to_bytes(8, "little")
    # the Avro spec's test vector: the fingerprint of "int" is 0x7275d51a3f395c8f
    assert crc64_avro(b'"int"') == 0x7275D51A3F395C8F


def _v2(record_type: str) -> dict[str, Any]:
    schema = copy.deepcopy(SchemaRegistry.from_directory().current(record_type).schema)
    schema["fields"].append(
        {"name": "vendor_note", "type": ["null", "string"], "default": None, "doc": "test"}
    )
    return schema


SALE = {
    "txn_id": "T1", "station_id": "S1", "dispenser_id": "D1", "nozzle_id": "N1",
    "product": "gasoline_95", "volume_l": 10.0, "unit_price_fen": 800, "amount_fen": 8000,
    "totalizer_start_l": 5.0, "totalizer_end_l": 15.0, "started_at": 1763625600000,
    "ended_at": 1763625660000, "invoice_id": None,
}  # fmt: skip


def test_newer_writer_is_read_by_older_reader() -> None:
    """v2 (an added defaulted field) written; the registry's current v1 reads it."""
    registry = SchemaRegistry.from_directory()
    v2 = registry.register(_v2("sale"))
    message = encode_single(v2, {**SALE, "vendor_note": "from a newer gateway"})
    (record,) = decode_message(message, "sale", registry).records
    assert record["txn_id"] == "T1" and record["volume_l"] == 10.0
    assert "vendor_note" not in record


def test_older_writer_is_read_by_newer_reader() -> None:
    """v1 written; a consumer whose current schema is v2 fills in the default."""
    registry = SchemaRegistry.from_directory()
    v1 = registry.current("sale")
    registry.register(_v2("sale"), current=True)
    for message in (encode_single(v1, SALE), encode_container(v1, [SALE, SALE])):
        records = decode_message(message, "sale", registry).records
        assert records and all(r["vendor_note"] is None for r in records)
        assert records[0]["amount_fen"] == 8000


def test_a_newer_schema_unknown_to_the_registry_is_rejected_by_fingerprint() -> None:
    unknown = make_version(_v2("sale"))
    message = encode_single(unknown, {**SALE, "vendor_note": "x"})
    from fueltrace.errors import RecordRejected

    with pytest.raises(RecordRejected) as caught:
        decode_message(message, "sale", SchemaRegistry.from_directory())
    assert caught.value.reason == "unknown_fingerprint"
    assert unknown.fingerprint.hex() in caught.value.detail


def test_history_versions_are_loaded(tmp_path: Any) -> None:
    (tmp_path / "history").mkdir()
    for t in RECORD_TYPES:
        (tmp_path / f"{t}.avsc").write_text((SCHEMA_DIR / f"{t}.avsc").read_text())
    (tmp_path / "history" / "sale.v0.avsc").write_text(json.dumps(_v2("sale")))
    registry = SchemaRegistry.from_directory(tmp_path)
    assert len(registry.versions("sale")) == 2
    old = make_version(_v2("sale"))
    buf = io.BytesIO()
    schemaless_writer(buf, old.writer, {**SALE, "vendor_note": None})
    assert registry.by_fingerprint(old.fingerprint) is not None
