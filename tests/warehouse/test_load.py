"""Loading micro-batches (warehouse/load.py) and migrating (warehouse/migrate.py), no broker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from fueltrace.errors import WarehouseError
from fueltrace.settings import Settings
from ingest.frames import to_frame
from ingest.validate import validate
from warehouse.connection import connect
from warehouse.load import DEAD_LETTER_SCHEMA, Batch, LoadResult, load_batch, stored_offsets
from warehouse.migrate import MIGRATIONS, migrate

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
T0_MS = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
DAY_MS = 86_400_000
NOW = T0 + timedelta(days=30)
SALE_TOPIC = "fuel.sale"


def sale(txn: str = "T1", offset: int = 0, index: int = 0, **overrides: Any) -> dict[str, Any]:
    row = {
        "txn_id": txn, "station_id": "LN-SY-0001", "dispenser_id": "D1", "nozzle_id": "N1",
        "product": "gasoline_92", "volume_l": 40.0, "unit_price_fen": 780, "amount_fen": 31200,
        "totalizer_start_l": 1000.0, "totalizer_end_l": 1040.0, "started_at": T0_MS,
        "ended_at": T0_MS + 90_000, "invoice_id": None,
        "src_partition": 0, "src_offset": offset, "src_index": index,
    }  # fmt: skip
    row.update(overrides)
    return row


def facility(updated_days: int, offset: int, name: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "facility_id": "LN-SY-0001", "kind": "station", "name": name, "city": "Shenyang",
        "operator": "Sinopec", "updated_at": T0_MS + updated_days * DAY_MS,
        "tanks": [{"tank_id": "T1", "product": "gasoline_92", "capacity_l": 30000.0}],
        "nozzles": [{"nozzle_id": "N1", "dispenser_id": "D1", "tank_id": "T1"}],
        "licences": [{"kind": "retail_approval", "number": "RA-1", "valid_from": 19723,
                      "valid_until": 21549, "status": "valid"}],
        "src_partition": 0, "src_offset": offset, "src_index": 0,
    }  # fmt: skip
    row.update(overrides)
    return row


def letters(*rows: tuple[Any, ...]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=DEAD_LETTER_SCHEMA, orient="row")


def batch(
    offsets: dict[tuple[str, int], int] | None = None,
    dead: pl.DataFrame | None = None,
    **rows: list[dict[str, Any]],
) -> Batch:
    """A batch of ``rows`` per record type (as decoded); offsets default to one partition."""
    frames = {t: to_frame(t, r) for t, r in rows.items()}
    offsets = offsets or {(SALE_TOPIC, 0): 1}
    return Batch(frames, letters() if dead is None else dead, offsets, {SALE_TOPIC: "id-1"})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def con(db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(db)
    yield connection
    connection.close()


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(rows(con, f"SELECT count(*) FROM {table}")[0][0])


def load(con: duckdb.DuckDBPyConnection, db: Path, b: Batch) -> LoadResult:
    return load_batch(con, db, b)


def test_inserts_rows_with_their_source_and_load(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    result = load(con, db, batch(sale=[sale("A", 3), sale("B", 4), sale("C", 4, 1)]))
    assert result.loaded["sale"] == 3 and not +result.duplicates and not +result.conflicts
    assert rows(con, "SELECT txn_id, src_partition, src_offset, src_index, load_id, started_at "
                     "FROM sale ORDER BY txn_id") == [
        ("A", 0, 3, 0, result.load_id, T0), ("B", 0, 4, 0, result.load_id, T0),
        ("C", 0, 4, 1, result.load_id, T0),
    ]  # fmt: skip
    assert rows(con, "SELECT load_id, loaded, duplicates, conflicts FROM ingest_load") == [
        (result.load_id, 3, 0, 0)
    ]


def test_same_key_twice_in_a_batch_is_one_row_and_one_duplicate(
    con: duckdb.DuckDBPyConnection, db: Path
) -> None:
    result = load(con, db, batch(sale=[sale("A", offset=9), sale("A", offset=5)]))
    assert (result.loaded["sale"], result.duplicates["sale"]) == (1, 1)
    assert rows(con, "SELECT txn_id, src_offset FROM sale") == [("A", 5)]
    assert rows(con, "SELECT * FROM ingest_duplicate") == [
        ("sale", "LN-SY-0001|A", 0, 9, 0, result.load_id)
    ]
    assert count(con, "key_conflict") == 0


def test_a_duplicate_in_a_later_batch_is_counted_not_stored(
    con: duckdb.DuckDBPyConnection, db: Path
) -> None:
    first = load(con, db, batch(sale=[sale("A", 1), sale("B", 2)]))
    second = load(con, db, batch(sale=[sale("B", 7), sale("C", 8)]))
    assert (second.loaded["sale"], second.duplicates["sale"]) == (1, 1)
    assert rows(con, "SELECT txn_id, load_id FROM sale ORDER BY txn_id") == [
        ("A", first.load_id), ("B", first.load_id), ("C", second.load_id)
    ]  # fmt: skip
    assert rows(con, 'SELECT natural_key, "offset", load_id FROM ingest_duplicate') == [
        ("LN-SY-0001|B", 7, second.load_id)
    ]


def reading(minute: int, offset: int, level_mm: float = 1200.0) -> dict[str, Any]:
    return {"station_id": "LN-SY-0001", "tank_id": "T1", "product": "gasoline_92",
            "read_at": T0_MS + minute * 60_000, "level_mm": level_mm, "volume_l": 15000.0,
            "water_mm": 0.0, "temperature_c": 12.0, "src_partition": 0, "src_offset": offset,
            "src_index": 0}  # fmt: skip


def test_a_key_timestamp_bounds_the_check_but_misses_no_stored_key(
    con: duckdb.DuckDBPyConnection, db: Path
) -> None:
    """A tank reading's key holds its timestamp: the check of stored keys reads only the
    batch's time range (``_key_bounds``). Re-sent readings at both ends of that range are
    still found, as a duplicate and as a conflict; new readings around them load."""
    first = load(con, db, batch(tank_reading=[reading(m, m) for m in range(0, 60, 10)]))
    assert first.loaded["tank_reading"] == 6
    # the batch's earliest and latest readings are the re-sent ones: the range is closed
    later = [reading(50, 100), reading(25, 101), reading(0, 102, level_mm=1300.0),
             reading(5, 103)]  # fmt: skip
    second = load(con, db, batch(tank_reading=later))
    assert (second.loaded["tank_reading"], second.duplicates["tank_reading"],
            second.conflicts["tank_reading"]) == (2, 1, 1)  # fmt: skip
    assert rows(con, "SELECT natural_key, fields_differing FROM key_conflict") == [
        ("LN-SY-0001|T1|2026-11-20 08:00:00+00", ["level_mm"])
    ]
    assert count(con, "tank_reading") == 8
    # the usual case: nothing repeats, nothing stored; loaded whole, nothing counted
    third = load(con, db, batch(tank_reading=[reading(m, 200 + m) for m in range(60, 70)]))
    assert (third.loaded["tank_reading"], +third.duplicates, +third.conflicts) == (10, {}, {})
    assert count(con, "ingest_duplicate") == 1 and count(con, "key_conflict") == 1


@pytest.mark.parametrize("same_batch", [True, False])
def test_same_key_other_content_is_a_conflict(
    con: duckdb.DuckDBPyConnection, db: Path, same_batch: bool
) -> None:
    stored, other = sale("A", 4), sale("A", 6, amount_fen=29900, invoice_id="INV-7")
    if same_batch:
        result = load(con, db, batch(sale=[other, stored]))
    else:
        load(con, db, batch(sale=[stored]))
        result = load(con, db, batch(sale=[other]))
    assert result.conflicts["sale"] == 1 and result.duplicates["sale"] == 0
    assert rows(con, "SELECT txn_id, amount_fen, src_offset FROM sale") == [("A", 31200, 4)]
    got = rows(con, "SELECT record_type, natural_key, fields_differing, stored_partition, "
                    'stored_offset, "partition", "offset", record_index, '
                    "record->>'amount_fen', record->>'invoice_id' FROM key_conflict")  # fmt: skip
    assert got == [("sale", "LN-SY-0001|A", ["amount_fen", "invoice_id"], 0, 4, 0, 6, 0,
                    "29900", "INV-7")]  # fmt: skip
    assert count(con, "ingest_duplicate") == 0


def dimensions(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    return (
        rows(con, "SELECT station_id, name, updated_at FROM station"),
        rows(con, "SELECT tank_id, capacity_l FROM tank ORDER BY tank_id"),
        rows(con, "SELECT nozzle_id, tank_id FROM nozzle ORDER BY nozzle_id"),
        rows(con, "SELECT number, status FROM licence"),
        rows(con, "SELECT depot_id FROM depot"),
    )


NEWER = {
    "tanks": [{"tank_id": "T1", "product": "gasoline_92", "capacity_l": 30000.0},
              {"tank_id": "T2", "product": "diesel_0", "capacity_l": 20000.0}],
    "nozzles": [{"nozzle_id": "N2", "dispenser_id": "D1", "tank_id": "T2"}],
    "licences": [{"kind": "retail_approval", "number": "RA-2", "valid_from": 19723,
                  "valid_until": 21549, "status": "suspended"}],
}  # fmt: skip
EXPECTED_NEWER: tuple[list[tuple[Any, ...]], ...] = (
    [("LN-SY-0001", "Newer", T0 + timedelta(days=5))],
    [("T1", 30000.0), ("T2", 20000.0)],
    [("N2", "T2")],
    [("RA-2", "suspended")],
    [],
)


@pytest.mark.parametrize("order", ["newer-first", "older-later-batch", "same-batch-older-last"])
def test_facility_dimensions_follow_the_latest_updated_at(
    con: duckdb.DuckDBPyConnection, db: Path, order: str
) -> None:
    newer, older = facility(5, 2, "Newer", **NEWER), facility(1, 9, "Older")
    if order == "same-batch-older-last":
        load(con, db, batch(facility=[newer, older]))
    else:
        load(con, db, batch(facility=[newer if order == "newer-first" else older]))
        load(con, db, batch(facility=[older if order == "newer-first" else newer]))
    assert dimensions(con) == EXPECTED_NEWER
    assert count(con, "facility_version") == 2


def test_a_station_becoming_a_depot_moves_dimension(
    con: duckdb.DuckDBPyConnection, db: Path
) -> None:
    load(con, db, batch(facility=[facility(1, 1, "Station")]))
    load(con, db, batch(facility=[facility(2, 2, "Depot", kind="depot", tanks=[], nozzles=[])]))
    assert dimensions(con)[:3] == ([], [], [])
    assert dimensions(con)[4] == [("LN-SY-0001",)]


def test_a_facility_with_a_repeated_tank_is_rejected_and_the_batch_loads(
    con: duckdb.DuckDBPyConnection, db: Path
) -> None:
    """Found by this suite: a tank listed twice once passed validation and then broke the
    tank table's primary key, failing the whole batch on every retry."""
    tank = {"tank_id": "T1", "product": "gasoline_92", "capacity_l": 30000.0}
    bad = facility(1, 1, "Twice", tanks=[tank, tank])
    valid, rejected = validate("facility", to_frame("facility", [bad]), Settings(), NOW)
    assert rejected["reason"].to_list() == ["duplicate_id"]
    frames = {"facility": valid, "sale": to_frame("sale", [sale()])}
    load_batch(con, db, Batch(frames, letters(), {(SALE_TOPIC, 0): 2}))
    assert count(con, "sale") == 1


DEAD = letters(
    (SALE_TOPIC, 1, 17, -1, "sale", "malformed_message", None, "empty message value", "k1"),
    (SALE_TOPIC, 0, 3, 2, "sale", "amount_mismatch", "amount_fen", "amount_fen = 1", None),
)


def test_dead_letters_and_offsets_are_stored(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    offsets = {(SALE_TOPIC, 0): 4, (SALE_TOPIC, 1): 18}
    result = load(con, db, batch(offsets, DEAD, sale=[sale("A", 3)]))
    assert result.dead_letters == {"malformed_message": 1, "amount_mismatch": 1}
    assert rows(con, 'SELECT * EXCLUDE (load_id) FROM dead_letter ORDER BY "partition"') == [
        (SALE_TOPIC, 0, 3, 2, "sale", "amount_mismatch", "amount_fen", "amount_fen = 1", None),
        (SALE_TOPIC, 1, 17, -1, "sale", "malformed_message", None, "empty message value", "k1"),
    ]
    assert stored_offsets(con) == {(SALE_TOPIC, 0): (4, "id-1"), (SALE_TOPIC, 1): (18, "id-1")}
    assert rows(con, "SELECT DISTINCT load_id FROM ingest_offset") == [(result.load_id,)]
    assert rows(con, "SELECT dead_letters FROM ingest_load") == [(2,)]
    load(con, db, batch({(SALE_TOPIC, 0): 9}, sale=[sale("B", 8)]))
    assert stored_offsets(con) == {(SALE_TOPIC, 0): (9, "id-1"), (SALE_TOPIC, 1): (18, "id-1")}


VAPOR_NULL = {"station_id": "S", "nozzle_id": "N1", "measured_at": T0_MS, "al_ratio": None,
              "pressure_pa": 0.0, "src_partition": 0, "src_offset": 7, "src_index": 0}  # fmt: skip
NULL_DETAIL = letters((SALE_TOPIC, 0, 8, 0, "sale", "amount_mismatch", "amount_fen", None, None))


@pytest.mark.parametrize("fails_at", ["record-frame", "dead-letters", "load-row"])
def test_a_failing_batch_leaves_nothing_behind(
    con: duckdb.DuckDBPyConnection, db: Path, fails_at: str
) -> None:
    load(con, db, batch({(SALE_TOPIC, 0): 5}, sale=[sale("A", 4)]))
    if fails_at == "load-row":  # the last statement fails: rows, letters, offsets were written
        con.execute("INSERT INTO ingest_load VALUES (2, now(), 0, 0, 0, 0, 0, 0)")
    before = [rows(con, f"SELECT * FROM {t} ORDER BY ALL") for t in TABLES]
    failing = batch(
        {(SALE_TOPIC, 0): 9, (SALE_TOPIC, 1): 2},
        NULL_DETAIL if fails_at == "dead-letters" else DEAD,
        sale=[sale("B", 5), sale("A", 6), sale("A", 7, amount_fen=1)],
        facility=[facility(1, 1, "New")],
        vapor=[VAPOR_NULL] if fails_at == "record-frame" else [],
    )
    with pytest.raises(WarehouseError, match="(?i)not null|primary key"):
        load(con, db, failing)
    assert [rows(con, f"SELECT * FROM {t} ORDER BY ALL") for t in TABLES] == before
    assert stored_offsets(con) == {(SALE_TOPIC, 0): (5, "id-1")}
    after = load(con, db, batch({(SALE_TOPIC, 0): 9}, sale=[sale("B", 5)]))
    assert after.loaded["sale"] == 1 and count(con, "sale") == 2


TABLES = ("sale", "vapor", "facility_version", "station", "tank", "dead_letter",
          "ingest_duplicate", "key_conflict", "ingest_offset", "ingest_load")  # fmt: skip


def migration_files() -> list[tuple[int, str]]:
    found = [re.match(r"^(\d{3})_(\w+)\.sql$", p.name) for p in MIGRATIONS.glob("*.sql")]
    return sorted((int(m[1]), m[2]) for m in found if m)


def test_a_fresh_warehouse_is_at_the_highest_migration(con: duckdb.DuckDBPyConnection) -> None:
    files = migration_files()
    assert len(files) >= 2
    assert rows(con, "SELECT version, name FROM schema_version ORDER BY version") == files
    assert migrate(con) == files[-1][0]
    assert "topic_id" in [c[0] for c in rows(con, "DESCRIBE ingest_offset")]


def test_reopening_applies_nothing_twice(db: Path) -> None:
    first = connect(db)
    applied = rows(first, "SELECT * FROM schema_version ORDER BY version")
    load(first, db, batch({(SALE_TOPIC, 0): 1}, sale=[sale()]))
    first.close()
    again = connect(db)
    try:
        assert rows(again, "SELECT * FROM schema_version ORDER BY version") == applied
        assert migrate(again) == migration_files()[-1][0]
        assert count(again, "schema_version") == len(migration_files())
        assert count(again, "sale") == 1
        assert rows(again, "SELECT nextval('load_seq')") == [(2,)]
    finally:
        again.close()
