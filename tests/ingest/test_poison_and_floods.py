"""Poison and floods over the real broker (the session's embedded Tansu).

* Hundreds of poison messages — garbage, tombstones, wrong fingerprints, cut and padded
  Avro, huge lengths and counts, timestamps beyond the calendar, bad booleans, damaged
  containers — pushed raw between good ones: the ingest neither stops nor loses a
  thing. Every bad message or record is on the dead-letter topic exactly once, with
  its source topic, partition and offset, and every good record is loaded exactly once.
* A flood of re-sent records (the same records many times, single and in batches, in
  one micro-batch and across runs) is stored once, every extra copy counted.
* A station gateway re-sending a day of backlog shuffled, over several pushes and
  ingest runs, ends with the warehouse (and the anomalies) an in-order run produces.

``tests/ingest/test_end_to_end.py`` proves each dead-letter reason once and a file pushed
twice; these prove it at volume, mixed, across partitions and message forms.
"""

from __future__ import annotations

import copy
import io
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import fastavro
import pytest

from fueltrace.analyses import run_analyses
from fueltrace.settings import Settings
from ingest.codec import encode_container, encode_single
from ingest.jsonl import convert_record
from ingest.kafka_client import producer as make_producer
from ingest.push import push_file
from ingest.topics import ensure_topics, record_topic
from schemas import RECORD_TYPES, default_registry
from simulator import generate_province
from tests.helpers import dead_letters_on_topic, run_ingest, write_jsonl
from tests.ingest.test_fuzz_decoder import zigzag
from warehouse.connection import connect

pytestmark = pytest.mark.broker
Factory = Callable[..., dict[str, Any]]
REGISTRY = default_registry()
SEED = 20261124


def rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(settings.db), read_only=True) as con:
        return con.execute(sql).fetchall()


def datum(record_type: str, record: dict[str, Any]) -> dict[str, Any]:
    return convert_record(record, REGISTRY.current(record_type).schema)


@dataclass
class Sent:
    """One raw message, what the ingest must make of it, and where it landed."""

    record_type: str
    key: bytes | None
    value: bytes | None
    letters: list[tuple[int, str]]  # (record index, reason) it must be dead-lettered with
    loaded: list[str] = field(default_factory=list)  # ids of the records it must load
    partition: int = -1
    offset: int = -1


def produce(settings: Settings, messages: list[Sent]) -> None:
    """Send in order, one producer (kafka-python, raw bytes); note each one's position."""
    assert settings.bootstrap
    kafka = make_producer(settings, settings.bootstrap)
    try:
        futures = [kafka.send(record_topic(settings, m.record_type), key=m.key, value=m.value)
                   for m in messages]  # fmt: skip
        kafka.flush()
        for m, future in zip(messages, futures, strict=True):
            meta = future.get(timeout=10)
            m.partition, m.offset = meta.partition, meta.offset
    finally:
        kafka.close()


# -- poison ----------------------------------------------------------------------------


class Poison:
    """Builds poison messages whose right outcome is known, from valid records."""

    def __init__(self, rng: random.Random, sale: Factory, delivery: dict[str, Any]) -> None:
        self.rng, self.sale, self.delivery = rng, sale, delivery
        self.count = 0

    def sales(self, n: int) -> list[dict[str, Any]]:
        """Fresh valid sales (Avro datums), which must load where the damage spares them."""
        return [datum("sale", self.sale(station_id=f"LN-SY-{self.rng.randrange(4):04d}"))
                for _ in range(n)]  # fmt: skip

    def single(self) -> bytes:
        return encode_single(REGISTRY.current("sale"), self.sales(1)[0])

    def container(self, n: int) -> tuple[bytes, list[str], int]:
        """A null-codec container of ``n`` fresh sales in one block, their txn ids, and
        where the block's record count starts."""
        records = self.sales(n)
        value = encode_container(REGISTRY.current("sale"), records, codec="null")
        return value, [r["txn_id"] for r in records], value.index(value[-16:]) + 16

    def key(self) -> bytes:
        return f"LN-SY-{self.rng.randrange(4):04d}".encode()

    def whole(self, value: bytes | None, reason: str, record_type: str = "sale") -> Sent:
        return Sent(record_type, self.key(), value, [(-1, reason)])

    def build(self) -> list[Sent]:
        rng, out = self.rng, []
        sale_v = REGISTRY.current("sale")
        for _ in range(40):  # garbage that is not Avro at all
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120)))
            out.append(self.whole(b"#" + junk, "malformed_message"))
        for _ in range(6):  # empty values and tombstones
            out.append(self.whole(b"", "malformed_message"))
            out.append(self.whole(None, "malformed_message"))
        for _ in range(25):  # a fingerprint no schema has
            value = self.single()
            fingerprint = bytes(rng.randrange(256) for _ in range(8))
            out.append(self.whole(value[:2] + fingerprint + value[10:], "unknown_fingerprint"))
        for _ in range(15):  # a record of another type on the sale topic
            value = encode_single(REGISTRY.current("delivery"), self.delivery)
            out.append(self.whole(value, "wrong_record_type"))
        for _ in range(40):  # cut short
            value = self.single()
            out.append(self.whole(value[: rng.randrange(10, len(value))], "malformed_avro"))
        for _ in range(25):  # bytes after the record
            extra = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
            out.append(self.whole(self.single() + extra, "malformed_avro"))
        for _ in range(20):  # the first string claims a huge length
            value = self.single()
            huge = zigzag(rng.choice([2**31, 2**40, 2**62, -1, -(2**40)]))
            out.append(self.whole(value[:10] + huge + value[11:], "malformed_avro"))
        for _ in range(10):  # a timestamp beyond any calendar
            record = self.sales(1)[0]
            record["started_at"] = rng.choice([2**63 - 1, 9 * 10**15])
            out.append(Sent("sale", self.key(), encode_single(sale_v, record),
                            [(0, "timestamp_in_future")]))  # fmt: skip
        for _ in range(10):  # a rule broken (the totalizers disagree with the volume)
            record = self.sales(1)[0]
            record["totalizer_end_l"] += 5.0
            out.append(Sent("sale", self.key(), encode_single(sale_v, record),
                            [(0, "totalizer_mismatch")]))  # fmt: skip
        for _ in range(15):  # a container whose block claims one record too few
            value, ids, at = self.container(4)
            out.append(Sent("sale", self.key(), value[:at] + zigzag(3) + value[at + 1 :],
                            [(3, "malformed_avro")], ids[:3]))  # fmt: skip
        for _ in range(10):  # a container with a byte after its last block
            value, ids, _ = self.container(3)
            out.append(Sent("sale", self.key(), value + b"\xff", [(3, "malformed_avro")], ids))
        for _ in range(10):  # a block claiming 10**14 records (Polars used to abort on it)
            value, ids, at = self.container(3)
            damaged = value[:at] + zigzag(10**14) + value[at + 1 :]
            out.append(Sent("sale", self.key(), damaged, [(3, "malformed_avro")], ids))
        for _ in range(5):  # a container of another type
            value = encode_container(REGISTRY.current("delivery"), [self.delivery])
            out.append(self.whole(value, "wrong_record_type"))
        for _ in range(5):  # a container header whose schema is not JSON
            value, _, _ = self.container(2)
            out.append(self.whole(value.replace(b'"type": "record"', b'"type": "rec\\ud800'),
                                  "malformed_message"))  # fmt: skip
        out.extend(self.deliveries())
        return out

    def deliveries(self) -> list[Sent]:
        """Deliveries whose seals_intact byte is 2: Avro allows 0 or 1."""
        version = REGISTRY.current("delivery")
        out = []
        for n in range(10):
            ids = [f"POISON-DL-{n}-{k}" for k in range(3)]
            records = [{**self.delivery, "delivery_id": i, "seals_intact": False} for i in ids]
            false = encode_single(version, records[1])
            true = encode_single(version, {**records[1], "seals_intact": True})
            (at,) = [i for i in range(len(false)) if false[i] != true[i]]
            bad = false[:at] + b"\x02" + false[at + 1 :]
            if n % 2:
                out.append(Sent("delivery", b"ST-1", bad, [(-1, "malformed_avro")]))
                continue
            good = [encode_single(version, r)[10:] for r in (records[0], records[2])]
            block = good[0] + bad[10:] + good[1]
            header = io.BytesIO()
            fastavro.writer(header, version.writer, [], codec="null")
            head = header.getvalue()
            value = head + zigzag(3) + zigzag(len(block)) + block + head[-16:]
            out.append(Sent("delivery", b"ST-1", value, [(1, "malformed_avro")],
                            [ids[0], ids[2]]))  # fmt: skip
        return out


def good_messages(rng: random.Random, sale: Factory, delivery: dict[str, Any]) -> list[Sent]:
    """Valid sales (single objects and containers) and deliveries."""
    out = []
    version = REGISTRY.current("sale")
    for _ in range(150):
        record = datum("sale", sale(station_id=f"LN-SY-{rng.randrange(4):04d}"))
        out.append(Sent("sale", record["station_id"].encode(), encode_single(version, record),
                        [], [record["txn_id"]]))  # fmt: skip
    for _ in range(10):
        records = [datum("sale", sale(station_id="LN-SY-0007")) for _ in range(5)]
        out.append(Sent("sale", b"LN-SY-0007", encode_container(version, records), [],
                        [r["txn_id"] for r in records]))  # fmt: skip
    for n in range(10):
        record = {**delivery, "delivery_id": f"GOOD-DL-{n}"}
        out.append(Sent("delivery", b"ST-1", encode_single(REGISTRY.current("delivery"), record),
                        [], [record["delivery_id"]]))  # fmt: skip
    return out


def a_delivery() -> dict[str, Any]:
    (record, *_) = generate_province(stations=3, depots=1, days=1.0)["delivery"]
    return datum("delivery", record)


def test_poison_among_good_messages_is_dead_lettered_exactly_and_the_good_loads_once(
    settings: Settings, sale_factory: Factory
) -> None:
    rng = random.Random(SEED)
    delivery = a_delivery()
    poison = Poison(rng, sale_factory, delivery).build()
    good = good_messages(rng, sale_factory, delivery)
    messages = poison + good
    rng.shuffle(messages)
    assert len(poison) >= 250
    produce(settings, messages)

    summary = run_ingest(settings)

    # every good record exactly once, and nothing else
    expected = Counter((m.record_type, i) for m in messages for i in m.loaded)
    n_sales = sum(n for (t, _), n in expected.items() if t == "sale")
    assert rows(settings, "SELECT count(*), count(DISTINCT txn_id) FROM sale") == [(n_sales,) * 2]
    assert {t for (t,) in rows(settings, "SELECT txn_id FROM sale")} == {
        i for (t, i) in expected if t == "sale"
    }
    assert {d for (d,) in rows(settings, "SELECT delivery_id FROM delivery")} == {
        i for (t, i) in expected if t == "delivery"
    }
    assert summary.duplicates == Counter() and summary.conflicts == Counter()

    # every bad message or record exactly once, where it came from and why
    want = {(record_topic(settings, m.record_type), m.partition, m.offset, index): reason
            for m in messages for index, reason in m.letters}  # fmt: skip
    assert len(want) == sum(len(m.letters) for m in messages) >= 250
    letters = dead_letters_on_topic(settings, expected=len(want))
    found = Counter((x.topic, x.partition, x.offset, x.record_index) for x in letters)
    assert max(found.values()) == 1 and len(letters) == len(want)
    assert {(x.topic, x.partition, x.offset, x.record_index): x.reason for x in letters} == want
    assert summary.dead_letters == Counter(want.values())
    table = rows(settings, 'SELECT topic, "partition", "offset", record_index, reason '
                 "FROM dead_letter")  # fmt: skip
    assert {(t, p, o, i): r for t, p, o, i, r in table} == want and len(table) == len(want)
    # a message refused whole is dead-lettered as it came: its bytes and key
    sent = {(record_topic(settings, m.record_type), m.partition, m.offset): m for m in messages}
    for letter in letters:
        source = sent[(letter.topic, letter.partition, letter.offset)]
        assert letter.key == source.key and letter.record_type == source.record_type
        if letter.record_index == -1:
            assert letter.value == (source.value or b"")
        assert letter.detail
        by_rule = letter.reason in ("totalizer_mismatch", "timestamp_in_future")
        assert (letter.field is not None) == by_rule  # a rule names its field


# -- floods ----------------------------------------------------------------------------


def test_a_flood_of_duplicates_is_stored_once_and_every_copy_counted(
    settings: Settings, sale_factory: Factory
) -> None:
    rng = random.Random(SEED + 1)
    records = [datum("sale", sale_factory(station_id=f"LN-DL-{i % 4:04d}")) for i in range(60)]
    version = REGISTRY.current("sale")
    flood: list[Sent] = []
    for record in records:  # each record 4 times alone
        flood += [Sent("sale", record["station_id"].encode(), encode_single(version, record), [])
                  for _ in range(4)]  # fmt: skip
    for _ in range(3):  # and 3 times in a station's batch, cut differently each time
        for station in range(4):
            mine = [r for r in records if r["station_id"] == f"LN-DL-{station:04d}"]
            size = rng.choice([1, 4, 15])
            for at in range(0, len(mine), size):
                flood.append(Sent("sale", f"LN-DL-{station:04d}".encode(),
                                  encode_container(version, mine[at : at + size]), []))  # fmt: skip
    copies = 60 * 4 + 60 * 3
    rng.shuffle(flood)
    half = len(flood) // 2
    produce(settings, flood[:half])  # many copies land in one micro-batch
    first = run_ingest(settings)
    produce(settings, flood[half:])
    second = run_ingest(settings)

    assert first.loaded["sale"] + second.loaded["sale"] == 60
    assert first.duplicates["sale"] + second.duplicates["sale"] == copies - 60
    assert first.duplicates["sale"] > 0 and second.loaded["sale"] < 60
    assert not (first.conflicts + second.conflicts) and not (first.dead_letters +
                                                             second.dead_letters)  # fmt: skip
    assert rows(settings, "SELECT count(*), count(DISTINCT (station_id, txn_id)) FROM sale") == [
        (60, 60)
    ]
    # each extra copy is counted once, by where it was read
    assert rows(settings, 'SELECT count(*), count(DISTINCT ("partition", "offset", '
                "record_index)) FROM ingest_duplicate") == [(copies - 60, copies - 60)]  # fmt: skip
    per_key = rows(settings, "SELECT count(*) FROM ingest_duplicate GROUP BY natural_key")
    assert sorted(n for (n,) in per_key) == [copies // 60 - 1] * 60

    # a flood of altered copies of stored records: findings, never stored
    altered = [dict(r, amount_fen=r["amount_fen"] + 1) for r in records[:5]]
    produce(settings, [Sent("sale", r["station_id"].encode(), encode_single(version, r), [])
                       for r in altered for _ in range(3)])  # fmt: skip
    third = run_ingest(settings)
    assert third.conflicts["sale"] == 15 and third.loaded["sale"] == 0
    assert rows(settings, "SELECT count(*) FROM sale") == [(60,)]
    assert rows(settings, "SELECT count(DISTINCT natural_key), count(*) FROM key_conflict") == [
        (5, 15)
    ]


# -- a day of backlog, out of order ----------------------------------------------------

CONTENT_EXCLUDED = {"load_id", "src_partition", "src_offset", "src_index"}
TABLES = ("facility_version", "station", "depot", "tank", "nozzle", "licence", "dispatch",
          "delivery", "tank_reading", "sale", "vapor", "device_status")  # fmt: skip
ANALYSIS_CLOCK = datetime(2026, 11, 22, tzinfo=UTC)


def content(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every record table's rows without where and when they were loaded, sorted."""
    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in TABLES:
            names = con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position", [table]
            ).fetchall()  # fmt: skip
            columns = [c for (c,) in names if c not in CONTENT_EXCLUDED]
            select = ", ".join(f'"{c}"::VARCHAR' for c in columns)
            out[table] = sorted(con.execute(f"SELECT {select} FROM {table}").fetchall())
    return out


def anomalies(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return sorted(con.execute(
            "SELECT anomaly_id, rule, severity, station_id, depot_id, subject, window_start, "
            "window_end, evidence::VARCHAR, state FROM anomaly").fetchall())  # fmt: skip


def analyse(settings: Settings) -> None:
    con = connect(settings.db)
    try:
        run_analyses(con, settings, ANALYSIS_CLOCK)
    finally:
        con.close()


def test_a_day_of_backlog_resent_out_of_order_ends_as_an_in_order_run(
    broker: Any, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    from simulator.generate import RandomScenarios

    province = generate_province(stations=3, depots=1, days=1.0,
                                 scenarios=RandomScenarios(per_kind=1, seed=3))  # fmt: skip
    in_order = settings_factory(broker.bootstrap, db=tmp_path / "in_order.duckdb")
    shuffled = settings_factory(broker.bootstrap, db=tmp_path / "shuffled.duckdb")
    for s in (in_order, shuffled):
        ensure_topics(s, broker.bootstrap)

    # in order: every type oldest first, once
    for record_type in RECORD_TYPES:
        path = write_jsonl(tmp_path / f"in-order-{record_type}.jsonl", province[record_type])
        push_file(in_order, broker.bootstrap, record_type, path)
    run_ingest(in_order)
    analyse(in_order)

    # out of order: the backlog shuffled, in three uploads of mixed sizes and forms, each
    # ingested and analysed before the next arrives (findings raised on part of the data
    # must be updated or resolved by the rest)
    rng = random.Random(SEED + 2)
    uploads: list[list[tuple[str, dict[str, Any]]]] = [[], [], []]
    for record_type in RECORD_TYPES:
        for record in province[record_type]:
            uploads[rng.randrange(3)].append((record_type, copy.deepcopy(record)))
    for n, upload in enumerate(uploads):
        rng.shuffle(upload)
        for record_type in rng.sample(RECORD_TYPES, len(RECORD_TYPES)):
            mine = [r for t, r in upload if t == record_type]
            if mine:
                path = write_jsonl(tmp_path / f"upload-{n}-{record_type}.jsonl", mine)
                push_file(shuffled, broker.bootstrap, record_type, path,
                          batch=rng.choice([1, 7, 50]))  # fmt: skip
        run_ingest(shuffled)
        analyse(shuffled)

    expected, got = content(in_order.db), content(shuffled.db)
    assert {t: len(r) for t, r in got.items()} == {t: len(r) for t, r in expected.items()}
    assert sum(len(r) for r in expected.values()) > 1000
    for table in TABLES:
        assert got[table] == expected[table], table
    # the findings that hold are the same; what the partial uploads raised and the rest
    # of the backlog disproved is kept, resolved (the anomaly's history), never active
    found, late = anomalies(in_order.db), anomalies(shuffled.db)
    assert found, "the injected incidents raised no anomaly: nothing to compare"
    assert {a[-1] for a in found} == {"active"}
    assert [a for a in late if a[-1] == "active"] == found
    assert {a[-1] for a in late if a not in found} <= {"resolved"}
    assert len({a[1] for a in found}) >= 5  # several rules, not one
    assert json.loads(found[0][8])  # evidence: numbers, not prose
