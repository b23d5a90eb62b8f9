"""Delivery vs tank gauge: the declared receipt against the rise the ATG saw.

``processors.gauge_rise`` fills ``delivery_check.gauge_*``: the tank readings bracketing
the unloading (within ``FUELTRACE_GAUGE_WINDOW_MIN``), the level change plus the sales
drawn from the tank meanwhile (the gauge's rise, litres at 20 °C), and ``mismatch`` when
declared − rise exceeds ``max(FUELTRACE_GAUGE_RISE_TOLERANCE_PCT % × declared,
FUELTRACE_GAUGE_RISE_MIN_L)``. This rule reports each such delivery:

* the gauge saw **less** than declared (a short delivery booked as full: the tanker kept
  part of the load, or it went into another tank) — ``high``;
* the gauge saw **more** than declared (fuel beyond the waybill went into the tank:
  untraced fuel riding on a legitimate delivery) — ``critical``.

The window spans the readings that may bracket the unloading (its start and end widened
by ``FUELTRACE_GAUGE_WINDOW_MIN``), so readings reported late are in the engine's scope.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import Frames, Reader, Rule, Scope, findings, no_findings


def load(reader: Reader) -> Frames:
    # Deliveries whose widened window reaches the scope: the gauge window is ≤ a day.
    return {"checks": reader.sql("""
        SELECT d.station_id, c.delivery_id, c.dispatch_id, c.received_20_l,
               c.gauge_rise_20_l, c.gauge_difference_20_l, d.tank_id, d.product,
               d.vehicle_plate, d.started_at, d.ended_at
        FROM delivery_check c JOIN delivery d ON d.delivery_id = c.delivery_id
        JOIN scope s ON s.station_id = d.station_id
        WHERE d.ended_at >= s.load_from AND c.gauge_status = 'mismatch'
          AND c.gauge_rise_20_l IS NOT NULL
    """)}  # fmt: skip


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    checks = frames["checks"]
    if checks.is_empty():
        return no_findings()
    window = timedelta(minutes=settings.gauge_window_min)
    declared, difference = pl.col("received_20_l"), pl.col("gauge_difference_20_l")
    tolerance = pl.max_horizontal(
        settings.gauge_rise_tolerance_pct / 100.0 * declared.abs(),
        pl.lit(settings.gauge_rise_min_l),
    )
    found = checks.with_columns(
        severity=pl.when(difference < 0).then(pl.lit("critical")).otherwise(pl.lit("high")),
        subject=pl.col("delivery_id"),
        window_start=pl.col("started_at") - window,
        window_end=pl.col("ended_at") + window,
    )
    return findings(found, [
        "delivery_id", "dispatch_id", "tank_id", "product", "vehicle_plate",
        pl.col("received_20_l").alias("declared_20_l"), "gauge_rise_20_l",
        pl.col("gauge_difference_20_l").alias("difference_20_l"),
        pl.when(declared != 0).then(100.0 * difference / declared).alias("difference_pct"),
        tolerance.alias("tolerance_20_l"),
        pl.col("started_at").alias("unloading_started_at"),
        pl.col("ended_at").alias("unloading_ended_at"),
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    if e["difference_20_l"] < 0:
        what = f"the gauge saw {-e['difference_20_l']:.0f} L more than declared"
    else:
        what = f"the gauge saw {e['difference_20_l']:.0f} L less than declared"
    waybill = f"dispatch {e['dispatch_id']}" if e["dispatch_id"] else "no dispatch"
    return (f"Delivery {e['delivery_id']} ({waybill}, tanker {e['vehicle_plate']}) into tank "
            f"{e['tank_id']}, unloaded {e['unloading_started_at']}–"
            f"{e['unloading_ended_at']}: declared {e['declared_20_l']:.0f} L at 20 °C, the tank "
            f"gauge rose {e['gauge_rise_20_l']:.0f} L (level change plus sales meanwhile); "
            f"{what} (tolerance {e['tolerance_20_l']:.0f} L).")  # fmt: skip


RULE = Rule(
    name="delivery_gauge_mismatch",
    title="Delivery does not match the tank gauge",
    title_zh="卸油量与液位仪不符",
    load=load,
    detect=detect,
    describe=describe,
    lookback=timedelta(days=1),
)
