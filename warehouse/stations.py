"""A station as an inspector looks it up: registry, licences, tanks, recent findings, and a
tank's daily reconciliation (book against measured stock at 20 °C).

Plain functions over a connection returning JSON-ready dicts, like ``warehouse.trace``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import duckdb
import polars as pl

from processors import wetstock
from processors.rules.base import LOCAL
from warehouse.anomalies import AnomalyFilter, list_anomalies
from warehouse.connection import scalar
from warehouse.trace import NotFound, _jsonable

#: A licence this close to its end is flagged ``expiring`` (renewals take weeks).
EXPIRING_DAYS = 90
#: The longest reconciliation series one call returns.
MAX_DAYS = 366


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [_jsonable(dict(zip(names, row, strict=True))) for row in cur.fetchall()]


def station_city(con: duckdb.DuckDBPyConnection, station_id: str) -> str | None:
    """The station's city, or None when the registry does not know the station."""
    rows = con.execute("SELECT city FROM station WHERE station_id = $id",
                       {"id": station_id}).fetchall()  # fmt: skip
    return str(rows[0][0]) if rows else None


def list_stations(con: duckdb.DuckDBPyConnection, *, city: str | None = None, limit: int = 100,
                  offset: int = 0) -> tuple[int, list[dict[str, Any]]]:  # fmt: skip
    """(total, page) of registered stations, by city then id, with their active findings."""
    where = "TRUE" if city is None else "s.city = $city"
    params: dict[str, Any] = {} if city is None else {"city": city}
    total = scalar(con, f"SELECT count(*) FROM station s WHERE {where}", params)
    items = _rows(con, f"""
        SELECT s.station_id, s.name, s.city, s.operator, s.updated_at,
               (SELECT count(*) FROM anomaly a WHERE a.station_id = s.station_id
                AND a.state = 'active') AS active_anomalies
        FROM station s WHERE {where} ORDER BY s.city, s.station_id LIMIT $limit OFFSET $offset
    """, params | {"limit": limit, "offset": offset})  # fmt: skip
    return total, items


def licence_standing(status: str, valid_from: str, valid_until: str, today: date) -> str:
    """valid | expiring | expired | not_yet_valid | suspended | revoked, on ``today``."""
    if status != "valid":
        return status
    if date.fromisoformat(valid_until) < today:
        return "expired"
    if date.fromisoformat(valid_from) > today:
        return "not_yet_valid"
    if date.fromisoformat(valid_until) < today + timedelta(days=EXPIRING_DAYS):
        return "expiring"
    return "valid"


def station_overview(con: duckdb.DuckDBPyConnection, station_id: str, now: datetime,
                     recent: int = 20) -> dict[str, Any]:  # fmt: skip
    """Registry, licences (with their standing today), tanks with their latest gauge
    reading, nozzles, the most recent findings, and the count of active ones."""
    found = _rows(con, "SELECT station_id, name, city, operator, updated_at FROM station "
                       "WHERE station_id = $id", {"id": station_id})  # fmt: skip
    if not found:
        raise NotFound(f"no station {station_id!r}")
    today = now.astimezone(LOCAL).date()
    licences = _rows(con, """
        SELECT kind, number, valid_from::VARCHAR AS valid_from, valid_until::VARCHAR
               AS valid_until, status
        FROM licence WHERE facility_id = $id ORDER BY kind, valid_until DESC
    """, {"id": station_id})  # fmt: skip
    for lic in licences:
        lic["standing"] = licence_standing(lic["status"], lic["valid_from"], lic["valid_until"],
                                           today)  # fmt: skip
    tanks = _rows(con, """
        WITH latest AS (
            SELECT r.tank_id, r.read_at, r.volume_l, r.temperature_c, r.water_mm
            FROM tank_reading r WHERE r.station_id = $id
            QUALIFY row_number() OVER (PARTITION BY r.tank_id ORDER BY r.read_at DESC) = 1
        )
        SELECT t.tank_id, t.product, t.capacity_l, l.read_at AS last_read_at,
               l.volume_l AS last_volume_l, std.volume_20_l AS last_volume_20_l,
               l.temperature_c AS last_temperature_c, l.water_mm AS last_water_mm,
               round(100 * l.volume_l / t.capacity_l, 1) AS fill_pct
        FROM tank t LEFT JOIN latest l ON l.tank_id = t.tank_id
        LEFT JOIN reading_std std ON std.station_id = t.station_id AND std.tank_id = t.tank_id
             AND std.read_at = l.read_at
        WHERE t.station_id = $id ORDER BY t.tank_id
    """, {"id": station_id})  # fmt: skip
    nozzles = _rows(con, "SELECT nozzle_id, dispenser_id, tank_id FROM nozzle "
                         "WHERE station_id = $id ORDER BY nozzle_id", {"id": station_id})
    counts = _rows(con, """
        SELECT severity, count(*) AS n FROM anomaly WHERE station_id = $id AND state = 'active'
        GROUP BY severity
    """, {"id": station_id})  # fmt: skip
    anomalies = list_anomalies(con, AnomalyFilter(station_id=station_id, include_resolved=True),
                               limit=recent)  # fmt: skip
    open_cases = scalar(con, """
        SELECT count(*) FROM anomaly_case c JOIN anomaly a ON a.anomaly_id = c.anomaly_id
        WHERE a.station_id = $id AND c.state <> 'closed'
    """, {"id": station_id})  # fmt: skip
    return {
        **found[0],
        "licences": licences,
        "tanks": tanks,
        "nozzles": nozzles,
        "active_anomalies": {r["severity"]: r["n"] for r in counts},
        "open_cases": open_cases,
        "recent_anomalies": sorted(anomalies, key=lambda a: a["window_end"], reverse=True),
    }


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), LOCAL)


#: Defaults of the daily tolerance; the API passes the inventory_imbalance rule's settings
#: (FUELTRACE_IMBALANCE_*), so the page and the rule judge a day alike.
TOLERANCE_PCT = 0.5
TOLERANCE_MIN_L = 50.0
MAX_READING_AGE = timedelta(hours=6)


def tank_reconciliation(con: duckdb.DuckDBPyConnection, station_id: str, tank_id: str,
                        start: date | None = None, end: date | None = None, *,
                        tolerance_pct: float = TOLERANCE_PCT,
                        tolerance_min_l: float = TOLERANCE_MIN_L,
                        max_reading_age: timedelta = MAX_READING_AGE,
                        ) -> dict[str, Any]:  # fmt: skip
    """The tank's daily reconciliation over Asia/Shanghai days ``start``…``end``
    (inclusive; default: the 30 days up to its latest reading), litres at 20 °C, by
    :func:`processors.wetstock.daily_reconciliation`: opening and closing stock measured
    by the gauge at the day's boundaries, deliveries and sales between them,
    book = opening + deliveries − sales, variance = closing − book (negative: fuel
    missing), and pass / fail / inconclusive against the tolerance.
    """
    known = scalar(con, "SELECT count(*) FROM tank WHERE station_id = $s AND tank_id = $t",
                   {"s": station_id, "t": tank_id})  # fmt: skip
    if not known:
        raise NotFound(f"no tank {tank_id!r} at station {station_id!r}")
    if end is None:
        rows = con.execute("SELECT max(read_at) FROM reading_std WHERE station_id = $s "
                           "AND tank_id = $t", {"s": station_id, "t": tank_id}).fetchall()
        latest = rows[0][0] if rows else None
        end = latest.astimezone(LOCAL).date() if latest else datetime.now(LOCAL).date()
    start = start or end - timedelta(days=29)
    days = (end - start).days + 1
    if days < 1 or days > MAX_DAYS:
        raise ValueError(f"a series covers 1…{MAX_DAYS} days (from ≤ to)")
    params = {"s": station_id, "t": tank_id,
              "from": _day_start(start) - max_reading_age - timedelta(hours=2),
              "to": _day_start(end + timedelta(days=1)) + timedelta(hours=1)}  # fmt: skip
    readings = con.sql("""
        SELECT station_id, tank_id, read_at, volume_20_l FROM reading_std
        WHERE station_id = $s AND tank_id = $t AND read_at >= $from AND read_at <= $to
    """, params=params).pl()  # fmt: skip
    sales = con.sql("""
        SELECT station_id, tank_id, "at", volume_20_l FROM sale_std
        WHERE station_id = $s AND tank_id = $t AND "at" >= $from AND "at" <= $to
    """, params=params).pl()  # fmt: skip
    deliveries = con.sql("""
        SELECT station_id, tank_id, started_at, ended_at,
               coalesce(volume_20_l, volume_l) AS volume_20_l FROM delivery
        WHERE station_id = $s AND tank_id = $t AND ended_at >= $from - INTERVAL 1 DAY
          AND started_at <= $to
    """, params=params).pl()  # fmt: skip
    daily = wetstock.daily_reconciliation(
        readings, sales, deliveries, tolerance_pct=tolerance_pct,
        tolerance_min_l=tolerance_min_l, max_reading_age=max_reading_age,
    ).filter(pl.col("day").is_between(start, end))
    series = []
    for row in daily.drop("station_id", "tank_id", "day_start", "day_end").iter_rows(named=True):
        row["date"] = row.pop("day").isoformat()
        series.append(_jsonable(row))
    return {"station_id": station_id, "tank_id": tank_id, "from": start.isoformat(),
            "to": end.isoformat(), "timezone": "Asia/Shanghai", "unit": "L at 20 °C",
            "tolerance_pct": tolerance_pct, "tolerance_min_l": tolerance_min_l,
            "days": series}  # fmt: skip


def restrict_to_city(con: duckdb.DuckDBPyConnection, report: dict[str, Any],
                     city: str) -> dict[str, Any] | None:  # fmt: skip
    """A batch trace or recall report cut down to one city's stations (what a city
    regulator may see), its totals recomputed over what is left; None if nothing is."""
    ids = {d["station_id"] for d in report["dispatches"]} | {t["station_id"]
                                                              for t in report["tanks"]}
    rows = con.execute("SELECT station_id FROM station WHERE city = $city AND station_id IN "
                       "(SELECT unnest($ids))", {"city": city, "ids": sorted(ids)}).fetchall()
    mine = {r[0] for r in rows}
    dispatches = [d for d in report["dispatches"] if d["station_id"] in mine]
    tanks = [t for t in report["tanks"] if t["station_id"] in mine]
    if not dispatches and not tanks:
        return None
    out = dict(report, dispatches=dispatches, tanks=tanks, city=city)
    dispatched = sum(d["volume_20_l"] or 0 for d in dispatches)
    in_transit = sum(d["volume_20_l"] or 0 for d in dispatches if d["delivery_id"] is None)
    received = sum(t["received_l"] for t in tanks)
    out["totals"] = {
        "dispatched_l": round(dispatched, 3),
        "in_transit_l": round(in_transit, 3),
        "transit_loss_l": round(dispatched - in_transit - received, 3) if dispatches else None,
        "received_l": round(received, 3),
        "sold_l": round(sum(t["sold_l"] for t in tanks), 3),
        "in_tanks_l": round(sum(t["in_tank_l"] for t in tanks), 3),
        "losses_l": round(sum(t["losses_l"] for t in tanks), 3),
        "first_sale_at": min((t["first_sale_at"] for t in tanks if t["first_sale_at"]),
                             default=None),
        "last_sale_at": max((t["last_sale_at"] for t in tanks if t["last_sale_at"]),
                            default=None),
    }  # fmt: skip
    if "tanks_to_seal" in report:
        out["tanks_to_seal"] = [t for t in report["tanks_to_seal"] if t["station_id"] in mine]
    if "sales" in report:
        out["sales"] = [s for s in report["sales"] if s["station_id"] in mine]
    return out
