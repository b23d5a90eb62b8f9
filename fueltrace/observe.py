"""The warehouse's gauges: freshness, rows, silent stations and open anomalies.

``refresh_gauges`` runs after each analysis run (``fueltrace.analyses``). Its queries
stay cheap as the warehouse grows to billions of rows: event times and the stations
heard from are read only from the loads since the previous refresh (``load_id`` grows
with every load, so DuckDB skips older row groups by their min/max), merged into what
this process already knows; the first refresh after a start looks back
``FUELTRACE_SILENT_STATION_H`` only for stations heard from. Row counts are ``count(*)``
(milliseconds for millions of rows: no column is read).

The two gauges that depend on the clock, event-time lag and silent stations, are
computed when Prometheus scrapes (``metrics.ScrapeTimeGauge``): they keep growing while
nothing arrives, which is exactly when they matter.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from fueltrace import metrics
from fueltrace.settings import Settings
from warehouse.connection import scalar

log = logging.getLogger(__name__)

#: Per record type: its table and the event time that says how recent a record is.
EVENT_TIME: dict[str, tuple[str, str]] = {
    "facility": ("facility_version", "updated_at"),
    "dispatch": ("dispatch", "dispatched_at"),
    "delivery": ("delivery", "ended_at"),
    "tank_reading": ("tank_reading", "read_at"),
    "sale": ("sale", "ended_at"),
    "vapor": ("vapor", "measured_at"),
    "device_status": ("device_status", "at"),
}
#: Record types a station sends by itself: any of them means the station is heard from.
STATION_FEEDS = ("delivery", "tank_reading", "sale", "vapor", "device_status")
NO_CITY = "unknown"


@dataclass
class _Seen:
    """What this process knows about one warehouse, kept between refreshes."""

    db: Path
    watermark: int = 0  # the newest load_id read
    newest: dict[str, float] = field(default_factory=dict)  # record type -> epoch s
    last_heard: dict[str, float] = field(default_factory=dict)  # station -> epoch s
    city: dict[str, str] = field(default_factory=dict)  # station -> city
    silent_after_s: float = 0.0

    def event_time_lag(self, now: float) -> dict[tuple[str, ...], float]:
        return {(t, ): max(now - newest, 0.0) for t, newest in self.newest.items()}

    def silent(self, now: float) -> dict[tuple[str, ...], float]:
        counts: dict[tuple[str, ...], float] = {(city, ): 0.0 for city in self.city.values()}
        cutoff = now - self.silent_after_s
        for station, city in self.city.items():
            if self.last_heard.get(station, float("-inf")) < cutoff:
                counts[(city, )] += 1
        return counts


_lock = threading.Lock()
_seen: _Seen | None = None


def _read_new_loads(con: duckdb.DuckDBPyConnection, seen: _Seen, latest: int,
                    since: datetime | None) -> None:  # fmt: skip
    """Merge the event times of loads after ``seen.watermark`` into ``seen``."""
    params: dict[str, object] = {"w": seen.watermark}
    window = ""
    if since is not None:
        window = ' AND "{col}" >= $since'
        params["since"] = since
    parts = []
    for record_type, (table, column) in EVENT_TIME.items():
        parts.append(f"SELECT '{record_type}' AS k, epoch_ms(max(\"{column}\")) AS t "
                     f"FROM {table} WHERE load_id > $w")  # fmt: skip
    for record_type, (table, column) in EVENT_TIME.items():
        if record_type in STATION_FEEDS:
            parts.append(f"SELECT station_id, epoch_ms(max(\"{column}\")) FROM {table} "
                         f"WHERE load_id > $w{window.format(col=column)} GROUP BY 1")  # fmt: skip
    rows = con.execute(" UNION ALL ".join(parts), params).fetchall()
    newest = rows[: len(EVENT_TIME)]
    for record_type, ms in newest:
        if ms is not None:
            seen.newest[record_type] = max(seen.newest.get(record_type, ms / 1000), ms / 1000)
    for station, ms in rows[len(EVENT_TIME):]:
        if ms is not None:
            seen.last_heard[station] = max(seen.last_heard.get(station, ms / 1000), ms / 1000)
    seen.watermark = latest


def _rows_per_table(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, ...], float]:
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND NOT temporary AND NOT internal ORDER BY 1").fetchall()]  # fmt: skip
    if not tables:
        return {}
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM \"{t}\"" for t in tables)
    return {(t, ): float(n) for t, n in con.execute(sql).fetchall()}


def _open_anomalies(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, ...], float]:
    rows = con.execute(
        "SELECT rule, severity, coalesce(city, $none), count(*) FROM anomaly "
        "WHERE state = 'active' GROUP BY ALL", {"none": NO_CITY},
    ).fetchall()  # fmt: skip
    return {(rule, severity, city): float(n) for rule, severity, city, n in rows}


def refresh_gauges(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime) -> None:
    """Bring the warehouse gauges up to date with what ``con`` holds at ``now``."""
    global _seen
    started = time.perf_counter()
    with _lock:
        latest = scalar(con, "SELECT coalesce(max(load_id), 0) FROM ingest_load")
        seen = _seen
        fresh = seen is None or seen.db != settings.db or latest < seen.watermark
        if fresh or seen is None:  # a new process, another warehouse, or a new file
            seen = _Seen(settings.db)
        seen.silent_after_s = settings.silent_station_h * 3600
        if latest > seen.watermark:
            since = now - timedelta(seconds=seen.silent_after_s) if fresh else None
            _read_new_loads(con, seen, latest, since)
        seen.city = {s: c or NO_CITY for s, c in con.execute(
            "SELECT station_id, city FROM station").fetchall()}  # fmt: skip
        stations: dict[tuple[str, ...], float] = {}
        for city in seen.city.values():
            stations[(city, )] = stations.get((city, ), 0.0) + 1
        metrics.replace(metrics.STATIONS, stations)
        metrics.replace(metrics.WAREHOUSE_ROWS, _rows_per_table(con))
        metrics.replace(metrics.OPEN_ANOMALIES, _open_anomalies(con))
        _seen = seen
    metrics.EVENT_TIME_LAG.set_source(seen.event_time_lag)
    metrics.STATIONS_SILENT.set_source(seen.silent)
    log.debug("gauges refreshed load_id=%d stations=%d duration_s=%.3f", latest,
              len(seen.city), time.perf_counter() - started)  # fmt: skip
