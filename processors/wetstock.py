"""Wetstock: a tank's book stock against what its gauge measured, in litres at 20 °C.

Pure Polars, no I/O. The reconciliations the wetstock rules share, and that others (the
regulator's page: each tank's daily book-vs-measured series) may call:

* :func:`daily_reconciliation` — per tank and Asia/Shanghai day: opening + deliveries −
  sales, the book, against the closing gauge reading, with a tolerance and a result
  ``pass`` / ``fail`` / ``inconclusive`` (no reading at one end of the day).
* :func:`design` — the usable hours of a tank for statistical inventory reconciliation
  (SIR), and :func:`window_fits` — per tank and day, least squares over the window of
  days ending on it of::

      measured + sold = a_segment − leak · t + Σ_k gain_k · sold_k + δβ · thermal

  where ``sold`` is the cumulative metered sales at the reading instants (``sold_k``:
  dispenser k's), ``thermal`` the measured stock times the gauge temperature's swing,
  and a segment the time between two deliveries. A leak is proportional to *time*; a
  meter error (or calibration fraud) to a dispenser's *throughput*; a delivery's
  declared-vs-true error is a step, absorbed by the segment's own intercept. Overnight
  hours, with little throughput, are what separates the first two.

Times are UTC; an *hour* is an integer, hours since the Unix epoch; a *day* is an integer,
Asia/Shanghai days since 1970-01-01 (Beijing time is UTC+8 all year, no daylight saving).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from processors.least_squares import (
    centred,
    days_with_data,
    segment_sums,
    solve,
    window_sums,
)
from processors.timestamps import UTC_US, utc

TANK = ["station_id", "tank_id"]
#: Beijing time is UTC+8 all year.
LOCAL_OFFSET_H = 8
#: After a delivery ends, the product surface and its temperature settle: readings within
#: this time are used neither as a day's boundary nor in the SIR fit (ATG vendors suspend
#: leak tests for a comparable time after a drop).
SETTLE = timedelta(hours=1)
_US_PER_H = 3_600_000_000

DAILY_SCHEMA: dict[str, pl.DataType] = {
    "station_id": pl.String(), "tank_id": pl.String(), "day": pl.Date(),
    "day_start": UTC_US, "day_end": UTC_US,
    "opening_at": UTC_US, "opening_20_l": pl.Float64(),
    "closing_at": UTC_US, "closing_20_l": pl.Float64(),
    "deliveries_20_l": pl.Float64(), "deliveries": pl.Int64(),
    "sales_20_l": pl.Float64(), "sales": pl.Int64(),
    "book_20_l": pl.Float64(), "variance_20_l": pl.Float64(),
    "variance_pct_of_sales": pl.Float64(), "tolerance_20_l": pl.Float64(),
    "readings": pl.Int64(), "result": pl.String(),
}  # fmt: skip


def day_of(hour: pl.Expr) -> pl.Expr:
    """The Asia/Shanghai day number of an hour number."""
    return (hour + LOCAL_OFFSET_H).floordiv(24)


def day_start(day: pl.Expr) -> pl.Expr:
    """The UTC instant at which local day number ``day`` starts."""
    return ((day * 24 - LOCAL_OFFSET_H) * _US_PER_H).cast(pl.Datetime("us")).dt.replace_time_zone(
        "UTC"
    )


def day_date(day: pl.Expr) -> pl.Expr:
    """Local day number → its calendar date."""
    return day.cast(pl.Int32).cast(pl.Date)


def day_number(at: datetime) -> int:
    """The Asia/Shanghai day number of an instant."""
    return (int(at.timestamp()) // 3600 + LOCAL_OFFSET_H) // 24


def _keys(frame: pl.DataFrame, keys: list[str]) -> list[pl.Expr]:
    return [pl.col(k).cast(pl.String) for k in keys]


def _settling(deliveries: pl.DataFrame, settle: timedelta) -> pl.DataFrame:
    """Per tank, in order of start: each delivery's start (``_start``), until when any
    delivery started so far still disturbs the gauge (``_busy_until``), and how many
    deliveries have started (``_segment``)."""
    return (
        deliveries.select(
            *_keys(deliveries, TANK),
            utc(deliveries, "started_at").alias("_start"),
            (utc(deliveries, "ended_at") + settle).alias("_busy_until"),
        )
        .sort("_start")
        .with_columns(
            pl.col("_busy_until").cum_max().over(TANK),
            _segment=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(TANK),
        )
    )


def _quiet(frame: pl.DataFrame, at: str, settling: pl.DataFrame, at_end: str | None = None,
           ) -> pl.DataFrame:  # fmt: skip
    """``frame`` with ``_quiet`` (no delivery disturbs [at, at_end)) and ``_segment`` (the
    number of deliveries started before ``at_end``, or ``at``)."""
    probe = at_end or at
    joined = frame.sort(probe).join_asof(
        settling.with_columns(_probe=pl.col("_start")), left_on=probe, right_on="_probe",
        by=TANK, strategy="backward", allow_exact_matches=at_end is not None,
        check_sortedness=False,
    )  # fmt: skip
    return joined.with_columns(
        _quiet=pl.col("_busy_until").is_null() | (pl.col(at) >= pl.col("_busy_until")),
        _segment=pl.col("_segment").fill_null(0),
    ).drop("_start", "_busy_until", "_probe", strict=False)


def _running(events: pl.DataFrame, at: str, **values: pl.Expr) -> pl.DataFrame:
    """Per tank, running totals of ``values`` up to and including each instant ``at``."""
    return (
        events.group_by(*TANK, at)
        .agg(**values)
        .sort(at)
        .select(*TANK, pl.col(at).alias("_t"), *[pl.col(n).cum_sum().over(TANK) for n in values])
    )


def _as_of(left: pl.DataFrame, running: pl.DataFrame, at: str, suffix: str) -> pl.DataFrame:
    """``left`` with each running total at the instant in column ``at`` (0 before any)."""
    names = [c for c in running.columns if c not in (*TANK, "_t")]
    joined = left.sort(at).join_asof(
        running, left_on=at, right_on="_t", by=TANK, strategy="backward", check_sortedness=False
    )
    return joined.drop("_t", strict=False).with_columns(
        pl.col(n).fill_null(0).alias(n + suffix) for n in names
    ).drop(names)  # fmt: skip


def _under_way(sales: pl.DataFrame, days: pl.DataFrame) -> pl.DataFrame:
    """Per tank and boundary reading instant (``_b``), the litres already drawn then by
    sales under way (started before, ended after it), at a steady flow (``_p``). Empty
    when ``sales`` has no ``started_at``. A sale spans at most one boundary (minutes vs
    a day)."""
    if "started_at" not in sales.columns:
        return pl.DataFrame(schema={"station_id": pl.String(), "tank_id": pl.String(),
                                    "_b": UTC_US, "_p": pl.Float64()})  # fmt: skip
    bounds = pl.concat([days.select(*TANK, _b=pl.col(c)) for c in ("opening_at", "closing_at")])
    bounds = bounds.unique().with_columns(_next=pl.col("_b")).sort("_next")
    running = sales.select(
        *_keys(sales, TANK), utc(sales, "started_at").alias("_s"), utc(sales, "at").alias("_e"),
        pl.col("volume_20_l").cast(pl.Float64),
    ).filter(pl.col("_e") > pl.col("_s")).sort("_s")  # fmt: skip
    hit = running.join_asof(bounds, left_on="_s", right_on="_next", by=TANK, strategy="forward",
                            allow_exact_matches=False, check_sortedness=False)  # fmt: skip
    fraction = (pl.col("_b") - pl.col("_s")) / (pl.col("_e") - pl.col("_s"))
    return (
        hit.filter(pl.col("_b") < pl.col("_e"))
        .group_by(*TANK, "_b")
        .agg(_p=(pl.col("volume_20_l") * fraction).sum())
    )


def daily_reconciliation(
    readings: pl.DataFrame,
    sales: pl.DataFrame,
    deliveries: pl.DataFrame,
    *,
    tolerance_pct: float,
    tolerance_min_l: float,
    max_reading_age: timedelta,
    settle: timedelta = SETTLE,
) -> pl.DataFrame:
    """Each tank's book against its gauge, per Asia/Shanghai day (columns :data:`DAILY_SCHEMA`).

    ``readings``: station_id, tank_id, read_at, volume_20_l. ``sales``: station_id,
    tank_id, at (when the sale ended), volume_20_l, and optionally started_at.
    ``deliveries``: station_id, tank_id, started_at, ended_at, volume_20_l. Litres at
    20 °C, times UTC.

    A day runs from its *opening* reading to its *closing* reading: the last reading at or
    before its local 00:00 (and the next day's) that no delivery disturbs (a delivery in
    progress, or ended less than ``settle`` earlier, pushes it back to before that
    delivery), at most ``max_reading_age`` old. Sales count by when they ended, deliveries
    by when their unloading ended, both in (opening_at, closing_at]: each litre falls in
    exactly one day and a delivery spanning midnight in the day it completed — except
    that a sale under way at a boundary reading (given ``started_at``) counts pro rata,
    at a steady flow, on both sides, as the gauge saw it (``sales`` still counts it once,
    on the day it ended). Then::

        book_20_l = opening + deliveries − sales;  variance_20_l = closing − book
        tolerance_20_l = max(tolerance_pct % × sales, tolerance_min_l)

    ``result``: ``pass`` (|variance| ≤ tolerance), ``fail``, or ``inconclusive`` (no usable
    reading at one end: the numbers are null). One row per day from each tank's first
    reading's day to its last's.
    """
    settling = _settling(deliveries, settle)
    gauge = readings.select(*_keys(readings, TANK), utc(readings, "read_at"),
                            pl.col("volume_20_l").cast(pl.Float64))  # fmt: skip
    clean = _quiet(gauge, "read_at", settling).filter("_quiet").select(
        *TANK, pl.col("read_at").alias("_b"), pl.col("read_at").alias("_at"),
        pl.col("volume_20_l").alias("_v"),
    ).sort("_b")  # fmt: skip
    span = gauge.group_by(TANK).agg(first=pl.col("read_at").min(), last=pl.col("read_at").max())
    local = [pl.col(c).dt.convert_time_zone("Asia/Shanghai").dt.truncate("1d")
             .dt.convert_time_zone("UTC") for c in ("first", "last")]  # fmt: skip
    days = (
        span.select(*TANK, day_start=pl.datetime_ranges(local[0], local[1], "1d"))
        .explode("day_start")
        .with_columns(pl.col("day_start").cast(UTC_US))
        .with_columns(day_end=pl.col("day_start") + timedelta(days=1))
    )
    asof = {"by": TANK, "strategy": "backward", "tolerance": max_reading_age,
            "check_sortedness": False}  # fmt: skip
    days = (
        days.sort("day_start")
        .join_asof(clean, left_on="day_start", right_on="_b", **asof)  # type: ignore[arg-type]
        .rename({"_at": "opening_at", "_v": "opening_20_l"}).drop("_b", strict=False)
        .sort("day_end")
        .join_asof(clean, left_on="day_end", right_on="_b", **asof)  # type: ignore[arg-type]
        .rename({"_at": "closing_at", "_v": "closing_20_l"}).drop("_b", strict=False)
    )  # fmt: skip
    complete = days.filter(pl.col("opening_at").is_not_null() & pl.col("closing_at").is_not_null())
    sold = _running(sales.select(*_keys(sales, TANK), utc(sales, "at"),
                                 pl.col("volume_20_l").cast(pl.Float64)),
                    "at", s=pl.col("volume_20_l").sum(), n=pl.len().cast(pl.Int64))  # fmt: skip
    came = _running(deliveries.select(*_keys(deliveries, TANK), utc(deliveries, "ended_at"),
                                      pl.col("volume_20_l").cast(pl.Float64)),
                    "ended_at", d=pl.col("volume_20_l").sum(),
                    m=pl.len().cast(pl.Int64))  # fmt: skip
    read = _running(gauge, "read_at", r=pl.len().cast(pl.Int64))
    under_way = _under_way(sales, complete)
    for at, suffix in (("opening_at", "_0"), ("closing_at", "_1")):
        complete = _as_of(_as_of(_as_of(complete, sold, at, suffix), came, at, suffix),
                          read, at, suffix)  # fmt: skip
        complete = complete.join(under_way.rename({"_b": at, "_p": f"p{suffix}"}),
                                 on=[*TANK, at], how="left")  # fmt: skip
    sales_l = (pl.col("s_1") + pl.col("p_1").fill_null(0.0)
               - pl.col("s_0") - pl.col("p_0").fill_null(0.0))  # fmt: skip
    complete = complete.select(
        *TANK, "day_start",
        sales_20_l=sales_l, sales=pl.col("n_1") - pl.col("n_0"),
        deliveries_20_l=pl.col("d_1") - pl.col("d_0"), deliveries=pl.col("m_1") - pl.col("m_0"),
        readings=pl.col("r_1") - pl.col("r_0") + 1,
        tolerance_20_l=pl.max_horizontal(tolerance_pct / 100.0 * sales_l.abs(),
                                         pl.lit(tolerance_min_l)),
    )  # fmt: skip
    out = days.join(complete, on=[*TANK, "day_start"], how="left").with_columns(
        book_20_l=pl.col("opening_20_l") + pl.col("deliveries_20_l") - pl.col("sales_20_l"),
        day=pl.col("day_start").dt.convert_time_zone("Asia/Shanghai").dt.date(),
    ).with_columns(variance_20_l=pl.col("closing_20_l") - pl.col("book_20_l"))
    out = out.with_columns(
        variance_pct_of_sales=pl.when(pl.col("sales_20_l") > 0)
        .then(100.0 * pl.col("variance_20_l") / pl.col("sales_20_l")),
        result=pl.when(pl.col("variance_20_l").is_null()).then(pl.lit("inconclusive"))
        .when(pl.col("variance_20_l").abs() <= pl.col("tolerance_20_l")).then(pl.lit("pass"))
        .otherwise(pl.lit("fail")),
    )  # fmt: skip
    return out.select(list(DAILY_SCHEMA)).cast(DAILY_SCHEMA).sort(*TANK, "day")  # type: ignore[arg-type]


# --- statistical inventory reconciliation (SIR) -------------------------------------------


#: Dispensers per tank the SIR fit tells apart, most litres sold first; any others share
#: the last slot (and are not attributed one by one).
SLOTS = 6
#: The SIR fit's regressors: elapsed time (h), each dispenser slot's cumulative sales (L)
#: and the thermal term (L·°C, see :func:`design`).
XS = ["t_h", *[f"x{k}_20_l" for k in range(1, SLOTS + 1)], "thermal_l_c"]


def dispenser_slots(sales: pl.DataFrame) -> pl.DataFrame:
    """Each tank's dispensers (from ``sales``: station_id, tank_id, dispenser_id,
    sold_20_l) in slots 1…SLOTS by litres sold; ``shared``: the slot holds several."""
    by = [*TANK, "dispenser_id"]
    ranked = (
        sales.group_by(*_keys(sales, by)).agg(pl.col("sold_20_l").sum())
        .sort("sold_20_l", "dispenser_id", descending=[True, False])
        .with_columns(slot=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(TANK)
                      .clip(None, SLOTS))
    )  # fmt: skip
    return ranked.with_columns(shared=pl.len().over(*TANK, "slot") > 1).select(
        *by, "slot", "shared"
    )


def design(hours: pl.DataFrame, sales: pl.DataFrame, deliveries: pl.DataFrame,
           settle: timedelta = SETTLE) -> pl.DataFrame:  # fmt: skip
    """The hours of each tank usable for SIR, with their segment and variables.

    ``hours`` (one row per tank and hour with readings, as ``slow_leak.HOURS_SQL`` gives):
    station_id, tank_id, hour, readings, t_h (mean reading instant, hours since the
    epoch), measured_20_l (mean reading), sold_20_l (mean over the readings of the
    cumulative sales up to each, from any fixed origin), temperature_c (mean of the
    readings'). ``sales`` (as ``slow_leak.HOURLY_SALES_SQL`` gives):
    station_id, tank_id, dispenser_id, hour, sold_20_l. ``deliveries``: station_id,
    tank_id, started_at, ended_at.

    Returns station_id, tank_id, hour, day, segment, readings, t_h, y_20_l (measured +
    sold), ``x<k>_20_l``, the cumulative sales of the dispensers in slot k
    (:func:`dispenser_slots`) from the first hour of ``sales`` to the readings (an hour's
    sales are taken as spread evenly over it, the readings at their mean instant), and
    thermal_l_c = measured × (temperature − the segment's mean temperature); without the
    hours a delivery disturbs (they overlap [started_at, ended_at + settle)). The origins
    of the cumulative sums do not matter: each segment has its own intercept.

    The thermal term's coefficient is an error δβ of the expansion coefficient behind
    the conversion to 20 °C (the gauge converts with the last delivery's density, not
    the mix's; and tables are not the fuel): it puts δβ · V · (T − T̄) on the measured
    stock, a daily and seasonal swing that would otherwise lean on the leak estimate.
    The rest of that error, δβ · V · (T̄ − 20), is linear in the sales and left to the
    dispensers' terms (a shift of a few hundredths of a percent, common to all).
    """
    frame = hours.with_columns(
        *_keys(hours, TANK), pl.col("hour").cast(pl.Int64),
        _from=(pl.col("hour").cast(pl.Int64) * _US_PER_H).cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC"),
    ).with_columns(_to=pl.col("_from") + timedelta(hours=1) - timedelta(microseconds=1))
    usable = _quiet(frame, "_from", _settling(deliveries, settle), at_end="_to")
    rows = usable.filter("_quiet").select(
        *TANK, "hour", day=day_of(pl.col("hour")), segment="_segment",
        readings=pl.col("readings").cast(pl.Int64), t_h=pl.col("t_h").cast(pl.Float64),
        _f=(pl.col("t_h") - pl.col("hour")).clip(0.0, 1.0),
        y_20_l=(pl.col("measured_20_l") + pl.col("sold_20_l")).cast(pl.Float64),
        _v=pl.col("measured_20_l").cast(pl.Float64),
        _temp=pl.col("temperature_c").cast(pl.Float64),
    ).with_columns(
        thermal_l_c=pl.col("_v") * (pl.col("_temp") - pl.col("_temp").mean().over(*TANK, "segment"))
    ).sort("hour")  # as-of lookups need time order within a tank; string sorts are slow
    by = [*TANK, "dispenser_id"]
    hourly = sales.select(*_keys(sales, by), pl.col("hour").cast(pl.Int64),
                          pl.col("sold_20_l").cast(pl.Float64))  # fmt: skip
    slots = dispenser_slots(hourly)
    cum = (
        hourly.join(slots.select(*by, "slot"), on=by)
        .group_by(*TANK, "slot", "hour").agg(pl.col("sold_20_l").sum())
        .sort("hour")
        .with_columns(_cum=pl.col("sold_20_l").cum_sum().over(*TANK, "slot"), _h=pl.col("hour"))
    )  # fmt: skip
    columns = []
    for k in range(1, SLOTS + 1):  # one as-of lookup per slot (a fixed few), not per row
        rows = rows.join_asof(
            cum.filter(pl.col("slot") == k).select(*TANK, "_h", "_cum", "sold_20_l"),
            left_on="hour", right_on="_h", by=TANK, strategy="backward", check_sortedness=False,
        )  # fmt: skip
        # up to the readings: all before the hour, and the share of the hour before them
        unread = pl.when(pl.col("_h") == pl.col("hour")).then(
            (1.0 - pl.col("_f")) * pl.col("sold_20_l")
        ).otherwise(0.0)  # fmt: skip
        name = f"x{k}_20_l"
        rows = rows.with_columns((pl.col("_cum") - unread).fill_null(0.0).alias(name)).drop(
            "_h", "_cum", "sold_20_l", strict=False
        )
        columns.append(name)
    return rows.select(*TANK, "hour", "day", "segment", "readings", "t_h", "y_20_l", *columns,
                       "thermal_l_c")  # fmt: skip


def end_days(frame: pl.DataFrame, keys: list[str], scope: pl.DataFrame, now: datetime,
              window_days: int) -> pl.DataFrame:  # fmt: skip
    """The window end days to test, per ``keys`` of ``frame`` (with an ``hour`` column):
    complete local days (ended by ``now``) whose whole window the data covers (the first
    hour's day is at or before the window's first), up to the last day with data, and
    from the first day of the month of the day before ``since`` on (scope: station_id,
    since) — so every monthly episode that may end at or after ``since`` is rebuilt."""
    today = day_number(now)
    day = day_of(pl.col("hour").cast(pl.Int64))
    bounds = frame.group_by(*_keys(frame, keys)).agg(first=day.min(), last=day.max())
    since = scope.select(
        pl.col("station_id").cast(pl.String),
        _month=(pl.col("since").dt.convert_time_zone("Asia/Shanghai").dt.date()
                - timedelta(days=1)).dt.month_start().cast(pl.Int32).cast(pl.Int64),
    )  # fmt: skip
    bounds = bounds.join(since, on="station_id").with_columns(
        _lo=pl.max_horizontal(pl.col("first") + window_days - 1, pl.col("_month")),
        _hi=pl.min_horizontal(pl.col("last"), pl.lit(today - 1, pl.Int64)),
    ).filter(pl.col("_lo") <= pl.col("_hi"))
    return bounds.select(*keys, end_day=pl.int_ranges("_lo", pl.col("_hi") + 1)).explode(
        "end_day"
    ).with_columns(pl.col("end_day").cast(pl.Int64))


def within(frame: pl.DataFrame, ends: pl.DataFrame, window_days: int) -> pl.DataFrame:
    """The rows of an hourly ``frame`` (station_id, tank_id, hour, …) of the tanks in
    ``ends`` that the windows ending on those days need."""
    bounds = ends.group_by(TANK).agg(
        _lo=(pl.col("end_day").min() - window_days + 1) * 24 - LOCAL_OFFSET_H,
        _hi=(pl.col("end_day").max() + 1) * 24 - LOCAL_OFFSET_H,
    )
    keyed = frame.with_columns(_keys(frame, TANK))
    return keyed.join(bounds, on=TANK).filter(
        (pl.col("hour") >= pl.col("_lo")) & (pl.col("hour") < pl.col("_hi"))
    ).drop("_lo", "_hi")


def split_recent(ends: pl.DataFrame, scope: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``ends`` (station_id, …, end_day) split into the days from the one before
    ``since`` on (what new data may have changed, and what ends at or after ``since``)
    and the earlier ones (needed only to rebuild the month of a tank that fails)."""
    since = scope.select(
        pl.col("station_id").cast(pl.String),
        _since=day_of(pl.col("since").dt.epoch("ms").floordiv(3_600_000)),
    )
    marked = ends.join(since, on="station_id").with_columns(
        _recent=pl.col("end_day") >= pl.col("_since") - 1
    )
    return (marked.filter("_recent").drop("_since", "_recent"),
            marked.filter(~pl.col("_recent")).drop("_since", "_recent"))  # fmt: skip


def window_fits(design_rows: pl.DataFrame, keys: list[str], xs: list[str], y: str,
                ends: pl.DataFrame, window_days: int) -> pl.DataFrame:  # fmt: skip
    """Least squares of ``y`` on ``xs`` with one intercept per segment, per ``keys`` and
    window end day (``ends``: keys, end_day), over the rows whose day lies in the window.

    Returns keys, end_day, ``b_<x>`` (coefficients), ``se_<x>`` (standard errors from the
    residual variance), ``n`` (hours), ``segments``, ``days`` (days with a usable hour),
    ``readings``, ``dof`` (n − len(xs) − segments) and ``rss`` (residual sum of squares).
    Vectorised: sufficient statistics per key, segment and day, summed over the days of
    each window.
    """
    names = [*xs, y]
    spread = window_sums(design_rows, keys, names, ends, window_days)
    per_segment = segment_sums(spread, keys)
    fits = centred(per_segment, keys, names, ["end_day"]).join(
        days_with_data(spread, keys), on=[*keys, "end_day"],
    )  # fmt: skip
    return solve(fits, xs, y).select(
        *keys, "end_day", *[f"b_{x}" for x in xs], *[f"se_{x}" for x in xs],
        "n", "segments", "days", "readings", "dof", "rss",
    )  # fmt: skip

