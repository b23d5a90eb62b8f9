"""station_silent: a station that sent nothing for hours while it sold or took fuel.

Arrival is when a load finished (``arrived`` stamps it). Station S1 reports every 15 min
and its load of 0–13:45 arrives at 14 h; S2 keeps the pipeline busy with a load every
hour; S1's backlog of 14–20 h (readings, and sales at 15, 17 and 19 h) arrives at 20:06.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from processors import anomalies, traceability
from processors.rules.station_silent import RULE
from simulator.generate import DEFAULT_START, generate_province
from tests.processors.rules.conduct_factories import arrived, h, status
from tests.processors.scenario import dispatch, load, reading, sale, settings, station
from warehouse.connection import connect

BACK = 20.1
#: The event time of each record type: when a live gateway would send it.
EVENT = {"dispatch": "dispatched_at", "delivery": "started_at", "tank_reading": "read_at",
         "sale": "started_at", "vapor": "measured_at", "device_status": "at"}  # fmt: skip


def readings(station_id: str, start: float, end: float) -> list[dict[str, Any]]:
    return [reading(station_id, start + q / 4, 20_000.0)
            for q in range(int((end - start) * 4) + 1)]  # fmt: skip


def run(con: duckdb.DuckDBPyConnection, tmp: Path, now: float) -> anomalies.AnomalyRunResult:
    return anomalies.run(con, settings(tmp), h(now), (RULE,))


def rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    found = con.execute("""SELECT anomaly_id, station_id, severity, state, window_start,
                                  window_end, evidence::VARCHAR, summary
                           FROM anomaly ORDER BY station_id""").fetchall()
    keys = ("id", "station", "severity", "state", "start", "end", "evidence", "summary")
    return [dict(zip(keys, r[:6] + (json.loads(r[6]),) + r[7:], strict=True)) for r in found]


def before(con: duckdb.DuckDBPyConnection, tmp: Path, **s1: list[dict[str, Any]]) -> None:
    """Both stations report until 13:45 (arriving at 14 h)."""
    load(con, tmp, facility=[station("S1"), station("S2")],
         tank_reading=readings("S1", 0, 13.75) + readings("S2", 0, 13.75),
         sale=[sale("S1", 10, 30.0), sale("S1", 12, 30.0)], **s1)  # fmt: skip
    arrived(con, 14)


def s2_hourly(con: duckdb.DuckDBPyConnection, tmp: Path, hours: range,
              **extra: list[dict[str, Any]]) -> None:  # fmt: skip
    for k in hours:
        load(con, tmp, tank_reading=readings("S2", k - 0.75, k), **extra)
        extra = {}
        arrived(con, k)


def backlog(con: duckdb.DuckDBPyConnection, tmp: Path, sold: bool = True,
            **extra: list[dict[str, Any]]) -> None:  # fmt: skip
    sales = [sale("S1", t, v) for t, v in ((15, 1200.0), (17, 1500.0), (19, 500.5))]
    load(con, tmp, tank_reading=readings("S1", 14, 20), **({"sale": sales} if sold else {}),
         **extra)  # fmt: skip
    arrived(con, BACK)


def test_silent_six_hours_then_a_backlog_of_sales(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    before(con, tmp_path)
    s2_hourly(con, tmp_path, range(15, 21))
    backlog(con, tmp_path)
    assert run(con, tmp_path, 20.2).raised == 1
    [found] = rows(con)
    e = found["evidence"]
    # From S1's last record (13:45) to the arrival that ended the silence (20:06).
    assert (found["station"], found["severity"], found["start"], found["end"]) == (
        "S1", "medium", h(13.75), h(BACK))
    assert (e["silent_h"], e["ongoing"], e["last_arrived_at"]) == (
        pytest.approx(6.35), False, "2026-11-20T14:00:00.000Z")
    assert (e["sales"], e["sales_l"], e["readings"]) == (3, 3200.5, 25)
    assert (e["deliveries"], e["dispatches"], e["reported_status"]) == (0, 0, None)
    assert "silent from 2026-11-20 21:45 to 2026-11-21 04:06" in found["summary"]
    assert "sold 3200.5 L in 3 sales in that time per its backlog" in found["summary"]


def test_an_ongoing_silence_is_raised_then_updated_with_the_backlog(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    before(con, tmp_path)
    s2_hourly(con, tmp_path, range(15, 19))
    assert run(con, tmp_path, 18.05).raised == 1
    [ongoing] = rows(con)
    assert (ongoing["severity"], ongoing["start"], ongoing["end"]) == ("low", h(13.75), h(18.05))
    assert (ongoing["evidence"]["ongoing"], ongoing["evidence"]["silent_h"]) == (
        True, pytest.approx(4.3))
    assert "silent since 2026-11-20 21:45" in ongoing["summary"]
    s2_hourly(con, tmp_path, range(19, 21))
    backlog(con, tmp_path)
    assert run(con, tmp_path, 20.2).updated == 1
    [closed] = rows(con)
    assert (closed["id"], closed["severity"], closed["end"]) == (ongoing["id"], "medium", h(BACK))
    changes = con.execute('SELECT change FROM anomaly_history ORDER BY "at"').fetchall()
    assert changes == [("raised",), ("updated",)]


def test_a_station_that_comes_back_having_sold_nothing_is_resolved(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    before(con, tmp_path)
    s2_hourly(con, tmp_path, range(15, 19))
    run(con, tmp_path, 18.05)
    s2_hourly(con, tmp_path, range(19, 21))
    backlog(con, tmp_path, sold=False)  # closed for the night: readings only
    assert run(con, tmp_path, 20.2).resolved == 1
    assert [r["state"] for r in rows(con)] == ["resolved"]


def test_a_gateway_outage_the_station_reported_is_low(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    before(con, tmp_path)
    s2_hourly(con, tmp_path, range(15, 21))
    backlog(con, tmp_path, device_status=[status("S1", 13.9, "offline", "GW1", "gateway"),
                                          status("S1", 20, "online", "GW1", "gateway")])
    run(con, tmp_path, 20.2)
    [found] = rows(con)
    assert (found["severity"], found["evidence"]["reported_status"]) == ("low", "offline")
    # The status is a record too: the last one before the silence is now at 13:54.
    assert found["start"] == h(13.75)


def test_fuel_dispatched_to_a_dark_station_is_high(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    before(con, tmp_path)
    s2_hourly(con, tmp_path, range(15, 19),
              dispatch=[dispatch("P1", "B1", "S1", 10_000.0, 14.5)])  # fmt: skip
    run(con, tmp_path, 18.05)
    [found] = rows(con)
    assert (found["severity"], found["evidence"]["dispatches"]) == ("high", 1)
    assert found["evidence"]["dispatched_l"] == 10_000.0


def test_a_pause_of_the_whole_pipeline_is_nobody_s_silence(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    before(con, tmp_path)
    backlog(con, tmp_path)  # nothing from anyone between 14 h and 20:06
    s2_hourly(con, tmp_path, range(21, 22))
    run(con, tmp_path, 21.1)
    assert rows(con) == []


def test_a_dark_station_whose_totalizers_moved_is_high_even_in_a_bulk_load(
    tmp_path: Path,
) -> None:
    """No backlog ever came: the records of 4–10 h are missing for good, and nozzle N-T1
    dispensed 45 + 60 + 15.5 L meanwhile that no sale record holds."""
    con = connect(tmp_path / "w.duckdb")
    sales = [sale("S1", t, v) for t, v in ((2, 30.0), (3, 20.0), (5, 45.0), (6, 60.0),
                                           (7, 15.5), (11, 25.0))]  # fmt: skip
    hidden = sales[2:5]
    load(con, tmp_path, facility=[station("S1")],
         tank_reading=readings("S1", 0, 4) + readings("S1", 10, 12),
         sale=[s for s in sales if s not in hidden])  # fmt: skip
    run(con, tmp_path, 12.5)
    [found] = rows(con)
    e = found["evidence"]
    assert (found["severity"], found["start"], found["end"]) == ("high", h(4), h(10))
    assert (e["unreported_l"], e["unreported_nozzles"], e["sales"], e["readings"]) == (
        120.5, 1, 0, 0)
    assert (e["back_at"], e["resumed_at"], e["silent_h"]) == (
        None, "2026-11-20T10:00:00.000Z", 6.0)
    assert "totalizers moved 120.5 L on 1 nozzle" in found["summary"]


def test_a_clean_province_arriving_live_is_never_silent(tmp_path: Path) -> None:
    """Two simulated days replayed as a live feed: every 1.5 h the records of the last
    1.5 h arrive; the analyses run every 9 h with the clock of a live system."""
    records = generate_province(seed=23, stations=8, days=2)
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=records["facility"])
    arrived(con, 0)
    step = timedelta(hours=1.5)
    for k in range(1, 33):
        low, high = DEFAULT_START + (k - 1) * step, DEFAULT_START + k * step
        chunk = {t: [r for r in records[t] if low.isoformat()[:19] <= r[field][:19]
                     < high.isoformat()[:19]] for t, field in EVENT.items()}  # fmt: skip
        load(con, tmp_path, **{t: v for t, v in chunk.items() if v})
        arrived(con, 1.5 * k + 0.02)
        if k % 6 == 0 or k == 32:
            clock = h(1.5 * k + 0.05)
            traceability.run(con, settings(tmp_path), clock)
            result = anomalies.run(con, settings(tmp_path), clock, (RULE,))
            assert result.by_rule.get(RULE.name, 0) == 0, k
    assert con.execute("SELECT count(*) FROM anomaly").fetchall() == [(0,)]
    assert len(records["sale"]) > 1000
