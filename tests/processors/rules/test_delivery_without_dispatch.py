"""delivery_without_dispatch: deliveries no depot dispatch accounts for."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from fueltrace.settings import Settings
from processors import anomalies, traceability
from processors.rules.base import Scope
from processors.rules.delivery_without_dispatch import RULE, detect
from simulator.generate import (
    DEFAULT_START,
    RandomScenarios,
    generate_province,
    generate_with_truth,
)
from tests.processors.rules.simulated import findings_on_province, rule_on_truth
from tests.processors.scenario import T0, delivery, dispatch, load, settings, station
from warehouse.connection import connect

NOW = T0 + timedelta(days=1)
UTC_US = pl.Datetime("us", "UTC")


def h(hours: float) -> Any:
    return T0 + timedelta(hours=hours)


def check(delivery_id: str, dispatch_id: str | None, status: str,
          mismatches: tuple[str, ...] = (), start: float = 3.0) -> dict[str, Any]:  # fmt: skip
    return {
        "station_id": "S1", "delivery_id": delivery_id, "dispatch_id": dispatch_id,
        "status": status, "mismatches": list(mismatches), "received_20_l": 10_000.0,
        "tank_id": "T1", "product": "gasoline_92", "vehicle_plate": "辽A12345",
        "seals_intact": True, "started_at": h(start), "ended_at": h(start + 1),
    }  # fmt: skip


def run(checks: list[dict[str, Any]], claims: Sequence[tuple[str, str, str, float]] = ()
        ) -> dict[str, dict[str, Any]]:  # fmt: skip
    frames = {
        "untraced": pl.DataFrame(checks, schema_overrides={"started_at": UTC_US,
                                                           "ended_at": UTC_US}),
        "claims": pl.DataFrame(
            [{"delivery_id": d, "dispatch_id": p, "station_id": s, "started_at": h(t)}
             for d, p, s, t in claims],
            schema={"delivery_id": pl.String, "dispatch_id": pl.String,
                    "station_id": pl.String, "started_at": UTC_US}),
    }  # fmt: skip
    found = detect(frames, Settings(), Scope(pl.DataFrame(), NOW)).unnest("evidence")
    return {row["delivery_id"]: row for row in found.to_dicts()}


def test_each_kind_of_untraced_delivery_with_its_severity() -> None:
    found = run([
        check("D1", None, "no_dispatch"),
        check("D2", "P9", "unknown_dispatch"),
        check("D3", "P1", "mismatch", ("duplicate_claim",), start=10.0),
    ], claims=[("D0", "P1", "S2", 2.0), ("D3", "P1", "S1", 10.0)])  # fmt: skip
    assert {d: (f["reason"], f["severity"]) for d, f in found.items()} == {
        "D1": ("no_dispatch", "critical"),
        "D2": ("unknown_dispatch", "high"),
        "D3": ("dispatch_already_received", "critical"),
    }
    d3 = found["D3"]
    assert (d3["first_delivery_id"], d3["first_station_id"], d3["first_started_at"]) == (
        "D0", "S2", h(2.0))
    assert (d3["subject"], d3["window_start"], d3["window_end"]) == ("D3", h(10), h(11))
    assert found["D1"]["first_delivery_id"] is None
    assert found["D2"]["declared_dispatch_id"] == "P9"
    assert found["D1"]["volume_20_l"] == 10_000.0
    assert "already received as delivery D0 at station S2" in RULE.describe(d3)
    assert "names no depot dispatch" in RULE.describe(found["D1"])


def _analyse(con: duckdb.DuckDBPyConnection, tmp: Path, now: Any = NOW) -> dict[str, tuple]:
    traceability.run(con, settings(tmp), now)
    anomalies.run(con, settings(tmp), now, (RULE,))
    rows = con.execute("SELECT subject, severity, state, evidence::VARCHAR FROM anomaly").fetchall()
    return {r[0]: (r[1], r[2], json.loads(r[3])) for r in rows}


def test_through_the_warehouse_and_a_late_dispatch_resolves_it(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")], delivery=[
        delivery("D1", "S1", 8_000, 3, 4, None),
        delivery("D2", "S1", 10_000, 6, 7, "P2"),
    ])  # fmt: skip
    found = _analyse(con, tmp_path)
    assert {d: f[:2] for d, f in found.items()} == {
        "D1": ("critical", "active"), "D2": ("high", "active")}
    assert found["D1"][2]["volume_20_l"] == pytest.approx(8_000.0)
    assert found["D2"][2]["declared_dispatch_id"] == "P2"

    # the depot's record of P2 arrives a day late: D2 is traced, D1 still is not
    load(con, tmp_path, dispatch=[dispatch("P2", "B", "S1", 10_000, 1)])
    found = _analyse(con, tmp_path, NOW + timedelta(hours=1))
    assert {d: f[1] for d, f in found.items()} == {"D1": "active", "D2": "resolved"}


def test_one_waybill_for_two_loads(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         dispatch=[dispatch("P1", "B", "S1", 10_000, 1)],
         delivery=[delivery("D1", "S1", 10_000, 3, 4, "P1"),
                   delivery("D2", "S1", 10_000, 9, 10, "P1")])  # fmt: skip
    found = _analyse(con, tmp_path)
    assert list(found) == ["D2"]
    severity, _, evidence = found["D2"]
    assert (severity, evidence["reason"], evidence["first_delivery_id"]) == (
        "critical", "dispatch_already_received", "D1")


def test_a_clean_simulated_province_has_no_untraced_delivery(tmp_path: Path) -> None:
    records = generate_province(seed=5, stations=10, days=2)
    assert len(records["delivery"]) > 5
    assert findings_on_province(tmp_path, records, DEFAULT_START + timedelta(days=2), RULE) == []


def test_injected_incidents_are_found_and_nothing_else(tmp_path: Path) -> None:
    generated = generate_with_truth(seed=3, stations=12, days=3, scenarios=RandomScenarios(
        per_kind=2, kinds=("delivery_without_dispatch",)))  # fmt: skip
    result = rule_on_truth(tmp_path, generated, DEFAULT_START + timedelta(days=4), RULE)
    assert result.expected
    assert result.missed == []
    assert result.unexplained == []
