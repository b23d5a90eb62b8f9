"""sales_while_gauge_down: litres drawn from a tank whose gauge was down.

Station S1 has tanks T1 and T2 (nozzles N-T1, N-T2); each sale starts two minutes before
its hour.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from processors import anomalies, traceability
from processors.rules.sales_while_gauge_down import RULE, spells
from simulator.generate import DEFAULT_START, generate_province
from tests.processors.rules.conduct_factories import h, status
from tests.processors.scenario import T0, load, reading, sale, settings, station
from warehouse.connection import connect

NOW = T0 + timedelta(days=1)
UTC_US = pl.Datetime("us", "UTC")


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


def test_spells_merge_a_reported_outage_with_the_pause_it_overlaps() -> None:
    pauses = pl.DataFrame({"station_id": ["S1", "S1", "S1"], "tank_id": ["T1", "T1", "T1"],
                           "last_at": [h(2), h(6), h(20)], "next_at": [h(5), h(6.75), None]},
                          schema_overrides={"last_at": UTC_US, "next_at": UTC_US})  # fmt: skip
    outages = pl.DataFrame({"station_id": ["S1"], "device_id": ["ATG1"], "device_kind": ["atg"],
                            "status": ["fault"], "at": [h(4)], "until_at": [h(8)]},
                           schema_overrides={"at": UTC_US, "until_at": UTC_US})  # fmt: skip
    tanks = pl.DataFrame({"station_id": ["S1", "S1"], "tank_id": ["T1", "T2"]})
    got = spells(pauses, outages, tanks, 2.0).sort("tank_id", "start_at").to_dicts()
    # T1: the 3 h pause and the fault overlap (2–8 h; the 0.75 h pause is inside); the
    # open pause from 20 h is its own. T2 only has the fault.
    assert [(r["tank_id"], r["start_at"], r["end_at"], r["silent"]) for r in got] == [
        ("T1", h(2), h(8), True), ("T1", h(20), None, True), ("T2", h(4), h(8), False)]


def test_sales_from_a_tank_whose_readings_stopped_are_high(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1", tanks=("T1", "T2"))],
         tank_reading=readings(0, 3) + readings(7, 9) + readings(0, 9, tank="T2"),
         sale=[sale("S1", 4, 35.5), sale("S1", 5.5, 40.0), sale("S1", 6, 50.0, tank="T2"),
               sale("S1", 8, 10.0)])  # fmt: skip
    assert run(con, tmp_path).raised == 1
    [found] = rows(con)
    e = found["evidence"]
    assert (found["subject"], found["severity"], found["start"], found["end"]) == (
        "T1", "high", h(3), h(7))
    # Only T1's litres: 35.5 + 40.0 (T2's 50 L had a working gauge; 8 h is after).
    assert (e["sales"], e["sales_l"], e["nozzle_ids"], e["down_h"]) == (2, 75.5, ["N-T1"], 4.0)
    assert (e["readings_paused"], e["reported_status"], e["ongoing"]) == (True, None, False)
    assert "75.5 L sold in 2 sales" in found["summary"]


def test_a_fault_reported_while_readings_go_on_is_medium_for_every_tank(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1", tanks=("T1", "T2"))],
         tank_reading=readings(0, 10) + readings(0, 10, tank="T2"),
         device_status=[status("S1", 0, "online"), status("S1", 2, "fault"),
                        status("S1", 5, "online")],
         sale=[sale("S1", 3, 20.0), sale("S1", 4, 30.0, tank="T2"), sale("S1", 6, 99.0)])
    run(con, tmp_path)
    found = rows(con)
    assert [(r["subject"], r["severity"], r["start"], r["end"]) for r in found] == [
        ("T1", "medium", h(2), h(5)), ("T2", "medium", h(2), h(5))]
    assert [r["evidence"]["sales_l"] for r in found] == [20.0, 30.0]
    assert found[0]["evidence"]["reported_status"] == "fault"
    assert found[0]["evidence"]["device_ids"] == ["ATG1"]


def test_an_offline_gauge_is_back_with_its_first_reading(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         tank_reading=readings(0, 2) + readings(4.5, 10),
         device_status=[status("S1", 2.1, "offline")],  # never says online again
         sale=[sale("S1", t, 20.0) for t in (3, 4, 6, 8)])  # fmt: skip
    run(con, tmp_path)
    [found] = rows(con)
    # Down from the last reading (2 h) to the first one after the outage (4:30).
    assert (found["start"], found["end"], found["evidence"]["sales"]) == (h(2), h(4.5), 2)
    assert (found["severity"], found["evidence"]["reported_status"]) == ("medium", "offline")


def test_a_short_outage_is_not_a_finding(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")], tank_reading=readings(0, 10),
         device_status=[status("S1", 3, "fault"), status("S1", 4, "online")],
         sale=[sale("S1", 3.5, 20.0)])  # fmt: skip
    run(con, tmp_path)
    assert rows(con) == []


def test_a_station_gone_dark_with_its_gauge_is_not_this_rule_s(tmp_path: Path) -> None:
    """Its last sale came minutes after the last reading: the whole station went dark
    (``station_silent``), not just the gauge."""
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")], tank_reading=readings(0, 3) + readings(9, 10),
         sale=[sale("S1", 3.2, 20.0), sale("S1", 9.5, 20.0)])  # fmt: skip
    run(con, tmp_path)
    assert rows(con) == []


def test_backfilled_readings_clear_the_finding(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")], tank_reading=readings(0, 3) + readings(7, 9),
         sale=[sale("S1", t, 20.0) for t in (4, 5.5)])  # fmt: skip
    run(con, tmp_path)
    assert [r["state"] for r in rows(con)] == ["active"]
    load(con, tmp_path, tank_reading=readings(3.25, 6.75))
    assert run(con, tmp_path, NOW + timedelta(hours=1)).resolved == 1
    assert [r["state"] for r in rows(con)] == ["resolved"]


def test_a_clean_province_always_has_its_gauges(tmp_path: Path) -> None:
    records = generate_province(seed=29, stations=10, days=2)
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, **records)
    now = DEFAULT_START + timedelta(days=2)
    traceability.run(con, settings(tmp_path), now)
    result = anomalies.run(con, settings(tmp_path), now, (RULE,))
    assert len(records["sale"]) > 1000
    assert result.by_rule == {RULE.name: 0}
