"""Delivery mismatch: what a station received differs from what the depot dispatched.

The matching job (``processors.matching`` → ``delivery_check``) compares each delivery
with the dispatch it names: station, product, tanker plate, seal set, seals intact,
volume at 20 °C (within the transit loss/gain tolerances), density at 20 °C. This rule
turns every delivery with a mismatch into one finding that lists all of them, with both
sides of each comparison in the evidence. A delivery that claims a dispatch another
delivery already received is ``delivery_without_dispatch``'s, not this rule's.

Severity is the worst of its mismatches (:data:`SEVERITY`):

* ``critical`` — ``density`` (off-spec or adulterated fuel: solvent or lighter stock
  blended in), ``seals`` (not the seals the depot applied: the load was opened and
  resealed) and ``seals_broken``, ``product`` (the batch's quality certificate does not
  cover what went into the tank; a lower grade sold as a higher one);
* ``high`` — ``volume`` beyond the transit tolerance (a shortfall: fuel taken in
  transit; a surplus: fuel added in transit), ``vehicle`` (another tanker than the one
  loaded: transshipment en route), ``station`` (the load was addressed to another
  station: ``diverted_dispatch`` reports it at the destination);
* ``medium`` — ``volume`` only because a side has no volume at 20 °C (temperature or
  density outside API MPMS 11.1): ask the station to correct its record.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import Frames, Reader, Rule, Scope, findings, no_findings

SEVERITY: dict[str, str] = {
    "density": "critical", "seals": "critical", "seals_broken": "critical",
    "product": "critical", "volume": "high", "vehicle": "high", "station": "high",
}  # fmt: skip


def load(reader: Reader) -> Frames:
    return {"checks": reader.sql("""
        SELECT d.station_id, c.delivery_id, c.dispatch_id, c.mismatches,
               c.dispatched_20_l, c.received_20_l, c.difference_20_l, c.difference_pct,
               c.density_dispatched, c.density_received,
               d.tank_id, d.product, d.vehicle_plate, d.seal_ids, d.seals_intact,
               d.started_at, d.ended_at, d.volume_20_l IS NULL AS received_uncorrected,
               p.depot_id, p.batch_id, p.station_id AS destination_station_id,
               p.product AS dispatched_product, p.vehicle_plate AS dispatched_vehicle_plate,
               p.seal_ids AS dispatched_seal_ids, p.dispatched_at,
               p.volume_20_l IS NULL AS dispatched_uncorrected
        FROM delivery_check c JOIN delivery d ON d.delivery_id = c.delivery_id
        JOIN dispatch p ON p.dispatch_id = c.dispatch_id
        JOIN scope s ON s.station_id = d.station_id
        WHERE d.ended_at >= s.load_from AND c.status = 'mismatch'
          AND NOT list_contains(c.mismatches, 'duplicate_claim')
    """)}  # fmt: skip


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    checks = frames["checks"]
    if checks.is_empty():
        return no_findings()
    unverified = pl.col("received_uncorrected") | pl.col("dispatched_uncorrected")
    kinds = pl.col("mismatches")
    critical = [k for k, s in SEVERITY.items() if s == "critical"]
    # A volume flag with no volume at 20 °C to compare is only worth a question.
    high = [k for k, s in SEVERITY.items() if s == "high" and k != "volume"]
    severity = (
        pl.when(kinds.list.eval(pl.element().is_in(critical)).list.any())
        .then(pl.lit("critical"))
        .when(kinds.list.eval(pl.element().is_in(high)).list.any()
              | (kinds.list.contains("volume") & ~unverified))
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium"))
    )  # fmt: skip
    found = checks.with_columns(
        severity=severity,
        subject=pl.col("delivery_id"),
        window_start=pl.col("dispatched_at"),
        window_end=pl.col("ended_at"),
    )
    return findings(found, [
        "delivery_id", "dispatch_id", "depot_id", "batch_id", "tank_id", "mismatches",
        "destination_station_id", pl.col("station_id").alias("received_station_id"),
        "dispatched_product", pl.col("product").alias("received_product"),
        "dispatched_vehicle_plate", pl.col("vehicle_plate").alias("received_vehicle_plate"),
        "dispatched_seal_ids", pl.col("seal_ids").alias("received_seal_ids"), "seals_intact",
        "dispatched_20_l", "received_20_l", "difference_20_l", "difference_pct",
        unverified.alias("volume_at_20_unavailable"),
        pl.lit(settings.transit_loss_tolerance_pct).alias("loss_tolerance_pct"),
        pl.lit(settings.transit_gain_tolerance_pct).alias("gain_tolerance_pct"),
        pl.col("density_dispatched").alias("density_dispatched_kg_m3"),
        pl.col("density_received").alias("density_received_kg_m3"),
        (pl.col("density_received") - pl.col("density_dispatched"))
        .alias("density_difference_kg_m3"),
        pl.lit(settings.density_tolerance_kg_m3).alias("density_tolerance_kg_m3"),
        "dispatched_at", pl.col("ended_at").alias("received_at"),
    ])  # fmt: skip


def _seals(seals: list[str] | None) -> str:
    return ", ".join(seals or []) or "none"


def describe(e: dict[str, Any]) -> str:
    parts = []
    for kind in e["mismatches"]:
        if kind == "station":
            parts.append(f"addressed to station {e['destination_station_id']}, received at "
                         f"{e['received_station_id']}")  # fmt: skip
        elif kind == "product":
            parts.append(f"product {e['dispatched_product']} dispatched, "
                         f"{e['received_product']} received")  # fmt: skip
        elif kind == "vehicle":
            parts.append(f"loaded on tanker {e['dispatched_vehicle_plate']}, unloaded from "
                         f"{e['received_vehicle_plate']}")  # fmt: skip
        elif kind == "seals":
            parts.append(f"seals {_seals(e['dispatched_seal_ids'])} applied, "
                         f"{_seals(e['received_seal_ids'])} found")  # fmt: skip
        elif kind == "seals_broken":
            parts.append("seals found broken")
        elif kind == "volume" and e["volume_at_20_unavailable"]:
            parts.append(f"volume not verifiable at 20 °C ({e['dispatched_20_l']:.0f} L "
                         f"dispatched, {e['received_20_l']:.0f} L received, observed)")
        elif kind == "volume":
            parts.append(f"{e['dispatched_20_l']:.0f} L at 20 °C dispatched, "
                         f"{e['received_20_l']:.0f} L received ({e['difference_20_l']:+.0f} L, "
                         f"{e['difference_pct']:+.2f} %; allowed −{e['loss_tolerance_pct']} % "
                         f"/ +{e['gain_tolerance_pct']} %)")  # fmt: skip
        elif kind == "density":
            parts.append(f"density {e['density_dispatched_kg_m3']:.1f} kg/m³ dispatched, "
                         f"{e['density_received_kg_m3']:.1f} received "
                         f"({e['density_difference_kg_m3']:+.1f}; allowed "
                         f"±{e['density_tolerance_kg_m3']})")  # fmt: skip
    return (f"Delivery {e['delivery_id']} into tank {e['tank_id']} does not match dispatch "
            f"{e['dispatch_id']} (depot {e['depot_id']}, batch {e['batch_id']}): "
            + "; ".join(parts) + ".")  # fmt: skip


RULE = Rule(
    name="delivery_mismatch",
    title="Delivery does not match its dispatch",
    title_zh="卸油与出库不符",
    load=load,
    detect=detect,
    describe=describe,
    lookback=timedelta(0),
)
