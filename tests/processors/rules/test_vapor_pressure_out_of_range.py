"""vapor_pressure_out_of_range: hourly mean ullage pressure beyond +600 / −1000 Pa for two
consecutive hours or more."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from fueltrace.settings import Settings
from processors import anomalies, traceability
from processors.rules.base import Scope
from processors.rules.vapor_pressure_out_of_range import RULE, detect
from simulator.generate import DEFAULT_START, generate_province
from tests.processors.rules.conduct_factories import h, vapor
from tests.processors.scenario import T0, load, settings, station
from warehouse.connection import connect

NOW = T0 + timedelta(days=2)
UTC_US = pl.Datetime("us", "UTC")


def hours(means: dict[int, float]) -> pl.DataFrame:
    return pl.DataFrame({
        "station_id": "S1", "hour": [h(k) for k in means], "samples": 4,
        "pressure_pa": list(means.values()),
        "pressure_low_pa": [p - 10 for p in means.values()],
        "pressure_high_pa": [p + 10 for p in means.values()],
        "last_at": [h(k + 0.75) for k in means],
    }, schema_overrides={"hour": UTC_US, "last_at": UTC_US})  # fmt: skip


def found(frame: pl.DataFrame, **overrides: Any) -> list[dict[str, Any]]:
    result = detect({"hours": frame}, Settings(**overrides), Scope(pl.DataFrame(), NOW))
    return result.unnest("evidence").sort("window_start").to_dicts()


def test_two_hours_above_the_limit_are_an_episode_one_hour_is_not() -> None:
    [hit] = found(hours({1: 520.0, 2: 780.0, 3: 940.0, 4: 100.0, 6: 900.0}))
    assert (hit["side"], hit["hours"], hit["worst_hour_pa"], hit["worst_sample_pa"]) == (
        "above", 2, 940.0, 950.0)
    assert (hit["window_start"], hit["window_end"], hit["severity"]) == (h(2), h(3.75), "medium")
    assert (hit["limit_pa"], hit["samples"]) == (600.0, 8)


def test_a_gap_or_a_change_of_side_ends_a_run() -> None:
    assert found(hours({1: 900.0, 3: 900.0})) == []  # hour 2 has no samples
    assert found(hours({1: 900.0, 2: -2000.0})) == []
    [below] = found(hours({1: -1600.0, 2: -1700.0, 3: -900.0}))
    assert (below["side"], below["hours"], below["worst_hour_pa"], below["limit_pa"]) == (
        "below", 2, -1700.0, -1000.0)


def test_limits_and_duration_are_settings() -> None:
    frame = hours({1: 220.0, 2: 230.0, 3: 225.0})  # the simulator's clean range is ±200 Pa
    assert found(frame) == []
    [hit] = found(frame, vapor_pressure_max_pa=200.0, vapor_pressure_min_hours=3)
    assert hit["hours"] == 3


# --- through the warehouse and the engine -------------------------------------------------


def run(con: duckdb.DuckDBPyConnection, tmp: Path, now: Any = NOW) -> anomalies.AnomalyRunResult:
    return anomalies.run(con, settings(tmp), now, (RULE,))


def rows(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return [r[:-1] + (json.loads(r[-1]),) for r in con.execute(
        "SELECT anomaly_id, state, window_start, window_end, evidence::VARCHAR FROM anomaly"
    ).fetchall()]  # fmt: skip


def _pressures(pa: dict[float, float]) -> list[dict[str, Any]]:
    """Two nozzles' samples, each reporting the same system pressure ±5 Pa."""
    return [vapor("S1", t, 1.1, p + d, nozzle=n)
            for t, p in pa.items() for n, d in (("N-T1", -5.0), ("N-T2", 5.0))]  # fmt: skip


def test_a_pressurised_system_for_three_hours(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    pa = {5.25: 40.0, 6.25: 690.0, 6.75: 730.0, 7.5: 1260.0, 8.5: 675.0, 9.5: 60.0}
    load(con, tmp_path, facility=[station("S1", tanks=("T1", "T2"))], vapor=_pressures(pa))
    assert run(con, tmp_path).raised == 1
    [(anomaly_id, state, start, end, e)] = rows(con)
    # Hours 6 (mean 710), 7 (1260) and 8 (675) are above +600 Pa; the last sample at 8:30.
    assert (start, end, e["hours"], e["samples"]) == (h(6), h(8.5), 3, 8)
    assert (e["worst_hour_pa"], e["worst_sample_pa"]) == (1260.0, 1265.0)
    assert anomaly_id == anomalies.anomaly_id(RULE.name, "S1", None, h(6))


def test_late_samples_within_limits_split_the_run_and_resolve_it(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1", tanks=("T1", "T2"))],
         vapor=_pressures({6.25: 900.0, 7.25: 900.0, 8.25: 900.0}))  # fmt: skip
    run(con, tmp_path)
    # Hour 7's other samples arrive late: its mean falls to (2 × 900 + 2 × 60) / 4 = 480.
    load(con, tmp_path, vapor=_pressures({7.75: 60.0}))
    assert run(con, tmp_path, NOW + timedelta(hours=1)).resolved == 1
    assert [r[1] for r in rows(con)] == ["resolved"]


def test_a_clean_province_keeps_its_pressure(tmp_path: Path) -> None:
    records = generate_province(seed=17, stations=10, days=3)
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, **records)
    now = DEFAULT_START + timedelta(days=3)
    traceability.run(con, settings(tmp_path), now)
    result = anomalies.run(con, settings(tmp_path), now, (RULE,))
    assert len(records["vapor"]) > 1000
    assert result.by_rule == {RULE.name: 0}
