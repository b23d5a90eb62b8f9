"""push → Kafka (the real embedded Tansu) → ingest → DuckDB, and everything that can go wrong.

Every test has its own topics, consumer group and warehouse on the one session broker.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fueltrace.settings import Settings
from ingest.codec import encode_container, encode_single
from ingest.jsonl import convert_record
from ingest.push import push_file
from ingest.topics import record_topic
from schemas import default_registry
from tests.helpers import (
    BASE_TIME,
    dead_letters_on_topic,
    iso,
    produce_raw,
    run_ingest,
    write_jsonl,
)

pytestmark = pytest.mark.broker
Factory = Callable[..., dict[str, Any]]


def count(settings: Settings, sql: str) -> Any:
    with duckdb.connect(str(settings.db), read_only=True) as con:
        return con.execute(sql).fetchall()


def datum(record_type: str, record: dict[str, Any]) -> dict[str, Any]:
    return convert_record(record, default_registry().current(record_type).schema)


def test_push_then_ingest_loads_exact_row_counts(
    settings: Settings, tmp_path: Path, sale_factory: Factory, facility_factory: Factory
) -> None:
    sales = [sale_factory(station_id=f"LN-SY-{i % 3:04d}") for i in range(120)]
    facilities = [facility_factory(facility_id=f"LN-SY-{i:04d}") for i in range(3)]
    assert settings.bootstrap
    path = write_jsonl(tmp_path / "s.jsonl", sales)
    pushed = push_file(settings, settings.bootstrap, "sale", path)
    assert (pushed.sent, pushed.errors) == (120, [])
    push_file(settings, settings.bootstrap, "facility",
              write_jsonl(tmp_path / "f.jsonl", facilities))  # fmt: skip

    summary = run_ingest(settings)

    assert summary.loaded["sale"] == 120 and summary.loaded["facility_version"] == 3
    assert count(settings, "SELECT count(*), count(DISTINCT txn_id) FROM sale") == [(120, 120)]
    assert count(settings, "SELECT count(*) FROM station") == [(3,)]
    assert count(settings, "SELECT count(*) FROM tank") == [(3,)]
    assert count(settings, "SELECT count(*) FROM licence") == [(3,)]
    # values survive the trip with their units and instants
    first = sales[0]
    row = count(settings, "SELECT volume_l, amount_fen, started_at FROM sale WHERE txn_id = "
                f"'{first['txn_id']}'")  # fmt: skip
    assert row[0][0] == first["volume_l"] and row[0][1] == first["amount_fen"]
    assert iso(row[0][2]) == first["started_at"]
    # offsets stored with the rows: the sum of next offsets is the number of messages
    assert count(settings, "SELECT sum(next_offset) FROM ingest_offset WHERE topic = "
                 f"'{record_topic(settings, 'sale')}'") == [(120,)]  # fmt: skip


def test_batch_messages_load_like_single_ones(
    settings: Settings, tmp_path: Path, sale_factory: Factory
) -> None:
    sales = [sale_factory(station_id=f"S{i % 4}") for i in range(200)]
    assert settings.bootstrap
    result = push_file(settings, settings.bootstrap, "sale",
                       write_jsonl(tmp_path / "s.jsonl", sales), batch=30)  # fmt: skip
    assert result.sent == 200 and result.messages == 4 * 2  # 50 per station → 30 + 20

    summary = run_ingest(settings)

    assert summary.loaded["sale"] == 200 and summary.messages == 8
    assert count(settings, "SELECT count(DISTINCT (station_id, txn_id)) FROM sale") == [(200,)]


def test_the_same_file_pushed_twice_loads_once(
    settings: Settings, tmp_path: Path, sale_factory: Factory
) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [sale_factory() for _ in range(40)])
    assert settings.bootstrap
    push_file(settings, settings.bootstrap, "sale", path)
    first = run_ingest(settings)
    push_file(settings, settings.bootstrap, "sale", path)
    push_file(settings, settings.bootstrap, "sale", path, batch=7)
    second = run_ingest(settings)

    assert first.loaded["sale"] == 40 and second.loaded["sale"] == 0
    assert second.duplicates["sale"] == 80 and second.conflicts["sale"] == 0
    assert count(settings, "SELECT count(*) FROM sale") == [(40,)]
    assert count(settings, "SELECT count(*) FROM ingest_duplicate") == [(80,)]


def test_a_conflicting_duplicate_is_kept_as_a_finding(
    settings: Settings, tmp_path: Path, sale_factory: Factory
) -> None:
    original = sale_factory(txn_id="T-CONFLICT")
    altered = dict(original, volume_l=original["volume_l"] + 5,
                   totalizer_end_l=original["totalizer_end_l"] + 5,
                   amount_fen=round(780 * (original["volume_l"] + 5)))  # fmt: skip
    assert settings.bootstrap
    push_file(settings, settings.bootstrap, "sale", write_jsonl(tmp_path / "a.jsonl", [original]))
    run_ingest(settings)
    push_file(settings, settings.bootstrap, "sale", write_jsonl(tmp_path / "b.jsonl", [altered]))
    summary = run_ingest(settings)

    assert summary.conflicts["sale"] == 1 and summary.loaded["sale"] == 0
    (row,) = count(settings, "SELECT natural_key, fields_differing, record FROM key_conflict")
    assert row[0] == "LN-SY-0001|T-CONFLICT"
    assert sorted(row[1]) == ["amount_fen", "totalizer_end_l", "volume_l"]
    assert json.loads(row[2])["volume_l"] == altered["volume_l"]
    assert count(settings, "SELECT volume_l FROM sale") == [(original["volume_l"],)]


def test_bad_messages_go_to_the_dead_letter_topic_and_the_pipeline_goes_on(
    settings: Settings, sale_factory: Factory, facility_factory: Factory
) -> None:
    registry = default_registry()
    sale_v = registry.current("sale")
    good = [datum("sale", sale_factory()) for _ in range(3)]
    facility_bytes = encode_single(registry.current("facility"), datum("facility",
                                                                       facility_factory()))
    bad_totalizer = datum("sale", sale_factory(totalizer_end_l=99999.0))
    future = datum("sale", sale_factory(started_at=BASE_TIME + timedelta(days=3650)))
    truncated = encode_single(sale_v, good[0])[:-6]
    unknown_fp = b"\xc3\x01" + b"\x00" * 8 + encode_single(sale_v, good[0])[10:]
    container = encode_container(sale_v, [good[1], bad_totalizer, good[2]])
    values = [
        b"this is not avro",                            # 0 malformed_message
        encode_single(sale_v, good[0]),                 # 1 ok
        truncated,                                      # 2 malformed_avro
        unknown_fp,                                     # 3 unknown_fingerprint
        facility_bytes,                                 # 4 wrong_record_type
        encode_single(sale_v, future),                  # 5 timestamp_in_future
        container,                                      # 6 record 1 totalizer_mismatch
    ]  # fmt: skip
    topic = record_topic(settings, "sale")
    produce_raw(settings, topic, values, key=b"LN-SY-0001")

    summary = run_ingest(settings)

    assert summary.loaded["sale"] == 3
    expected = {
        (0, -1): "malformed_message", (2, -1): "malformed_avro",
        (3, -1): "unknown_fingerprint", (4, -1): "wrong_record_type",
        (5, 0): "timestamp_in_future", (6, 1): "totalizer_mismatch",
    }  # fmt: skip
    rows = count(settings, 'SELECT "offset", record_index, reason, field, detail FROM dead_letter')
    assert {(o, i): r for o, i, r, _, _ in rows} == expected
    by_reason = {r: (f, d) for _, _, r, f, d in rows}
    assert by_reason["totalizer_mismatch"][0] == "totalizer_end_l"
    assert "volume_l" in by_reason["totalizer_mismatch"][1]

    letters = dead_letters_on_topic(settings, expected=len(expected))
    assert {(x.offset, x.record_index): x.reason for x in letters} == expected
    assert all(x.topic == topic and x.key == b"LN-SY-0001" for x in letters)
    originals = {(x.offset, x.record_index): x.value for x in letters}
    assert originals[(0, -1)] == b"this is not avro"
    assert originals[(2, -1)] == truncated
    # the record rejected from inside a batch is dead-lettered as its own, readable bytes
    from ingest.codec import decode_message

    (reread,) = decode_message(originals[(6, 1)], "sale", registry).records
    assert reread["txn_id"] == bad_totalizer["txn_id"]


def test_late_and_out_of_order_records_are_all_kept(
    settings: Settings, tmp_path: Path, sale_factory: Factory, facility_factory: Factory
) -> None:
    """Ingest keeps late data (the analyses recompute); for facilities the newest wins."""
    sales = [sale_factory(started_at=BASE_TIME - timedelta(days=d)) for d in (0, 9, 3, 30, 1)]
    newer = facility_factory(name="Renamed", updated_at=iso(BASE_TIME))
    older = facility_factory(name="Old name", updated_at=iso(BASE_TIME - timedelta(days=60)))
    assert settings.bootstrap
    push_file(settings, settings.bootstrap, "sale", write_jsonl(tmp_path / "s.jsonl", sales))
    push_file(settings, settings.bootstrap, "facility", write_jsonl(tmp_path / "n.jsonl", [newer]))
    run_ingest(settings)
    push_file(settings, settings.bootstrap, "facility", write_jsonl(tmp_path / "o.jsonl", [older]))
    run_ingest(settings)

    assert count(settings, "SELECT count(*) FROM sale") == [(5,)]
    assert count(settings, "SELECT count(*) FROM facility_version") == [(2,)]
    assert count(settings, "SELECT name FROM station") == [("Renamed",)]


def test_push_reports_bad_lines_by_number_and_sends_the_good(
    settings: Settings, tmp_path: Path, sale_factory: Factory
) -> None:
    lines = [
        json.dumps(sale_factory()),
        json.dumps(sale_factory(volume_l="12.5")),
        "{not json",
        json.dumps(sale_factory(amount_fen=1)),
        json.dumps({k: v for k, v in sale_factory().items() if k != "nozzle_id"}),
        json.dumps(sale_factory(started_at="2026-11-20T08:00:00")),
        json.dumps(sale_factory()),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert settings.bootstrap
    result = push_file(settings, settings.bootstrap, "sale", path)

    assert result.sent == 2
    found = {(e.where.line, e.reason, e.field) for e in result.errors}
    assert found == {
        (2, "schema_violation", "volume_l"),
        (3, "malformed_json", None),
        (4, "amount_mismatch", "amount_fen"),
        (5, "schema_violation", "nozzle_id"),
        (6, "schema_violation", "started_at"),
    }
    assert all(str(e).startswith(f"{path}:{e.where.line}: ") for e in result.errors)
    assert run_ingest(settings).loaded["sale"] == 2


def test_schema_evolution_over_the_broker(settings: Settings, sale_factory: Factory) -> None:
    """A newer producer (v2, extra defaulted field) and the current one, on one topic."""
    from tests.schemas.test_registry import _v2

    registry = default_registry()
    v2 = registry.register(_v2("sale"))  # known by fingerprint, not current
    a, b = datum("sale", sale_factory()), datum("sale", sale_factory())
    produce_raw(settings, record_topic(settings, "sale"), [
        encode_single(v2, {**a, "vendor_note": "new gateway"}),
        encode_container(v2, [{**b, "vendor_note": None}]),
    ])  # fmt: skip
    summary = run_ingest(settings)
    assert summary.loaded["sale"] == 2 and not summary.dead_letters


def test_dead_letter_reasons_are_counted_in_the_summary(
    settings: Settings, sale_factory: Factory
) -> None:
    produce_raw(settings, record_topic(settings, "sale"), [b"x", b"y", b""])
    summary = run_ingest(settings)
    assert summary.dead_letters == Counter({"malformed_message": 3})


def test_schema_evolution_older_writer_newer_reader(
    settings: Settings, sale_factory: Factory
) -> None:
    """Records written with today's schema, read by an ingest whose current schema is a
    newer version with an added defaulted field: Avro resolution fills the default."""
    from ingest.codec import decode_message
    from ingest.consumer import Ingest
    from schemas import SchemaRegistry
    from tests.schemas.test_registry import _v2
    from warehouse.connection import connect

    old = default_registry().current("sale")
    newer = SchemaRegistry.from_directory()
    newer.register(_v2("sale"), current=True)
    assert newer.current("sale").fingerprint != old.fingerprint
    a, b = datum("sale", sale_factory()), datum("sale", sale_factory())
    produce_raw(settings, record_topic(settings, "sale"),
                [encode_single(old, a), encode_container(old, [b])])  # fmt: skip
    assert settings.bootstrap
    ingest = Ingest(settings, settings.bootstrap, connect(settings.db), registry=newer)
    try:
        summary = ingest.run(until_idle=True)
    finally:
        ingest.con.close()
        ingest.close()
    assert summary.loaded["sale"] == 2 and not summary.dead_letters
    assert count(settings, "SELECT count(*) FROM sale") == [(2,)]
    (record,) = decode_message(encode_single(old, a), "sale", newer).records
    assert record["vendor_note"] is None and record["txn_id"] == a["txn_id"]
