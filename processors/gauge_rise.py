"""Each declared delivery against the rise the automatic tank gauge (ATG) saw.

Pure Polars, no I/O. For a delivery into a tank, the gauge brackets the unloading with the
last reading at or before ``started_at`` and the first at or after ``ended_at``; what came in
is what the level rose by plus what the dispensers drew from that tank meanwhile::

    gauge_rise_20_l       = after − before + D(after.read_at) − D(before.read_at)
    D(t) = litres the tank's sales had drawn by t: those ended by t whole, those running at t
           for their part so far (each draws evenly from started_at to its end)
    gauge_difference_20_l = declared volume_20_l − gauge_rise_20_l

Units: litres at 20 °C throughout (tank readings and sales already standardised by the
lineage job, ``reading_std`` / ``sale_std``), times UTC.

Settings used (:class:`fueltrace.settings.Settings`):

- ``gauge_window_min`` (minutes): how far before ``started_at`` / after ``ended_at`` a
  bracketing reading may lie; none within it → ``no_readings``;
- ``gauge_rise_tolerance_pct`` (%, of the declared volume at 20 °C) and ``gauge_rise_min_l``
  (litres): ``mismatch`` when ``|difference| > max(pct % × declared, min_l)``.

Vectorised throughout: the brackets are two ``join_asof`` lookups per (station, tank), and the
sales between them the difference of two as-of lookups into the per-tank cumulative sum of
sales, so millions of readings and sales cost a sort each, and every delivery is computed on
its own (deliveries into one tank with overlapping windows do not interfere).
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from fueltrace.settings import Settings
from processors.timestamps import utc

__all__ = ["GAUGE_SCHEMA", "gauge_rise"]

#: Columns of the result, one row per delivery.
GAUGE_SCHEMA: dict[str, pl.DataType] = {
    "delivery_id": pl.String(),
    "gauge_before_at": pl.Datetime("us", "UTC"),
    "gauge_after_at": pl.Datetime("us", "UTC"),
    "gauge_rise_20_l": pl.Float64(),
    "gauge_difference_20_l": pl.Float64(),
    "gauge_status": pl.String(),
}

_TANK = ["station_id", "tank_id"]


def _tank_keys(frame: pl.DataFrame) -> list[pl.Expr]:
    return [pl.col(name).cast(pl.String) for name in _TANK]


def _cumulative_sales(sales: pl.DataFrame) -> pl.DataFrame:
    """Per tank and instant, litres sold up to and including it (station, tank, at, cum_l)."""
    return (
        sales.select(*_tank_keys(sales), utc(sales, "at"), pl.col("volume_20_l").cast(pl.Float64))
        .group_by(*_TANK, "at")
        .agg(pl.col("volume_20_l").sum())  # one row per instant: as-of ties are unambiguous
        .sort("at")  # sorted by time, a per-tank window sums each tank in time order
        .select(*_TANK, "at", cum_l=pl.col("volume_20_l").cum_sum().over(_TANK))
    )


def _sold_up_to(left: pl.DataFrame, cumulative: pl.DataFrame, at: str, name: str) -> pl.DataFrame:
    """``left`` with ``name``: the tank's cumulative sales at the instant in column ``at``."""
    looked_up = (
        left.sort(at)
        .join_asof(
            cumulative.rename({"at": at}),
            on=at,
            by=_TANK,
            strategy="backward",
            check_sortedness=False,
        )
        .rename({"cum_l": name})
    )
    return looked_up.with_columns(pl.col(name).fill_null(0.0))


def _drawn_by_sales_in_progress(left: pl.DataFrame, sales: pl.DataFrame, at: str,
                                name: str) -> pl.DataFrame:  # fmt: skip
    """``left`` with ``name``: litres the sales still running at the instant in ``at`` had
    already drawn from the tank then (a dispenser draws evenly from ``started_at`` to
    ``at``, its end), so a gauge reading taken mid-sale is matched by the part that left.

    Each nozzle runs one sale at a time: per nozzle of the tank, the first sale ending
    after the instant is the one in progress if it started before it.
    """
    nozzles = sales.select(*_tank_keys(sales), pl.col("nozzle_id").cast(pl.String)).unique()
    running = (
        sales.select(
            *_tank_keys(sales),
            pl.col("nozzle_id").cast(pl.String),
            utc(sales, "started_at").alias("_began"),
            utc(sales, "at").alias(at),
            pl.col("volume_20_l").cast(pl.Float64).alias("_v"),
        )
        .with_columns(_ended=pl.col(at))
        .sort(at)
    )
    probes = left.select("_row", *_TANK, at).join(nozzles, on=_TANK).sort(at)
    found = probes.join_asof(running, on=at, by=[*_TANK, "nozzle_id"], strategy="forward",
                             check_sortedness=False)  # fmt: skip
    part = (
        pl.when((pl.col("_began") < pl.col(at)) & (pl.col("_ended") > pl.col(at)))
        .then(pl.col("_v") * (pl.col(at) - pl.col("_began")).dt.total_microseconds()
              / (pl.col("_ended") - pl.col("_began")).dt.total_microseconds())
        .otherwise(0.0)
    )  # fmt: skip
    drawn = found.group_by("_row").agg(part.sum().alias(name))
    return left.join(drawn, on="_row", how="left").with_columns(pl.col(name).fill_null(0.0))


def gauge_rise(
    delivery: pl.DataFrame, readings: pl.DataFrame, sales: pl.DataFrame, settings: Settings
) -> pl.DataFrame:
    """The gauge's view of every delivery: one row per delivery, in input order.

    ``delivery``: ``delivery_id``, ``station_id``, ``tank_id``, ``started_at``, ``ended_at``,
    ``volume_20_l`` (declared litres at 20 °C; where null, ``volume_l`` if the frame has it).
    ``readings``: ``station_id``, ``tank_id``, ``read_at``, ``volume_20_l`` (tank contents, L at
    20 °C). ``sales``: ``station_id``, ``tank_id``, ``at`` (when the litres left the tank),
    ``volume_20_l``, and optionally ``started_at`` and ``nozzle_id``: then a sale still
    running at a bracketing reading counts for the part it had drawn by then (as the gauge
    saw it) instead of whole at its end. Timestamps any Datetime unit, UTC (naive: UTC).

    Columns :data:`GAUGE_SCHEMA`: the instants of the two bracketing readings, the rise and
    ``declared − rise`` in litres at 20 °C, and ``gauge_status``: ``no_readings`` (a bracket
    missing within ``gauge_window_min``; rise and difference null), ``mismatch`` (|difference|
    above ``max(gauge_rise_tolerance_pct % × declared, gauge_rise_min_l)``, or no declared
    volume to compare) or ``ok``.
    """
    window = timedelta(minutes=settings.gauge_window_min)
    declared = pl.col("volume_20_l").cast(pl.Float64)
    if "volume_l" in delivery.columns:
        declared = pl.coalesce(declared, pl.col("volume_l").cast(pl.Float64))
    left = delivery.with_row_index("_row").select(
        "_row",
        pl.col("delivery_id").cast(pl.String),
        *_tank_keys(delivery),
        utc(delivery, "started_at").alias("_start"),
        utc(delivery, "ended_at").alias("_end"),
        declared.alias("_declared"),
    )
    gauge = readings.select(
        *_tank_keys(readings),
        utc(readings, "read_at"),
        pl.col("volume_20_l").cast(pl.Float64),
    ).sort("read_at")
    before = gauge.rename({"read_at": "_start", "volume_20_l": "_before_l"}).with_columns(
        gauge_before_at=pl.col("_start")
    )
    after = gauge.rename({"read_at": "_end", "volume_20_l": "_after_l"}).with_columns(
        gauge_after_at=pl.col("_end")
    )
    asof = {"by": _TANK, "tolerance": window, "check_sortedness": False}
    bracketed = (
        left.sort("_start")
        .join_asof(before, on="_start", strategy="backward", **asof)  # type: ignore[arg-type]
        .sort("_end")
        .join_asof(after, on="_end", strategy="forward", **asof)  # type: ignore[arg-type]
    )

    # Sales strictly after the first bracket and up to the second: S(after) − S(before),
    # looked up only where both brackets exist (as-of keys must not be null).
    complete = bracketed.filter(
        pl.col("gauge_before_at").is_not_null() & pl.col("gauge_after_at").is_not_null()
    ).select("_row", *_TANK, "gauge_before_at", "gauge_after_at")
    cumulative = _cumulative_sales(sales)
    sold = _sold_up_to(complete, cumulative, "gauge_before_at", "_sold_before")
    sold = _sold_up_to(sold, cumulative, "gauge_after_at", "_sold_after")
    if {"started_at", "nozzle_id"} <= set(sales.columns):  # sales running at a reading
        sold = _drawn_by_sales_in_progress(sold, sales, "gauge_before_at", "_part_before")
        sold = _drawn_by_sales_in_progress(sold, sales, "gauge_after_at", "_part_after")
        sold = sold.with_columns(_sold_before=pl.col("_sold_before") + pl.col("_part_before"),
                                 _sold_after=pl.col("_sold_after") + pl.col("_part_after"))
    sold = sold.select("_row", _sold=pl.col("_sold_after") - pl.col("_sold_before"))

    rise = pl.col("_after_l") - pl.col("_before_l") + pl.col("_sold")
    difference = pl.col("_declared") - pl.col("gauge_rise_20_l")
    allowed = pl.max_horizontal(
        settings.gauge_rise_tolerance_pct / 100.0 * pl.col("_declared").abs(),
        pl.lit(settings.gauge_rise_min_l),
    )
    status = (
        pl.when(pl.col("gauge_rise_20_l").is_null())
        .then(pl.lit("no_readings"))
        .when(pl.col("gauge_difference_20_l").abs() <= allowed)
        .then(pl.lit("ok"))
        .otherwise(pl.lit("mismatch"))
    )
    return (
        bracketed.join(sold, on="_row", how="left")
        .with_columns(gauge_rise_20_l=pl.when(pl.col("_sold").is_not_null()).then(rise))
        .with_columns(gauge_difference_20_l=difference)
        .with_columns(gauge_status=status)
        .sort("_row")
        .select(list(GAUGE_SCHEMA))
        .cast(GAUGE_SCHEMA)  # type: ignore[arg-type]
    )
