"""Avro on the wire (ingest/codec.py): single-object messages, containers and rejects."""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
import pytest

from fueltrace.errors import RecordRejected
from ingest.codec import Decoded, decode_message, encode_container, encode_single
from ingest.jsonl import convert_record
from schemas import RECORD_TYPES, SchemaVersion, default_registry
from schemas.registry import make_version

REGISTRY = default_registry()
AT = "2026-11-20T08:00:00.250Z"
JSON_RECORDS: dict[str, dict[str, Any]] = {
    "facility": {
        "facility_id": "LN-DL-0042", "kind": "station", "name": "大连 No.42", "city": "Dalian",
        "operator": "PetroChina", "updated_at": AT,
        "tanks": [{"tank_id": "T1", "product": "gasoline_95", "capacity_l": 30000.0},
                  {"tank_id": "T2", "product": "diesel_m10", "capacity_l": 20000.0}],
        "nozzles": [{"nozzle_id": "N1", "dispenser_id": "D1", "tank_id": "T1"}],
        "licences": [{"kind": "hazardous_chemicals", "number": "危化-001",
                      "valid_from": "2024-01-01", "valid_until": "2027-06-30",
                      "status": "suspended"}],
    },
    "dispatch": {
        "dispatch_id": "DP-1", "depot_id": "DEPOT-1", "batch_id": "B-2026-11", "product":
        "diesel_0", "station_id": "LN-DL-0042", "vehicle_plate": "辽B12345",
        "seal_ids": ["S1", "S2"], "volume_l": 20000.0, "temperature_c": -3.5,
        "density_kg_m3": 835.2, "dispatched_at": AT,
    },
    "delivery": {
        "delivery_id": "DL-1", "station_id": "LN-DL-0042", "tank_id": "T1", "dispatch_id": None,
        "product": "diesel_0", "vehicle_plate": "辽B12345", "seal_ids": [], "seals_intact": False,
        "volume_l": 19980.5, "temperature_c": -2.0, "density_kg_m3": 835.0,
        "started_at": AT, "ended_at": "2026-11-20T16:40:00+08:00",
    },
    "tank_reading": {
        "station_id": "LN-DL-0042", "tank_id": "T1", "product": "gasoline_95", "read_at": AT,
        "level_mm": 1234.5, "volume_l": 15000.25, "water_mm": 0.0, "temperature_c": 8.25,
    },
    "sale": {
        "txn_id": "T000001", "station_id": "LN-DL-0042", "dispenser_id": "D1",
        "nozzle_id": "N1", "product": "gasoline_95", "volume_l": 40.0, "unit_price_fen": 812,
        "amount_fen": 32480, "totalizer_start_l": 123456.78, "totalizer_end_l": 123496.78,
        "started_at": AT, "ended_at": "2026-11-20T08:01:30Z", "invoice_id": "INV-1",
    },
    "vapor": {
        "station_id": "LN-DL-0042", "nozzle_id": "N1", "measured_at": AT, "al_ratio": 1.08,
        "pressure_pa": -152.5,
    },
    "device_status": {
        "station_id": "LN-DL-0042", "device_id": "ATG-1", "device_kind": "vapor_monitor",
        "status": "fault", "at": AT,
    },
}  # fmt: skip


def version(record_type: str) -> SchemaVersion:
    return REGISTRY.current(record_type)


def datum(record_type: str, **overrides: Any) -> dict[str, Any]:
    record = {**copy.deepcopy(JSON_RECORDS[record_type]), **overrides}
    return convert_record(record, version(record_type).schema)


def single(record_type: str = "sale", **overrides: Any) -> bytes:
    return encode_single(version(record_type), datum(record_type, **overrides))


def sales(n: int) -> list[dict[str, Any]]:
    return [datum("sale", txn_id=f"T{i:06d}") for i in range(n)]


def decode(value: bytes | None, record_type: str = "sale") -> Decoded:
    return decode_message(value, record_type, REGISTRY)


def rejected(value: bytes | None, record_type: str = "sale") -> RecordRejected:
    with pytest.raises(RecordRejected) as caught:
        decode(value, record_type)
    return caught.value


def without_index(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "src_index"} for r in records]


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_single_object_round_trip(record_type: str) -> None:
    record = datum(record_type)
    decoded = decode(encode_single(version(record_type), record), record_type)
    assert decoded.records == [{**record, "src_index": 0}]
    assert decoded.rejects == [] and not decoded.container


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_single_object_header_is_magic_and_fingerprint(record_type: str) -> None:
    message = single(record_type)
    assert message[:2] == bytes([0xC3, 0x01])
    assert message[2:10] == version(record_type).fingerprint
    assert len(version(record_type).fingerprint) == 8


@pytest.mark.parametrize("codec", ["null", "deflate"])
@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_container_round_trip(record_type: str, codec: str) -> None:
    records = [datum(record_type), datum(record_type), datum(record_type)]
    records[1][next(iter(records[1]))] = "second"  # the first field is a string id
    message = encode_container(version(record_type), records, codec=codec)
    assert message[:4] == b"Obj\x01"
    decoded = decode(message, record_type)
    assert decoded.container and decoded.rejects == []
    assert decoded.records == [{**r, "src_index": i} for i, r in enumerate(records)]


def test_an_empty_container_decodes_to_nothing() -> None:
    decoded = decode(encode_container(version("sale"), []))
    assert decoded.container and decoded.records == [] and decoded.rejects == []


def test_a_container_record_re_decodes_from_its_own_bytes() -> None:
    records = sales(3)
    message = encode_container(version("sale"), records)
    decoded = decode(message)
    for position in range(3):
        own = decoded.record_bytes(position)
        assert own[:10] == b"\xc3\x01" + version("sale").fingerprint
        again = decode(own)
        assert without_index(again.records) == [records[position]]


def test_a_single_message_is_its_own_record_bytes() -> None:
    message = single()
    assert decode(message).record_bytes(0) == message


def test_record_bytes_of_a_newer_writer_still_decode() -> None:
    newer = copy.deepcopy(version("sale").schema)
    newer["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    writer = make_version(newer)
    message = encode_container(writer, [{**datum("sale"), "note": "added by a newer producer"}])
    decoded = decode(message)
    assert without_index(decoded.records) == [datum("sale")]
    assert without_index(decode(decoded.record_bytes(0)).records) == [datum("sale")]


@pytest.mark.parametrize(
    ("value", "reason", "words"),
    [
        pytest.param(None, "malformed_message", "empty", id="none"),
        pytest.param(b"", "malformed_message", "empty", id="empty"),
        pytest.param(b"\xc3\x01\x01\x02", "malformed_message", "too short", id="short-header"),
        pytest.param(b"\xc3\x01" + b"\x00" * 7, "malformed_message", "9 bytes", id="9-bytes"),
        pytest.param(b"PK\x03\x04rest", "malformed_message", "504b0304", id="bad-magic"),
        pytest.param(b'{"txn_id": 1}', "malformed_message", "expected c301", id="json"),
        pytest.param(
            b"\xc3\x01" + b"\x00" * 8 + b"\x02",
            "unknown_fingerprint",
            "0000000000000000",
            id="unknown-fingerprint",
        ),  # fmt: skip
        pytest.param(single() + b"\x00\x07", "malformed_avro", "2 trailing bytes", id="trailing"),
        pytest.param(single()[:-8], "malformed_avro", "", id="truncated"),
        pytest.param(single()[:12], "malformed_avro", "", id="header-only"),
        pytest.param(b"Obj\x01garbage", "malformed_message", "bad container header", id="obj"),
    ],
)
def test_unreadable_messages_are_rejected_whole(
    value: bytes | None, reason: str, words: str
) -> None:
    exc = rejected(value)
    assert exc.reason == reason and words in exc.detail


def test_a_record_of_another_type_is_refused() -> None:
    exc = rejected(single("sale"), "vapor")
    assert exc.reason == "wrong_record_type"
    assert "sale record" in exc.detail and "vapor records" in exc.detail


def test_a_container_of_another_type_is_refused() -> None:
    exc = rejected(encode_container(version("vapor"), [datum("vapor")]), "sale")
    assert exc.reason == "wrong_record_type"


def _skip_varint(buf: bytes, pos: int) -> int:
    while buf[pos] & 0x80:
        pos += 1
    return pos + 1


def _zigzag(n: int) -> bytes:
    z, out = n << 1, bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    return bytes([*out, z])


def _blocks(message: bytes) -> list[int]:
    """Offsets where each data block starts (one record per block)."""
    sync = message[-16:]
    ends = [i + 16 for i in range(len(message) - 15) if message[i : i + 16] == sync]
    return ends[:-1]


def one_record_blocks(n: int, codec: str) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, version("sale").writer, sales(n), codec=codec, sync_interval=1)
    return out.getvalue()


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_a_corrupt_block_keeps_the_records_before_it(codec: str) -> None:
    message = one_record_blocks(5, codec)
    start = _blocks(message)[2]
    size_at = _skip_varint(message, start)
    claims_a_megabyte = _zigzag(1_000_000)
    corrupt = message[:size_at] + claims_a_megabyte + message[_skip_varint(message, size_at) :]
    decoded = decode(corrupt)
    assert without_index(decoded.records) == sales(2)
    assert [(r.index, r.reason, r.raw) for r in decoded.rejects] == [(2, "malformed_avro", corrupt)]
    assert "corrupt block at record 2" in decoded.rejects[0].detail


def test_a_container_cut_short_keeps_the_whole_blocks() -> None:
    message = one_record_blocks(4, "null")
    cut = message[: _blocks(message)[3] + 5]
    decoded = decode(cut)
    assert without_index(decoded.records) == sales(3)
    assert [(r.index, r.reason) for r in decoded.rejects] == [(3, "malformed_avro")]


def test_a_corrupt_deflate_payload_is_a_reject() -> None:
    message = one_record_blocks(4, "deflate")
    start = _blocks(message)[2]
    payload = _skip_varint(message, _skip_varint(message, start))
    corrupt = bytearray(message)
    for k in range(payload, payload + 6):
        corrupt[k] ^= 0xFF
    decoded = decode(bytes(corrupt))
    assert without_index(decoded.records) == sales(2)
    assert [(r.index, r.reason) for r in decoded.rejects] == [(2, "malformed_avro")]
