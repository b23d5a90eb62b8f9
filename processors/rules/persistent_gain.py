"""Persistent gain: a dispenser records more than left the tanks (calibration fraud).

The same 30-day fit as :mod:`processors.rules.slow_leak` (one per tank and day, see
:func:`processors.wetstock.window_fits`) has one regressor per dispenser drawing from the
tank: its cumulative sales. Its coefficient is the share of the dispenser's recorded
litres that never left the tank; the meter error (recorded ÷ dispensed − 1, positive when
the customer gets less than the display says) follows from it. Time-proportional losses
(a leak, evaporation) and deliveries are the fit's other terms, so they do not bias it.

A dispenser (a meter per nozzle, but one calibration seal and one control board) is
judged on all the tanks it draws from: the per-tank estimates are combined by their
inverse variances. The test fails when the lower confidence bound of the gain exceeds the
legal maximum permissible error (0.3 %): an honest meter at the very limit fails with
probability ≤ ``persistent_gain_false_alarm_pct``. Findings are monthly episodes per
dispenser, as for the slow leak.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors import wetstock
from processors.rules.base import Frames, Reader, Rule, Scope, findings, no_findings
from processors.rules.slow_leak import MIN_DOF, WINDOW_DAYS, monthly_episodes, z_score
from processors.rules.slow_leak import load as load_hourly

DISPENSER = ["station_id", "dispenser_id"]


def load(reader: Reader) -> Frames:
    return load_hourly(reader)


def _per_tank(fits: pl.DataFrame, slots: pl.DataFrame) -> pl.DataFrame:
    """The fits in long form: one row per tank, dispenser (not sharing a slot), end day."""
    parts = [
        fits.select(*wetstock.TANK, "end_day", "days", "dof", "n",
                    slot=pl.lit(k, pl.Int64), gain=pl.col(f"b_x{k}_20_l"),
                    se=pl.col(f"se_x{k}_20_l"))  # fmt: skip
        for k in range(1, wetstock.SLOTS + 1)
    ]
    alone = slots.filter(~pl.col("shared")).select(*wetstock.TANK, "dispenser_id", "slot")
    return pl.concat(parts).join(alone, on=[*wetstock.TANK, "slot"])


def _window_sales(sales: pl.DataFrame, tested: pl.DataFrame) -> pl.DataFrame:
    """Litres at 20 °C each tested dispenser sold from its tested tanks in each window."""
    daily = sales.group_by(*wetstock.TANK, "dispenser_id", day=wetstock.day_of(pl.col("hour"))).agg(
        pl.col("sold_20_l").sum()
    )
    spread = daily.with_columns(
        end_day=pl.int_ranges(pl.col("day"), pl.col("day") + WINDOW_DAYS)
    ).explode("end_day")
    keys = [*wetstock.TANK, "dispenser_id", "end_day"]
    return spread.join(tested.select(keys), on=keys).group_by(*DISPENSER, "end_day").agg(
        sales_20_l=pl.col("sold_20_l").sum()
    )


def evaluate(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    """Each dispenser's gain test, with ``result``, per window end day from the day before
    ``since`` on — and, at a station where one failed there, on every earlier day of the
    months concerned (to find where the monthly episode began)."""
    hours = frames["hours"]
    sales = frames["sales"].with_columns(pl.col(c).cast(pl.String) for c in
                                         (*wetstock.TANK, "dispenser_id"))  # fmt: skip
    ends = wetstock.end_days(hours, wetstock.TANK, scope.stations, scope.now, WINDOW_DAYS)
    recent, earlier = wetstock.split_recent(ends, scope.stations)
    first = _combined(frames, sales, recent, settings)
    doubtful = first.filter(pl.col("result") == "fail").select("station_id").unique()
    if doubtful.is_empty():
        return first
    more = _combined(frames, sales, earlier.join(doubtful, on="station_id"), settings)
    return pl.concat([first, more])


def _combined(frames: Frames, sales: pl.DataFrame, ends: pl.DataFrame,
              settings: Settings) -> pl.DataFrame:  # fmt: skip
    """Per dispenser and end day: its gain over every tank it draws from, and the test."""
    sales = wetstock.within(sales, ends, WINDOW_DAYS)
    rows = wetstock.design(wetstock.within(frames["hours"], ends, WINDOW_DAYS), sales,
                           frames["deliveries"])  # fmt: skip
    fits = wetstock.window_fits(rows, wetstock.TANK, wetstock.XS, "y_20_l", ends, WINDOW_DAYS)
    tank = _per_tank(fits, wetstock.dispenser_slots(sales)).filter(
        (pl.col("days") >= settings.wetstock_min_days) & (pl.col("dof") >= MIN_DOF)
        & pl.col("se").is_finite() & pl.col("gain").is_finite()
    )  # fmt: skip
    weight = 1.0 / pl.col("se").clip(1e-12, None) ** 2  # noise-free data: se = 0
    combined = tank.sort("tank_id").group_by(*DISPENSER, "end_day").agg(
        gain=(pl.col("gain") * weight).sum() / weight.sum(),
        se=1.0 / weight.sum().sqrt(),
        tanks=pl.col("tank_id"), days=pl.col("days").min(), hours=pl.col("n").sum(),
    )  # fmt: skip
    z = z_score(settings.persistent_gain_false_alarm_pct)
    out = combined.join(_window_sales(sales, tank), on=[*DISPENSER, "end_day"], how="left")
    # The fit's coefficient b is the share of the recorded litres never dispensed; the
    # meter error (what JJG 443 bounds) is recorded ÷ dispensed − 1 = b / (1 − b).
    out = out.with_columns(
        gain_pct=100.0 * pl.col("gain") / (1.0 - pl.col("gain")),
        standard_error_pct=100.0 * pl.col("se") / (1.0 - pl.col("gain")) ** 2,
        excess_20_l=pl.col("sales_20_l") * pl.col("gain"),
    ).with_columns(
        lower_pct=pl.col("gain_pct") - z * pl.col("standard_error_pct"),
        upper_pct=pl.col("gain_pct") + z * pl.col("standard_error_pct"),
    )  # fmt: skip
    return out.with_columns(
        result=pl.when(pl.col("lower_pct") > settings.persistent_gain_threshold_pct)
        .then(pl.lit("fail")).otherwise(pl.lit("pass"))
    )  # fmt: skip


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    results = evaluate(frames, settings, scope)
    if results.is_empty():
        return no_findings()
    episodes = monthly_episodes(results, DISPENSER, pl.col("result") == "fail",
                                         WINDOW_DAYS)  # fmt: skip
    critical = pl.col("lower_pct") >= settings.persistent_gain_critical_pct
    episodes = episodes.with_columns(
        subject=pl.col("dispenser_id"),
        severity=pl.when(critical).then(pl.lit("critical")).otherwise(pl.lit("high")),
    )
    return findings(episodes, [
        "dispenser_id", "tanks", "gain_pct", "standard_error_pct", "lower_pct", "upper_pct",
        pl.lit(100.0 - settings.persistent_gain_false_alarm_pct).alias("confidence_pct"),
        pl.lit(settings.persistent_gain_threshold_pct).alias("threshold_pct"),
        "sales_20_l", "excess_20_l", pl.lit(WINDOW_DAYS).alias("window_days"), "days",
        "hours",
        wetstock.day_start(pl.col("last_day") - WINDOW_DAYS + 1).alias("test_start_at"),
        wetstock.day_start(pl.col("last_day") + 1).alias("test_end_at"),
        wetstock.day_date(pl.col("first_day")).alias("first_day"),
        wetstock.day_date(pl.col("last_day")).alias("last_day"),
        pl.col("flagged_days").alias("result_days"),
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    return (f"Dispenser {e['dispenser_id']} (tanks {', '.join(e['tanks'])}): its sales exceed "
            f"what left the tanks by {e['gain_pct']:.2f} % ± {e['standard_error_pct']:.2f} "
            f"(standard error; {e['confidence_pct']:.0f} % lower bound {e['lower_pct']:.2f} %) "
            f"over the {e['window_days']} days to {e['last_day']}, beyond the legal "
            f"±{e['threshold_pct']:.1f} %: about {e['excess_20_l']:.0f} L at 20 °C of "
            f"{e['sales_20_l']:.0f} L sold were never dispensed. Failed on "
            f"{e['result_days']} day(s) from {e['first_day']}. Check the meter with a "
            f"standard measure and inspect its calibration seal.")  # fmt: skip


RULE = Rule(
    name="persistent_gain",
    title="Persistent gain (dispenser records more than left the tank)",
    title_zh="加油机计量持续超差(销售量大于出库量)",
    load=load,
    detect=detect,
    describe=describe,
    lookback=timedelta(days=WINDOW_DAYS + 32),
)
