"""vapor_al_out_of_band: a nozzle's daily mean A/L outside 1.0–1.2 on consecutive days.

Beijing day d (d = 0 for 2026-11-20) runs from T0 − 8 h + 24 d; samples at T0 + 24 d + k
(k = 0…6 h) fall on day d, 08:00–14:00 Beijing.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from fueltrace.settings import Settings
from processors import anomalies, traceability
from processors.rules.base import Scope
from processors.rules.vapor_al_out_of_band import RULE, detect
from simulator.generate import DEFAULT_START, generate_province
from tests.processors.rules.conduct_factories import h, vapor
from tests.processors.scenario import T0, load, settings, station
from warehouse.connection import connect

NOW = T0 + timedelta(days=12)


def day(d: int) -> date:
    return date(2026, 11, 20) + timedelta(days=d)


def samples(d: int, ratios: tuple[float, ...], nozzle: str = "N-T1",
            station_id: str = "S1") -> list[dict[str, Any]]:  # fmt: skip
    return [vapor(station_id, 24 * d + k, r, nozzle=nozzle) for k, r in enumerate(ratios)]


def frame(days: dict[int, float], nozzle: str = "N1") -> pl.DataFrame:
    return pl.DataFrame({
        "station_id": "S1", "nozzle_id": nozzle, "day": [day(d) for d in days],
        "samples": 10, "al_ratio": list(days.values()), "al_ratio_low": 0.0,
        "al_ratio_high": 2.0, "last_at": [h(24 * d + 6) for d in days],
    }, schema_overrides={"last_at": pl.Datetime("us", "UTC")})  # fmt: skip


def found(days: pl.DataFrame, **overrides: Any) -> list[dict[str, Any]]:
    result = detect({"days": days}, Settings(**overrides), Scope(pl.DataFrame(), NOW))
    return result.unnest("evidence").to_dicts()


# --- pure -------------------------------------------------------------------------------


def test_five_consecutive_bad_days_are_medium_and_ten_high() -> None:
    [five] = found(frame({0: 0.90, 1: 0.85, 2: 1.25, 3: 0.95, 4: 0.80, 5: 1.10}))
    assert (five["days"], five["first_day"], five["last_day"]) == (5, day(0), day(4))
    assert (five["severity"], five["al_ratio_min"], five["al_ratio_max"]) == (
        "medium", 0.80, 1.25)
    assert five["last_day_al_ratio"] == 0.80
    # The episode starts at Beijing midnight of its first day; ends at its last sample.
    assert (five["window_start"], five["window_end"]) == (h(-8), h(24 * 4 + 6))
    [nine] = found(frame({d: 0.9 for d in range(9)}))
    assert (nine["days"], nine["severity"]) == (9, "medium")
    [ten] = found(frame({d: 0.9 for d in range(10)}))
    assert (ten["days"], ten["severity"]) == (10, "high")


def test_a_good_day_or_a_day_without_samples_breaks_the_run() -> None:
    assert found(frame({0: 0.9, 1: 0.9, 2: 1.05, 3: 0.9, 4: 0.9, 5: 0.9})) == []
    assert found(frame({0: 0.9, 1: 0.9, 3: 0.9, 4: 0.9, 5: 0.9})) == []  # no day 2
    # The band edges are in band.
    assert found(frame({d: 1.2 for d in range(6)})) == []
    assert found(frame({d: 1.0 for d in range(6)})) == []


def test_the_band_and_the_days_are_settings() -> None:
    days = frame({d: 1.15 for d in range(3)})
    [hit] = found(days, vapor_al_max=1.1, vapor_al_days=3, vapor_al_high_days=3)
    assert (hit["days"], hit["severity"], hit["band_max"]) == (3, "high", 1.1)


# --- through the warehouse and the engine -------------------------------------------------


def run(con: duckdb.DuckDBPyConnection, tmp: Path, now: Any = NOW) -> anomalies.AnomalyRunResult:
    return anomalies.run(con, settings(tmp), now, (RULE,))


def rows(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return [r[:-1] + (json.loads(r[-1]),) for r in con.execute(
        "SELECT anomaly_id, subject, severity, state, window_start, evidence::VARCHAR "
        "FROM anomaly ORDER BY window_start").fetchall()]  # fmt: skip


def test_a_nozzle_low_for_six_days_is_one_episode_with_daily_means(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    diesel = station("S1", tanks=("T1", "T2"))
    diesel["tanks"][1]["product"] = "diesel_0"
    records = [s for d in range(6) for s in samples(d, (0.80, 0.90, 0.94))]  # mean 0.88
    records[0:3] = samples(0, (0.70, 0.75, 0.80))  # day 0: mean 0.75
    # A diesel nozzle is not judged (GB 20952 covers gasoline), whatever its A/L.
    records += [s for d in range(6) for s in samples(d, (0.0,), nozzle="N-T2")]
    load(con, tmp_path, facility=[diesel], vapor=records)
    assert run(con, tmp_path).raised == 1
    [(anomaly_id, subject, severity, _, start, e)] = rows(con)
    assert (subject, severity, start) == ("N-T1", "medium", h(-8))
    assert (e["days"], e["first_day"], e["last_day"], e["samples"]) == (
        6, "2026-11-20", "2026-11-25", 18)
    assert (e["al_ratio_min"], e["al_ratio_max"]) == (pytest.approx(0.75), pytest.approx(0.88))
    assert anomaly_id == anomalies.anomaly_id(RULE.name, "S1", "N-T1", h(-8))


def test_an_episode_longer_than_the_look_back_keeps_its_id(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         vapor=[s for d in range(5) for s in samples(d, (1.3, 1.4))])  # fmt: skip
    run(con, tmp_path, h(24 * 5))
    [(first_id, *_)] = rows(con)
    for d in range(5, 12):  # a day at a time: day 11 is past the 7-day look-back of day 0
        load(con, tmp_path, vapor=samples(d, (1.3, 1.4)))
        run(con, tmp_path, h(24 * d + 12))
    [(anomaly_id, _, severity, state, start, e)] = rows(con)
    assert (anomaly_id, state, start, severity) == (first_id, "active", h(-8), "high")
    assert (e["days"], e["first_day"], e["last_day"]) == (12, "2026-11-20", "2026-12-01")


def test_late_samples_that_bring_a_day_into_band_resolve_the_episode(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         vapor=[s for d in range(5) for s in samples(d, (0.9, 0.9, 0.9, 0.9))])  # fmt: skip
    run(con, tmp_path)
    assert [r[3] for r in rows(con)] == ["active"]
    # Day 2's other samples arrive late: its mean becomes (4 × 0.9 + 4 × 1.3) / 8 = 1.1.
    load(con, tmp_path, vapor=[vapor("S1", 48 + 6 + k / 4, 1.3) for k in range(4)])
    assert run(con, tmp_path, NOW + timedelta(hours=1)).resolved == 1
    assert [r[3] for r in rows(con)] == ["resolved"]


def test_a_clean_province_stays_in_band(tmp_path: Path) -> None:
    records = generate_province(seed=13, stations=10, days=3)
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, **records)
    now = DEFAULT_START + timedelta(days=3)
    traceability.run(con, settings(tmp_path), now)
    result = anomalies.run(con, settings(tmp_path), now, (RULE,))
    assert len(records["vapor"]) > 1000
    assert result.by_rule == {RULE.name: 0}
