"""Diverted dispatch: a load left the depot and its destination never reported it.

A dispatch names its destination station. It is diverted when

* ``not_received`` — no station reports a delivery naming it within
  ``FUELTRACE_DELIVERY_OVERDUE_H`` of its dispatch (a whole tanker unaccounted for:
  sold off the books, or delivered under another waybill) — ``critical``; or
* ``received_elsewhere`` — a delivery naming it was reported by another station
  (``delivery_check.mismatches`` has ``station``) and none by the destination: the fuel is
  traced, but not to where the depot's record sent it — ``high``.

A receipt at the destination reported later resolves the finding (the engine resolves
what the rule stops returning). Overdue depends on the clock, so the rule is
``clock_driven``; it computes overdue itself with the scope's ``now`` rather than read
``open_dispatch.overdue``, which the traceability job stamps with its own clock.

The finding is the destination station's, ``depot_id`` the sender, ``subject`` the
dispatch id; window ``[dispatched_at, due_at]`` (due = dispatched + overdue), or up to
the receipt elsewhere. The evidence carries ``due_at``, not the hours overdue so far,
which would change at every run: hours overdue = now − ``due_at``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import UTC_US, Frames, Reader, Rule, Scope, findings, no_findings

_SCOPED = """SELECT t.dispatch_id FROM dispatch t JOIN scope s ON s.station_id = t.station_id
             WHERE t.dispatched_at >= s.load_from"""


def load(reader: Reader) -> Frames:
    dispatches = reader.records("dispatch", "dispatched_at", columns="""
        t.dispatch_id, t.depot_id, t.station_id, t.batch_id, t.product, t.vehicle_plate,
        t.seal_ids, coalesce(t.volume_20_l, t.volume_l) AS volume_20_l,
        t.dispatched_at""")  # fmt: skip
    claims = reader.sql(f"""
        SELECT c.dispatch_id, c.delivery_id, d.station_id AS received_station_id,
               d.started_at, d.ended_at
        FROM delivery_check c JOIN delivery d ON d.delivery_id = c.delivery_id
        WHERE c.dispatch_id IN ({_SCOPED})
    """)  # fmt: skip
    return {"dispatches": dispatches, "claims": claims}


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    dispatches, claims = frames["dispatches"], frames["claims"]
    if dispatches.is_empty():
        return no_findings()
    overdue = timedelta(hours=settings.delivery_overdue_h)
    destination = claims.join(
        dispatches.select("dispatch_id", "station_id"), on="dispatch_id"
    ).with_columns(at_destination=pl.col("received_station_id") == pl.col("station_id"))
    received = destination.filter("at_destination").select("dispatch_id").unique()
    elsewhere = (
        destination.filter(~pl.col("at_destination"))
        .sort("started_at", "delivery_id")
        .group_by("dispatch_id", maintain_order=True).first()
        .select("dispatch_id", "received_station_id",
                received_delivery_id="delivery_id", received_at="ended_at")
    )  # fmt: skip
    now = pl.lit(scope.now, UTC_US)
    due = pl.col("dispatched_at") + overdue
    found = (
        dispatches.join(received, on="dispatch_id", how="anti")
        .join(elsewhere, on="dispatch_id", how="left")
        .with_columns(due_at=due, outcome=pl.when(pl.col("received_delivery_id").is_not_null())
                      .then(pl.lit("received_elsewhere"))
                      .when(now > due).then(pl.lit("not_received")))
        .filter(pl.col("outcome").is_not_null())
        .with_columns(
            severity=pl.when(pl.col("outcome") == "not_received").then(pl.lit("critical"))
            .otherwise(pl.lit("high")),
            subject=pl.col("dispatch_id"),
            window_start=pl.col("dispatched_at"),
            window_end=pl.coalesce("received_at", "due_at"),
        )
    )  # fmt: skip
    return findings(found, [
        "outcome", "dispatch_id", "depot_id", "batch_id", "product", "vehicle_plate",
        "seal_ids", "volume_20_l", "dispatched_at", "due_at",
        pl.lit(settings.delivery_overdue_h).alias("overdue_after_h"),
        "received_station_id", "received_delivery_id", "received_at",
        ((pl.col("received_at") - pl.col("dispatched_at")).dt.total_seconds() / 3600.0)
        .alias("received_after_h"),
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    load = (f"Dispatch {e['dispatch_id']} from depot {e['depot_id']} ({e['volume_20_l']:.0f} L "
            f"at 20 °C {e['product']}, batch {e['batch_id']}, tanker {e['vehicle_plate']}, "
            f"seals {', '.join(e['seal_ids'] or []) or 'none'}), dispatched "
            f"{e['dispatched_at']}")  # fmt: skip
    if e["outcome"] == "received_elsewhere":
        return (f"{load}, was received by station {e['received_station_id']} as delivery "
                f"{e['received_delivery_id']} ({e['received_at']}, {e['received_after_h']:.1f} h "
                f"after dispatch), not by its destination.")  # fmt: skip
    return (f"{load}: no station has reported receiving it; it was due by {e['due_at']} "
            f"({e['overdue_after_h']:g} h after dispatch).")  # fmt: skip


RULE = Rule(
    name="diverted_dispatch",
    title="Diverted dispatch",
    title_zh="油品去向不明",
    load=load,
    detect=detect,
    describe=describe,
    # Dispatches still open within the window: FUELTRACE_DELIVERY_OVERDUE_H up to a week.
    lookback=timedelta(days=7),
    clock_driven=True,
)
