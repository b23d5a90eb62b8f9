"""slow_leak: SIR over 30 days — pass, fail or inconclusive, as monthly findings.

Pure tests on frames shaped as ``load`` returns them (``tank_hours``: four readings an
hour, sales on two dispensers), then through the warehouse and the engine with hourly
readings at 20 °C. T0 = 2026-11-20 00:00 UTC = 08:00 local: data from T0 cover local
2026-11-20 from 08:00, so the first whole 30-day window ends on 2026-12-19.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from bench.leak_bench import rule_frames, warehouse_tables
from fueltrace.settings import Settings
from processors import anomalies, traceability, wetstock
from processors.rules.base import EPOCH, UTC_US, Reader, Scope
from processors.rules.slow_leak import (
    RULE,
    describe,
    detect,
    evaluate,
    monthly_episodes,
    split_alpha,
)
from simulator import generate_province
from tests.processors.scenario import T0, load, reading, sale, settings, station
from tests.processors.test_wetstock import tank_hours
from warehouse.connection import connect

DAY = timedelta(days=1)
STORED = ("facility", "dispatch", "delivery", "tank_reading", "sale")


def _scope(now: datetime, since: datetime = T0 - DAY) -> Scope:
    return Scope(pl.DataFrame({"station_id": ["S1"], "since": [since]},
                              schema={"station_id": pl.String, "since": UTC_US}), now)  # fmt: skip


def test_a_leak_fails_with_its_rate_and_standard_error_as_evidence() -> None:
    frames = tank_hours(31, leak_l_h=0.5, noise_l=2.0, gains_pct={"D1": 0.2, "D2": -0.25},
                        deliveries_at=(200, 500))  # fmt: skip
    [row] = detect(frames, Settings(), _scope(T0 + 31 * DAY)).to_dicts()
    e = row["evidence"]
    assert (row["subject"], row["severity"], e["result"]) == ("T1", "high", "fail")
    assert e["leak_rate_l_h"] == pytest.approx(0.5, abs=0.1)
    assert 0 < e["standard_error_l_h"] < 0.1
    z, _ = split_alpha(1.0)  # the whole-window test's half of the 1 % false-alarm rate
    assert z == pytest.approx(2.5758, abs=1e-4)
    assert e["lower_l_h"] == pytest.approx(e["leak_rate_l_h"] - z * e["standard_error_l_h"],
                                           abs=1e-3)  # fmt: skip
    assert e["test"] == "window"
    assert (e["threshold_l_h"], e["detection_rate_l_h"], e["confidence_pct"]) == (0.19, 0.38, 99.0)
    # Tests on 2026-12-19 and -20 (the last complete day) both failed: one episode from
    # the first one's window (local 2026-11-20) to the end of the last failing day.
    assert (str(e["first_day"]), str(e["last_day"]), e["result_days"]) == (
        "2026-12-19", "2026-12-20", 2)  # fmt: skip
    assert row["window_start"] == T0 - timedelta(hours=8)
    assert row["window_end"] == T0 + 30 * DAY + timedelta(hours=16)
    assert e["test_start_at"] == T0 + timedelta(hours=16)  # local 2026-11-21 00:00
    assert (e["window_days"], e["days"], e["segments"]) == (30, 30, 3)
    assert e["hours"] == 720 - 4 and e["readings"] == 4 * (720 - 4)
    assert e["estimated_loss_20_l"] == pytest.approx(720 * e["leak_rate_l_h"])


def test_a_leak_that_starts_late_in_the_window_fails_from_its_onset() -> None:
    """A 0.6 L/h leak from day 22 of 31: one rate over the window misreads it (the
    dispensers' terms take part of the change); the onset test finds the day and rate."""
    frames = tank_hours(31, leak_l_h=0.6, leak_from_day=22, noise_l=2.0,
                        gains_pct={"D1": 0.2, "D2": -0.25}, deliveries_at=(200, 500, 600))
    [row] = detect(frames, Settings(), _scope(T0 + 31 * DAY)).to_dicts()
    e = row["evidence"]
    assert (e["result"], e["test"]) == ("fail", "onset")
    assert e["onset_rate_l_h"] == pytest.approx(0.6, abs=0.05)
    assert abs((e["onset_day"] - (T0 + 22 * DAY + timedelta(hours=8)).date()).days) <= 2
    _, z = split_alpha(1.0)
    assert e["onset_lower_l_h"] == pytest.approx(
        e["onset_rate_l_h"] - z * e["onset_standard_error_l_h"], abs=1e-6)
    assert e["onset_lower_l_h"] > e["threshold_l_h"]
    hours_since = ((T0 + 31 * DAY + timedelta(hours=8)).date() - e["onset_day"]).days * 24
    assert e["estimated_loss_20_l"] == pytest.approx(e["onset_rate_l_h"] * hours_since)
    assert "starting about" in describe(e)


def test_onset_tests_keep_a_tight_tank_passing() -> None:
    for seed in range(1, 6):
        frames = tank_hours(31, noise_l=2.0, seed=seed, gains_pct={"D1": 0.25, "D2": -0.3},
                            deliveries_at=(150, 400, 610))  # fmt: skip
        assert detect(frames, Settings(), _scope(T0 + 31 * DAY)).is_empty(), seed


def test_a_fast_leak_is_critical_and_exact_without_noise() -> None:
    [row] = detect(tank_hours(31, leak_l_h=2.0), Settings(), _scope(T0 + 31 * DAY)).to_dicts()
    e = row["evidence"]
    assert row["severity"] == "critical"  # certainly above 0.76 L/h
    assert e["leak_rate_l_h"] == pytest.approx(2.0, abs=1e-6)
    assert e["estimated_loss_20_l"] == pytest.approx(1440.0, abs=1e-3)
    text = describe({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in e.items()})
    assert text.startswith("Tank T1: statistical inventory reconciliation failed on 2 day(s)")
    assert "estimated leak 2.00 L/h" in text and "about 1440 L at 20 °C lost" in text


def test_a_tight_tank_with_meter_errors_passes() -> None:
    frames = tank_hours(31, noise_l=2.0, gains_pct={"D1": 0.3, "D2": -0.3}, seed=4)
    results = evaluate(frames, Settings(), _scope(T0 + 31 * DAY))
    assert results["result"].to_list() == ["pass", "pass"]
    assert detect(frames, Settings(), _scope(T0 + 31 * DAY)).is_empty()


def test_evaporation_alone_passes() -> None:
    # 0.04 L/h, the most the simulator's gasoline tanks lose to evaporation
    frames = tank_hours(31, leak_l_h=0.04, noise_l=2.0, seed=5)
    assert detect(frames, Settings(), _scope(T0 + 31 * DAY)).is_empty()


def test_a_month_of_gappy_gauge_data_is_inconclusive_and_a_low_finding() -> None:
    # No gauge data on days 5–20: windows ending on days 29–39 (2026-12-19 … -29) hold
    # fewer than 20 days with data; from day 40 on they have 20 again.
    frames = tank_hours(45, noise_l=2.0, skip_days=tuple(range(5, 21)))
    results = evaluate(frames, Settings(), _scope(T0 + 45 * DAY)).sort("end_day")
    assert results["result"].to_list() == ["inconclusive"] * 11 + ["pass"] * 5
    [row] = detect(frames, Settings(), _scope(T0 + 45 * DAY)).to_dicts()
    assert (row["severity"], row["evidence"]["result"]) == ("low", "inconclusive")
    assert row["evidence"]["result_days"] == 11
    assert row["evidence"]["days"] < Settings().wetstock_min_days


def test_an_inconclusive_summary_reads_even_without_an_estimate() -> None:
    evidence = {"tank_id": "T2", "result": "inconclusive", "leak_rate_l_h": None,
                "standard_error_l_h": None, "lower_l_h": None, "upper_l_h": None,
                "confidence_pct": 99.0, "window_days": 30, "last_day": "2026-12-29",
                "first_day": "2026-12-19", "days": 3, "hours": 40, "segments": 2,
                "result_days": 11, "detection_rate_l_h": 0.38}  # fmt: skip
    text = describe(evidence)
    assert "estimated leak n/a L/h" in text and "cannot tell a 0.38 L/h leak" in text


def test_a_leak_over_two_months_is_one_finding_per_month() -> None:
    frames = tank_hours(50, leak_l_h=1.0, noise_l=2.0)
    found = detect(frames, Settings(), _scope(T0 + 50 * DAY)).sort("window_start")
    assert found.height == 2
    december, january = found.to_dicts()
    assert str(december["evidence"]["last_day"]) == "2026-12-31"
    assert str(january["evidence"]["first_day"]) == "2027-01-01"
    assert january["window_start"] == december["window_start"] + 13 * DAY  # 12-19 → 01-01


def test_only_recent_days_are_fitted_for_a_tank_that_passes() -> None:
    frames = tank_hours(45, noise_l=2.0)
    since = T0 + 40 * DAY + timedelta(hours=16)  # local 2026-12-31 00:00
    days = evaluate(frames, Settings(), _scope(T0 + 45 * DAY, since))["end_day"]
    assert days.min() == wetstock.day_number(since) - 1  # not the whole month


def test_monthly_episodes_start_with_their_first_flagged_window() -> None:
    day = wetstock.day_number(datetime(2026, 12, 29, 12, tzinfo=UTC))  # 2026-12-29 local
    tests = pl.DataFrame({
        "station_id": ["S1"] * 6, "tank_id": ["T1"] * 6,
        "end_day": [day, day + 1, day + 2, day + 3, day + 4, day + 5],
        "result": ["pass", "fail", "fail", "fail", "pass", "fail"],
        "value": [0, 1, 2, 3, 4, 5],
    })  # fmt: skip
    episodes = monthly_episodes(tests, wetstock.TANK, pl.col("result") == "fail", 30)
    rows = episodes.sort("first_day").to_dicts()
    assert [(r["flagged_days"], r["value"]) for r in rows] == [(2, 2), (2, 5)]
    december, january = rows
    assert wetstock.day_number(december["window_start"]) == day + 1 - 29
    assert december["window_end"] == datetime(2026, 12, 31, 16, tzinfo=UTC)  # 2027-01-01 local
    assert wetstock.day_number(january["window_start"]) == day + 3 - 29


# --- through the warehouse and the engine ----------------------------------------------


def _station() -> dict:
    facility = station("S1")
    facility["nozzles"].append({"nozzle_id": "N-B", "dispenser_id": "D2", "tank_id": "T1"})
    return facility


def _leaking(first_day: int, last_day: int, *, night_pump: bool = False) -> dict[str, list]:
    """Hourly readings and daytime sales (08:30 … 19:30 local) of S1/T1. The tank loses
    1.5 L and 2.5 L in alternate hours besides its sales; ``night_pump``: those litres
    are sales too, on nozzle N-B (ending at :45)."""
    readings, sales, pumped = [], [], []
    stock, hour = 30_000.0, 0
    for hour in range(first_day * 24, last_day * 24 + 1):
        readings.append(reading("S1", hour, round(stock, 3)))
        if hour % 24 < 12:  # T0 is 08:00 local
            litres = 20.0 + (hour * 7) % 11
            sales.append(sale("S1", hour + 0.5, litres))
            stock -= litres
        drawn = 1.5 if hour % 2 else 2.5
        pumped.append({**sale("S1", hour + 0.75, drawn), "nozzle_id": "N-B",
                       "dispenser_id": "D2"})  # fmt: skip
        stock -= drawn
    out = {"tank_reading": readings, "sale": sales}
    if night_pump:
        out["sale"] = sales + pumped
    return out


def _history(first_day: int, last_day: int) -> dict[str, list]:
    """``_leaking(0, 32)`` from the start of ``first_day`` to that of ``last_day``."""
    begin, end = T0 + first_day * DAY, T0 + last_day * DAY

    def within(record: dict) -> bool:
        at = datetime.fromisoformat((record.get("read_at") or record["ended_at"]).replace(
            "Z", "+00:00"))  # fmt: skip
        return begin <= at < end

    return {kind: [r for r in rows if within(r)] for kind, rows in _leaking(0, 32).items()}


def _run(con: duckdb.DuckDBPyConnection, tmp: Path, now: datetime) -> anomalies.AnomalyRunResult:
    traceability.run(con, settings(tmp), now)
    return anomalies.run(con, settings(tmp), now, (RULE,))


def test_a_leak_found_through_the_warehouse_once_its_window_is_complete(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[_station()], **_history(0, 21))
    assert _run(con, tmp_path, T0 + 21 * DAY).raised == 0  # 21 days: no 30-day window yet
    load(con, tmp_path, **_history(21, 33))  # the rest arrives
    assert _run(con, tmp_path, T0 + 32 * DAY).raised == 1
    [(anomaly_id, severity, evidence)] = con.execute(
        "SELECT anomaly_id, severity, evidence::VARCHAR FROM anomaly").fetchall()
    assert anomaly_id == anomalies.anomaly_id("slow_leak", "S1", "T1", T0 - timedelta(hours=8))
    facts = json.loads(evidence)
    assert severity == "critical"
    assert facts["leak_rate_l_h"] == pytest.approx(2.0, abs=0.01)
    assert (facts["first_day"], facts["last_day"], facts["result_days"]) == (
        "2026-12-19", "2026-12-21", 3)  # fmt: skip
    # A rerun the next hour changes nothing.
    again = anomalies.run(con, settings(tmp_path), T0 + 32 * DAY + timedelta(hours=1), (RULE,))
    assert (again.raised, again.updated, again.resolved) == (0, 0, 0)


def test_late_sales_that_account_for_the_decline_resolve_the_leak(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[_station()], **_leaking(0, 32))
    assert _run(con, tmp_path, T0 + 32 * DAY).raised == 1
    pumped = _leaking(0, 32, night_pump=True)["sale"][-(32 * 24 + 1):]  # N-B's sales, late
    load(con, tmp_path, sale=pumped)
    late = _run(con, tmp_path, T0 + 33 * DAY)
    assert (late.raised, late.resolved) == (0, 1)


def test_the_bench_feeds_detect_the_frames_load_reads_from_the_warehouse(
    tmp_path: Path,
) -> None:
    records = generate_province(seed=2, stations=2, days=3)
    now = T0 + 3 * DAY
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, **{t: records[t] for t in STORED})
    traceability.run(con, settings(tmp_path), now)
    stations = con.sql("SELECT station_id FROM station").pl()
    scope = Scope(stations.with_columns(since=pl.lit(EPOCH, UTC_US)), now)
    stored = RULE.load(Reader(con, scope, RULE.lookback))
    bench, _ = rule_frames(warehouse_tables(records), RULE, now)
    for name, frame in stored.items():
        keys = [c for c in frame.columns if frame.schema[c] in (pl.String, pl.Int64)]
        left, right = frame.sort(keys), bench[name].select(frame.columns).sort(keys)
        assert left.height > 0 and left.schema == right.schema
        assert left.select(keys).equals(right.select(keys))
        for column in (c for c in frame.columns if frame.schema[c] == pl.Float64):
            assert (left[column] - right[column]).abs().max() < 1e-6, (name, column)


def test_a_clean_simulated_province_has_no_leak(tmp_path: Path) -> None:
    records = generate_province(seed=7, stations=2, days=32)
    now = T0 + 32 * DAY
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, **{t: records[t] for t in STORED})
    assert _run(con, tmp_path, now).by_rule == {"slow_leak": 0}
    # …and not for want of tests: every tank was tested on the last days, and passed.
    stations = con.sql("SELECT station_id FROM station").pl()
    scope = Scope(stations.with_columns(since=pl.lit(EPOCH, UTC_US)), now)
    results = evaluate(RULE.load(Reader(con, scope, RULE.lookback)), Settings(), scope)
    tanks = con.execute("SELECT count(*) FROM tank").fetchall()[0][0]
    assert results.select("station_id", "tank_id").n_unique() == tanks
    assert (results["result"] == "pass").all()
