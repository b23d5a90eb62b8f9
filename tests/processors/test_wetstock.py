"""Wetstock reconciliation (pure): the daily book vs the gauge, and the SIR fit.

Hand-computed scenarios in litres at 20 °C. Times: T0 = 2026-11-20 00:00 UTC is 08:00 in
Liaoning, so local midnights fall at T0 + 16 h + k × 24 h. ``tank_hours`` builds SIR
frames shaped as the wetstock rules' ``load`` returns them (the rule tests use it too).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from processors import wetstock

T0 = datetime(2026, 11, 20, tzinfo=UTC)
H0 = int(T0.timestamp()) // 3600  # T0 as an hour number
US = pl.Datetime("us", "UTC")
MIDNIGHT = 16.0  # hours after T0 of the first local midnight (2026-11-21 00:00 +08:00)


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def readings(*rows: tuple[float, float], tank: str = "T1") -> pl.DataFrame:
    return pl.DataFrame(
        [{"station_id": "S1", "tank_id": tank, "read_at": _at(h), "volume_20_l": v}
         for h, v in rows], schema={"station_id": pl.String, "tank_id": pl.String,
                                    "read_at": US, "volume_20_l": pl.Float64},
    )  # fmt: skip


def sales(*rows: tuple[float, float] | tuple[float, float, float], tank: str = "T1"
          ) -> pl.DataFrame:  # fmt: skip
    """(ended, litres) or (started, ended, litres), hours after T0."""
    out = []
    for row in rows:
        start, end, litres = row if len(row) == 3 else (row[0] - 0.03, row[0], row[1])
        out.append({"station_id": "S1", "tank_id": tank, "started_at": _at(start),
                    "at": _at(end), "volume_20_l": litres})  # fmt: skip
    return pl.DataFrame(out, schema={"station_id": pl.String, "tank_id": pl.String,
                                     "started_at": US, "at": US, "volume_20_l": pl.Float64})


def deliveries(*rows: tuple[float, float, float], tank: str = "T1") -> pl.DataFrame:
    """(started, ended, litres), hours after T0."""
    return pl.DataFrame(
        [{"station_id": "S1", "tank_id": tank, "delivery_id": f"DL{i}", "started_at": _at(s),
          "ended_at": _at(e), "volume_20_l": v} for i, (s, e, v) in enumerate(rows)],
        schema={"station_id": pl.String, "tank_id": pl.String, "delivery_id": pl.String,
                "started_at": US, "ended_at": US, "volume_20_l": pl.Float64},
    )  # fmt: skip


def reconcile(r: pl.DataFrame, s: pl.DataFrame, d: pl.DataFrame | None = None) -> pl.DataFrame:
    return wetstock.daily_reconciliation(
        r, s, deliveries() if d is None else d, tolerance_pct=0.5, tolerance_min_l=40.0,
        max_reading_age=timedelta(hours=2),
    )  # fmt: skip


def test_a_day_reconciles_opening_plus_deliveries_minus_sales_against_closing() -> None:
    # Local 2026-11-21 runs from T0 + 16 h to T0 + 40 h. Opening: the 23:45 reading, 10 000 L.
    # Sales 100 + 250 + 150 = 500 L, a delivery of 5 000 L; the tank lost 60 L besides.
    gauge = readings((15.75, 10_000.0), (22.0, 9_900.0), (27.0, 14_650.0),
                     (39.75, 10_000 + 5_000 - 500 - 60.0))  # fmt: skip
    day = reconcile(gauge, sales((20.0, 100.0), (25.0, 250.0), (30.0, 150.0)),
                    deliveries((26.0, 26.5, 5_000.0)))  # fmt: skip
    assert day["day"].to_list() == [date(2026, 11, 20), date(2026, 11, 21)]
    first, second = day.to_dicts()
    assert first["result"] == "inconclusive" and first["variance_20_l"] is None  # no opening
    assert second["opening_at"] == _at(15.75) and second["closing_at"] == _at(39.75)
    assert second["opening_20_l"] == 10_000.0
    assert (second["deliveries_20_l"], second["deliveries"]) == (5_000.0, 1)
    assert (second["sales_20_l"], second["sales"]) == (500.0, 3)
    assert second["book_20_l"] == 14_500.0
    assert second["closing_20_l"] == 14_440.0
    assert second["variance_20_l"] == pytest.approx(-60.0)
    assert second["variance_pct_of_sales"] == pytest.approx(-12.0)
    assert second["tolerance_20_l"] == 40.0  # max(0.5 % × 500 = 2.5, 40)
    assert second["readings"] == 4
    assert second["result"] == "fail"
    assert second["day_start"] == _at(16.0) and second["day_end"] == _at(40.0)


def test_the_tolerance_is_half_a_percent_of_the_sales_above_the_floor() -> None:
    gauge = readings((15.9, 30_000.0), (39.9, 30_000 - 12_000 - 55.0))
    day = reconcile(gauge, sales(*[(17.0 + i, 1_000.0) for i in range(12)])).row(1, named=True)
    assert day["tolerance_20_l"] == pytest.approx(60.0)  # 0.5 % × 12 000
    assert day["variance_20_l"] == pytest.approx(-55.0) and day["result"] == "pass"


def test_a_delivery_across_midnight_counts_on_the_day_it_ended() -> None:
    # Unloading 23:30–00:30 local (T0 + 39.5 h … 40.5 h). The 23:45 and 00:45 readings are
    # disturbed (in progress; settling for an hour after), so the 2026-11-21 closing is the
    # 23:15 reading and the delivery counts on 2026-11-22, whose opening that reading is.
    gauge = readings((15.75, 10_000.0), (39.25, 9_800.0), (39.75, 11_000.0),
                     (40.75, 13_800.0), (41.75, 13_750.0), (63.75, 13_750.0))  # fmt: skip
    day = reconcile(gauge, sales((30.0, 200.0), (41.0, 50.0)),
                    deliveries((39.5, 40.5, 4_000.0))).to_dicts()  # fmt: skip
    assert [d["result"] for d in day] == ["inconclusive", "pass", "pass"]
    assert day[1]["closing_at"] == _at(39.25) and day[1]["variance_20_l"] == pytest.approx(0.0)
    assert day[2]["opening_at"] == _at(39.25)
    assert (day[2]["deliveries_20_l"], day[2]["sales_20_l"]) == (4_000.0, 50.0)
    assert day[2]["variance_20_l"] == pytest.approx(0.0)


def test_a_sale_under_way_at_the_boundary_reading_counts_pro_rata_on_both_days() -> None:
    # A 60 L sale from 23:54 to 00:06 local; the midnight reading saw half of it gone.
    gauge = readings((MIDNIGHT - 24.1, 10_000.0), (MIDNIGHT, 9_970.0),
                     (MIDNIGHT + 23.9, 9_940.0))  # fmt: skip
    day = reconcile(gauge, sales((MIDNIGHT - 0.1, MIDNIGHT + 0.1, 60.0))).to_dicts()[1:]
    assert [d["sales_20_l"] for d in day] == [pytest.approx(30.0), pytest.approx(30.0)]
    assert [d["sales"] for d in day] == [0, 1]  # counted once, on the day it ended
    assert [d["variance_20_l"] for d in day] == [pytest.approx(0.0), pytest.approx(0.0)]


def test_a_day_without_a_reading_near_midnight_is_inconclusive() -> None:
    # The last reading before midnight is 3 h old (> 2 h): nothing to open the day with.
    gauge = readings((MIDNIGHT - 3, 10_000.0), (MIDNIGHT + 23.5, 9_000.0))
    day = reconcile(gauge, sales((MIDNIGHT + 5, 1_000.0))).to_dicts()
    assert [d["result"] for d in day] == ["inconclusive", "inconclusive"]
    assert day[1]["opening_at"] is None and day[1]["book_20_l"] is None


# --- the SIR fit ---------------------------------------------------------------------


def tank_hours(days: int, *, leak_l_h: float = 0.0, gains_pct: dict[str, float] | None = None,
               noise_l: float = 0.0, seed: int = 1, start_hour: int = H0, tank: str = "T1",
               skip_days: tuple[int, ...] = (), volume_l: float = 30_000.0,
               deliveries_at: tuple[int, ...] = (), leak_from_day: int = 0,
               gains_from_day: int = 0, gains_until_day: int | None = None,
               ) -> dict[str, pl.DataFrame]:  # fmt: skip
    """SIR frames as the wetstock rules load them, for one tank of station S1 over
    ``days`` × 24 hours from ``start_hour``: four readings an hour (mean instant at
    :22.5; the fuel cooling 0.1 °C a day and swinging ±1 °C), sales on two dispensers
    (D1 every hour, D2 in the daytime), each recording ``gains_pct`` % more than it
    dispensed, a steady leak, Gaussian gauge noise per hourly mean, and a 20 000 L
    delivery in the hours ``deliveries_at`` (relative). The leak starts on day
    ``leak_from_day`` and the gains on day ``gains_from_day`` (0: from the start); the
    gains end before day ``gains_until_day`` (None: never)."""
    rng = random.Random(seed)
    honest = {"D1": 0.0, "D2": 0.0}
    tampered = {**honest, **(gains_pct or {})}
    hours, sold, out_deliveries = [], [], []
    recorded = {"D1": 0.0, "D2": 0.0}  # cumulative recorded sales before the hour
    stock = volume_l
    for i in range(days * 24):
        hour = start_hour + i
        local = (hour + 8) % 24
        until = days if gains_until_day is None else gains_until_day
        gains = tampered if gains_from_day <= i // 24 < until else honest
        leak = leak_l_h if i // 24 >= leak_from_day else 0.0
        if i in deliveries_at:
            out_deliveries.append((hour + 0.2, hour + 0.7, 20_000.0))
            stock += 20_000.0
        this = {"D1": 10.0 + 30.0 * rng.random(),
                "D2": (40.0 + 60.0 * rng.random()) if 7 <= local < 21 else 0.0}  # fmt: skip
        at = 0.375  # mean reading position in the hour; sales spread evenly over it
        before = {d: recorded[d] + at * this[d] for d in this}
        dispensed = sum(at * this[d] / (1 + gains[d] / 100) for d in this)
        measured = stock - leak * at - dispensed + rng.gauss(0.0, noise_l)
        if i // 24 not in skip_days:
            hours.append({"station_id": "S1", "tank_id": tank, "hour": hour, "readings": 4,
                          "t_h": hour + at, "measured_20_l": measured,
                          "sold_20_l": sum(before.values()),
                          "temperature_c": 8.0 - i / 240 + math.sin((local - 10) / 24 * math.tau)})

        for d, litres in this.items():
            if litres:
                sold.append({"station_id": "S1", "tank_id": tank, "dispenser_id": d,
                             "hour": hour, "sold_20_l": litres, "sales": 1})  # fmt: skip
            recorded[d] += litres
            stock -= litres / (1 + gains[d] / 100)
        stock -= leak
    frame = pl.DataFrame(
        [{"station_id": "S1", "tank_id": tank, "delivery_id": f"DL{i}",
          "started_at": datetime.fromtimestamp(s * 3600, UTC),
          "ended_at": datetime.fromtimestamp(e * 3600, UTC), "volume_20_l": v}
         for i, (s, e, v) in enumerate(out_deliveries)],
        schema={"station_id": pl.String, "tank_id": pl.String, "delivery_id": pl.String,
                "started_at": US, "ended_at": US, "volume_20_l": pl.Float64},
    )  # fmt: skip
    return {"hours": pl.DataFrame(hours), "sales": pl.DataFrame(sold), "deliveries": frame}


def _fit(frames: dict[str, Any], end_day: int, window: int = 30) -> dict[str, Any]:
    rows = wetstock.design(frames["hours"], frames["sales"], frames["deliveries"])
    ends = pl.DataFrame({"station_id": ["S1"], "tank_id": ["T1"], "end_day": [end_day]})
    return wetstock.window_fits(rows, wetstock.TANK, wetstock.XS, "y_20_l", ends,
                                window).row(0, named=True)  # fmt: skip


FIRST_DAY = wetstock.day_number(T0)  # local 2026-11-20 (from 08:00)


def test_the_fit_recovers_a_leak_and_each_dispensers_meter_error_exactly() -> None:
    frames = tank_hours(31, leak_l_h=0.5, gains_pct={"D2": 0.8}, deliveries_at=(100, 400))
    fit = _fit(frames, FIRST_DAY + 30)
    slots = wetstock.dispenser_slots(frames["sales"]).sort("dispenser_id")
    assert slots["slot"].to_list() == [2, 1]  # D2 sells more: slot 1
    assert -fit["b_t_h"] == pytest.approx(0.5, abs=1e-6)
    assert fit["b_x1_20_l"] == pytest.approx(1 - 1 / 1.008, abs=1e-9)  # D2
    assert fit["b_x2_20_l"] == pytest.approx(0.0, abs=1e-9)  # D1
    assert fit["se_t_h"] == pytest.approx(0.0, abs=1e-6)
    # 30 local days, every hour but the four two deliveries disturb; three segments
    assert (fit["days"], fit["n"], fit["segments"]) == (30, 720 - 4, 3)
    assert fit["readings"] == 4 * (720 - 4)


def test_the_standard_error_matches_the_noise() -> None:
    estimates = [-_fit(tank_hours(31, noise_l=2.0, seed=s), FIRST_DAY + 30)["b_t_h"]
                 for s in range(8)]  # fmt: skip
    se = _fit(tank_hours(31, noise_l=2.0, seed=99), FIRST_DAY + 30)["se_t_h"]
    assert 0.005 < se < 0.05
    assert all(abs(e) < 4 * se for e in estimates)


def _scope(since: datetime) -> pl.DataFrame:
    return pl.DataFrame({"station_id": ["S1"], "since": [since]},
                        schema={"station_id": pl.String, "since": US})  # fmt: skip


def test_end_days_cover_the_month_before_since_and_split_at_the_day_before_it() -> None:
    hours = tank_hours(70)["hours"]  # 2026-11-20 08:00 to 2027-01-29 08:00 local
    now = T0 + timedelta(days=70)

    def span(ends: pl.DataFrame) -> tuple[date, date, int]:
        dates = ends.select(wetstock.day_date(pl.col("end_day")))["end_day"]
        return dates.min(), dates.max(), ends.height  # type: ignore[return-value]

    # since 2027-01-11 00:00 local: from the first of the month of the day before it to
    # the last complete day.
    since = datetime(2027, 1, 10, 16, tzinfo=UTC)
    ends = wetstock.end_days(hours, wetstock.TANK, _scope(since), now, 30)
    assert span(ends) == (date(2027, 1, 1), date(2027, 1, 28), 28)
    recent, earlier = wetstock.split_recent(ends, _scope(since))
    assert span(recent) == (date(2027, 1, 10), date(2027, 1, 28), 19)
    assert span(earlier) == (date(2027, 1, 1), date(2027, 1, 9), 9)
    # since 2026-12-01 00:00 local: from the first window the data cover whole.
    ends = wetstock.end_days(hours, wetstock.TANK, _scope(datetime(2026, 11, 30, 16, tzinfo=UTC)),
                             now, 30)  # fmt: skip
    assert span(ends) == (date(2026, 12, 19), date(2027, 1, 28), 41)
