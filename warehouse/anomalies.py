"""Anomaly queries: the findings with the regulator's filters, and one finding's history.

Plain functions over a connection returning JSON-ready dicts (evidence as an object), so
the CLI and the HTTP API share them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from warehouse.trace import NotFound, _jsonable


@dataclass(frozen=True)
class AnomalyFilter:
    """Every filter is optional; times bound the anomaly's window (overlap)."""

    city: str | None = None
    rule: str | None = None
    severity: str | None = None
    station_id: str | None = None
    since: datetime | None = None  # window_end ≥ since
    until: datetime | None = None  # window_start < until
    include_resolved: bool = False

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        for column in ("city", "rule", "severity", "station_id"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ${column}")
                params[column] = value
        if self.since is not None:
            clauses.append("window_end >= $since")
            params["since"] = self.since
        if self.until is not None:
            clauses.append("window_start < $until")
            params["until"] = self.until
        if not self.include_resolved:
            clauses.append("state = 'active'")
        return (" AND ".join(clauses) or "TRUE"), params


_COLUMNS = ("anomaly_id, rule, severity, station_id, depot_id, city, subject, window_start, "
            "window_end, evidence::VARCHAR AS evidence, summary, state, first_seen_at, "
            "updated_at, resolved_at")  # fmt: skip
_SEVERITY_ORDER = ("CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 "
                   "WHEN 'medium' THEN 2 ELSE 3 END")  # fmt: skip


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    out = []
    for values in cur.fetchall():
        row = _jsonable(dict(zip(names, values, strict=True)))
        if isinstance(row.get("evidence"), str):
            row["evidence"] = json.loads(row["evidence"])
        out.append(row)
    return out


def list_anomalies(con: duckdb.DuckDBPyConnection, flt: AnomalyFilter = AnomalyFilter(),
                   limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:  # fmt: skip
    """Findings matching ``flt``: most severe first, then newest window first."""
    where, params = flt.where()
    page = ""
    if limit is not None:
        page = "LIMIT $limit OFFSET $offset"
        params |= {"limit": limit, "offset": offset}
    return _rows(con, f"""
        SELECT {_COLUMNS} FROM anomaly WHERE {where}
        ORDER BY {_SEVERITY_ORDER}, window_end DESC, anomaly_id {page}
    """, params)  # fmt: skip


def count_anomalies(con: duckdb.DuckDBPyConnection, flt: AnomalyFilter = AnomalyFilter()) -> int:
    where, params = flt.where()
    rows = con.execute(f"SELECT count(*) FROM anomaly WHERE {where}", params).fetchall()
    return int(rows[0][0])


def get_anomaly(con: duckdb.DuckDBPyConnection, anomaly_id: str) -> dict[str, Any]:
    """One finding with its history (raised, updated, resolved, reraised)."""
    rows = _rows(con, f"SELECT {_COLUMNS} FROM anomaly WHERE anomaly_id = $id",
                 {"id": anomaly_id})  # fmt: skip
    if not rows:
        raise NotFound(f"no anomaly {anomaly_id!r}")
    rows[0]["history"] = _rows(con, """
        SELECT "at", change, severity, evidence::VARCHAR AS evidence, summary, run_id
        FROM anomaly_history WHERE anomaly_id = $id ORDER BY "at", run_id
    """, {"id": anomaly_id})  # fmt: skip
    return rows[0]


def counts_by_rule(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Active findings per rule, severity and city (the demo's summary, the metrics)."""
    return _rows(con, """
        SELECT rule, severity, city, count(*) AS anomalies FROM anomaly
        WHERE state = 'active' GROUP BY ALL ORDER BY rule, severity, city
    """, {})  # fmt: skip
