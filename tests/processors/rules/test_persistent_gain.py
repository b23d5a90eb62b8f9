"""persistent_gain: a dispenser whose sales exceed what left its tanks (calibration fraud).

Pure tests on frames shaped as ``load`` returns them (``tank_hours``), then through the
warehouse and the engine. A meter error of g % records (1 + g/100) × what it dispensed,
as the legal definition (and the simulator's ``calibration_fraud``) has it.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from fueltrace.settings import Settings
from processors import anomalies, traceability
from processors.rules.base import EPOCH, UTC_US, Reader, Scope
from processors.rules.persistent_gain import RULE, describe, detect, evaluate
from simulator import generate_province
from tests.processors.scenario import T0, load, reading, sale, settings, station
from tests.processors.test_wetstock import H0, tank_hours
from warehouse.connection import connect

DAY = timedelta(days=1)
STORED = ("facility", "dispatch", "delivery", "tank_reading", "sale")
NOW = T0 + 31 * DAY


def _scope(now: datetime = NOW) -> Scope:
    return Scope(pl.DataFrame({"station_id": ["S1"], "since": [T0 - DAY]},
                              schema={"station_id": pl.String, "since": UTC_US}), now)  # fmt: skip


def test_a_dispenser_recording_more_than_it_gives_is_found_exactly() -> None:
    frames = tank_hours(31, leak_l_h=0.3, gains_pct={"D1": -0.1, "D2": 0.8})
    [row] = detect(frames, Settings(), _scope()).to_dicts()
    e = row["evidence"]
    assert (row["subject"], row["severity"]) == ("D2", "critical")  # ≥ 0.6 %: not drift
    assert e["gain_pct"] == pytest.approx(0.8, abs=1e-6)
    assert e["standard_error_pct"] == pytest.approx(0.0, abs=1e-6)
    assert e["tanks"] == ["T1"]
    window = pl.col("hour").is_between(H0 + 16, H0 + 16 + 30 * 24 - 1)  # 11-21 … 12-20 local
    sold = frames["sales"].filter(pl.col("dispenser_id") == "D2", window)
    assert e["sales_20_l"] == pytest.approx(sold["sold_20_l"].sum())
    assert e["excess_20_l"] == pytest.approx(e["sales_20_l"] * 0.008 / 1.008)
    assert (str(e["first_day"]), str(e["last_day"]), e["result_days"]) == (
        "2026-12-19", "2026-12-20", 2)  # fmt: skip
    assert row["window_start"] == T0 - timedelta(hours=8)  # the first failing test's window
    assert e["threshold_pct"] == 0.3 and e["window_days"] == 30
    text = describe({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in e.items()})
    assert text.startswith("Dispenser D2 (tanks T1): its sales exceed what left the tanks by "
                           "0.80 %")  # fmt: skip


def test_a_meter_tampered_late_in_the_window_is_found_from_its_onset() -> None:
    """D2 starts recording 0.8 % too much on day 20 of 31: the onset test finds the day
    and the gain; D1, honest at +0.2 %, is not flagged."""
    frames = tank_hours(31, noise_l=1.0, gains_pct={"D2": 0.8}, gains_from_day=20, seed=5,
                        deliveries_at=(150, 400, 610))  # fmt: skip
    [row] = detect(frames, Settings(), _scope()).to_dicts()
    e = row["evidence"]
    assert (row["subject"], e["test"]) == ("D2", "onset")
    assert e["onset_gain_pct"] == pytest.approx(0.8, abs=0.2)
    assert abs((e["onset_day"] - (T0 + 20 * DAY + timedelta(hours=8)).date()).days) <= 2
    assert e["onset_lower_pct"] > e["threshold_pct"]
    since = frames["sales"].filter(
        pl.col("dispenser_id") == "D2",
        pl.col("hour") >= (e["onset_day"] - T0.date()).days * 24 - 8 + H0,
        pl.col("hour") < H0 + 16 + 30 * 24,
    )  # fmt: skip
    assert e["onset_sales_20_l"] == pytest.approx(since["sold_20_l"].sum())
    text = describe({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in e.items()})
    assert text.startswith(f"Dispenser D2 (tanks T1): from about {e['onset_day'].isoformat()}")


def test_a_tampering_that_ended_in_the_window_is_found_by_the_gain_before() -> None:
    """D2 recorded 0.8 % too much until day 18 of 31, then was put right (the bench's
    frauds last one to two weeks): the whole-window fit is misspecified; the onset model
    finds the change and judges the gain before it."""
    frames = tank_hours(31, noise_l=1.0, gains_pct={"D2": 0.8}, gains_until_day=18, seed=5,
                        deliveries_at=(150, 400, 610))  # fmt: skip
    [row] = detect(frames, Settings(), _scope()).to_dicts()
    e = row["evidence"]
    assert (row["subject"], e["test"]) == ("D2", "onset")
    assert e["before_onset_gain_pct"] == pytest.approx(0.8, abs=0.2)
    assert e["onset_gain_pct"] == pytest.approx(-0.8, abs=0.25)
    assert abs((e["onset_day"] - (T0 + 18 * DAY + timedelta(hours=8)).date()).days) <= 2
    assert e["before_onset_lower_pct"] > e["threshold_pct"]
    text = describe({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in e.items()})
    assert text.startswith(f"Dispenser D2 (tanks T1): until about {e['onset_day'].isoformat()}")


def _local_day(tank_day: int) -> date:
    """The local date on which ``tank_hours``'s day ``tank_day`` starts (08:00 local)."""
    return (T0 + tank_day * DAY + timedelta(hours=8)).date()


def test_a_fraud_put_on_and_taken_off_in_the_window_is_found_on_its_dispenser() -> None:
    """D1 (selling round the clock) records 0.8 % too much from day 8 until day 20 of
    31, on a tank it shares with D2 (daytime): one change day cannot model that; the
    pulse model finds both days and puts the gain on D1, and D2 is not flagged."""
    frames = tank_hours(31, noise_l=1.0, gains_pct={"D1": 0.8}, gains_from_day=8,
                        gains_until_day=20, seed=5, deliveries_at=(150, 400, 610))  # fmt: skip
    [row] = detect(frames, Settings(), _scope()).to_dicts()
    e = row["evidence"]
    assert (row["subject"], e["test"]) == ("D1", "pulse")
    # the fraud starts and stops at 08:00 local: the first whole local day is either side
    assert e["onset_day"] in (_local_day(8), _local_day(9))
    assert e["pulse_end_day"] in (_local_day(20), _local_day(21))
    assert e["pulse_gain_pct"] == pytest.approx(0.8, abs=0.15)
    assert e["pulse_lower_pct"] > e["threshold_pct"]
    assert e["pulse_standard_error_pct"] <= e["threshold_pct"] / 2
    during = frames["sales"].filter(
        pl.col("dispenser_id") == "D1",
        pl.col("hour") >= (e["onset_day"] - T0.date()).days * 24 - 8 + H0,
        pl.col("hour") < (e["pulse_end_day"] - T0.date()).days * 24 - 8 + H0,
    )  # fmt: skip
    assert e["pulse_sales_20_l"] == pytest.approx(during["sold_20_l"].sum())
    assert e["pulse_excess_20_l"] == pytest.approx(
        e["pulse_sales_20_l"] * e["pulse_gain_pct"] / (100 + e["pulse_gain_pct"]))
    text = describe({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in e.items()})
    assert text.startswith(f"Dispenser D1 (tanks T1): from about {e['onset_day'].isoformat()} "
                           f"until about {e['pulse_end_day'].isoformat()} its sales exceeded")


def test_honest_meters_on_a_clean_tank_raise_no_pulse() -> None:
    """Legal meter errors and gauge noise, no change: no pulse is believed and no test
    fails, on any day."""
    for seed in (5, 6, 7):
        frames = tank_hours(31, noise_l=2.0, seed=seed, gains_pct={"D1": 0.2, "D2": -0.25},
                            deliveries_at=(150, 400, 610))  # fmt: skip
        results = evaluate(frames, Settings(), _scope())
        assert (results["result"] == "pass").all(), seed
        assert results["pulse_gain_pct"].is_null().all(), seed  # the model is not believed
        assert detect(frames, Settings(), _scope()).is_empty(), seed


def test_a_leak_that_starts_in_the_window_is_not_read_as_gains() -> None:
    """The onset model has its own time term: a leak from day 20 is not the meters'."""
    for seed in (5, 6, 7):
        frames = tank_hours(31, leak_l_h=3.0, leak_from_day=18, noise_l=2.0, seed=seed,
                            gains_pct={"D1": 0.2, "D2": -0.25}, deliveries_at=(150, 400, 610))
        assert detect(frames, Settings(), _scope()).is_empty(), seed


def test_half_a_percent_is_found_through_gauge_noise_and_legal_meters_are_not() -> None:
    frames = tank_hours(31, noise_l=2.0, gains_pct={"D1": 0.3, "D2": 0.5}, seed=3)
    results = evaluate(frames, Settings(), _scope())
    last = results.filter(pl.col("end_day") == pl.col("end_day").max()).sort("dispenser_id")
    assert last["result"].to_list() == ["pass", "fail"]  # D1 at the very limit passes
    d1, d2 = last.to_dicts()
    assert d1["gain_pct"] == pytest.approx(0.3, abs=4 * d1["standard_error_pct"])
    assert d2["gain_pct"] == pytest.approx(0.5, abs=4 * d2["standard_error_pct"])
    assert d2["lower_pct"] > 0.3 > d1["lower_pct"]
    [row] = detect(frames, Settings(), _scope()).to_dicts()
    assert (row["subject"], row["severity"]) == ("D2", "high")


def test_a_dispenser_is_judged_on_every_tank_it_draws_from() -> None:
    one = tank_hours(31, noise_l=2.0, gains_pct={"D2": 0.45}, seed=5)
    two = tank_hours(31, noise_l=2.0, gains_pct={"D2": 0.45}, seed=6, tank="T2")
    frames = {k: pl.concat([one[k], two[k]]) for k in one}
    [row] = detect(frames, Settings(), _scope()).to_dicts()
    assert row["evidence"]["tanks"] == ["T1", "T2"]
    def errors(results: pl.DataFrame) -> list[float]:
        last = results.filter(pl.col("end_day") == pl.col("end_day").max())
        return last.sort("dispenser_id")["standard_error_pct"].to_list()

    alone, both = errors(evaluate(one, Settings(), _scope())), errors(
        evaluate(frames, Settings(), _scope()))  # fmt: skip
    assert both[0] < alone[0] and both[1] < alone[1]  # two tanks' evidence: tighter


# --- through the warehouse and the engine ----------------------------------------------


def _station() -> dict:
    facility = station("S1")
    facility["nozzles"].append({"nozzle_id": "N-B", "dispenser_id": "D2", "tank_id": "T1"})
    return facility


def _days(first_day: int, last_day: int, gain_pct: float = 1.0) -> dict[str, list]:
    """Hourly readings; D1 sells at :30 in the daytime, D2 (recording ``gain_pct`` % more
    than it gives) at :45 in two hours of three. From day 0 so stock levels continue;
    records from the start of ``first_day`` to that of ``last_day``."""
    readings, sales = [], []
    stock = 35_000.0
    for hour in range(0, 32 * 24 + 1):
        keep = first_day * 24 <= hour < last_day * 24
        if keep:
            readings.append(reading("S1", hour, round(stock, 4)))
        if hour % 24 < 12:
            litres = 20.0 + (hour * 7) % 11
            if keep:
                sales.append(sale("S1", hour + 0.5, litres))
            stock -= litres
        if hour % 3:
            litres = 30.0 + (hour * 5) % 13
            if keep:
                sales.append({**sale("S1", hour + 0.75, litres), "nozzle_id": "N-B",
                              "dispenser_id": "D2"})  # fmt: skip
            stock -= litres / (1 + gain_pct / 100)
    return {"tank_reading": readings, "sale": sales}


def _run(con: duckdb.DuckDBPyConnection, tmp: Path, now: datetime) -> anomalies.AnomalyRunResult:
    traceability.run(con, settings(tmp), now)
    return anomalies.run(con, settings(tmp), now, (RULE,))


def test_a_gain_found_through_the_warehouse_once_a_month_of_data_is_in(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[_station()], **_days(0, 21))
    assert _run(con, tmp_path, T0 + 21 * DAY).raised == 0  # no whole 30-day window yet
    load(con, tmp_path, **_days(21, 33))
    assert _run(con, tmp_path, T0 + 32 * DAY).raised == 1
    [(anomaly_id, subject, severity, evidence)] = con.execute(
        "SELECT anomaly_id, subject, severity, evidence::VARCHAR FROM anomaly").fetchall()
    assert anomaly_id == anomalies.anomaly_id("persistent_gain", "S1", "D2",
                                              T0 - timedelta(hours=8))  # fmt: skip
    facts = json.loads(evidence)
    assert (subject, severity, facts["tanks"]) == ("D2", "critical", ["T1"])
    assert facts["gain_pct"] == pytest.approx(1.0, abs=0.01)
    assert facts["excess_20_l"] == pytest.approx(facts["sales_20_l"] * (1 - 1 / 1.01), rel=0.01)
    assert (facts["first_day"], facts["last_day"]) == ("2026-12-19", "2026-12-21")
    again = anomalies.run(con, settings(tmp_path), T0 + 32 * DAY + timedelta(hours=1), (RULE,))
    assert (again.raised, again.updated, again.resolved) == (0, 0, 0)


def test_an_honest_dispenser_through_the_warehouse_is_no_finding(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[_station()], **_days(0, 33, gain_pct=0.25))
    assert _run(con, tmp_path, T0 + 32 * DAY).raised == 0


def test_a_clean_simulated_province_has_no_persistent_gain(tmp_path: Path) -> None:
    records = generate_province(seed=7, stations=2, days=32)
    now = T0 + 32 * DAY
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, **{t: records[t] for t in STORED})
    assert _run(con, tmp_path, now).by_rule == {"persistent_gain": 0}
    stations = con.sql("SELECT station_id FROM station").pl()
    scope = Scope(stations.with_columns(since=pl.lit(EPOCH, UTC_US)), now)
    results = evaluate(RULE.load(Reader(con, scope, RULE.lookback)), Settings(), scope)
    dispensers = con.execute("SELECT count(DISTINCT (station_id, dispenser_id)) FROM nozzle"
                             ).fetchall()[0][0]  # fmt: skip
    assert results.select("station_id", "dispenser_id").n_unique() == dispensers
    assert (results["result"] == "pass").all()
    assert results["gain_pct"].abs().max() < 0.3 + 4 * results["standard_error_pct"].max()
