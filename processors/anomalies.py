"""The anomaly engine: runs every rule over the stations new data touched, keeps findings.

Each run, in one warehouse transaction:

1. **Scope.** The stations that loads since the last run touched, each with ``since``:
   the start of the earliest Asia/Shanghai day the new records fall on. A changed
   facility record (licences, tanks) puts its station's whole history in scope, as
   does a changed depot for the stations it supplies. Rules that depend on elapsed
   time (``clock_driven``) also see every station from the previous run's clock.
2. **Detect.** Each rule loads its frames for the scope and returns findings (pure).
3. **Reconcile.** A finding gets a deterministic id (rule, station, subject, window
   start), its city and the text rendered from its evidence. New ids are raised; a
   stored active finding in scope that the rule no longer returns is resolved (late
   data explained it); changed evidence is an update; a resolved finding found again
   is raised again. Every change is appended to ``anomaly_history``.

Only the station-days that new data touches are recomputed, and a rerun over the same
data changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import polars as pl

from fueltrace.settings import Settings
from processors.rules import RULES
from processors.rules.base import EPOCH, UTC_US, Frames, Reader, Rule, Scope, local_day_start
from warehouse.connection import rollback, scalar

log = logging.getLogger(__name__)
JOB = "anomalies"

#: Record tables and the event time that places a record on a station-day.
_TOUCHES = (
    ("dispatch", "dispatched_at"),
    ("delivery", "started_at"),
    ("tank_reading", "read_at"),
    ("sale", "started_at"),
    ("vapor", "measured_at"),
    ("device_status", "at"),
)
STORED_COLUMNS = (
    "anomaly_id", "rule", "severity", "station_id", "depot_id", "city", "subject",
    "window_start", "window_end", "evidence", "summary",
)  # fmt: skip


@dataclass
class AnomalyRunResult:
    run_id: int = 0
    stations: int = 0  # stations in scope
    raised: int = 0
    updated: int = 0
    resolved: int = 0
    duration_s: float = 0.0
    by_rule: dict[str, int] = field(default_factory=dict)  # findings returned per rule


def anomaly_id(rule: str, station_id: str, subject: str | None, window_start: datetime) -> str:
    """The same finding always gets the same id, so a rerun creates no duplicate."""
    key = f"{rule}|{station_id}|{subject or ''}|{window_start.isoformat()}"
    return f"{rule[:3].upper()}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def dirty_stations(con: duckdb.DuckDBPyConnection, since_load: int) -> pl.DataFrame:
    """(station_id, since) for every station (or depot) the loads after ``since_load``
    touched."""
    parts = [
        f'SELECT station_id, min("{column}") AS t FROM {table} WHERE load_id > $w GROUP BY 1'
        for table, column in _TOUCHES
    ]
    # A dispatch loaded late also touches the station whose delivery names it (received
    # elsewhere than its destination: a diversion, and that delivery's checks change).
    parts.append("""SELECT d.station_id, min(d.started_at) FROM delivery d
                    JOIN dispatch p ON p.dispatch_id = d.dispatch_id
                    WHERE p.load_id > $w GROUP BY 1""")  # fmt: skip
    # A depot's own dispatches touch the depot (findings about the depot, such as a
    # dispatch without a valid licence, are kept under its id).
    parts.append("SELECT depot_id, min(dispatched_at) FROM dispatch WHERE load_id > $w "
                 "GROUP BY 1")  # fmt: skip
    # A facility change (licences, tanks, nozzles) re-checks that station's history; a
    # depot's, the history of every station it dispatched to.
    parts.append("SELECT facility_id, $epoch FROM facility_version WHERE load_id > $w")
    parts.append("""SELECT DISTINCT p.station_id, $epoch FROM dispatch p
                    JOIN facility_version f ON f.facility_id = p.depot_id
                    WHERE f.load_id > $w""")  # fmt: skip
    sql = " UNION ALL ".join(parts)
    frame = con.sql(
        f"SELECT station_id, min(t) AS t FROM ({sql}) GROUP BY 1",
        params={"w": since_load, "epoch": EPOCH},
    ).pl()
    return frame.select(
        "station_id", since=local_day_start(pl.col("t").cast(UTC_US))
    ).sort("station_id")


def _all_stations(con: duckdb.DuckDBPyConnection, since: datetime) -> pl.DataFrame:
    frame = con.sql("SELECT station_id FROM station").pl()
    return frame.with_columns(since=pl.lit(since, UTC_US))


def _union(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    return (
        pl.concat([a.cast({"since": UTC_US}), b.cast({"since": UTC_US})])
        .group_by("station_id")
        .agg(pl.col("since").min())
        .sort("station_id")
    )


def _finish(rule: Rule, found: pl.DataFrame, scope: pl.DataFrame,
            cities: pl.DataFrame) -> pl.DataFrame:  # fmt: skip
    """Findings in scope, with id, city, evidence JSON and summary."""
    found = found.join(scope, on="station_id").filter(pl.col("window_end") >= pl.col("since"))
    found = found.join(cities, on="station_id", how="left")
    rows = []
    for row in found.iter_rows(named=True):
        evidence = {k: _plain(v) for k, v in (row["evidence"] or {}).items()}
        rows.append({
            "anomaly_id": anomaly_id(rule.name, row["station_id"], row["subject"],
                                     row["window_start"]),
            "rule": rule.name, "severity": row["severity"], "station_id": row["station_id"],
            "depot_id": row["depot_id"], "city": row["city"], "subject": row["subject"],
            "window_start": row["window_start"], "window_end": row["window_end"],
            "evidence": json.dumps(evidence, ensure_ascii=False, sort_keys=True),
            "summary": rule.describe(evidence),
        })  # fmt: skip
    schema = {c: pl.String() for c in STORED_COLUMNS} | {
        "window_start": UTC_US, "window_end": UTC_US}  # fmt: skip
    return pl.DataFrame(rows, schema=schema).unique("anomaly_id", keep="first")


def _plain(value: object) -> object:
    """Evidence values JSON can hold: datetimes as ISO-8601 Z, floats rounded."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def reconcile(con: duckdb.DuckDBPyConnection, rule: str, found: pl.DataFrame,
              scope: pl.DataFrame, now: datetime, run_id: int,
              result: AnomalyRunResult) -> None:  # fmt: skip
    """Store what ``rule`` found for ``scope``: raise, update, re-raise and resolve."""
    con.register("found", found)
    con.register("scope_now", scope)
    try:
        stored = con.sql("""
            SELECT a.anomaly_id, a.state, a.evidence::VARCHAR AS evidence, a.severity,
                   a.window_end, (s.station_id IS NOT NULL AND a.window_end >= s.since)
                   AS in_scope
            FROM anomaly a LEFT JOIN scope_now s ON s.station_id = a.station_id
            WHERE a.rule = $rule AND (s.station_id IS NOT NULL
                                      OR a.anomaly_id IN (SELECT anomaly_id FROM found))
        """, params={"rule": rule}).pl()  # fmt: skip
        merged = found.join(stored, on="anomaly_id", how="full", suffix="_stored",
                            coalesce=True)  # fmt: skip
        new = merged.filter(pl.col("state").is_null() & pl.col("rule").is_not_null())
        reraised = merged.filter((pl.col("state") == "resolved") & pl.col("rule").is_not_null())
        changed = merged.filter(
            (pl.col("state") == "active") & pl.col("rule").is_not_null()
            & ((pl.col("evidence") != pl.col("evidence_stored"))
               | (pl.col("severity") != pl.col("severity_stored"))
               | (pl.col("window_end") != pl.col("window_end_stored")))
        )  # fmt: skip
        gone = merged.filter(
            (pl.col("state") == "active") & pl.col("rule").is_null() & pl.col("in_scope")
        )
        params = {"now": now, "run": run_id}
        if new.height:
            con.register("new_rows", new.select(STORED_COLUMNS))
            con.execute("""
                INSERT INTO anomaly SELECT *, 'active', $now, $now, NULL FROM new_rows
            """, {"now": now})  # fmt: skip
            _history(con, "new_rows", "raised", params)
        for frame, change in ((reraised, "reraised"), (changed, "updated")):
            if frame.height:
                con.register("upd_rows", frame.select(STORED_COLUMNS))
                con.execute("""
                    UPDATE anomaly a SET severity = u.severity, evidence = u.evidence,
                        summary = u.summary, window_end = u.window_end, city = u.city,
                        state = 'active', updated_at = $now, resolved_at = NULL
                    FROM upd_rows u WHERE a.anomaly_id = u.anomaly_id
                """, {"now": now})  # fmt: skip
                _history(con, "upd_rows", change, params)
        if gone.height:
            con.register("gone_ids", gone.select("anomaly_id"))
            con.execute("""
                UPDATE anomaly SET state = 'resolved', resolved_at = $now, updated_at = $now
                WHERE anomaly_id IN (SELECT anomaly_id FROM gone_ids)
            """, {"now": now})  # fmt: skip
            con.execute("""
                INSERT INTO anomaly_history SELECT a.anomaly_id, $now, 'resolved', a.severity,
                       a.evidence, a.summary, $run
                FROM anomaly a WHERE a.anomaly_id IN (SELECT anomaly_id FROM gone_ids)
            """, params)  # fmt: skip
        result.raised += new.height + reraised.height
        result.updated += changed.height
        result.resolved += gone.height
    finally:
        for name in ("found", "scope_now", "new_rows", "upd_rows", "gone_ids"):
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)


def _history(con: duckdb.DuckDBPyConnection, view: str, change: str,
             params: dict[str, object]) -> None:  # fmt: skip
    con.execute(f"""
        INSERT INTO anomaly_history SELECT anomaly_id, $now, '{change}', severity,
               evidence::JSON, summary, $run FROM {view}
    """, params)  # fmt: skip


class _SharedLoads:
    """Within one run, rules with the same ``load`` (and lookback and scope) read their
    frames once: ``slow_leak`` and ``persistent_gain`` both fit 30 days of every dirty
    tank's hours, the heaviest read of a run. A frame is let go after its last rule."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self._users = Counter(self._key(rule) for rule in rules)
        self._frames: dict[tuple[object, ...], Frames] = {}

    @staticmethod
    def _key(rule: Rule) -> tuple[object, ...]:
        return (rule.load, rule.lookback, rule.clock_driven)

    def load(self, rule: Rule, reader: Reader) -> Frames:
        key = self._key(rule)
        frames = self._frames.get(key)
        if frames is None:
            frames = rule.load(reader)
        self._users[key] -= 1
        if self._users[key] > 0:
            self._frames[key] = frames
        else:
            self._frames.pop(key, None)
        return frames


def run(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime,
        rules: tuple[Rule, ...] = RULES, *, own_transaction: bool = True) -> AnomalyRunResult:
    """Bring ``anomaly`` up to date with every load so far and the clock ``now``,
    atomically: in a transaction of its own, or (``own_transaction=False``) in the
    caller's, which then commits (``fueltrace.analyses``: the rules must read the derived
    tables traceability wrote from the same loads they judge)."""
    if not own_transaction:
        return _update(con, settings, now, rules)
    con.execute("BEGIN TRANSACTION")
    try:
        result = _update(con, settings, now, rules)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # not con.execute: a failed COMMIT has rolled back already
        raise
    return result


def _update(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime,
            rules: tuple[Rule, ...]) -> AnomalyRunResult:  # fmt: skip
    started = time.perf_counter()
    result = AnomalyRunResult()
    watermark = scalar(con, "SELECT coalesce(max(load_id), 0) FROM analysis_watermark "
                            "WHERE job = $job", {"job": JOB})  # fmt: skip
    latest = scalar(con, "SELECT coalesce(max(load_id), 0) FROM ingest_load")
    rows = con.execute("SELECT max(clock) FROM analysis_run").fetchall()
    last_clock: datetime | None = rows[0][0] if rows else None
    if latest <= watermark and last_clock is not None and now <= last_clock:
        return result
    result.run_id = scalar(con, "SELECT nextval('analysis_run_seq')")
    dirty = dirty_stations(con, watermark)
    clock_scope = _all_stations(con, last_clock or EPOCH)
    cities = con.sql("SELECT station_id, city FROM station UNION ALL "
                     "SELECT depot_id, city FROM depot").pl()  # fmt: skip
    result.stations = dirty.height
    shared = _SharedLoads(rules)
    for rule in rules:
        scope = _union(dirty, clock_scope) if rule.clock_driven else dirty
        if scope.is_empty():
            continue
        context = Scope(scope, now)
        found = rule.detect(shared.load(rule, Reader(con, context, rule.lookback)),
                            settings, context)  # fmt: skip
        finished = _finish(rule, found, scope, cities)
        result.by_rule[rule.name] = finished.height
        reconcile(con, rule.name, finished, scope, now, result.run_id, result)
    result.duration_s = time.perf_counter() - started
    con.execute("INSERT OR REPLACE INTO analysis_watermark VALUES ($job, $load)",
                {"job": JOB, "load": latest})  # fmt: skip
    con.execute("INSERT INTO analysis_run VALUES ($run, $now, $load, $d, $s, $r, $u, $x)", {
        "run": result.run_id, "now": now, "load": latest, "d": result.duration_s,
        "s": result.stations, "r": result.raised, "u": result.updated, "x": result.resolved,
    })  # fmt: skip
    log.info("anomalies updated run=%d stations=%d raised=%d updated=%d resolved=%d "
             "duration_s=%.2f", result.run_id, result.stations, result.raised,
             result.updated, result.resolved, result.duration_s)  # fmt: skip
    return result
