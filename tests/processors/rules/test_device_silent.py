"""device_silent: a tank gauge or the vapour monitor silent while the station sells.

Tank T1 reads every 15 min from 0 h to 4 h, then (when it resumes) from 10 h; the station
sells 20 L at 5, 6 and 7 h (each sale starts two minutes before the hour).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from processors import anomalies, traceability
from processors.rules.device_silent import RULE
from simulator.generate import DEFAULT_START, generate_province
from tests.processors.rules.conduct_factories import h, status, vapor
from tests.processors.scenario import T0, load, reading, sale, settings, station
from warehouse.connection import connect

NOW = T0 + timedelta(days=1)


def readings(start: float, end: float, tank: str = "T1") -> list[dict[str, Any]]:
    return [reading("S1", start + q / 4, 20_000.0 - q, tank=tank)
            for q in range(int((end - start) * 4) + 1)]  # fmt: skip


def run(con: duckdb.DuckDBPyConnection, tmp: Path, now: Any = NOW) -> anomalies.AnomalyRunResult:
    return anomalies.run(con, settings(tmp), now, (RULE,))


def rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    found = con.execute("""SELECT anomaly_id, subject, severity, state, window_start,
                                  window_end, evidence::VARCHAR, summary
                           FROM anomaly ORDER BY subject""").fetchall()
    keys = ("id", "subject", "severity", "state", "start", "end", "evidence", "summary")
    return [dict(zip(keys, r[:6] + (json.loads(r[6]),) + r[7:], strict=True)) for r in found]


def scenario(con: duckdb.DuckDBPyConnection, tmp: Path, **extra: list[dict[str, Any]]) -> None:
    load(con, tmp, facility=[station("S1")], tank_reading=readings(0, 4) + readings(10, 12),
         sale=[sale("S1", t, 20.0) for t in (5, 6, 7)], **extra)  # fmt: skip


def test_a_gauge_silent_while_selling_with_no_status_is_high(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    scenario(con, tmp_path)
    assert run(con, tmp_path).raised == 1
    [found] = rows(con)
    e = found["evidence"]
    assert (found["subject"], found["severity"], found["start"], found["end"]) == (
        "T1", "high", h(4), h(10))
    assert (e["device_kind"], e["silent_h"], e["threshold_h"], e["ongoing"]) == (
        "atg", 6.0, 2.0, False)
    assert (e["sales"], e["sales_l"], e["reported_status"]) == (3, 60.0, None)
    assert e["first_sale_at"] == "2026-11-20T04:58:00.000Z"
    assert "12:00 until 2026-11-20 18:00 Beijing" in found["summary"]
    assert "suspected suppression" in found["summary"]


@pytest.mark.parametrize(("state", "severity"), [("offline", "low"), ("fault", "medium")])
def test_a_reported_outage_is_low_or_medium(tmp_path: Path, state: str, severity: str) -> None:
    con = connect(tmp_path / "w.duckdb")
    scenario(con, tmp_path, device_status=[status("S1", 0, "online"), status("S1", 4.1, state),
                                           status("S1", 10, "online")])  # fmt: skip
    run(con, tmp_path)
    [found] = rows(con)
    assert (found["severity"], found["evidence"]["reported_status"]) == (severity, state)
    assert found["evidence"]["device_ids"] == ["ATG1"]


def test_a_short_pause_or_a_pause_without_sales_is_not_silence(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         tank_reading=readings(0, 4) + readings(5.5, 8) + readings(12, 14),  # 1.5 h, 4 h
         sale=[sale("S1", 5, 20.0), sale("S1", 14, 20.0)])  # fmt: skip
    run(con, tmp_path)
    assert rows(con) == []


def test_sales_only_just_after_the_last_reading_are_no_silence(tmp_path: Path) -> None:
    """The station went dark with its gauge: its last sales came within minutes."""
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         tank_reading=readings(0, 4) + readings(10, 12),
         sale=[sale("S1", 4.2, 20.0), sale("S1", 11, 20.0)])  # fmt: skip
    run(con, tmp_path)
    assert rows(con) == []


def test_the_vapour_monitor_silent_while_gasoline_sells(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")], tank_reading=readings(0, 12),
         vapor=[vapor("S1", t) for t in (0, 1, 2, 6, 7)],
         sale=[sale("S1", t, 30.0) for t in (3, 4, 5.5)])  # fmt: skip
    run(con, tmp_path)
    [found] = rows(con)
    assert (found["subject"], found["severity"], found["start"], found["end"]) == (
        "vapor_monitor", "high", h(2), h(6))
    assert (found["evidence"]["silent_h"], found["evidence"]["threshold_h"]) == (4.0, 3.0)
    assert found["evidence"]["sales_l"] == 90.0


def test_an_ongoing_silence_grows_with_sales_and_ends_when_the_gauge_resumes(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")], tank_reading=readings(0, 4),
         sale=[sale("S1", t, 20.0) for t in (3, 5, 6.5)])  # fmt: skip
    run(con, tmp_path, h(7))
    [ongoing] = rows(con)
    # Silent since the 4 h reading, at least until the sale that started at 6:28.
    assert (ongoing["start"], ongoing["end"]) == (h(4), h(6.5) - timedelta(minutes=2))
    assert ongoing["evidence"]["silent_h"] == pytest.approx(2.4667, abs=1e-4)
    assert (ongoing["evidence"]["ongoing"], ongoing["evidence"]["sales"]) == (True, 2)
    assert "still silent" in ongoing["summary"]
    load(con, tmp_path, sale=[sale("S1", 7.5, 20.0)])
    assert run(con, tmp_path, h(8)).updated == 1
    load(con, tmp_path, tank_reading=readings(10, 11))
    assert run(con, tmp_path, h(11)).updated == 1
    [resumed] = rows(con)
    assert (resumed["id"], resumed["end"]) == (ongoing["id"], h(10))
    assert (resumed["evidence"]["ongoing"], resumed["evidence"]["sales"]) == (False, 3)


def test_backfilled_readings_end_the_silence(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    scenario(con, tmp_path)
    run(con, tmp_path)
    load(con, tmp_path, tank_reading=readings(4.25, 9.75))  # the gauge's backlog
    assert run(con, tmp_path, NOW + timedelta(hours=1)).resolved == 1
    assert [r["state"] for r in rows(con)] == ["resolved"]


def test_backfilled_sales_show_the_station_sold_while_the_gauge_was_silent(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         tank_reading=readings(0, 4) + readings(10, 12))  # fmt: skip
    run(con, tmp_path)
    assert rows(con) == []
    load(con, tmp_path, sale=[sale("S1", 8, 45.0)])  # the gateway's backlog of sales
    assert run(con, tmp_path, NOW + timedelta(hours=1)).raised == 1
    assert rows(con)[0]["evidence"]["sales_l"] == 45.0


def test_a_clean_province_has_no_silent_devices(tmp_path: Path) -> None:
    records = generate_province(seed=19, stations=10, days=2)
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, **records)
    now = DEFAULT_START + timedelta(days=2)
    traceability.run(con, settings(tmp_path), now)
    result = anomalies.run(con, settings(tmp_path), now, (RULE,))
    assert len(records["tank_reading"]) > 1000
    assert result.by_rule == {RULE.name: 0}
