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
from processors.onset import likeliest, onset_fits
from processors.rules.base import Frames, Reader, Rule, Scope, findings, no_findings
from processors.rules.slow_leak import (
    MIN_DOF,
    ONSET_MIN_HOURS,
    ONSETS,
    WINDOW_DAYS,
    monthly_episodes,
    split_alpha,
)
from processors.rules.slow_leak import load as load_hourly

DISPENSER = ["station_id", "dispenser_id"]


def load(reader: Reader) -> Frames:
    return load_hourly(reader)


def _per_tank(fits: pl.DataFrame, slots: pl.DataFrame, by: tuple[str, ...] = ("end_day",),
              prefix: str = "") -> pl.DataFrame:  # fmt: skip
    """The fits in long form: one row per tank, dispenser (not sharing a slot) and ``by``;
    ``prefix``: the coefficient's (``o_`` for the gain taken on at an onset)."""
    parts = [
        fits.select(*wetstock.TANK, *by, "days", "dof", "n",
                    slot=pl.lit(k, pl.Int64), gain=pl.col(f"b_{prefix}x{k}_20_l"),
                    se=pl.col(f"se_{prefix}x{k}_20_l"))  # fmt: skip
        for k in range(1, wetstock.SLOTS + 1)
    ]
    alone = slots.filter(~pl.col("shared")).select(*wetstock.TANK, "dispenser_id", "slot")
    return pl.concat(parts).join(alone, on=[*wetstock.TANK, "slot"])


def _pooled(tank: pl.DataFrame, by: list[str], settings: Settings) -> pl.DataFrame:
    """Per dispenser and ``by``: the valid per-tank estimates combined by their inverse
    variances (gain, se, tanks, days, hours)."""
    tank = tank.filter(
        (pl.col("days") >= settings.wetstock_min_days) & (pl.col("dof") >= MIN_DOF)
        & pl.col("se").is_finite() & pl.col("gain").is_finite()
    )  # fmt: skip
    weight = 1.0 / pl.col("se").clip(1e-12, None) ** 2  # noise-free data: se = 0
    return tank.sort("tank_id").group_by(*DISPENSER, *by).agg(
        gain=(pl.col("gain") * weight).sum() / weight.sum(),
        se=1.0 / weight.sum().sqrt(),
        tanks=pl.col("tank_id"), days=pl.col("days").min(), hours=pl.col("n").sum(),
    )  # fmt: skip


def _as_pct(gain: pl.Expr, se: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """The fit's coefficient b is the share of the recorded litres never dispensed; the
    meter error (what JJG 443 bounds) is recorded ÷ dispensed − 1 = b / (1 − b)."""
    return 100.0 * gain / (1.0 - gain), 100.0 * se / (1.0 - gain) ** 2


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
    """Per dispenser and end day: its gain over every tank it draws from, the test, and
    the best onset test (:func:`_onsets`)."""
    sales = wetstock.within(sales, ends, WINDOW_DAYS)
    rows = wetstock.design(wetstock.within(frames["hours"], ends, WINDOW_DAYS), sales,
                           frames["deliveries"])  # fmt: skip
    fits = wetstock.window_fits(rows, wetstock.TANK, wetstock.XS, "y_20_l", ends, WINDOW_DAYS)
    slots = wetstock.dispenser_slots(sales)
    tank = _per_tank(fits, slots)
    combined = _pooled(tank, ["end_day"], settings)
    z, _ = split_alpha(settings.persistent_gain_false_alarm_pct)
    out = combined.join(_window_sales(sales, tank), on=[*DISPENSER, "end_day"], how="left")
    gain_pct, se_pct = _as_pct(pl.col("gain"), pl.col("se"))
    out = out.with_columns(
        gain_pct=gain_pct, standard_error_pct=se_pct,
        excess_20_l=pl.col("sales_20_l") * pl.col("gain"),
    ).with_columns(
        lower_pct=pl.col("gain_pct") - z * pl.col("standard_error_pct"),
        upper_pct=pl.col("gain_pct") + z * pl.col("standard_error_pct"),
    )  # fmt: skip
    onsets = _onsets(rows, ends, slots, fits, settings)
    out = out.join(onsets, on=[*DISPENSER, "end_day"], how="left").join(
        _sales_since(sales, onsets), on=[*DISPENSER, "end_day"], how="left"
    )
    # where an onset model is selected, it judges: the whole-window fit is misspecified
    # there, and its gains (every dispenser's) are not to be trusted
    onset_fails = pl.col("onset_fails").fill_null(False)
    window_fails = (pl.col("lower_pct") > settings.persistent_gain_threshold_pct) & pl.col(
        "onset_fails"
    ).is_null()
    return out.with_columns(
        failed_by=pl.when(onset_fails).then(pl.lit("onset"))
        .when(window_fails).then(pl.lit("window")),
        result=pl.when(onset_fails | window_fails).then(pl.lit("fail")).otherwise(pl.lit("pass")),
    ).drop("onset_fails")  # fmt: skip


def _sales_since(sales: pl.DataFrame, onsets: pl.DataFrame) -> pl.DataFrame:
    """Litres at 20 °C each dispenser sold from its onset day to the end day (onset_sales_20_l)."""
    daily = sales.group_by(*DISPENSER, day=wetstock.day_of(pl.col("hour"))).agg(
        pl.col("sold_20_l").sum()
    )
    return daily.join(onsets.select(*DISPENSER, "end_day", "onset_day"), on=DISPENSER).filter(
        pl.col("day").is_between("onset_day", "end_day")
    ).group_by(*DISPENSER, "end_day").agg(onset_sales_20_l=pl.col("sold_20_l").sum())


def _onsets(rows: pl.DataFrame, ends: pl.DataFrame, slots: pl.DataFrame, whole: pl.DataFrame,
            settings: Settings) -> pl.DataFrame:  # fmt: skip
    """Per dispenser and end day, the gain its meter took on at the likeliest onset of
    each tank it draws from (every dispenser's gain, and the time term, may change there:
    one onset regressor per slot and one for time; :func:`processors.onset.likeliest`):
    onset_day, onset_gain_pct, onset_standard_error_pct, onset_lower_pct, and
    before_onset_gain_pct, before_onset_standard_error_pct, before_onset_lower_pct (the
    gain until the onset), and ``onset_fails``: either lower bound exceeds the legal
    error with a standard error at most half of it, with enough hours on both sides of
    the onset."""
    # a leak that starts the same day is time's change, not the dispensers': without its
    # own onset term it would be read as gains
    ramps = ["t_h", *[f"x{k}_20_l" for k in range(1, wetstock.SLOTS + 1)]]
    fits = onset_fits(rows, wetstock.TANK, wetstock.XS, "y_20_l", ends, WINDOW_DAYS, ramps,
                      ONSETS)  # fmt: skip
    fits = fits.filter((pl.col("n_after") >= ONSET_MIN_HOURS)
                       & (pl.col("n") - pl.col("n_after") >= ONSET_MIN_HOURS))  # fmt: skip
    # each tank's likeliest onset, if it pays for a change of every dispenser's gain; a
    # dispenser drawing from several tanks pools them, dated by its best-determined tank
    alone = slots.filter(~pl.col("shared")).group_by(wetstock.TANK).agg(_q=pl.len() + 1)
    fits = likeliest(fits.join(alone, on=wetstock.TANK), whole, wetstock.TANK, pl.col("_q"))
    fits = fits.filter("onset_selected")
    by = ("end_day", "onset_day")
    tank = _per_tank(fits, slots, by, prefix="o_")
    dated = tank.sort("se").group_by(*DISPENSER, "end_day").agg(pl.col("onset_day").first())
    after = _pooled(tank, ["end_day"], settings).join(dated, on=[*DISPENSER, "end_day"])
    before = _pooled(_per_tank(fits, slots, by), ["end_day"], settings)
    _, z = split_alpha(settings.persistent_gain_false_alarm_pct)
    gain_pct, se_pct = _as_pct(pl.col("gain"), pl.col("se"))
    tests = after.select(
        *DISPENSER, "end_day", "onset_day", onset_gain_pct=gain_pct,
        onset_standard_error_pct=se_pct,
    ).join(before.select(
        *DISPENSER, "end_day", before_onset_gain_pct=gain_pct,
        before_onset_standard_error_pct=se_pct,
    ), on=[*DISPENSER, "end_day"], how="left").with_columns(
        onset_lower_pct=pl.col("onset_gain_pct") - z * pl.col("onset_standard_error_pct"),
        before_onset_lower_pct=pl.col("before_onset_gain_pct")
        - z * pl.col("before_onset_standard_error_pct"),
    ).filter(pl.col("onset_lower_pct").is_finite())  # fmt: skip
    # A gain taken on at the onset, or one the meter had until then (a fraud that ended:
    # the change is then negative) — each precise enough to tell a meter from time and
    # from the other dispensers: a dispenser selling at a steady rate round the clock
    # looks like a leak, and its gain is then large and loose.
    threshold = settings.persistent_gain_threshold_pct

    def fails(lower: str, se: str) -> pl.Expr:
        return ((pl.col(lower) > threshold) & (pl.col(se) <= threshold / 2)).fill_null(False)

    return tests.with_columns(
        onset_fails=fails("onset_lower_pct", "onset_standard_error_pct")
        | fails("before_onset_lower_pct", "before_onset_standard_error_pct")
    )


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    results = evaluate(frames, settings, scope)
    if results.is_empty():
        return no_findings()
    episodes = monthly_episodes(results, DISPENSER, pl.col("result") == "fail",
                                         WINDOW_DAYS)  # fmt: skip
    by_onset = pl.col("failed_by") == "onset"
    lower = pl.when(by_onset).then(pl.col("onset_lower_pct")).otherwise(pl.col("lower_pct"))
    critical = lower >= settings.persistent_gain_critical_pct
    episodes = episodes.with_columns(
        subject=pl.col("dispenser_id"),
        severity=pl.when(critical).then(pl.lit("critical")).otherwise(pl.lit("high")),
    )
    return findings(episodes, [
        "dispenser_id", "tanks", "gain_pct", "standard_error_pct", "lower_pct", "upper_pct",
        pl.lit(100.0 - settings.persistent_gain_false_alarm_pct).alias("confidence_pct"),
        pl.lit(settings.persistent_gain_threshold_pct).alias("threshold_pct"),
        "sales_20_l", "excess_20_l", pl.lit(WINDOW_DAYS).alias("window_days"), "days",
        "hours", pl.col("failed_by").alias("test"),
        wetstock.day_date(pl.col("onset_day")).alias("onset_day"), "onset_gain_pct",
        "onset_standard_error_pct", "onset_lower_pct", "before_onset_gain_pct",
        "before_onset_standard_error_pct", "before_onset_lower_pct", "onset_sales_20_l",
        (pl.col("onset_sales_20_l") * pl.col("onset_gain_pct")
         / (100.0 + pl.col("onset_gain_pct"))).alias("onset_excess_20_l"),
        wetstock.day_start(pl.col("last_day") - WINDOW_DAYS + 1).alias("test_start_at"),
        wetstock.day_start(pl.col("last_day") + 1).alias("test_end_at"),
        wetstock.day_date(pl.col("first_day")).alias("first_day"),
        wetstock.day_date(pl.col("last_day")).alias("last_day"),
        pl.col("flagged_days").alias("result_days"),
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    if e.get("test") == "onset" and e["onset_lower_pct"] <= e["threshold_pct"]:
        return (f"Dispenser {e['dispenser_id']} (tanks {', '.join(e['tanks'])}): until about "
                f"{e['onset_day']} its sales exceeded what left the tanks by "
                f"{e['before_onset_gain_pct']:.2f} % ± {e['before_onset_standard_error_pct']:.2f} "
                f"(standard error; lower bound {e['before_onset_lower_pct']:.2f} %, the onset "
                f"tests together at {e['confidence_pct']:.0f} % confidence), beyond the legal "
                f"±{e['threshold_pct']:.1f} %, then changed by {e['onset_gain_pct']:+.2f} %, in "
                f"the {e['window_days']} days to {e['last_day']}. Failed on {e['result_days']} "
                f"day(s) from {e['first_day']}. Check the meter with a standard measure, "
                f"inspect its calibration seal and ask who set it right.")  # fmt: skip
    if e.get("test") == "onset":
        return (f"Dispenser {e['dispenser_id']} (tanks {', '.join(e['tanks'])}): from about "
                f"{e['onset_day']} its sales exceed what left the tanks by "
                f"{e['onset_gain_pct']:.2f} % more than before ± "
                f"{e['onset_standard_error_pct']:.2f} (standard error; lower bound "
                f"{e['onset_lower_pct']:.2f} %, the onset tests together at "
                f"{e['confidence_pct']:.0f} % confidence), beyond the legal "
                f"±{e['threshold_pct']:.1f} %, in the {e['window_days']} days to "
                f"{e['last_day']}: about {e['onset_excess_20_l']:.0f} L at 20 °C of "
                f"{e['onset_sales_20_l']:.0f} L sold since were never dispensed. Failed on "
                f"{e['result_days']} day(s) from {e['first_day']}. Check the meter with a "
                f"standard measure and inspect its calibration seal.")  # fmt: skip
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
