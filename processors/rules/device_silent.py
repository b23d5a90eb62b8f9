"""Device silent: a tank gauge or the vapour-recovery monitor stops reporting while the
station sells.

Each device is judged by its own records: an ATG by each tank's readings (``subject``
the tank), the vapour-recovery monitor by the station's ``vapor`` samples of any nozzle
(``subject`` ``vapor_monitor``). A *pause* is the time between two consecutive records
of the device (or since its last one). It is a finding when the station sold (gasoline,
for the vapour monitor) at least ``FUELTRACE_SILENCE_ATG_H`` /
``FUELTRACE_SILENCE_VAPOR_MONITOR_H`` after the device's last record and before it
reported again — sales that arrived later, with the station's backlog, count. A sale
then proves the station's gateway and business were up, so the silence is the device's
(when the whole station goes dark, sales stop too: that is ``station_silent``). A
dispenser is not judged: an idle dispenser sends nothing.

An ongoing pause is measured to the last sale in it, so the finding grows with the
sales and keeps its id (``window_start`` is the device's last record before the pause);
when the device reports again ``window_end`` becomes that record.

Severity tells an outage the station reported from suppression: the device (any device
of that kind at the station) reported ``offline`` during the pause → ``low``, ``fault``
→ ``medium``; no status at all → ``high`` (suspected suppression: the station kept
selling and said nothing about its gauge or monitor).

Also home of what the silence and vapour rules share: reading back to the start of a
rule's own open episodes, device status intervals, and Beijing time for the text.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import (
    LOCAL,
    UTC_US,
    Frames,
    Reader,
    Rule,
    Scope,
    findings,
    no_findings,
)

#: The shortest pause the silence rules read (and the lowest their settings allow)...
FLOOR_H = 0.5
#: ...and the vapour monitor's, which may sample only hourly.
VM_FLOOR_H = 1.5
#: How far before the scope a device's last status is looked for (older states: unknown).
STATUS_LOOKBACK = timedelta(days=31)
_HOUR_US = 3_600_000_000


def open_episodes(rule: str) -> str:
    """SQL: ``starts(station_id, load_from)``: the scope's ``load_from``, moved back to the
    start of any of ``rule``'s active findings that reach into it, so an episode longer
    than the rule's look-back is read whole and keeps its ``window_start``."""
    return f"""starts AS (
        SELECT s.station_id, least(s.load_from, coalesce(min(a.window_start), s.load_from))
               AS load_from
        FROM scope s LEFT JOIN anomaly a ON a.station_id = s.station_id
         AND a.rule = '{rule}' AND a.state = 'active' AND a.window_end >= s.load_from
        GROUP BY s.station_id, s.load_from
    )"""


#: Pauses of at least FLOOR_H in each tank's readings (``next_at`` null: since the last).
ATG_PAUSES = f"""atg_pauses AS (
        SELECT * FROM (
            SELECT r.station_id, 'atg' AS device_kind, r.tank_id, r.read_at AS last_at,
                   lead(r.read_at) OVER (PARTITION BY r.station_id, r.tank_id
                                         ORDER BY r.read_at) AS next_at
            FROM tank_reading r JOIN starts s ON s.station_id = r.station_id
            WHERE r.read_at >= s.load_from)
        WHERE next_at IS NULL OR next_at - last_at >= INTERVAL {int(FLOOR_H * 60)} MINUTE
    )"""

#: Every status change of the scoped stations' devices with when the next one came.
STATUSES = """
    SELECT * FROM (
        SELECT d.station_id, d.device_id, d.device_kind, d.status, d."at",
               lead(d."at") OVER (PARTITION BY d.station_id, d.device_id ORDER BY d."at")
               AS until_at
        FROM device_status d JOIN starts s ON s.station_id = d.station_id
        WHERE d."at" >= s.load_from - $status_back)
    ORDER BY station_id, "at"
"""


def _pauses_sql(rule: str) -> str:
    return f"""
        WITH {open_episodes(rule)}, {ATG_PAUSES},
        vm_pauses AS (
            SELECT * FROM (
                SELECT v.station_id, 'vapor_monitor' AS device_kind, NULL::VARCHAR AS tank_id,
                       v.measured_at AS last_at,
                       lead(v.measured_at) OVER (PARTITION BY v.station_id
                                                 ORDER BY v.measured_at) AS next_at
                FROM vapor v JOIN starts s ON s.station_id = v.station_id
                WHERE v.measured_at >= s.load_from)
            WHERE next_at IS NULL OR next_at - last_at >= INTERVAL {int(VM_FLOOR_H * 60)} MINUTE
        ), pauses AS (SELECT * FROM atg_pauses UNION ALL SELECT * FROM vm_pauses)
        SELECT p.station_id, p.device_kind, p.tank_id, p.last_at, p.next_at,
               count(x.txn_id) AS sales, coalesce(sum(x.volume_l), 0) AS sales_l,
               min(x.started_at) AS first_sale_at, max(x.started_at) AS last_sale_at
        FROM pauses p LEFT JOIN sale x ON x.station_id = p.station_id
         AND x.started_at > p.last_at AND (p.next_at IS NULL OR x.started_at < p.next_at)
         AND (p.device_kind <> 'vapor_monitor' OR x.product LIKE 'gasoline%')
         AND x.started_at >= $from
        GROUP BY ALL
    """


def earliest(reader: Reader, rule: str) -> datetime:
    """The earliest instant ``rule`` reads from (for a pruning bound on big tables)."""
    rows = reader.sql(f"WITH {open_episodes(rule)} SELECT min(load_from) AS t FROM starts")
    value = rows["t"][0] if rows.height else None
    return value if isinstance(value, datetime) else reader.scope.earliest


def statuses(reader: Reader, rule: str) -> pl.DataFrame:
    """Device status changes of the scope, from a month before it."""
    frame = reader.sql(f"WITH {open_episodes(rule)} {STATUSES}",
                       {"status_back": STATUS_LOOKBACK})  # fmt: skip
    return frame.cast({"at": UTC_US, "until_at": UTC_US})


def load(reader: Reader) -> Frames:
    pauses = reader.sql(_pauses_sql(RULE.name), {"from": earliest(reader, RULE.name)})
    return {"pauses": pauses.cast({c: UTC_US for c in ("last_at", "next_at", "first_sale_at",
                                                        "last_sale_at")}),
            "statuses": statuses(reader, RULE.name)}  # fmt: skip


def hours(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """``b − a`` in hours."""
    return (b - a).dt.total_microseconds() / _HOUR_US


def reported(windows: pl.DataFrame, status: pl.DataFrame, kind: str | pl.Expr,
             start: str, end: str) -> pl.DataFrame:  # fmt: skip
    """``windows`` (one row per ``window_id``) with the worst outage a device of ``kind``
    at the station reported during [start, end]: ``reported_status`` (``fault`` over
    ``offline``; null: none) and ``device_ids`` (the devices that reported it)."""
    kind_expr = pl.lit(kind) if isinstance(kind, str) else kind
    outages = status.filter(pl.col("status").is_in(["offline", "fault"])).select(
        "station_id", "device_id", pl.col("device_kind").alias("kind"), "status", "at",
        "until_at")  # fmt: skip
    overlap = (
        windows.select("window_id", "station_id", kind_expr.alias("kind"), start, end)
        .join(outages, on=["station_id", "kind"])
        .filter((pl.col("at") <= pl.col(end))
                & (pl.col("until_at").is_null() | (pl.col("until_at") > pl.col(start))))
        .group_by("window_id").agg(
            reported_status=pl.when((pl.col("status") == "fault").any()).then(pl.lit("fault"))
            .otherwise(pl.lit("offline")),
            device_ids=pl.col("device_id").unique().sort())
    )  # fmt: skip
    return windows.join(overlap, on="window_id", how="left")


def severity_of_report(status: pl.Expr) -> pl.Expr:
    """``low`` for a reported offline, ``medium`` for a reported fault, ``high`` for
    silence with no status (suspected suppression)."""
    return (pl.when(status == "offline").then(pl.lit("low"))
            .when(status == "fault").then(pl.lit("medium")).otherwise(pl.lit("high")))  # fmt: skip


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    pauses = frames["pauses"].filter(pl.col("sales") > 0)
    if pauses.is_empty():
        return no_findings()
    threshold = pl.when(pl.col("device_kind") == "atg").then(
        pl.lit(settings.silence_atg_h)).otherwise(pl.lit(settings.silence_vapor_monitor_h))
    # Silent while selling: a sale came at least the allowed pause after the last record.
    silent = pauses.with_columns(
        until_at=pl.coalesce("next_at", "last_sale_at"),
        threshold_h=threshold,
    ).with_columns(silent_h=hours(pl.col("last_at"), pl.col("until_at"))).filter(
        hours(pl.col("last_at"), pl.col("last_sale_at")) >= pl.col("threshold_h"),
    ).with_row_index("window_id")  # fmt: skip
    if silent.is_empty():
        return no_findings()
    found = reported(silent, frames["statuses"], pl.col("device_kind"), "last_at",
                     "until_at").with_columns(  # fmt: skip
        subject=pl.coalesce("tank_id", "device_kind"),
        severity=severity_of_report(pl.col("reported_status")),
        window_start=pl.col("last_at"),
        window_end=pl.col("until_at"),
        ongoing=pl.col("next_at").is_null(),
    )
    return findings(found, [
        "device_kind", "tank_id", pl.col("last_at").alias("silent_from_at"),
        pl.col("next_at").alias("resumed_at"), "ongoing", "silent_h", "threshold_h",
        "sales", "sales_l", "first_sale_at", "last_sale_at", "reported_status",
        "device_ids",
    ])  # fmt: skip


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 sale``, ``3 sales``."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def beijing(value: object) -> str:
    """An evidence time (ISO-8601 ``Z`` text or a datetime) as Beijing time, to the minute."""
    if value is None:
        return "—"
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


_STATUS_TEXT = {
    None: "no status reported: suspected suppression",
    "offline": "reported offline",
    "fault": "reported a fault",
}


def describe(e: dict[str, Any]) -> str:
    what = ("vapour-recovery monitor" if e["device_kind"] == "vapor_monitor"
            else f"tank gauge of tank {e['tank_id']}")  # fmt: skip
    until = (f"and is still silent at the last sale ({beijing(e['last_sale_at'])})"
             if e["ongoing"] else f"until {beijing(e['resumed_at'])}")  # fmt: skip
    fuel = " of gasoline" if e["device_kind"] == "vapor_monitor" else ""
    devices = f" ({', '.join(e['device_ids'])})" if e.get("device_ids") else ""
    return (f"The {what} sent nothing from {beijing(e['silent_from_at'])} {until} Beijing "
            f"time ({e['silent_h']:.1f} h; allowed {e['threshold_h']:g} h) while the station "
            f"sold {e['sales_l']:.1f} L{fuel} in {count(e['sales'], 'sale')}; "
            f"{_STATUS_TEXT.get(e['reported_status'], e['reported_status'])}{devices}.")


RULE = Rule(
    name="device_silent",
    title="Device silent while the station sells",
    title_zh="设备失联期间仍在销售",
    load=load,
    detect=detect,
    describe=describe,
    # Pauses begun the day before the scope; longer open ones through `open_episodes`.
    lookback=timedelta(days=1),
)
