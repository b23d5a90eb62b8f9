"""Sales while the gauge is down: fuel drawn from a tank whose gauge was offline, faulty
or not reporting, so those litres cannot be reconciled against the tank.

A tank's gauge is *down* while an ATG of the station has reported ``offline`` or
``fault`` (until it reports ``online`` again; it covers every tank of the station), and
while the tank's own readings pause for ``FUELTRACE_SILENCE_ATG_H`` or more (from the
last reading to the next). Overlapping or touching spells are one. A spell is a finding
when it lasts at least ``FUELTRACE_SILENCE_ATG_H`` (an open one: to its last sale) and
sales were drawn from the tank meanwhile (the nozzle's tank from the registry) — for a
spell the station did not report, one at least that long after the last reading; the
evidence is those sales and litres, the ones the wetstock rules cannot check.

Severity: ``medium`` when the station reported the outage (an ATG status), ``high``
when the gauge just went quiet (suppressed readings hide a loss or an off-book
delivery). The same quiet gauge is also ``device_silent``'s finding, which asks about the
device and counts every sale of the station; this rule asks about the tank's litres.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import UTC_US, Frames, Reader, Rule, Scope, findings, no_findings
from processors.rules.device_silent import (
    ATG_PAUSES,
    STATUS_LOOKBACK,
    beijing,
    count,
    earliest,
    hours,
    open_episodes,
    reported,
)

NAME = "sales_while_gauge_down"
#: Far future: an open spell's end while spells are merged.
_OPEN = datetime(9999, 1, 1)

#: ATG outages the station reported; an ``offline`` one ends at the next reading too
#: (readings prove the gauge is back), a ``fault`` one only with the next status.
_OUTAGES = """outages AS (
        SELECT o.station_id, o.device_id, o.device_kind, o.status, o."at",
               CASE WHEN o.status = 'offline' THEN least(o.until_at, (
                   SELECT min(r.read_at) FROM tank_reading r WHERE r.station_id = o.station_id
                      AND r.read_at > o."at" AND r.read_at >= $from))
               ELSE o.until_at END AS until_at
        FROM (SELECT d.station_id, d.device_id, d.device_kind, d.status, d."at",
                     lead(d."at") OVER (PARTITION BY d.station_id, d.device_id
                                        ORDER BY d."at") AS until_at
              FROM device_status d JOIN starts s ON s.station_id = d.station_id
              WHERE d."at" >= s.load_from - $status_back AND d.device_kind = 'atg') o
        WHERE o.status IN ('offline', 'fault')
    )"""
#: Sales from a tank while it may be down (any pause of the floor's length, any outage).
_SALES = """
    SELECT DISTINCT x.station_id, n.tank_id, x.txn_id, x.nozzle_id, x.started_at, x.volume_l
    FROM sale x
    JOIN nozzle n ON n.station_id = x.station_id AND n.nozzle_id = x.nozzle_id
    JOIN down d ON d.station_id = x.station_id AND (d.tank_id IS NULL OR d.tank_id = n.tank_id)
     AND x.started_at > d.start_at AND (d.end_at IS NULL OR x.started_at < d.end_at)
    WHERE x.started_at >= $from
"""
_PAUSES = f"WITH {open_episodes(NAME)}, {ATG_PAUSES} SELECT * FROM atg_pauses"
_OUTAGE_ROWS = f"WITH {open_episodes(NAME)}, {_OUTAGES} SELECT * FROM outages"


def load(reader: Reader) -> Frames:
    start = earliest(reader, NAME)
    pauses = reader.sql(_PAUSES).cast({"last_at": UTC_US, "next_at": UTC_US})
    outages = reader.sql(_OUTAGE_ROWS, {"from": start, "status_back": STATUS_LOOKBACK}).cast(
        {"at": UTC_US, "until_at": UTC_US})  # fmt: skip
    down = pl.concat([
        pauses.select("station_id", "tank_id", start_at=pl.col("last_at"),
                      end_at=pl.col("next_at")),
        outages.select("station_id", pl.lit(None, pl.String).alias("tank_id"),
                       start_at=pl.col("at"), end_at=pl.col("until_at")),
    ])  # fmt: skip
    reader.con.register("down", down)
    try:
        sales = reader.con.sql(_SALES, params={"from": start}).pl()
    finally:
        reader.con.unregister("down")
    return {"sales": sales.cast({"started_at": UTC_US}), "pauses": pauses, "outages": outages}


def spells(pauses: pl.DataFrame, outages: pl.DataFrame, tanks: pl.DataFrame,
           threshold_h: float) -> pl.DataFrame:  # fmt: skip
    """Each tank's gauge-down spells, merged: ``start_at``, ``end_at`` (null: open),
    ``silent`` (a pause in the readings is part of it)."""
    quiet = pauses.filter(pl.col("next_at").is_null()
                          | (hours(pl.col("last_at"), pl.col("next_at")) >= threshold_h)
                          ).select("station_id", "tank_id", start_at=pl.col("last_at"),
                                   end_at=pl.col("next_at"), silent=pl.lit(True))  # fmt: skip
    said = outages.join(tanks, on="station_id").select(
        "station_id", "tank_id", start_at=pl.col("at"), end_at=pl.col("until_at"),
        silent=pl.lit(False))  # fmt: skip
    key = ["station_id", "tank_id"]
    both = pl.concat([quiet, said]).with_columns(
        end_at=pl.col("end_at").fill_null(pl.lit(_OPEN, UTC_US))).sort(*key, "start_at")
    merged = both.with_columns(
        reach=pl.col("end_at").cum_max().shift(1).over(key),
    ).with_columns(
        spell=(pl.col("reach").is_null() | (pl.col("start_at") > pl.col("reach")))
        .cast(pl.Int32).cum_sum().over(key),
    )  # fmt: skip
    return merged.group_by(*key, "spell").agg(
        start_at=pl.col("start_at").min(), end_at=pl.col("end_at").max(),
        silent=pl.col("silent").any(),
    ).with_columns(
        end_at=pl.when(pl.col("end_at") < pl.lit(_OPEN, UTC_US)).then(pl.col("end_at")),
    ).drop("spell")  # fmt: skip


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    sales = frames["sales"]
    if sales.is_empty():
        return no_findings()
    threshold = settings.silence_atg_h
    tanks = sales.select("station_id", "tank_id").unique()
    down = spells(frames["pauses"], frames["outages"], tanks, threshold)
    inside = down.join(sales, on=["station_id", "tank_id"]).filter(
        (pl.col("started_at") > pl.col("start_at"))
        & (pl.col("end_at").is_null() | (pl.col("started_at") < pl.col("end_at")))
    )  # fmt: skip
    per_spell = inside.group_by("station_id", "tank_id", "start_at").agg(
        end_at=pl.col("end_at").first(), silent=pl.col("silent").first(),
        sales=pl.len(), sales_l=pl.col("volume_l").sum(),
        first_sale_at=pl.col("started_at").min(), last_sale_at=pl.col("started_at").max(),
        nozzle_ids=pl.col("nozzle_id").unique().sort(),
    ).with_columns(until_at=pl.coalesce("end_at", "last_sale_at")).with_columns(
        down_h=hours(pl.col("start_at"), pl.col("until_at")),
    ).filter(pl.col("down_h") >= threshold).sort("station_id", "tank_id", "start_at")  # fmt: skip
    if per_spell.is_empty():
        return no_findings()
    found = reported(per_spell.with_row_index("window_id"), frames["outages"], "atg",
                     "start_at", "until_at").filter(
        # A gauge that just went quiet: a sale came at least the allowed pause after its
        # last reading (when the whole station goes dark, sales stop too).
        pl.col("reported_status").is_not_null()
        | (hours(pl.col("start_at"), pl.col("last_sale_at")) >= threshold)
    )
    if found.is_empty():
        return no_findings()
    found = found.with_columns(  # fmt: skip
        subject=pl.col("tank_id"),
        severity=pl.when(pl.col("reported_status").is_null()).then(pl.lit("high"))
        .otherwise(pl.lit("medium")),
        window_start=pl.col("start_at"),
        window_end=pl.col("until_at"),
        ongoing=pl.col("end_at").is_null(),
    )  # fmt: skip
    return findings(found, [
        "tank_id", pl.col("start_at").alias("down_from_at"),
        pl.col("end_at").alias("down_until_at"), "ongoing", "down_h",
        pl.col("silent").alias("readings_paused"), "reported_status", "device_ids",
        "sales", "sales_l", "first_sale_at", "last_sale_at", "nozzle_ids",
        pl.lit(threshold).alias("threshold_h"),
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    until = (f"still down at its last sale ({beijing(e['last_sale_at'])})" if e["ongoing"]
             else f"until {beijing(e['down_until_at'])}")  # fmt: skip
    if e["reported_status"]:
        why = f"its ATG reported {e['reported_status']} ({', '.join(e['device_ids'] or [])})"
    else:
        why = "its readings stopped with no ATG status reported"
    return (f"Tank {e['tank_id']}: {e['sales_l']:.1f} L sold in {count(e['sales'], 'sale')} "
            f"(nozzles {', '.join(e['nozzle_ids'])}) while its gauge was down, from "
            f"{beijing(e['down_from_at'])} {until} Beijing time ({e['down_h']:.1f} h): {why}; "
            f"these litres cannot be reconciled with the tank.")  # fmt: skip


RULE = Rule(
    name=NAME,
    title="Sales while the tank gauge is down",
    title_zh="液位仪故障期间销售",
    load=load,
    detect=detect,
    describe=describe,
    # Spells begun the day before the scope; longer open ones through `open_episodes`.
    lookback=timedelta(days=1),
)
