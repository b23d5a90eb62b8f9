"""untraced_level_rise: a tank's net level rose and held, and no delivery explains it.

Everything at 20 °C, so observed litres are standard litres. Readings every 15 min;
the defaults: a rise must hold 60 min and exceed 500 L, rising steps are > 50 L.
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
from processors.rules.untraced_level_rise import RULE, detect
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
    load,
    reading,
    sale,
    settings,
    station,
)
from warehouse.connection import connect

UTC_US = pl.Datetime("us", "UTC")
NOW = T0 + timedelta(days=1)


def h(hours: float) -> Any:
    return T0 + timedelta(hours=hours)


def quarter_hours(start: float, end: float) -> list[float]:
    return [start + i * 0.25 for i in range(int(round((end - start) / 0.25)) + 1)]


def levels(volumes: dict[float, float], tank: str = "T1") -> pl.DataFrame:
    """Readings at the given hours (volume at 20 °C)."""
    return pl.DataFrame(
        {"station_id": "S1", "tank_id": tank, "read_at": [h(t) for t in volumes],
         "volume_20_l": list(volumes.values())},
        schema={"station_id": pl.String, "tank_id": pl.String, "read_at": UTC_US,
                "volume_20_l": pl.Float64},
    )  # fmt: skip


def sales(*rows: tuple[float, float], tank: str = "T1") -> pl.DataFrame:
    return pl.DataFrame(
        {"station_id": "S1", "tank_id": tank, "at": [h(t) for t, _ in rows],
         "volume_20_l": [v for _, v in rows]},
        schema={"station_id": pl.String, "tank_id": pl.String, "at": UTC_US,
                "volume_20_l": pl.Float64},
    )  # fmt: skip


def deliveries(*rows: tuple[str, str, float, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {"delivery_id": [r[0] for r in rows], "station_id": "S1", "tank_id": [r[1] for r in rows],
         "started_at": [h(r[2]) for r in rows], "ended_at": [h(r[3]) for r in rows]},
        schema={"delivery_id": pl.String, "station_id": pl.String, "tank_id": pl.String,
                "started_at": UTC_US, "ended_at": UTC_US},
    )  # fmt: skip


def run(readings: pl.DataFrame, sold: pl.DataFrame | None = None,
        delivered: pl.DataFrame | None = None) -> list[dict[str, Any]]:  # fmt: skip
    frames = {"readings": readings, "sales": sales() if sold is None else sold,
              "deliveries": deliveries() if delivered is None else delivered}  # fmt: skip
    found = detect(frames, Settings(), Scope(pl.DataFrame(), NOW))
    return found.unnest("evidence").to_dicts()


def off_book(after: float = 14_800.0, end: float = 4.0) -> dict[float, float]:
    """10 000 L until 2:00; 3 000 L in by 2:15 and 2 000 more by 2:30, 200 L sold at 2:24."""
    volumes = {t: 10_000.0 for t in quarter_hours(0, 2)}
    volumes[2.25] = 13_000.0
    volumes |= {t: after for t in quarter_hours(2.5, end)}
    return volumes


def test_a_rise_that_holds_is_found_with_its_hand_computed_evidence() -> None:
    [f] = run(levels(off_book()), sales((2.4, 200.0)))
    assert (f["station_id"], f["subject"], f["severity"]) == ("S1", "T1", "critical")
    # net level: 10 000 before; 13 000 at 2:15; 14 800 + 200 sold = 15 000 from 2:30 on
    assert f["rise_20_l"] == pytest.approx(5_000.0)
    assert f["held_rise_20_l"] == pytest.approx(5_000.0)
    assert (f["volume_before_20_l"], f["volume_after_20_l"]) == (10_000.0, 14_800.0)
    assert f["sales_during_20_l"] == pytest.approx(200.0)
    # window: the reading before the first rising step → the first reading an hour
    # after the last rising one (2:30 + 60 min)
    assert (f["window_start"], f["window_end"]) == (h(2.0), h(3.5))
    assert (f["rise_started_at"], f["rise_ended_at"], f["confirmed_at"]) == (
        h(2.0), h(2.5), h(3.5))
    assert f["nearest_delivery_id"] is None
    assert RULE.describe(f).startswith("Tank T1 rose 5000 L at 20 °C with no delivery")


def test_the_held_rise_is_the_lowest_level_after_against_the_highest_before() -> None:
    volumes = off_book()
    volumes[1.5] = 10_030.0  # noise before: the highest of the hour before counts
    volumes[3.0] = 14_700.0  # a dip after: the lowest of the hour after counts
    [f] = run(levels(volumes), sales((2.4, 200.0)))
    assert f["held_rise_20_l"] == pytest.approx(14_900.0 - 10_030.0)
    assert f["rise_20_l"] == pytest.approx(5_000.0)


@pytest.mark.parametrize("glitch", [13_000.0, 7_000.0], ids=["spike", "dip"])
def test_a_single_bad_reading_does_not_fire(glitch: float) -> None:
    volumes = {t: 10_000.0 for t in quarter_hours(0, 4)}
    volumes[2.0] = glitch
    assert run(levels(volumes)) == []


def test_sales_during_the_rise_are_added_back() -> None:
    # The level only rose 300 L, but 400 L were sold meanwhile: 700 L came in.
    volumes = {t: 10_000.0 for t in quarter_hours(0, 2)} | {
        t: 10_300.0 for t in quarter_hours(2.25, 4)}  # fmt: skip
    [f] = run(levels(volumes), sales((2.1, 400.0)))
    assert (f["rise_20_l"], f["sales_during_20_l"]) == pytest.approx((700.0, 400.0))
    # …and a level falling by sales alone is no rise
    flat = {t: 10_000.0 - 100 * i for i, t in enumerate(quarter_hours(0, 4))}
    assert run(levels(flat), sales(*[(t - 0.1, 100.0) for t in quarter_hours(0.25, 4)])) == []


def test_rises_below_the_threshold_or_not_yet_held_are_not_reported() -> None:
    assert run(levels(off_book(after=10_300.0))) == []  # 300 L < 500 L
    assert run(levels(off_book(end=3.25))) == []  # not yet an hour after the rise


def test_a_delivery_into_the_tank_explains_the_rise_within_the_gauge_window() -> None:
    volumes, sold = levels(off_book()), sales((2.4, 200.0))
    # unloading ended 1:00, 60 min before the rise: within the 120-minute gauge window
    assert run(volumes, sold, deliveries(("DL1", "T1", 0.5, 1.0))) == []
    # 3 h before the rise: too far to explain it, named as the nearest delivery
    [f] = run(volumes, sold, deliveries(("DL0", "T1", -3.5, -1.0)))
    assert (f["nearest_delivery_id"], f["severity"]) == ("DL0", "critical")


def test_a_delivery_declared_into_another_tank_meanwhile_makes_it_high() -> None:
    [f] = run(levels(off_book()), sales((2.4, 200.0)), deliveries(("DL2", "T2", 1.75, 2.5)))
    assert f["severity"] == "high"
    assert (f["nearest_delivery_id"], f["nearest_delivery_tank_id"]) == ("DL2", "T2")
    assert f["nearest_delivery_started_at"] == h(1.75)
    assert "Nearest delivery: DL2 into tank T2" in RULE.describe(f)


def test_two_tanks_are_judged_apart() -> None:
    both = pl.concat([levels(off_book()),
                      levels({t: 8_000.0 for t in quarter_hours(0, 4)}, tank="T2")])  # fmt: skip
    assert [f["tank_id"] for f in run(both, sales((2.4, 200.0)))] == ["T1"]


# --- through the warehouse and the engine ------------------------------------------


def _analyse(con: duckdb.DuckDBPyConnection, tmp: Path, now: Any = NOW) -> list[tuple]:
    traceability.run(con, settings(tmp), now)
    anomalies.run(con, settings(tmp), now, (RULE,))
    return con.execute("SELECT subject, severity, state, window_start, window_end, "
                       "evidence::VARCHAR FROM anomaly ORDER BY window_start").fetchall()


def _readings(volumes: dict[float, float]) -> list[dict]:
    return [reading("S1", t, v) for t, v in volumes.items()]


def test_late_readings_confirm_the_rise_and_a_late_delivery_explains_it(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    volumes = off_book()
    first = {t: v for t, v in volumes.items() if t <= 3.0}
    load(con, tmp_path, facility=[station("S1")], tank_reading=_readings(first),
         sale=[sale("S1", 2.4, 200.0)])  # fmt: skip
    assert _analyse(con, tmp_path) == []  # risen, but not yet held for an hour

    load(con, tmp_path, tank_reading=_readings({t: v for t, v in volumes.items() if t > 3.0}))
    [(subject, severity, state, start, end, evidence)] = _analyse(con, tmp_path)
    assert (subject, severity, state, start, end) == ("T1", "critical", "active", h(2), h(3.5))
    facts = json.loads(evidence)
    assert facts["rise_20_l"] == pytest.approx(5_000.0, abs=0.1)
    assert facts["sales_during_20_l"] == pytest.approx(200.0, abs=0.1)

    # the station reports the unloading a day late: the rise is explained
    load(con, tmp_path, delivery=[delivery("DL1", "S1", 5_000.0, 2.0, 2.5, None)])
    [(_, _, state, *_)] = _analyse(con, tmp_path, NOW + timedelta(hours=1))
    assert state == "resolved"


def test_a_clean_simulated_province_has_no_untraced_rise(tmp_path: Path) -> None:
    records = generate_province(seed=5, stations=10, days=2)
    assert len(records["delivery"]) > 5
    assert findings_on_province(tmp_path, records, DEFAULT_START + timedelta(days=2), RULE) == []


def test_injected_incidents_are_found_and_nothing_else(tmp_path: Path) -> None:
    generated = generate_with_truth(seed=3, stations=12, days=3, scenarios=RandomScenarios(
        per_kind=2, kinds=("off_book_delivery",)))  # fmt: skip
    result = rule_on_truth(tmp_path, generated, DEFAULT_START + timedelta(days=4), RULE)
    assert result.expected
    assert result.missed == []
    assert result.unexplained == []
