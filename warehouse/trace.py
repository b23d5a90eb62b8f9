"""Traceability queries: a sale back to its batches, a batch forward to every tank and
sale, a recall report, a delivery's checks. Plain functions over a connection, returning
JSON-ready dicts, so the CLI and the HTTP API share them.

Litres are at 20 °C unless a key says ``observed``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from fueltrace.errors import TerminalError


class NotFound(TerminalError):
    """The sale, batch or delivery asked for is not in the warehouse."""


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [_jsonable(dict(zip(names, row, strict=True))) for row in cur.fetchall()]


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, datetime):
            v = v.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        elif isinstance(v, float):
            v = round(v, 6)
        out[k] = v
    return out


# The segment of a tank covering an instant: valid_from <= at < valid_to.
_COVERS = ("seg.station_id = s.station_id AND seg.tank_id = s.tank_id AND seg.valid_from <= s.at "
           "AND (seg.valid_to IS NULL OR s.at < seg.valid_to)")  # fmt: skip


def trace_sale(con: duckdb.DuckDBPyConnection, station_id: str, txn_id: str) -> dict[str, Any]:
    """Backward: the depot batches a sale's litres came from, with litres and share.

    Two lookups: the sale by ``txn_id`` (an ART index scan: the equality is the scan's
    whole filter, the station is checked after), then the one segment of its tank
    covering the instant its litres left the tank.
    """
    cur = con.execute("""
        WITH s AS MATERIALIZED (SELECT * FROM sale WHERE txn_id = $txn),
             st AS MATERIALIZED (SELECT * FROM sale_std WHERE txn_id = $txn)
        SELECT s.txn_id, s.station_id, s.nozzle_id, s.product, s.volume_l AS observed_volume_l,
               s.started_at, s.ended_at, st.tank_id, st.temperature_c, st.density_kg_m3,
               st.volume_20_l, st."at"
        FROM s LEFT JOIN st ON st.station_id = s.station_id AND st.txn_id = s.txn_id
        WHERE s.station_id = $station
    """, {"station": station_id, "txn": txn_id})  # fmt: skip
    names = [d[0] for d in cur.description]
    found = cur.fetchall()
    if not found:
        raise NotFound(f"no sale {txn_id!r} at station {station_id!r}")
    raw = dict(zip(names, found[0], strict=True))
    at, volume_20 = raw.pop("at"), raw["volume_20_l"]
    batches = []
    if at is not None:
        batches = _rows(con, """
            SELECT seg.batch_id, seg.share, seg.share * $v AS litres_20,
                   d.depot_id, d.dispatch_id, d.dispatched_at, seg.density_kg_m3
            FROM tank_segment seg
            LEFT JOIN (SELECT batch_id, any_value(depot_id) AS depot_id,
                              min(dispatch_id) AS dispatch_id, min(dispatched_at) AS dispatched_at
                       FROM dispatch GROUP BY batch_id) d ON d.batch_id = seg.batch_id
            WHERE seg.station_id = $station AND seg.tank_id = $tank AND seg.valid_from <= $at
              AND (seg.valid_to IS NULL OR $at < seg.valid_to)
            ORDER BY seg.share DESC, seg.batch_id
        """, {"station": station_id, "tank": raw["tank_id"], "at": at, "v": volume_20})  # fmt: skip
    result = _jsonable(raw)
    result["batches"] = batches
    if not batches:
        result["note"] = ("no lineage: the sale's nozzle is not in the registry, or it precedes "
                          "the tank's first gauge reading")  # fmt: skip
    return result


def _batch_tanks(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[dict[str, Any]]:
    """Per station tank: received, sold, in tank now, variance, first and last sale.

    From the batch's rows of ``segment_sales`` (migration 005): each says what a
    segment's sales took of the batch and, in the open segment, what is left. No sale
    is read, so the cost does not grow with the sales since the batch's first delivery.
    """
    return _rows(con, """
        WITH received AS (
            SELECT station_id, tank_id, sum(litres_20) AS received_l, min("at") AS received_at
            FROM delivery_batch WHERE batch_id = $b GROUP BY ALL
        ), sold AS (
            SELECT station_id, tank_id, sum(sold_20_l) AS sold_l, sum(sales)::BIGINT AS sales,
                   min(first_sale_at) AS first_sale_at, max(last_sale_at) AS last_sale_at,
                   sum(in_tank_20_l) AS in_tank_l
            FROM segment_sales WHERE batch_id = $b GROUP BY ALL
        ), variance AS (
            SELECT station_id, tank_id, sum(litres_20) AS variance_l
            FROM batch_variance WHERE batch_id = $b GROUP BY ALL
        )
        SELECT r.station_id, st.name AS station_name, st.city, r.tank_id, r.received_at,
               r.received_l, coalesce(sold.sold_l, 0) AS sold_l,
               coalesce(sold.in_tank_l, 0) AS in_tank_l,
               -coalesce(variance.variance_l, 0) AS losses_l,
               coalesce(sold.sales, 0) AS sales, sold.first_sale_at, sold.last_sale_at
        FROM received r
        LEFT JOIN sold USING (station_id, tank_id)
        LEFT JOIN variance USING (station_id, tank_id)
        LEFT JOIN station st ON st.station_id = r.station_id
        ORDER BY r.station_id, r.tank_id
    """, {"b": batch_id})  # fmt: skip


def trace_batch(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, Any]:
    """Forward: where a batch went, what was sold from it, what is still in tanks."""
    dispatches = _rows(con, """
        SELECT p.dispatch_id, p.depot_id, p.station_id, p.vehicle_plate, p.dispatched_at,
               p.volume_l AS observed_volume_l, p.volume_20_l, p.density_kg_m3,
               c.delivery_id, coalesce(c.status, CASE WHEN o.overdue THEN 'overdue'
                                                      ELSE 'in_transit' END) AS status,
               c.mismatches
        FROM dispatch p
        LEFT JOIN delivery_check c ON c.dispatch_id = p.dispatch_id
        LEFT JOIN open_dispatch o ON o.dispatch_id = p.dispatch_id
        WHERE p.batch_id = $b ORDER BY p.dispatched_at, p.dispatch_id
    """, {"b": batch_id})  # fmt: skip
    tanks = _batch_tanks(con, batch_id)
    if not dispatches and not tanks:
        raise NotFound(f"no dispatch or delivery of batch {batch_id!r}")
    dispatched = sum(d["volume_20_l"] or 0 for d in dispatches)
    in_transit = sum(d["volume_20_l"] or 0 for d in dispatches if d["delivery_id"] is None)
    received = sum(t["received_l"] for t in tanks)
    totals = {
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
    return {"batch_id": batch_id, "totals": totals, "dispatches": dispatches, "tanks": tanks}


def batch_sales(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[dict[str, Any]]:
    """Every sale holding part of a batch, with the litres of it (for a recall's follow-up)."""
    return _rows(con, f"""
        SELECT s.station_id, s.txn_id, s.tank_id, s.at, s.volume_20_l,
               seg.share, seg.share * s.volume_20_l AS litres_from_batch_20, sa.invoice_id
        FROM tank_segment seg JOIN sale_std s ON {_COVERS}
        JOIN sale sa ON sa.station_id = s.station_id AND sa.txn_id = s.txn_id
        WHERE seg.batch_id = $b ORDER BY s.at, s.station_id, s.txn_id
    """, {"b": batch_id})  # fmt: skip


def recall_report(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, Any]:
    """What an inspector holding a bad batch's certificate needs: where it is, what to
    seal off (tanks still holding it), and whom it was sold to (sales, invoices)."""
    report = trace_batch(con, batch_id)
    report["tanks_to_seal"] = [t for t in report["tanks"] if t["in_tank_l"] > 0.5]
    report["sales"] = batch_sales(con, batch_id)
    return report


def trace_delivery(con: duckdb.DuckDBPyConnection, delivery_id: str) -> dict[str, Any]:
    rows = _rows(con, """
        SELECT d.delivery_id, d.station_id, d.tank_id, d.dispatch_id, d.product,
               d.vehicle_plate, d.volume_l AS observed_volume_l, d.volume_20_l,
               d.density_kg_m3, d.started_at, d.ended_at, b.batch_id,
               c.status, c.mismatches, c.dispatched_20_l, c.difference_20_l, c.difference_pct,
               c.gauge_rise_20_l, c.gauge_difference_20_l, c.gauge_status
        FROM delivery d LEFT JOIN delivery_batch b USING (delivery_id)
        LEFT JOIN delivery_check c USING (delivery_id)
        WHERE d.delivery_id = $id
    """, {"id": delivery_id})  # fmt: skip
    if not rows:
        raise NotFound(f"no delivery {delivery_id!r}")
    return rows[0]
