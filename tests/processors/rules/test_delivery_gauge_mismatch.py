"""delivery_gauge_mismatch: the declared receipt against the rise the tank gauge saw.

10 000 L in tank T1 read at 0, 1 and 2 h; a delivery declared 10 000 L unloads 3–4 h;
the gauge reads again at 5 h. Tolerance: max(1 % × 10 000, 50) = 100 L.
"""

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
from processors.rules.delivery_gauge_mismatch import RULE, detect
from simulator.generate import (
    DEFAULT_START,
    RandomScenarios,
    generate_province,
    generate_with_truth,
)
from tests.processors.rules.simulated import findings_on_province, rule_on_truth
from tests.processors.scenario import (
    T0,
    delivery,
    dispatch,
    load,
    reading,
    sale,
    settings,
    station,
)
from warehouse.connection import connect

NOW = T0 + timedelta(days=1)
UTC_US = pl.Datetime("us", "UTC")


def h(hours: float) -> Any:
    return T0 + timedelta(hours=hours)


def _analyse(con: duckdb.DuckDBPyConnection, tmp: Path, now: Any = NOW) -> list[tuple]:
    traceability.run(con, settings(tmp), now)
    anomalies.run(con, settings(tmp), now, (RULE,))
    rows = con.execute("SELECT subject, severity, state, window_start, window_end, "
                       "evidence::VARCHAR, summary FROM anomaly").fetchall()
    return [(*r[:5], json.loads(r[5]), r[6]) for r in rows]


def _scenario(con: duckdb.DuckDBPyConnection, tmp: Path, after_l: float) -> None:
    load(con, tmp, facility=[station("S1")],
         dispatch=[dispatch("P1", "B", "S1", 10_000, 1)],
         delivery=[delivery("D1", "S1", 10_000, 3, 4, "P1")],
         tank_reading=[reading("S1", t, 10_000) for t in (0, 1, 2)]
         + [reading("S1", 5, after_l)])  # fmt: skip


@pytest.mark.parametrize(("after_l", "severity", "difference"), [
    (19_000.0, "high", 1_000.0),        # short: 1 000 L declared but never seen
    (21_000.0, "critical", -1_000.0),   # more came in than declared
    (19_950.0, None, None),             # 50 L: within 100 L
])  # fmt: skip
def test_declared_against_the_gauge(tmp_path: Path, after_l: float, severity: str | None,
                                    difference: float | None) -> None:  # fmt: skip
    con = connect(tmp_path / "w.duckdb")
    _scenario(con, tmp_path, after_l)
    found = _analyse(con, tmp_path)
    if severity is None or difference is None:
        assert found == []
        return
    [(subject, got, state, start, end, e, summary)] = found
    assert (subject, got, state) == ("D1", severity, "active")
    assert (start, end) == (h(1), h(6))  # the unloading widened by the 2 h gauge window
    assert e["declared_20_l"] == pytest.approx(10_000.0)
    assert e["gauge_rise_20_l"] == pytest.approx(after_l - 10_000.0)
    assert e["difference_20_l"] == pytest.approx(difference)
    assert e["difference_pct"] == pytest.approx(difference / 100.0)
    assert e["tolerance_20_l"] == pytest.approx(100.0)
    assert (e["dispatch_id"], e["unloading_started_at"]) == ("P1", "2026-11-20T03:00:00.000Z")
    word = "less" if difference > 0 else "more"
    assert f"the gauge saw {abs(difference):.0f} L {word} than declared" in summary


def test_a_late_sale_explains_a_shortfall(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    _scenario(con, tmp_path, 19_000.0)
    assert [f[2] for f in _analyse(con, tmp_path)] == ["active"]
    # the 1 000 L the gauge missed were sold during the unloading, reported late
    load(con, tmp_path, sale=[sale("S1", 3.5, 1_000.0)])
    assert [f[2] for f in _analyse(con, tmp_path, NOW + timedelta(hours=1))] == ["resolved"]


def test_late_readings_bring_a_short_delivery_to_light(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         delivery=[delivery("D1", "S1", 10_000, 3, 4, None)],
         tank_reading=[reading("S1", t, 10_000) for t in (0, 1, 2)])  # fmt: skip
    assert _analyse(con, tmp_path) == []  # no reading after the unloading yet
    load(con, tmp_path, tank_reading=[reading("S1", 4.5, 18_000)])
    [(_, severity, state, *_, e, summary)] = _analyse(con, tmp_path, NOW + timedelta(hours=1))
    assert (severity, state, e["difference_20_l"]) == ("high", "active", pytest.approx(2_000))
    assert "(no dispatch," in summary


def test_pure_detect_ignores_deliveries_without_a_rise() -> None:
    frame = pl.DataFrame([{
        "station_id": "S1", "delivery_id": "D1", "dispatch_id": None, "received_20_l": 200.0,
        "gauge_rise_20_l": 100.0, "gauge_difference_20_l": 100.0, "tank_id": "T1",
        "product": "gasoline_92", "vehicle_plate": "辽A12345", "started_at": h(3),
        "ended_at": h(4)}], schema_overrides={"started_at": UTC_US, "ended_at": UTC_US,
                                              "dispatch_id": pl.String})  # fmt: skip
    [e] = detect({"checks": frame}, Settings(), Scope(pl.DataFrame(), NOW))["evidence"]
    # small delivery: the tolerance is the 50 L floor, not 1 % of 200 L
    assert (e["tolerance_20_l"], e["difference_pct"]) == (50.0, 50.0)


def test_a_clean_simulated_province_has_no_gauge_mismatch(tmp_path: Path) -> None:
    records = generate_province(seed=5, stations=10, days=2)
    assert len(records["delivery"]) > 5
    assert findings_on_province(tmp_path, records, DEFAULT_START + timedelta(days=2), RULE) == []


def test_injected_incidents_are_found_and_nothing_else(tmp_path: Path) -> None:
    generated = generate_with_truth(seed=3, stations=12, days=3, scenarios=RandomScenarios(
        per_kind=2, kinds=("gauge_short_delivery",)))  # fmt: skip
    result = rule_on_truth(tmp_path, generated, DEFAULT_START + timedelta(days=4), RULE)
    assert result.expected
    assert result.missed == []
    assert result.unexplained == []
