"""Station silent: a whole station sent nothing for hours while it sold or took fuel.

A station's gateway uploads every record it has — sales, tank readings, vapour samples,
device status, deliveries. When it goes dark nothing arrives. Two ways to see it:

* by *arrival*: the warehouse's loads (``ingest_load.finished_at``) that brought the
  station's records pause for at least ``FUELTRACE_SILENCE_STATION_H`` while the
  station's latest record time jumps as much (a replay or a bulk load brings hours of
  records in seconds: no pause). This sees a silence whose backlog came later (its
  records, with their own earlier times, then fill the gap) and an ongoing one;
* by the *records*: none of any kind with a time in a stretch that long — the backlog
  never came (this holds in a bulk load too).

A silence runs from the station's last record before it to the arrival (or the record)
that ended it. It is a finding when the station traded meanwhile: the backlog holds
sales or deliveries, a depot dispatched to it, or its nozzles' totalizers moved across
the silence by more than the sales recorded in it — "silent 21:45–04:06, sold 3,200 L in
41 sales per its backlog". An ongoing silence (no arrival for that long, by the analysis
clock) is a finding too, so the rule is clock-driven: it keeps its id (``window_start``
is the station's last record) and is updated when the station comes back, or resolved
if it neither sold nor received anything meanwhile.

Severity: ``high`` when litres went unrecorded (the totalizers) or no backlog came and
only the depots' dispatches show the station trading; else ``medium`` (the regulator
was blind, the data is whole); one level lower when the gateway reported itself
``offline``/``fault``. Ongoing: ``low``; ``high`` when fuel was dispatched to the dark
station (``medium`` if its gateway said it was offline).

Not attributable, so skipped: a silence seen only by arrival that a pause of the whole
pipeline (no load from any station for as long) overlaps.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import UTC_US, Frames, Reader, Rule, Scope, findings, no_findings
from processors.rules.device_silent import (
    FLOOR_H,
    beijing,
    count,
    earliest,
    hours,
    open_episodes,
    reported,
    statuses,
)

NAME = "station_silent"
_EVENTS = (("sale", "started_at"), ("tank_reading", "read_at"), ("vapor", "measured_at"),
           ("device_status", "at"), ("delivery", "started_at"))  # fmt: skip
_FLOOR = f"INTERVAL {int(FLOOR_H * 60)} MINUTE"


def _candidates_sql() -> str:
    # Per table, per load and 10-minute bucket: when the station's records begin and end.
    events = " UNION ALL ".join(
        f"""SELECT t.station_id, t.load_id, time_bucket(INTERVAL 10 MINUTE, t."{column}") AS b,
                   min(t."{column}") AS first_at, max(t."{column}") AS last_at
            FROM {table} t JOIN starts s ON s.station_id = t.station_id
            WHERE t."{column}" >= s.load_from GROUP BY ALL"""
        for table, column in _EVENTS
    )
    return f"""
        WITH {open_episodes(NAME)},
        events AS MATERIALIZED ({events}),
        per_load AS (
            SELECT e.station_id, e.load_id, max(e.last_at) AS max_event,
                   any_value(l.finished_at) AS arrived_at
            FROM events e JOIN ingest_load l ON l.load_id = e.load_id
            GROUP BY ALL
        ), seq AS (
            SELECT station_id, load_id, arrived_at, max_event,
                   lag(arrived_at) OVER w AS prev_arrived_at,
                   max(max_event) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                   AS hw_prev,
                   max(max_event) OVER (PARTITION BY station_id) AS hw,
                   load_id = max(load_id) OVER (PARTITION BY station_id) AS is_last
            FROM per_load WINDOW w AS (PARTITION BY station_id ORDER BY load_id)
        ), by_arrival AS (
            SELECT station_id, hw_prev AS silent_from_at, prev_arrived_at AS last_arrived_at,
                   arrived_at AS back_at
            FROM seq WHERE hw_prev IS NOT NULL
              AND arrived_at - prev_arrived_at >= {_FLOOR} AND max_event - hw_prev >= {_FLOOR}
            UNION ALL
            SELECT station_id, hw, arrived_at, NULL FROM seq WHERE is_last
        ), buckets AS (
            SELECT station_id, min(first_at) AS first_at, max(last_at) AS last_at
            FROM events GROUP BY station_id, b
        ), by_records AS (
            SELECT station_id, last_at AS silent_from_at, next_at AS resumed_at FROM (
                SELECT station_id, last_at,
                       lead(first_at) OVER (PARTITION BY station_id ORDER BY first_at) AS next_at
                FROM buckets)
            WHERE next_at - last_at >= {_FLOOR}
        ), candidates AS (
            SELECT coalesce(a.station_id, r.station_id) AS station_id,
                   coalesce(a.silent_from_at, r.silent_from_at) AS silent_from_at,
                   a.last_arrived_at, a.back_at, r.resumed_at,
                   CASE WHEN a.station_id IS NOT NULL AND a.back_at IS NULL
                        AND r.station_id IS NULL THEN greatest($now, a.silent_from_at)
                        ELSE coalesce(a.back_at, r.resumed_at) END AS until_at
            FROM by_arrival a FULL JOIN by_records r
              ON r.station_id = a.station_id AND r.silent_from_at = a.silent_from_at
        ), sold AS (
            SELECT c.station_id, c.silent_from_at, count(x.txn_id) AS sales,
                   coalesce(sum(x.volume_l), 0) AS sales_l, min(x.started_at) AS first_sale_at,
                   max(x.started_at) AS last_sale_at
            FROM candidates c LEFT JOIN sale x ON x.station_id = c.station_id
             AND x.started_at > c.silent_from_at AND x.started_at < c.until_at
             AND x.started_at >= $from
            GROUP BY ALL
        ), read AS (
            SELECT c.station_id, c.silent_from_at, count(r.read_at) AS readings
            FROM candidates c LEFT JOIN tank_reading r ON r.station_id = c.station_id
             AND r.read_at > c.silent_from_at AND r.read_at < c.until_at AND r.read_at >= $from
            GROUP BY ALL
        ), received AS (
            SELECT c.station_id, c.silent_from_at, count(d.delivery_id) AS deliveries,
                   coalesce(sum(d.volume_l), 0) AS delivered_l
            FROM candidates c LEFT JOIN delivery d ON d.station_id = c.station_id
             AND d.started_at > c.silent_from_at AND d.started_at < c.until_at
            GROUP BY ALL
        ), sent AS (
            SELECT c.station_id, c.silent_from_at, count(p.dispatch_id) AS dispatches,
                   coalesce(sum(p.volume_l), 0) AS dispatched_l
            FROM candidates c LEFT JOIN dispatch p ON p.station_id = c.station_id
             AND p.dispatched_at > c.silent_from_at AND p.dispatched_at < c.until_at
            GROUP BY ALL
        ), recent AS (
            SELECT * FROM sale WHERE started_at >= $from
        ), pairs AS (  -- a silence that ended, with each nozzle of the station
            SELECT c.station_id, c.silent_from_at, c.until_at, n.nozzle_id
            FROM candidates c JOIN nozzle n ON n.station_id = c.station_id
            WHERE c.back_at IS NOT NULL OR c.resumed_at IS NOT NULL
        ), chain AS (  -- the nozzle's totalizer before and after, and what sold in between
            SELECT p.station_id, p.silent_from_at, p.nozzle_id, b.totalizer_end_l AS before_l,
                   a.totalizer_start_l AS after_l
            FROM pairs p
            ASOF JOIN recent b ON b.station_id = p.station_id AND b.nozzle_id = p.nozzle_id
             AND p.silent_from_at >= b.started_at
            ASOF JOIN recent a ON a.station_id = p.station_id AND a.nozzle_id = p.nozzle_id
             AND p.until_at <= a.started_at
        ), inside AS (
            SELECT p.station_id, p.silent_from_at, p.nozzle_id, sum(x.volume_l) AS inside_l
            FROM pairs p JOIN recent x ON x.station_id = p.station_id
             AND x.nozzle_id = p.nozzle_id AND x.started_at > p.silent_from_at
             AND x.started_at < p.until_at
            GROUP BY ALL
        ), dispensed AS (
            SELECT station_id, silent_from_at,
                   sum(greatest(round(after_l - before_l - coalesce(inside_l, 0), 2), 0))
                   AS unreported_l,
                   count(*) FILTER (WHERE round(after_l - before_l - coalesce(inside_l, 0), 2) > 0)
                   AS unreported_nozzles
            FROM chain LEFT JOIN inside USING (station_id, silent_from_at, nozzle_id)
            GROUP BY ALL
        )
        SELECT c.*, sold.* EXCLUDE (station_id, silent_from_at),
               read.readings, received.deliveries, received.delivered_l, sent.dispatches,
               sent.dispatched_l, coalesce(d.unreported_l, 0) AS unreported_l,
               coalesce(d.unreported_nozzles, 0) AS unreported_nozzles
        FROM candidates c
        JOIN sold USING (station_id, silent_from_at) JOIN read USING (station_id, silent_from_at)
        JOIN received USING (station_id, silent_from_at)
        JOIN sent USING (station_id, silent_from_at)
        LEFT JOIN dispensed d USING (station_id, silent_from_at)
    """


_TIMES = ("silent_from_at", "last_arrived_at", "back_at", "resumed_at", "until_at",
          "first_sale_at", "last_sale_at")  # fmt: skip


def load(reader: Reader) -> Frames:
    start = earliest(reader, NAME)
    candidates = reader.sql(_candidates_sql(), {"now": reader.scope.now, "from": start})
    arrivals = reader.con.sql(
        "SELECT finished_at AS arrived_at FROM ingest_load WHERE finished_at >= $from "
        "ORDER BY finished_at", params={"from": start - timedelta(days=1)}).pl()  # fmt: skip
    return {"candidates": candidates.cast({c: UTC_US for c in _TIMES}),
            "arrivals": arrivals.cast({"arrived_at": UTC_US}),
            "statuses": statuses(reader, NAME)}  # fmt: skip


def pipeline_pauses(arrivals: pl.DataFrame, now: Any, threshold_h: float) -> pl.DataFrame:
    """Times the warehouse received nothing from anyone for ``threshold_h`` or more,
    including from the last load to ``now``."""
    times = arrivals.select(start=pl.col("arrived_at")).sort("start").with_columns(
        end=pl.col("start").shift(-1).fill_null(pl.lit(now, UTC_US)))  # fmt: skip
    return times.filter(hours(pl.col("start"), pl.col("end")) >= threshold_h)


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    threshold = settings.silence_station_h
    c = frames["candidates"]
    by_arrival = pl.col("last_arrived_at").is_not_null()
    by_records = pl.col("resumed_at").is_not_null()
    ongoing = pl.col("back_at").is_null() & ~by_records
    # Litres the nozzles' totalizers moved across the silence that no sale record holds.
    unreported = pl.col("unreported_l") > (
        settings.totalizer_tolerance_l * pl.col("unreported_nozzles"))
    traded = (pl.col("sales") + pl.col("deliveries") + pl.col("dispatches") > 0) | unreported
    long_enough = (
        (by_arrival & (hours(pl.col("last_arrived_at"), pl.col("until_at")) >= threshold))
        | (by_records & (hours(pl.col("silent_from_at"), pl.col("resumed_at")) >= threshold))
    )
    silent = c.filter(long_enough & pl.when(ongoing).then(
        hours(pl.col("silent_from_at"), pl.lit(scope.now, UTC_US)) >= threshold,
    ).otherwise(traded)).with_row_index("window_id")  # fmt: skip
    pauses = pipeline_pauses(frames["arrivals"], scope.now, threshold)
    if pauses.height and silent.height:
        # Arrival alone cannot blame the station for a pause of the whole pipeline.
        clash = silent.filter(~by_records).join(pauses, how="cross").filter(
            (pl.col("start") < pl.col("until_at")) & (pl.col("end") > pl.col("last_arrived_at"))
        )["window_id"]  # fmt: skip
        silent = silent.filter(~pl.col("window_id").is_in(clash.implode()))
    if silent.is_empty():
        return no_findings()
    said = pl.col("reported_status").is_not_null()
    backlog = (pl.col("sales") + pl.col("deliveries") + pl.col("readings")) > 0
    worse = pl.when(ongoing).then(pl.col("dispatches") > 0).otherwise(unreported | ~backlog)
    severity = (
        pl.when(worse).then(pl.when(said).then(pl.lit("medium")).otherwise(pl.lit("high")))
        .when(ongoing | said).then(pl.lit("low"))
        .otherwise(pl.lit("medium"))
    )  # fmt: skip
    found = reported(silent, frames["statuses"], "gateway", "silent_from_at",
                     "until_at").with_columns(  # fmt: skip
        severity=severity,
        window_start=pl.col("silent_from_at"),
        window_end=pl.col("until_at"),
        ongoing=ongoing,
        silent_h=hours(pl.col("silent_from_at"), pl.col("until_at")),
    )
    return findings(found, [
        "silent_from_at", "last_arrived_at", "back_at", "resumed_at", "ongoing", "silent_h",
        pl.lit(threshold).alias("threshold_h"), "sales", "sales_l", "first_sale_at",
        "last_sale_at", "readings", "deliveries", "delivered_l", "dispatches",
        "dispatched_l", "unreported_l", "unreported_nozzles", "reported_status", "device_ids",
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    if e["ongoing"]:
        head = (f"Station silent since {beijing(e['silent_from_at'])} Beijing time "
                f"({e['silent_h']:.1f} h so far; last upload {beijing(e['last_arrived_at'])})")
    else:
        head = (f"Station silent from {beijing(e['silent_from_at'])} to "
                f"{beijing(e['back_at'] or e['resumed_at'])} Beijing time "
                f"({e['silent_h']:.1f} h)")
    facts = []
    if e["sales"]:
        facts.append(f"sold {e['sales_l']:.1f} L in {count(e['sales'], 'sale')} in that time "
                     f"per its backlog")
    if e["unreported_l"] and e["unreported_nozzles"]:
        facts.append(f"its totalizers moved {e['unreported_l']:.1f} L on "
                     f"{count(e['unreported_nozzles'], 'nozzle')} that no sale record holds")
    if e["deliveries"]:
        facts.append(f"received {count(e['deliveries'], 'delivery', 'deliveries')} "
                     f"({e['delivered_l']:.0f} L)")
    if e["dispatches"]:
        facts.append(f"depots dispatched {count(e['dispatches'], 'load')} "
                     f"({e['dispatched_l']:.0f} L) to it")
    if not e["ongoing"] and not (e["sales"] or e["deliveries"] or e["readings"]):
        facts.append("it uploaded no backlog for the time")
    status = (f"its gateway reported {e['reported_status']}" if e["reported_status"]
              else "no gateway status reported")
    return f"{head}: {'; '.join(facts + [status])}; allowed {e['threshold_h']:g} h."


RULE = Rule(
    name=NAME,
    title="Station silent while trading",
    title_zh="加油站断线期间经营",
    load=load,
    detect=detect,
    describe=describe,
    # The station's records of the day before the scope: the last one before a silence.
    lookback=timedelta(days=1),
    clock_driven=True,
)
