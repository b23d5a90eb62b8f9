"""The warehouse gauges (fueltrace/observe.py), against a real DuckDB file, no broker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from fueltrace import metrics
from fueltrace.observe import EVENT_TIME, refresh_gauges
from fueltrace.settings import Settings
from ingest.frames import to_frame
from ingest.records import SPECS
from warehouse.connection import connect
from warehouse.load import DEAD_LETTER_SCHEMA, Batch, load_batch

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class Loader:
    """Loads records the way the ingest does, one micro-batch per call."""

    def __init__(self, con: duckdb.DuckDBPyConnection, db: Path) -> None:
        self.con, self.db, self.offset = con, db, 0

    def __call__(self, record_type: str, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            row.update(src_partition=0, src_offset=self.offset, src_index=0)
            self.offset += 1
        frames = {record_type: to_frame(record_type, rows)}
        letters = pl.DataFrame([], schema=DEAD_LETTER_SCHEMA)
        load_batch(self.con, self.db, Batch(frames, letters, {("fuel.x", 0): self.offset}))


def station(station_id: str, city: str) -> dict[str, Any]:
    return {"facility_id": station_id, "kind": "station", "name": station_id, "city": city,
            "operator": "Sinopec", "updated_at": ms(NOW - timedelta(days=90)),
            "tanks": [{"tank_id": "T1", "product": "gasoline_92", "capacity_l": 30000.0}],
            "nozzles": [{"nozzle_id": "N1", "dispenser_id": "D1", "tank_id": "T1"}],
            "licences": []}  # fmt: skip


def reading(station_id: str, at: datetime) -> dict[str, Any]:
    return {"station_id": station_id, "tank_id": "T1", "product": "gasoline_92",
            "read_at": ms(at), "level_mm": 1000.0, "volume_l": 10000.0, "water_mm": 0.0,
            "temperature_c": 10.0}  # fmt: skip


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, Loader, Settings]]:
    db = tmp_path / "w.duckdb"
    con = connect(db)
    yield con, Loader(con, db), Settings(db=db, silent_station_h=2.0)
    con.close()


def test_event_times_match_the_record_types_and_their_tables() -> None:
    assert set(EVENT_TIME) == set(SPECS)
    assert {t: table for t, (table, _) in EVENT_TIME.items()} == {
        t: s.table for t, s in SPECS.items()
    }


def test_freshness_silence_rows_and_anomalies(
    warehouse: tuple[duckdb.DuckDBPyConnection, Loader, Settings],
) -> None:
    con, load, settings = warehouse
    load("facility", [station("A", "Dalian"), station("B", "Dalian"), station("C", "Anshan")])
    load("tank_reading", [reading("A", NOW - timedelta(minutes=5)),
                          reading("B", NOW - timedelta(hours=3))])  # fmt: skip
    for anomaly_id, rule, severity, station_id, city, state in (
        ("X1", "slow_leak", "high", "A", "Dalian", "active"),
        ("X2", "slow_leak", "high", "B", "Dalian", "active"),
        ("X3", "totalizer_gap", "medium", "C", None, "resolved"),
    ):
        con.execute("INSERT INTO anomaly VALUES ($i, $r, $s, $st, NULL, $c, 'T1', $t, $t, '{}', "
                    "'text', $state, $t, $t, NULL)", {"i": anomaly_id, "r": rule, "s": severity,
                    "st": station_id, "c": city, "state": state, "t": NOW})  # fmt: skip
    refresh_gauges(con, settings, NOW)
    now = NOW.timestamp()

    lag = metrics.EVENT_TIME_LAG.samples(now)
    assert lag[("tank_reading",)] == pytest.approx(300)
    assert ("sale",) not in lag  # nothing loaded: no series rather than a made-up age
    # B has been quiet for 3 h and C never reported: one silent station in each city
    assert metrics.STATIONS_SILENT.samples(now) == {("Dalian",): 1.0, ("Anshan",): 1.0}
    assert value("fueltrace_stations", city="Dalian") == 2
    assert value("fueltrace_warehouse_rows", table="tank_reading") == 2
    assert value("fueltrace_warehouse_rows", table="station") == 3
    assert value("fueltrace_open_anomalies", rule="slow_leak", severity="high",
                 city="Dalian") == 2  # fmt: skip
    assert value("fueltrace_open_anomalies", rule="totalizer_gap", severity="medium",
                 city="unknown") is None  # resolved ones are not open

    # Later: time passes with no data (the scrape-time gauges keep moving), then A is
    # heard from again and one anomaly is resolved.
    later = now + 3 * 3600
    assert metrics.EVENT_TIME_LAG.samples(later)[("tank_reading",)] == pytest.approx(300 + 3 * 3600)
    assert metrics.STATIONS_SILENT.samples(later)[("Dalian",)] == 2
    load("tank_reading", [reading("A", NOW + timedelta(hours=3))])
    con.execute("UPDATE anomaly SET state = 'resolved' WHERE rule = 'slow_leak'")
    refresh_gauges(con, settings, NOW + timedelta(hours=3))
    assert metrics.STATIONS_SILENT.samples(later)[("Dalian",)] == 1
    assert metrics.EVENT_TIME_LAG.samples(later)[("tank_reading",)] == pytest.approx(0)
    # a count that went to zero is removed, not left at its last value
    assert value("fueltrace_open_anomalies", rule="slow_leak", severity="high",
                 city="Dalian") is None  # fmt: skip


def test_a_new_warehouse_file_starts_over(
    warehouse: tuple[duckdb.DuckDBPyConnection, Loader, Settings], tmp_path: Path,
) -> None:  # fmt: skip
    con, load, settings = warehouse
    load("facility", [station("A", "Dalian")])
    load("tank_reading", [reading("A", NOW)])
    refresh_gauges(con, settings, NOW)
    other = tmp_path / "other.duckdb"
    with connect(other) as fresh:
        refresh_gauges(fresh, settings.model_copy(update={"db": other}), NOW)
    assert metrics.EVENT_TIME_LAG.samples(NOW.timestamp()) == {}
    assert metrics.STATIONS_SILENT.samples(NOW.timestamp()) == {}
    assert value("fueltrace_warehouse_rows", table="tank_reading") == 0


def value(name: str, **labels: str) -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels)
