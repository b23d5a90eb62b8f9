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

Frauds are put on and taken off: over 30 days a meter's gain may change once (an onset,
:func:`processors.onset.onset_fits`) or change and revert (a pulse,
:func:`processors.onset.pulse_fits`). Per tank and day the model with the least Bayesian
information criterion is believed — one gain, an onset, or a pulse — and judges every
dispenser of the tank (:func:`_changes`): a misspecified model spreads a gain over the
dispensers that sell in the same hours, and can put it on the wrong one. The false-alarm
rate is split between the whole-window, onset and pulse tests
(:func:`processors.rules.slow_leak.split_alpha_with_pulses`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors import wetstock
from processors.onset import (
    during_pulse,
    likeliest,
    onset_fits,
    pulse_fits,
    pulse_pairs,
)
from processors.rules.base import Frames, Rule, Scope, findings, no_findings
from processors.rules.slow_leak import (
    MIN_DOF,
    ONSET_MIN_HOURS,
    ONSETS,
    WINDOW_DAYS,
    monthly_episodes,
    split_alpha_with_pulses,
)
from processors.rules.slow_leak import load as load_hourly

DISPENSER = ["station_id", "dispenser_id"]
#: A pulse (a fraud put on, then taken off) lasts at least this many days between its
#: candidate start and end — as many usable hours as an onset needs on each side.
PULSE_MIN_DAYS = ONSET_MIN_HOURS // 24
#: Every pair of candidate days a pulse search can reach: the pulse tests' Bonferroni family.
PULSE_PAIRS = pulse_pairs(ONSETS, PULSE_MIN_DAYS)
#: The gain's regressors: each dispenser slot's cumulative sales.
GAINS = [f"x{k}_20_l" for k in range(1, wetstock.SLOTS + 1)]


def _zs(settings: Settings) -> tuple[float, float, float]:
    """The z of the whole-window, each onset and each pulse test."""
    return split_alpha_with_pulses(settings.persistent_gain_false_alarm_pct, len(PULSE_PAIRS))


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
    the onset or pulse test of the tanks where a change model is believed
    (:func:`_changes`, :func:`_onsets`, :func:`_pulses`)."""
    sales = wetstock.within(sales, ends, WINDOW_DAYS)
    rows = wetstock.design(wetstock.within(frames["hours"], ends, WINDOW_DAYS), sales,
                           frames["deliveries"])  # fmt: skip
    fits = wetstock.window_fits(rows, wetstock.TANK, wetstock.XS, "y_20_l", ends, WINDOW_DAYS)
    slots = wetstock.dispenser_slots(sales)
    tank = _per_tank(fits, slots)
    combined = _pooled(tank, ["end_day"], settings)
    z, _, _ = _zs(settings)
    out = combined.join(_window_sales(sales, tank), on=[*DISPENSER, "end_day"], how="left")
    gain_pct, se_pct = _as_pct(pl.col("gain"), pl.col("se"))
    out = out.with_columns(
        gain_pct=gain_pct, standard_error_pct=se_pct,
        excess_20_l=pl.col("sales_20_l") * pl.col("gain"),
    ).with_columns(
        lower_pct=pl.col("gain_pct") - z * pl.col("standard_error_pct"),
        upper_pct=pl.col("gain_pct") + z * pl.col("standard_error_pct"),
    )  # fmt: skip
    onset_tanks, pulse_tanks = _changes(rows, ends, slots, fits)
    onsets = _onsets(onset_tanks, slots, settings)
    pulses = _pulses(pulse_tanks, slots, settings)
    by = [*DISPENSER, "end_day"]
    out = out.join(onsets, on=by, how="left").join(
        _sales_between(sales, onsets, "onset_day", "end_day", "onset_sales_20_l"), on=by,
        how="left",
    ).join(pulses, on=by, how="left").join(
        _sales_between(sales, pulses, "pulse_start_day", "pulse_last_day", "pulse_sales_20_l"),
        on=by, how="left",
    )  # fmt: skip
    # where a change model is selected, it judges: the whole-window fit is misspecified
    # there, and its gains (every dispenser's) are not to be trusted
    pulse_fails = pl.col("pulse_fails").fill_null(False)
    onset_fails = pl.col("onset_fails").fill_null(False)
    unchanged = pl.col("onset_fails").is_null() & pl.col("pulse_fails").is_null()
    window_fails = (pl.col("lower_pct") > settings.persistent_gain_threshold_pct) & unchanged
    return out.with_columns(
        failed_by=pl.when(pulse_fails).then(pl.lit("pulse"))
        .when(onset_fails).then(pl.lit("onset"))
        .when(window_fails).then(pl.lit("window")),
        result=pl.when(pulse_fails | onset_fails | window_fails).then(pl.lit("fail"))
        .otherwise(pl.lit("pass")),
    ).drop("onset_fails", "pulse_fails", "pulse_last_day")  # fmt: skip


def _sales_between(sales: pl.DataFrame, spans: pl.DataFrame, first: str, last: str,
                   name: str) -> pl.DataFrame:  # fmt: skip
    """Litres at 20 °C each dispenser of ``spans`` sold from its day ``first`` to its day
    ``last``, both included (``name``), per end day."""
    daily = sales.group_by(*DISPENSER, day=wetstock.day_of(pl.col("hour"))).agg(
        pl.col("sold_20_l").sum()
    )
    bounds = spans.select(*DISPENSER, "end_day", _first=first, _last=last)
    return daily.join(bounds, on=DISPENSER).filter(
        pl.col("day").is_between("_first", "_last")
    ).group_by(*DISPENSER, "end_day").agg(pl.col("sold_20_l").sum().alias(name))


def _changes(rows: pl.DataFrame, ends: pl.DataFrame, slots: pl.DataFrame,
             whole: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """Per tank and end day, the change model to believe, by the least Bayesian
    information criterion (:func:`processors.onset.likeliest`) of the whole-window fit
    (``whole``), the likeliest onset and the likeliest pulse — returned as the onset fits
    of the tanks where the onset wins, and the pulse fits of those where the pulse wins.

    Onset: every dispenser's gain and the time term may change on one day. Pulse: every
    dispenser's gain changes on one day and reverts on a later one (a fraud put on and
    taken off), the time term changing freely on both (a leak, starting or stopping, is
    not read as gains). The pulse is searched by binary segmentation: only where the
    likeliest onset pays for itself (a second change is looked for once a first is
    evident: on clean tanks that is a few tank-days in a thousand, so the search costs
    next to nothing), one of its days is that onset, the other any candidate at least
    ``PULSE_MIN_DAYS`` before or after it — a fraud within the window has its start or
    its end as the best single change. ~20 pairs, not all 231; the tests still count
    every pair the search can reach (:data:`PULSE_PAIRS`).
    """
    # a leak that starts the same day is time's change, not the dispensers': without its
    # own change term it would be read as gains
    ramps = ["t_h", *GAINS]
    used = slots.group_by(wetstock.TANK).agg(_q=pl.col("slot").n_unique())
    onsets = onset_fits(rows, wetstock.TANK, wetstock.XS, "y_20_l", ends, WINDOW_DAYS, ramps,
                        ONSETS).join(used, on=wetstock.TANK)  # fmt: skip
    onset = likeliest(onsets, whole, wetstock.TANK, pl.col("_q") + 1, ONSET_MIN_HOURS)
    pulses = pulse_fits(rows, wetstock.TANK, wetstock.XS, "y_20_l", ends, WINDOW_DAYS, ["t_h"],
                        GAINS, _pairs_around(onset.filter("onset_selected"))
                        ).join(used, on=wetstock.TANK)  # fmt: skip
    pulse = likeliest(pulses, whole, wetstock.TANK, pl.col("_q") + 2, ONSET_MIN_HOURS)
    at = [*wetstock.TANK, "end_day"]
    bics = onset.select(*at, _onset=pl.col("bic")).join(
        pulse.select(*at, _pulse=pl.col("bic")), on=at, how="full", coalesce=True
    ).with_columns(pl.col("_onset", "_pulse").fill_null(float("inf")))
    onset_wins = (pl.col("_onset") < 0) & (pl.col("_onset") <= pl.col("_pulse"))
    pulse_wins = (pl.col("_pulse") < 0) & (pl.col("_pulse") < pl.col("_onset"))
    return (onset.join(bics.filter(onset_wins).select(at), on=at),
            pulse.join(bics.filter(pulse_wins).select(at), on=at))  # fmt: skip


def _pairs_around(onset: pl.DataFrame) -> pl.DataFrame:
    """Candidate pulses (onset_day, pulse_end_day) per tank and end day: the likeliest
    onset (``onset``: :func:`processors.onset.likeliest` rows) as the start or the end,
    the other day any candidate at least ``PULSE_MIN_DAYS`` away."""
    first = pl.col("end_day") - WINDOW_DAYS + 1
    other = pl.DataFrame({"_k": ONSETS}, schema={"_k": pl.Int64})
    best = onset.select(*wetstock.TANK, "end_day", _c=pl.col("onset_day")).join(other,
                                                                               how="cross")
    day = first + pl.col("_k")
    after = best.filter(day - pl.col("_c") >= PULSE_MIN_DAYS).select(
        *wetstock.TANK, "end_day", onset_day="_c", pulse_end_day=day)
    before = best.filter(pl.col("_c") - day >= PULSE_MIN_DAYS).select(
        *wetstock.TANK, "end_day", onset_day=day, pulse_end_day="_c")
    return pl.concat([after, before])


def _fails(lower: str, se: str, settings: Settings) -> pl.Expr:
    """A change test fails when its lower bound exceeds the legal error and it is precise
    enough to tell a meter from time and from the other dispensers (standard error at
    most half the legal error): a dispenser selling at a steady rate round the clock
    looks like a leak, and its gain is then large and loose."""
    threshold = settings.persistent_gain_threshold_pct
    return ((pl.col(lower) > threshold) & (pl.col(se) <= threshold / 2)).fill_null(False)


def _onsets(fits: pl.DataFrame, slots: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Per dispenser and end day, the gain its meter took on at the onset of each tank
    it draws from where the onset model is believed (``fits``: :func:`_changes`):
    onset_day, onset_gain_pct, onset_standard_error_pct, onset_lower_pct, and
    before_onset_gain_pct, before_onset_standard_error_pct, before_onset_lower_pct (the
    gain until the onset), and ``onset_fails``: either fails (:func:`_fails`)."""
    # a dispenser drawing from several tanks pools them, dated by its best-determined tank
    by = ("end_day", "onset_day")
    tank = _per_tank(fits, slots, by, prefix="o_")
    dated = tank.sort("se").group_by(*DISPENSER, "end_day").agg(pl.col("onset_day").first())
    after = _pooled(tank, ["end_day"], settings).join(dated, on=[*DISPENSER, "end_day"])
    before = _pooled(_per_tank(fits, slots, by), ["end_day"], settings)
    _, z, _ = _zs(settings)
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
    # the change is then negative).
    return tests.with_columns(
        onset_fails=_fails("onset_lower_pct", "onset_standard_error_pct", settings)
        | _fails("before_onset_lower_pct", "before_onset_standard_error_pct", settings)
    )


def _pulses(fits: pl.DataFrame, slots: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Per dispenser and end day, the gain its meter had during the pulse of each tank it
    draws from where the pulse model is believed (``fits``: :func:`_changes`), pooled
    over those tanks and dated by its best-determined one: pulse_start_day,
    pulse_end_day (the first day back to the old gain), pulse_last_day (the day before),
    pulse_gain_pct (the meter error during the pulse, not the change: the legal limit
    bounds the error), pulse_standard_error_pct, pulse_lower_pct (Bonferroni over
    :data:`PULSE_PAIRS`) and ``pulse_fails`` (:func:`_fails`)."""
    during: dict[str, pl.Expr] = {}
    for v in GAINS:
        gain, se = during_pulse(fits, v)
        during |= {f"b_during_{v}": gain, f"se_during_{v}": se}
    by = ("end_day", "onset_day", "pulse_end_day")
    tank = _per_tank(fits.with_columns(**during), slots, by, prefix="during_")
    dated = tank.sort("se").group_by(*DISPENSER, "end_day").agg(
        pl.col("onset_day", "pulse_end_day").first()
    )
    pooled = _pooled(tank, ["end_day"], settings).join(dated, on=[*DISPENSER, "end_day"])
    _, _, z = _zs(settings)
    gain_pct, se_pct = _as_pct(pl.col("gain"), pl.col("se"))
    tests = pooled.select(
        *DISPENSER, "end_day", "pulse_end_day", pulse_start_day="onset_day",
        pulse_last_day=pl.col("pulse_end_day") - 1, pulse_gain_pct=gain_pct,
        pulse_standard_error_pct=se_pct,
    ).with_columns(
        pulse_lower_pct=pl.col("pulse_gain_pct") - z * pl.col("pulse_standard_error_pct"),
    ).filter(pl.col("pulse_lower_pct").is_finite())  # fmt: skip
    return tests.with_columns(
        pulse_fails=_fails("pulse_lower_pct", "pulse_standard_error_pct", settings)
    )


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    results = evaluate(frames, settings, scope)
    if results.is_empty():
        return no_findings()
    episodes = monthly_episodes(results, DISPENSER, pl.col("result") == "fail",
                                         WINDOW_DAYS)  # fmt: skip
    test = pl.col("failed_by")
    lower = (pl.when(test == "pulse").then(pl.col("pulse_lower_pct"))
             .when(test == "onset").then(pl.col("onset_lower_pct")).otherwise(pl.col("lower_pct")))
    by_pulse = test == "pulse"  # fmt: skip
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
        wetstock.day_date(pl.when(by_pulse).then(pl.col("pulse_start_day"))
                          .otherwise(pl.col("onset_day"))).alias("onset_day"),
        "onset_gain_pct",
        "onset_standard_error_pct", "onset_lower_pct", "before_onset_gain_pct",
        "before_onset_standard_error_pct", "before_onset_lower_pct", "onset_sales_20_l",
        (pl.col("onset_sales_20_l") * pl.col("onset_gain_pct")
         / (100.0 + pl.col("onset_gain_pct"))).alias("onset_excess_20_l"),
        wetstock.day_date(pl.col("pulse_end_day")).alias("pulse_end_day"), "pulse_gain_pct",
        "pulse_standard_error_pct", "pulse_lower_pct", "pulse_sales_20_l",
        (pl.col("pulse_sales_20_l") * pl.col("pulse_gain_pct")
         / (100.0 + pl.col("pulse_gain_pct"))).alias("pulse_excess_20_l"),
        wetstock.day_start(pl.col("last_day") - WINDOW_DAYS + 1).alias("test_start_at"),
        wetstock.day_start(pl.col("last_day") + 1).alias("test_end_at"),
        wetstock.day_date(pl.col("first_day")).alias("first_day"),
        wetstock.day_date(pl.col("last_day")).alias("last_day"),
        pl.col("flagged_days").alias("result_days"),
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    if e.get("test") == "pulse":
        return (f"Dispenser {e['dispenser_id']} (tanks {', '.join(e['tanks'])}): from about "
                f"{e['onset_day']} until about {e['pulse_end_day']} its sales exceeded what "
                f"left the tanks by {e['pulse_gain_pct']:.2f} % ± "
                f"{e['pulse_standard_error_pct']:.2f} (standard error; lower bound "
                f"{e['pulse_lower_pct']:.2f} %, the pulse tests together at "
                f"{e['confidence_pct']:.0f} % confidence), beyond the legal "
                f"±{e['threshold_pct']:.1f} %, and not before or after, in the "
                f"{e['window_days']} days to {e['last_day']}: about "
                f"{e['pulse_excess_20_l']:.0f} L at 20 °C of {e['pulse_sales_20_l']:.0f} L "
                f"sold in that time were never dispensed. Failed on {e['result_days']} day(s) "
                f"from {e['first_day']}. Check the meter with a standard measure, inspect its "
                f"calibration seal and ask who set it and who set it back.")  # fmt: skip
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
    load=load_hourly,  # slow_leak's: the engine reads it once for both
    detect=detect,
    describe=describe,
    lookback=timedelta(days=WINDOW_DAYS + 32),
)
