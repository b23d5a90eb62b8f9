"""delivery_mismatch: a delivery that differs from its dispatch, one finding listing all."""

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
from processors.rules.delivery_mismatch import RULE, detect
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


def _analyse(con: duckdb.DuckDBPyConnection, tmp: Path, now: Any = NOW) -> list[tuple]:
    traceability.run(con, settings(tmp), now)
    anomalies.run(con, settings(tmp), now, (RULE,))
    rows = con.execute("SELECT station_id, depot_id, subject, severity, state, window_start, "
                       "window_end, evidence::VARCHAR, summary FROM anomaly").fetchall()
    return [(*r[:7], json.loads(r[7]), r[8]) for r in rows]


def test_every_mismatch_of_a_delivery_in_one_finding(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    received = {**delivery("D1", "S1", 9_800, 3, 4, "P1", density=745.0),
                "product": "gasoline_95", "vehicle_plate": "辽B·99999",
                "seal_ids": ["S1", "S3"], "seals_intact": False}  # fmt: skip
    load(con, tmp_path, facility=[station("S1")],
         dispatch=[dispatch("P1", "B7", "S1", 10_000, 1)], delivery=[received])  # fmt: skip
    [(station_id, depot, subject, severity, state, start, end, e, summary)] = _analyse(
        con, tmp_path)
    assert (station_id, depot, subject, severity, state) == (
        "S1", "DEPOT-1", "D1", "critical", "active")
    assert (start, end) == (h(1), h(4))  # dispatched → unloading ended
    assert e["mismatches"] == ["product", "vehicle", "seals", "seals_broken", "volume",
                               "density"]  # fmt: skip
    # at 20 °C: 9 800 received of 10 000 dispatched; 745 vs 740 kg/m³
    assert e["difference_20_l"] == pytest.approx(-200.0)
    assert e["difference_pct"] == pytest.approx(-2.0)
    assert e["density_difference_kg_m3"] == pytest.approx(5.0)
    assert (e["dispatched_product"], e["received_product"]) == ("gasoline_92", "gasoline_95")
    assert (e["dispatched_seal_ids"], e["received_seal_ids"]) == (["S1", "S2"], ["S1", "S3"])
    assert (e["batch_id"], e["loss_tolerance_pct"], e["density_tolerance_kg_m3"]) == (
        "B7", 0.5, 2.0)
    assert "seals S1, S2 applied, S1, S3 found" in summary
    assert "10000 L at 20 °C dispatched, 9800 L received (-200 L, -2.00 %" in summary


@pytest.mark.parametrize(("change", "severity", "kinds"), [
    ({"volume_l": 9_900.0}, "high", ["volume"]),           # −1 %: beyond −0.5 %
    ({"volume_l": 10_040.0}, "high", ["volume"]),          # +0.4 %: beyond +0.3 %
    ({"vehicle_plate": "辽C11111"}, "high", ["vehicle"]),
    ({"density_kg_m3": 737.5}, "critical", ["density"]),   # −2.5 kg/m³
    ({"vehicle_plate": "辽a 12345", "volume_l": 9_960.0}, None, []),  # same plate; −0.4 %
])  # fmt: skip
def test_severity_by_kind_and_what_is_within_tolerance(
    tmp_path: Path, change: dict, severity: str | None, kinds: list[str]
) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         dispatch=[dispatch("P1", "B", "S1", 10_000, 1)],
         delivery=[{**delivery("D1", "S1", 10_000, 3, 4, "P1"), **change}])  # fmt: skip
    found = _analyse(con, tmp_path)
    assert [(f[3], f[7]["mismatches"]) for f in found] == (
        [(severity, kinds)] if severity else [])


def test_received_at_another_station_is_reported_where_it_was_received(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1"), station("S2")],
         dispatch=[dispatch("P1", "B", "S1", 10_000, 1)],
         delivery=[delivery("D1", "S2", 10_000, 3, 4, "P1")])  # fmt: skip
    [found] = _analyse(con, tmp_path)
    assert (found[0], found[3], found[7]["mismatches"]) == ("S2", "high", ["station"])
    assert "addressed to station S1, received at S2" in found[8]


def test_a_dispatch_loaded_late_brings_the_mismatch_to_light(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         delivery=[delivery("D1", "S1", 9_000, 3, 4, "P1")])  # fmt: skip
    assert _analyse(con, tmp_path) == []  # no dispatch: delivery_without_dispatch's case
    load(con, tmp_path, dispatch=[dispatch("P1", "B", "S1", 10_000, 1)])
    [found] = _analyse(con, tmp_path, NOW + timedelta(hours=1))
    assert (found[3], found[7]["difference_20_l"]) == ("high", pytest.approx(-1_000.0))


def _frame(**change: Any) -> pl.DataFrame:
    row = {
        "station_id": "S1", "delivery_id": "D1", "dispatch_id": "P1", "mismatches": ["volume"],
        "dispatched_20_l": 10_000.0, "received_20_l": 9_000.0, "difference_20_l": -1_000.0,
        "difference_pct": -10.0, "density_dispatched": 740.0, "density_received": 740.0,
        "tank_id": "T1", "product": "gasoline_92", "vehicle_plate": "辽A12345",
        "seal_ids": ["S1"], "seals_intact": True, "started_at": h(3), "ended_at": h(4),
        "received_uncorrected": False, "depot_id": "DEPOT-1", "batch_id": "B",
        "destination_station_id": "S1", "dispatched_product": "gasoline_92",
        "dispatched_vehicle_plate": "辽A12345", "dispatched_seal_ids": ["S1"],
        "dispatched_at": h(1), "dispatched_uncorrected": False,
    } | change  # fmt: skip
    return pl.DataFrame([row], schema_overrides={c: UTC_US for c in (
        "started_at", "ended_at", "dispatched_at")})  # fmt: skip


@pytest.mark.parametrize(("change", "severity"), [
    ({}, "high"),
    ({"received_uncorrected": True}, "medium"),  # no volume at 20 °C to compare: ask
    ({"received_uncorrected": True, "mismatches": ["vehicle", "volume"]}, "high"),
    ({"mismatches": ["station", "seals"]}, "critical"),
])  # fmt: skip
def test_pure_severity(change: dict, severity: str) -> None:
    found = detect({"checks": _frame(**change)}, Settings(), Scope(pl.DataFrame(), NOW))
    assert found["severity"].to_list() == [severity]
    if change.get("received_uncorrected") and change.get("mismatches") is None:
        evidence = found["evidence"].to_list()[0]
        assert "volume not verifiable at 20 °C" in RULE.describe(evidence)


def test_a_clean_simulated_province_has_no_delivery_mismatch(tmp_path: Path) -> None:
    records = generate_province(seed=5, stations=10, days=2)
    assert len(records["delivery"]) > 5
    assert findings_on_province(tmp_path, records, DEFAULT_START + timedelta(days=2), RULE) == []


def test_injected_incidents_are_found_and_nothing_else(tmp_path: Path) -> None:
    kinds = ("shortfall", "adulteration", "product_swap", "vehicle_swap")
    generated = generate_with_truth(seed=3, stations=12, days=3,
                                    scenarios=RandomScenarios(per_kind=2, kinds=kinds))
    result = rule_on_truth(tmp_path, generated, DEFAULT_START + timedelta(days=4), RULE)
    assert result.expected
    assert result.missed == []
    assert result.unexplained == []
