"""Delivery without dispatch: fuel unloaded into a station tank that no depot dispatched.

Every legitimate load leaves a depot with a dispatch record (batch, tanker, seals); the
station's delivery record names it. The matching job (``processors.matching`` →
``delivery_check``) already says which deliveries have none. Three kinds, all untraced
fuel (its batch is ``UNTRACED:<delivery_id>`` in the lineage):

* ``no_dispatch`` — the station names no dispatch at all: fuel of unknown origin, with no
  quality certificate behind it (``critical``);
* ``unknown_dispatch`` — it names a dispatch no depot reported: a forged or mistyped
  waybill, or a depot whose upload lags the station's; the dispatch arriving later
  resolves the finding (``high``);
* ``dispatch_already_received`` — it names a dispatch an earlier delivery already
  claimed: one waybill covering two loads, the second off the books (``critical``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import Frames, Reader, Rule, Scope, findings, no_findings

SEVERITY = {"no_dispatch": "critical", "unknown_dispatch": "high",
            "dispatch_already_received": "critical"}  # fmt: skip


def load(reader: Reader) -> Frames:
    untraced = reader.sql("""
        SELECT d.station_id, c.delivery_id, c.dispatch_id, c.status, c.mismatches,
               c.received_20_l, d.tank_id, d.product, d.vehicle_plate, d.seals_intact,
               d.started_at, d.ended_at
        FROM delivery_check c JOIN delivery d ON d.delivery_id = c.delivery_id
        JOIN scope s ON s.station_id = d.station_id
        WHERE d.ended_at >= s.load_from
          AND (c.status IN ('no_dispatch', 'unknown_dispatch')
               OR list_contains(c.mismatches, 'duplicate_claim'))
    """)  # fmt: skip
    # Every delivery claiming a dispatch that one of those claims again: the first claimant.
    claims = reader.sql("""
        SELECT x.delivery_id, x.dispatch_id, x.station_id, x.started_at FROM delivery x
        WHERE x.dispatch_id IN (
            SELECT c.dispatch_id FROM delivery_check c
            JOIN delivery d ON d.delivery_id = c.delivery_id
            JOIN scope s ON s.station_id = d.station_id
            WHERE d.ended_at >= s.load_from AND list_contains(c.mismatches, 'duplicate_claim'))
    """)  # fmt: skip
    return {"untraced": untraced, "claims": claims}


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    untraced = frames["untraced"]
    if untraced.is_empty():
        return no_findings()
    first = (
        frames["claims"].sort("started_at", "delivery_id")
        .group_by("dispatch_id", maintain_order=True).first()
        .select("dispatch_id", first_delivery_id="delivery_id",
                first_station_id="station_id", first_started_at="started_at")
    )  # fmt: skip
    reason = (
        pl.when(pl.col("status") == "no_dispatch").then(pl.lit("no_dispatch"))
        .when(pl.col("status") == "unknown_dispatch").then(pl.lit("unknown_dispatch"))
        .otherwise(pl.lit("dispatch_already_received"))
    )  # fmt: skip
    found = untraced.join(first, on="dispatch_id", how="left").with_columns(
        reason=reason,
        subject=pl.col("delivery_id"),
        window_start=pl.col("started_at"),
        window_end=pl.col("ended_at"),
    ).with_columns(severity=pl.col("reason").replace_strict(SEVERITY))
    already = pl.col("reason") == "dispatch_already_received"
    return findings(found, [
        "delivery_id", "tank_id", "reason",
        pl.col("dispatch_id").alias("declared_dispatch_id"),
        "product", "vehicle_plate", "seals_intact",
        pl.col("received_20_l").alias("volume_20_l"),
        pl.col("started_at").alias("unloading_started_at"),
        pl.col("ended_at").alias("unloading_ended_at"),
        pl.when(already).then(pl.col("first_delivery_id")).alias("first_delivery_id"),
        pl.when(already).then(pl.col("first_station_id")).alias("first_station_id"),
        pl.when(already).then(pl.col("first_started_at")).alias("first_started_at"),
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    what = (f"Delivery {e['delivery_id']} of {e['volume_20_l']:.0f} L at 20 °C "
            f"{e['product']} into tank {e['tank_id']} (tanker {e['vehicle_plate']}, unloaded "
            f"{e['unloading_started_at']}–{e['unloading_ended_at']})")  # fmt: skip
    if e["reason"] == "no_dispatch":
        why = "names no depot dispatch: fuel of unknown origin"
    elif e["reason"] == "unknown_dispatch":
        why = (f"names dispatch {e['declared_dispatch_id']}, which no depot reported: "
               "check the waybill with the depot")  # fmt: skip
    else:
        why = (f"names dispatch {e['declared_dispatch_id']}, already received as delivery "
               f"{e['first_delivery_id']} at station {e['first_station_id']} "
               f"({e['first_started_at']}): one waybill used for two loads")  # fmt: skip
    return f"{what} {why}."


RULE = Rule(
    name="delivery_without_dispatch",
    title="Delivery without a depot dispatch",
    title_zh="无出库记录的卸油",
    load=load,
    detect=detect,
    describe=describe,
    lookback=timedelta(0),
)
