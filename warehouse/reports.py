"""Rendering trace results for people (text tables) and recall reports as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any


def _n(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value + 0.0:,.{digits}f}"  # + 0.0: no "-0.0"


def render_sale(r: dict[str, Any]) -> str:
    lines = [
        f"Sale {r['txn_id']} at {r['station_id']} (nozzle {r['nozzle_id']}, {r['product']}), "
        f"ended {r['ended_at']}",
        f"  {_n(r['observed_volume_l'], 2)} L observed at {_n(r['temperature_c'])} °C → "
        f"{_n(r['volume_20_l'], 2)} L at 20 °C (tank {r['tank_id']}, "
        f"density {_n(r['density_kg_m3'])} kg/m³)",
    ]
    if not r["batches"]:
        lines.append(f"  {r.get('note', 'no lineage')}")
        return "\n".join(lines)
    lines.append(f"  {'batch':<28}{'share':>8}{'L at 20 °C':>12}  {'depot':<16}dispatched")
    for b in r["batches"]:
        lines.append(f"  {b['batch_id']:<28}{b['share'] * 100:>7.1f}%{_n(b['litres_20'], 2):>12}"
                     f"  {b['depot_id'] or '—':<16}{b['dispatched_at'] or '—'}")  # fmt: skip
    return "\n".join(lines)


def render_batch(r: dict[str, Any]) -> str:
    t = r["totals"]
    lines = [
        f"Batch {r['batch_id']} (litres at 20 °C)",
        f"  dispatched {_n(t['dispatched_l'])}  in transit {_n(t['in_transit_l'])}  "
        f"transit loss {_n(t['transit_loss_l'])}  received {_n(t['received_l'])}",
        f"  sold {_n(t['sold_l'])}  still in tanks {_n(t['in_tanks_l'])}  "
        f"losses {_n(t['losses_l'])}",
        f"  first sale {t['first_sale_at'] or '—'}   last sale {t['last_sale_at'] or '—'}",
        "",
        f"  {'station':<16}{'city':<10}{'tank':<6}{'received':>11}{'sold':>11}{'in tank':>11}"
        f"{'losses':>9}{'sales':>7}",
    ]
    for x in r["tanks"]:
        lines.append(f"  {x['station_id']:<16}{x['city'] or '—':<10}{x['tank_id']:<6}"
                     f"{_n(x['received_l']):>11}{_n(x['sold_l']):>11}{_n(x['in_tank_l']):>11}"
                     f"{_n(x['losses_l']):>9}{x['sales']:>7}")  # fmt: skip
    for d in r["dispatches"]:
        if d["status"] != "matched":
            lines.append(f"  ! dispatch {d['dispatch_id']} to {d['station_id']}: {d['status']}"
                         + (f" ({', '.join(d['mismatches'])})" if d["mismatches"] else ""))
    return "\n".join(lines)


def render_delivery(r: dict[str, Any]) -> str:
    return "\n".join([
        f"Delivery {r['delivery_id']} into {r['station_id']}/{r['tank_id']} "
        f"({r['product']}, {r['vehicle_plate']}), {r['started_at']} – {r['ended_at']}",
        f"  batch {r['batch_id'] or '—'} via dispatch {r['dispatch_id'] or '— (none)'}: "
        f"{r['status'] or '—'}" + (f" ({', '.join(r['mismatches'])})" if r["mismatches"] else ""),
        f"  declared {_n(r['volume_20_l'])} L at 20 °C; dispatched {_n(r['dispatched_20_l'])}; "
        f"difference {_n(r['difference_20_l'])} L ({_n(r['difference_pct'], 2)} %)",
        f"  tank gauge saw {_n(r['gauge_rise_20_l'])} L: difference "
        f"{_n(r['gauge_difference_20_l'])} L ({r['gauge_status'] or '—'})",
    ])  # fmt: skip


TANK_COLUMNS = (
    "station_id", "station_name", "city", "tank_id", "received_at", "received_l", "sold_l",
    "in_tank_l", "losses_l", "sales", "first_sale_at", "last_sale_at",
)  # fmt: skip
SALE_COLUMNS = ("station_id", "txn_id", "tank_id", "at", "volume_20_l", "share",
                "litres_from_batch_20", "invoice_id")  # fmt: skip


def recall_csv(report: dict[str, Any], *, sales: bool = False) -> str:
    """One row per station tank (or per sale): the batch id first, litres at 20 °C."""
    out = io.StringIO()
    columns = SALE_COLUMNS if sales else TANK_COLUMNS
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("batch_id", *columns))
    for row in report["sales"] if sales else report["tanks"]:
        writer.writerow((report["batch_id"], *(row[c] for c in columns)))
    return out.getvalue()
