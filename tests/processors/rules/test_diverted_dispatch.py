"""diverted_dispatch: a load its destination never reported receiving (24 h default)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from fueltrace.settings import Settings
from processors import anomalies, traceability
from processors.rules.base import Scope
from processors.rules.diverted_dispatch import RULE, detect
from simulator.generate import (
    DEFAULT_START,
    RandomScenarios,
    generate_province,
    generate_with_truth,
)
from tests.processors.rules.simulated import findings_on_province, rule_on_truth
from tests.processors.scenario import T0, delivery, dispatch, load, settings, station
from warehouse.connection import connect

UTC_US = pl.Datetime("us", "UTC")


def h(hours: float) -> Any:
    return T0 + timedelta(hours=hours)


def _dispatches(*rows: tuple[str, float]) -> pl.DataFrame:
    return pl.DataFrame([{
        "dispatch_id": p, "depot_id": "DEPOT-1", "station_id": "S1", "batch_id": "B",
        "product": "gasoline_92", "vehicle_plate": "辽A12345", "seal_ids": ["S1", "S2"],
        "volume_20_l": 10_000.0, "dispatched_at": h(t)} for p, t in rows],
        schema_overrides={"dispatched_at": UTC_US})  # fmt: skip


def _claims(*rows: tuple[str, str, str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"dispatch_id": p, "delivery_id": d, "received_station_id": s, "started_at": h(t),
          "ended_at": h(t + 1)} for p, d, s, t in rows],
        schema={"dispatch_id": pl.String, "delivery_id": pl.String,
                "received_station_id": pl.String, "started_at": UTC_US, "ended_at": UTC_US},
    )  # fmt: skip


def test_pure_not_received_received_elsewhere_and_still_in_transit() -> None:
    frames = {
        "dispatches": _dispatches(("P1", 0), ("P2", 0), ("P3", 0), ("P4", 20)),
        "claims": _claims(("P1", "D1", "S1", 2), ("P2", "D2", "S2", 2)),
    }
    found = detect(frames, Settings(), Scope(pl.DataFrame(), h(26)))
    rows = {r["subject"]: r for r in found.to_dicts()}
    assert set(rows) == {"P2", "P3"}  # P1 arrived; P4 is due only at 44 h
    p3, p2 = rows["P3"], rows["P2"]
    assert (p3["severity"], p3["window_start"], p3["window_end"]) == ("critical", h(0), h(24))
    assert (p3["evidence"]["outcome"], p3["evidence"]["due_at"]) == ("not_received", h(24))
    assert p3["evidence"]["overdue_after_h"] == 24.0
    assert (p2["severity"], p2["window_end"]) == ("high", h(3))
    e2 = p2["evidence"]
    assert (e2["outcome"], e2["received_station_id"], e2["received_delivery_id"]) == (
        "received_elsewhere", "S2", "D2")
    assert e2["received_after_h"] == pytest.approx(3.0)
    assert "received by station S2 as delivery D2" in RULE.describe(e2)
    assert "no station has reported receiving it; it was due by" in RULE.describe(
        p3["evidence"])
    # received at its destination and, again, elsewhere: not diverted (a duplicate claim)
    frames["claims"] = _claims(("P3", "D3", "S1", 5), ("P3", "D4", "S2", 6))
    assert "P3" not in detect(frames, Settings(), Scope(pl.DataFrame(), h(26)))["subject"]


def _anomalies(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    rows = con.execute("SELECT station_id, depot_id, subject, severity, state, "
                       "evidence::VARCHAR FROM anomaly ORDER BY subject").fetchall()
    return [(*r[:5], json.loads(r[5])) for r in rows]


def _analyse(con: duckdb.DuckDBPyConnection, tmp: Path, now: Any) -> list[tuple]:
    traceability.run(con, settings(tmp), now)
    anomalies.run(con, settings(tmp), now, (RULE,))
    return _anomalies(con)


def test_overdue_by_the_clock_alone_and_resolved_by_a_late_receipt(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         dispatch=[dispatch("P1", "B", "S1", 10_000, 1)])  # fmt: skip
    assert _analyse(con, tmp_path, h(10)) == []  # in transit
    # no new data, only time passing: 25 h after dispatch it is overdue
    [(station_id, depot, subject, severity, state, e)] = _analyse(con, tmp_path, h(26))
    assert (station_id, depot, subject, severity, state) == (
        "S1", "DEPOT-1", "P1", "critical", "active")
    assert (e["outcome"], e["volume_20_l"], e["due_at"]) == (
        "not_received", pytest.approx(10_000.0), "2026-11-21T01:00:00.000Z")
    # a later clock changes nothing (no hours-overdue churn in the evidence)
    assert anomalies.run(con, settings(tmp_path), h(30), (RULE,)).updated == 0
    # the station's delivery record (unloaded 3–4 h) arrives two days late
    load(con, tmp_path, delivery=[delivery("D1", "S1", 10_000, 3, 4, "P1")])
    [(*_, state, _)] = _analyse(con, tmp_path, h(50))
    assert state == "resolved"


def test_received_at_another_station(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1"), station("S2")],
         dispatch=[dispatch("P1", "B", "S1", 10_000, 1)],
         delivery=[delivery("D1", "S2", 10_000, 3, 4, "P1")])  # fmt: skip
    [(station_id, _, _, severity, state, e)] = _analyse(con, tmp_path, h(5))
    assert (station_id, severity, state) == ("S1", "high", "active")
    assert (e["received_station_id"], e["received_after_h"]) == ("S2", pytest.approx(3.0))


def test_a_clean_simulated_province_has_no_diverted_dispatch(tmp_path: Path) -> None:
    records = generate_province(seed=5, stations=10, days=2)
    assert len(records["delivery"]) > 5
    assert findings_on_province(tmp_path, records, DEFAULT_START + timedelta(days=4), RULE) == []


def test_injected_incidents_are_found_and_nothing_else(tmp_path: Path) -> None:
    generated = generate_with_truth(seed=3, stations=12, days=3, scenarios=RandomScenarios(
        per_kind=2, kinds=("diverted_load",)))  # fmt: skip
    result = rule_on_truth(tmp_path, generated, DEFAULT_START + timedelta(days=4), RULE)
    assert result.expected
    assert result.missed == []
    assert result.unexplained == []
