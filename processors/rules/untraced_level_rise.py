"""Untraced level rise: fuel came into a tank and no delivery says so.

Between deliveries a tank only loses fuel, to sales. So per tank the *net level*

    net(t) = volume_20_l(t) + Σ sales from the tank up to t      (litres at 20 °C)

stays flat apart from gauge noise, and rises only when fuel comes in. A reading *rises*
when its net level is above the highest of the ``hold`` (``FUELTRACE_UNTRACED_RISE_HOLD_MIN``)
before the previous reading by more than the gauge's noise on a difference
(``FUELTRACE_GAUGE_RISE_MIN_L``), so a recovery from a low reading is no rise; rising
readings less than ``hold`` apart are one rise. It counts only if it *holds*: the lowest
net level from its last rising reading to the first reading ``hold`` later, minus the
highest net level in the ``hold`` up to the reading before it, is above
``FUELTRACE_UNTRACED_RISE_MIN_L``. One bad reading, up or down, cannot pass that, and a
rise is only reported once the readings ``hold`` after it are in.

A rise is explained when a delivery into that tank was unloading within
``FUELTRACE_GAUGE_WINDOW_MIN`` of it; whether the delivery's declared volume matches the
rise is ``delivery_gauge_mismatch``'s question. An unexplained rise is ``critical``
(fuel of unknown origin, no dispatch, no batch), or ``high`` when a delivery into another
tank of the station was unloading then (most likely unloaded into another tank than
declared). Window: the reading before the rise to the reading that confirmed it held;
evidence also names the station's nearest delivery.

Vectorised: the sales are a per-tank cumulative sum looked up as-of each reading, the
windows before and after are rolling extrema by time, the rest is joins of the few
rises found.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import Frames, Reader, Rule, Scope, findings, no_findings

TANK = ["station_id", "tank_id"]


def load(reader: Reader) -> Frames:
    return {
        "readings": reader.records("reading_std", "read_at",
                                   columns="t.station_id, t.tank_id, t.read_at, t.volume_20_l"),
        "sales": reader.records("sale_std", "at",
                                columns='t.station_id, t.tank_id, t."at", t.volume_20_l'),
        "deliveries": reader.records("delivery", "ended_at", columns="""
            t.delivery_id, t.station_id, t.tank_id, t.started_at, t.ended_at""",
            lookback=reader.lookback + timedelta(days=1)),
    }  # fmt: skip


def net_levels(readings: pl.DataFrame, sales: pl.DataFrame, hold: timedelta) -> pl.DataFrame:
    """Readings (sorted per tank by time) with ``sold_l`` (cumulative sales up to the
    reading), ``net_l``, ``before_max_l`` / ``after_min_l`` (the highest net level in the
    ``hold`` up to the reading, the lowest in the ``hold`` from it), ``previous_at`` (the
    previous reading) and ``above_l``: how far the reading is above the highest level in
    the ``hold`` up to the previous reading."""
    cumulative = (
        sales.group_by(*TANK, "at").agg(pl.col("volume_20_l").sum())
        .sort("at")
        .select(*TANK, pl.col("at").alias("read_at"),
                sold_l=pl.col("volume_20_l").cum_sum().over(TANK))
    )  # fmt: skip
    hold_us = int(hold / timedelta(microseconds=1))
    return (
        readings.sort("read_at")
        .join_asof(cumulative, on="read_at", by=TANK, strategy="backward",
                   check_sortedness=False)
        .with_columns(pl.col("sold_l").fill_null(0.0),
                      _back=-pl.col("read_at").dt.epoch("us"))
        .with_columns(net_l=pl.col("volume_20_l") + pl.col("sold_l"))
        .sort(*TANK, "_back")
        .with_columns(after_min_l=pl.col("net_l").rolling_min_by(
            "_back", f"{hold_us}i", closed="both").over(TANK))
        .sort(*TANK, "read_at")
        .with_columns(
            previous_at=pl.col("read_at").shift(1).over(TANK),
            before_max_l=pl.col("net_l").rolling_max_by(
                "read_at", hold, closed="both").over(TANK),
        )
        .with_columns(above_l=pl.col("net_l") - pl.col("before_max_l").shift(1).over(TANK))
        .drop("_back")
    )  # fmt: skip


def rises(levels: pl.DataFrame, step_l: float, hold: timedelta) -> pl.DataFrame:
    """Each rise: (station, tank, ``start_at`` the reading before it, ``end_at`` its last
    rising reading). A reading rises when it is more than ``step_l`` above the highest
    level of the ``hold`` before (so a recovery from a dip does not); rising readings
    less than ``hold`` apart are one rise."""
    rising = levels.filter(pl.col("above_l") > step_l).select(*TANK, "previous_at", "read_at")
    gap = pl.col("previous_at") - pl.col("read_at").shift(1).over(TANK)
    return (
        rising.with_columns(rise=(gap.is_null() | (gap > hold)).cum_sum().over(TANK))
        .group_by(*TANK, "rise")
        .agg(start_at=pl.col("previous_at").min(), end_at=pl.col("read_at").max())
        .drop("rise")
    )


def _at(levels: pl.DataFrame, key: str, **columns: str) -> pl.DataFrame:
    return levels.select(*TANK, pl.col("read_at").alias(key),
                         *[pl.col(c).alias(a) for a, c in columns.items()])  # fmt: skip


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    readings, deliveries = frames["readings"], frames["deliveries"]
    if readings.is_empty():
        return no_findings()
    hold = timedelta(minutes=settings.untraced_rise_hold_min)
    window = timedelta(minutes=settings.gauge_window_min)
    levels = net_levels(readings, frames["sales"], hold)
    confirm = _at(levels, "confirmed_at", confirm_l="net_l").with_columns(
        _from=pl.col("confirmed_at")).sort("_from")  # fmt: skip
    found = (
        rises(levels, settings.gauge_rise_min_l, hold)
        .join(_at(levels, "start_at", volume_before_20_l="volume_20_l",
                  _sold_start="sold_l", _net_start="net_l", _base="before_max_l"),
              on=[*TANK, "start_at"])
        .join(_at(levels, "end_at", volume_after_20_l="volume_20_l", _sold_end="sold_l",
                  _net_end="net_l", _after="after_min_l"),
              on=[*TANK, "end_at"])
        .with_columns(_from=pl.col("end_at") + hold).sort("_from")
        .join_asof(confirm, on="_from", by=TANK, strategy="forward", check_sortedness=False)
        .filter(pl.col("confirmed_at").is_not_null())
        .with_columns(
            held_rise_20_l=pl.min_horizontal("_after", "confirm_l") - pl.col("_base"),
            rise_20_l=pl.col("_net_end") - pl.col("_net_start"),
            sales_during_20_l=pl.col("_sold_end") - pl.col("_sold_start"),
        )
        .filter(pl.col("held_rise_20_l") > settings.untraced_rise_min_l)
    )  # fmt: skip
    if found.is_empty():
        return no_findings()
    # Deliveries unloading within the gauge window of a rise: same tank explains it.
    near = found.select(*TANK, "start_at", "end_at").join(
        deliveries, on="station_id", suffix="_delivery"
    ).filter(
        (pl.col("started_at") - window <= pl.col("end_at"))
        & (pl.col("ended_at") + window >= pl.col("start_at"))
    )  # fmt: skip
    same_tank = pl.col("tank_id") == pl.col("tank_id_delivery")
    explained = near.filter(same_tank).select(*TANK, "start_at")
    other_tank = near.filter(~same_tank).select(*TANK, "start_at").unique().with_columns(
        other_tank=pl.lit(True))
    nearest = (
        found.select(*TANK, "start_at").join(deliveries, on="station_id", suffix="_delivery")
        .with_columns(_distance=(pl.col("started_at") - pl.col("start_at")).abs())
        .sort("_distance", "delivery_id")
        .group_by(*TANK, "start_at", maintain_order=True).first()
        .select(*TANK, "start_at", nearest_delivery_id="delivery_id",
                nearest_delivery_tank_id="tank_id_delivery",
                nearest_delivery_started_at="started_at")
    )  # fmt: skip
    found = (
        found.join(explained, on=[*TANK, "start_at"], how="anti")
        .join(other_tank, on=[*TANK, "start_at"], how="left")
        .join(nearest, on=[*TANK, "start_at"], how="left")
        .with_columns(
            severity=pl.when(pl.col("other_tank").fill_null(False)).then(pl.lit("high"))
            .otherwise(pl.lit("critical")),
            subject=pl.col("tank_id"),
            window_start=pl.col("start_at"),
            window_end=pl.col("confirmed_at"),
        )
    )  # fmt: skip
    return findings(found, [
        "tank_id", pl.col("start_at").alias("rise_started_at"),
        pl.col("end_at").alias("rise_ended_at"), "confirmed_at",
        "volume_before_20_l", "volume_after_20_l", "sales_during_20_l", "rise_20_l",
        "held_rise_20_l", pl.lit(settings.untraced_rise_min_l).alias("min_rise_20_l"),
        pl.lit(settings.untraced_rise_hold_min).alias("hold_min"),
        "nearest_delivery_id", "nearest_delivery_tank_id", "nearest_delivery_started_at",
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    text = (f"Tank {e['tank_id']} rose {e['rise_20_l']:.0f} L at 20 °C with no delivery: "
            f"{e['volume_before_20_l']:.0f} L at {e['rise_started_at']}, "
            f"{e['volume_after_20_l']:.0f} L at {e['rise_ended_at']}, with "
            f"{e['sales_during_20_l']:.0f} L sold meanwhile; at least "
            f"{e['held_rise_20_l']:.0f} L held for {e['hold_min']:g} min (until "
            f"{e['confirmed_at']}; reported from {e['min_rise_20_l']:.0f} L).")  # fmt: skip
    if e["nearest_delivery_id"] is None:
        return text + " The station reported no delivery near it."
    return (text + f" Nearest delivery: {e['nearest_delivery_id']} into tank "
            f"{e['nearest_delivery_tank_id']}, started {e['nearest_delivery_started_at']}.")


RULE = Rule(
    name="untraced_level_rise",
    title="Tank level rise without a delivery",
    title_zh="无卸油记录的液位上升",
    load=load,
    detect=detect,
    describe=describe,
    # A rise confirmed after ``since``, with the hold before it: FUELTRACE_UNTRACED_RISE_HOLD_MIN
    # up to ~3 h. Readings are the bulk of the data; a day would double what each run reads.
    lookback=timedelta(hours=12),
)
