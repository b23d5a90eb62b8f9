"""The traceability job: brings lineage, standard volumes and delivery checks up to date.

Runs after each ingest over what the loads since its last run touched (its watermark
is in ``analysis_watermark``). For each tank touched — a delivery, a sale (through the
nozzle → tank map), a reading, or a dispatch that changed a delivery's batch — it
restarts the lineage at the stored segment covering the earliest touched instant and
replays from there: a delivery arriving a day late recomputes that tank from that
point on, and nothing before it. What each segment's sales took of each batch
(``segment_sales``, which ``trace_batch`` reads) stays right the same way: a sale
arriving late makes its tank dirty from its own instant, so the segment covering it —
the open one included — is the restart point and is written again with all its
sales; the segments before it cover no new sale. The open segment is rewritten
whatever arrives for its tank, so the litres it says are left stay right too.
Delivery checks (against the dispatch and the gauge) are rebuilt whole: there is about
one delivery per station-day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import polars as pl

from fueltrace.settings import Settings
from processors.gauge_rise import gauge_rise
from processors.lineage import (
    TankLineage,
    replay_tank,
    standardise_readings,
    standardise_sales,
    state_from_segment,
    untraced_batch,
)
from processors.matching import check_deliveries
from warehouse.connection import rollback, scalar

log = logging.getLogger(__name__)
JOB = "traceability"

SEGMENT_SCHEMA: dict[str, pl.DataType] = {
    "station_id": pl.String(), "tank_id": pl.String(),
    "valid_from": pl.Datetime("us", "UTC"), "valid_to": pl.Datetime("us", "UTC"),
    "batch_id": pl.String(), "share": pl.Float64(), "litres_20": pl.Float64(),
    "density_kg_m3": pl.Float64(),
}  # fmt: skip
COVERED_SCHEMA: dict[str, pl.DataType] = {  # the sales of a segment (all its batches)
    "station_id": pl.String(), "tank_id": pl.String(),
    "valid_from": pl.Datetime("us", "UTC"), "sold_20_l": pl.Float64(), "sales": pl.Int64(),
    "first_sale_at": pl.Datetime("us", "UTC"), "last_sale_at": pl.Datetime("us", "UTC"),
}  # fmt: skip
VARIANCE_SCHEMA: dict[str, pl.DataType] = {
    "station_id": pl.String(), "tank_id": pl.String(), "at": pl.Datetime("us", "UTC"),
    "batch_id": pl.String(), "litres_20": pl.Float64(),
}  # fmt: skip


@dataclass
class TraceabilityResult:
    tanks: int = 0  # tanks whose lineage was recomputed
    segments: int = 0
    sales: int = 0
    deliveries: int = 0


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> pl.DataFrame:
    return con.sql(sql, params=params).pl()


def _delivery_batches(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every delivery with the batch it brought (via its dispatch, else untraced)."""
    frame = _frame(con, """
        SELECT d.delivery_id, d.station_id, d.tank_id, d.started_at, d.ended_at AS "at",
               d.ended_at, coalesce(d.volume_20_l, d.volume_l) AS litres_20,
               d.density_kg_m3, p.batch_id AS dispatch_batch
        FROM delivery d LEFT JOIN dispatch p ON p.dispatch_id = d.dispatch_id
    """)  # fmt: skip
    return frame.with_columns(
        batch_id=pl.coalesce(
            "dispatch_batch",
            pl.lit("UNTRACED:") + pl.col("delivery_id"),
        )
    ).drop("dispatch_batch")


def _dirty_tanks(
    con: duckdb.DuckDBPyConnection, since_load: int, batches: pl.DataFrame
) -> pl.DataFrame:
    """(station_id, tank_id, since): the earliest instant new data touches, per tank."""
    touched = _frame(con, """
        SELECT station_id, tank_id, started_at AS t FROM delivery WHERE load_id > $w
        UNION ALL
        SELECT station_id, tank_id, read_at FROM tank_reading WHERE load_id > $w
        UNION ALL
        SELECT s.station_id, n.tank_id, s.ended_at FROM sale s
          JOIN nozzle n ON n.station_id = s.station_id AND n.nozzle_id = s.nozzle_id
          WHERE s.load_id > $w
    """, {"w": since_load})  # fmt: skip
    stored = _frame(con, "SELECT delivery_id, batch_id FROM delivery_batch")
    changed = (
        batches.join(stored, on="delivery_id", how="left", suffix="_stored")
        .filter(pl.col("batch_id") != pl.col("batch_id_stored"))
        .select("station_id", "tank_id", pl.col("started_at").alias("t"))
    )
    return (
        pl.concat([touched, changed.cast(touched.schema)])
        .group_by("station_id", "tank_id")
        .agg(since=pl.col("t").min())
    )


def _restart_points(con: duckdb.DuckDBPyConnection, dirty: pl.DataFrame) -> pl.DataFrame:
    """Per dirty tank, the valid_from of the stored segment covering ``since`` (or null)."""
    con.register("dirty", dirty)
    try:
        return _frame(con, """
            SELECT d.station_id, d.tank_id, d.since,
                   (SELECT max(valid_from) FROM tank_segment s
                    WHERE s.station_id = d.station_id AND s.tank_id = d.tank_id
                      AND s.valid_from <= d.since) AS begin
            FROM dirty d
        """)  # fmt: skip
    finally:
        con.unregister("dirty")


def _clear(con: duckdb.DuckDBPyConnection, points: pl.DataFrame) -> None:
    """Delete what the replay will write again: from each tank's restart point on."""
    con.register("points", points)
    try:
        for table, column, op in (
            ("tank_segment", "valid_from", ">="), ("segment_sales", "valid_from", ">="),
            ("batch_variance", '"at"', ">"),
            ("sale_std", '"at"', ">="), ("reading_std", "read_at", ">="),
        ):  # fmt: skip
            con.execute(f"""
                DELETE FROM {table} t USING points p
                WHERE t.station_id = p.station_id AND t.tank_id = p.tank_id
                  AND (p.begin IS NULL OR t.{column} {op} p.begin)
            """)  # fmt: skip
    finally:
        con.unregister("points")


def _tank_inputs(
    con: duckdb.DuckDBPyConnection, points: pl.DataFrame, window: timedelta
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Readings (from a window before each restart point) and sales (from it) of the tanks."""
    con.register("points", points)
    try:
        readings = _frame(con, """
            SELECT r.station_id, r.tank_id, r.product, r.read_at, r.volume_l, r.temperature_c,
                   p.begin
            FROM tank_reading r JOIN points p
              ON r.station_id = p.station_id AND r.tank_id = p.tank_id
            WHERE p.begin IS NULL OR r.read_at >= p.begin - $window
               -- and the last reading before the restart, however old: a sale takes the
               -- temperature of the last reading before it, as in a replay from the start
               OR r.read_at = (SELECT max(q.read_at) FROM tank_reading q
                               WHERE q.station_id = p.station_id AND q.tank_id = p.tank_id
                                 AND q.read_at <= p.begin)
        """, {"window": window})  # fmt: skip
        sales = _frame(con, """
            SELECT s.station_id, n.tank_id, s.txn_id, s.product, s.ended_at AS "at",
                   s.volume_l, p.begin
            FROM sale s
            JOIN nozzle n ON n.station_id = s.station_id AND n.nozzle_id = s.nozzle_id
            JOIN points p ON n.station_id = p.station_id AND n.tank_id = p.tank_id
            WHERE p.begin IS NULL OR s.ended_at >= p.begin
        """)  # fmt: skip
    finally:
        con.unregister("points")
    return readings, sales


def _start_states(con: duckdb.DuckDBPyConnection, points: pl.DataFrame) -> pl.DataFrame:
    con.register("points", points)
    try:
        return _frame(con, """
            SELECT s.* FROM tank_segment s JOIN points p
              ON s.station_id = p.station_id AND s.tank_id = p.tank_id
             AND s.valid_from = p.begin
        """)  # fmt: skip
    finally:
        con.unregister("points")


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    if frame.is_empty():
        return
    con.register("rows_in", frame)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rows_in")
    finally:
        con.unregister("rows_in")


def segment_sales(segments: pl.DataFrame, covered: pl.DataFrame) -> pl.DataFrame:
    """``segment_sales`` rows: per segment row (a batch in a segment) its share of the
    segment's sales, and for the open segment the litres of it left in the tank."""
    key = ["station_id", "tank_id", "valid_from"]
    sold = pl.col("share") * pl.col("sold_20_l").fill_null(0.0)
    return segments.join(covered, on=key, how="left").select(
        *key, "batch_id", sold.alias("sold_20_l"), pl.col("sales").fill_null(0),
        "first_sale_at", "last_sale_at",
        pl.when(pl.col("valid_to").is_null()).then(pl.col("litres_20") - sold)
        .alias("in_tank_20_l"),
    )  # fmt: skip


def update_lineage(con: duckdb.DuckDBPyConnection, settings: Settings, since_load: int,
                   batches: pl.DataFrame) -> TraceabilityResult:  # fmt: skip
    result = TraceabilityResult()
    dirty = _dirty_tanks(con, since_load, batches)
    if dirty.is_empty():
        return result
    points = _restart_points(con, dirty)
    starts = _start_states(con, points)
    _clear(con, points)
    window = timedelta(minutes=settings.gauge_window_min)
    readings, sales = _tank_inputs(con, points, window)
    deliveries = batches.join(points.select("station_id", "tank_id"),
                              on=["station_id", "tank_id"])  # fmt: skip
    readings_std = standardise_readings(readings, deliveries)
    sales_std = standardise_sales(sales, readings, deliveries)
    lineages: list[TankLineage] = []
    by_tank_r = readings_std.partition_by("station_id", "tank_id", as_dict=True)
    by_tank_s = sales_std.partition_by("station_id", "tank_id", as_dict=True)
    by_tank_d = deliveries.partition_by("station_id", "tank_id", as_dict=True)
    by_tank_start = starts.partition_by("station_id", "tank_id", as_dict=True)
    empty_r, empty_s, empty_d = readings_std.head(0), sales_std.head(0), deliveries.head(0)
    for station_id, tank_id, begin in points.select("station_id", "tank_id", "begin").iter_rows():
        key = (station_id, tank_id)
        start = state_from_segment(by_tank_start[key]) if key in by_tank_start else None
        tank_readings = by_tank_r.get(key, empty_r)
        if begin is not None:  # readings before the restart only lent temperatures
            tank_readings = tank_readings.filter(pl.col("read_at") >= begin)
        lineages.append(replay_tank(station_id, tank_id, start, tank_readings,
                                    by_tank_d.get(key, empty_d), by_tank_s.get(key, empty_s)))
        result.tanks += 1
    segments = pl.DataFrame([r for x in lineages for r in x.segments], schema=SEGMENT_SCHEMA)
    variances = pl.DataFrame([r for x in lineages for r in x.variances], schema=VARIANCE_SCHEMA)
    covered = pl.DataFrame([r for x in lineages for r in x.segment_sales],
                           schema=COVERED_SCHEMA)  # fmt: skip
    _insert(con, "tank_segment", segments)
    _insert(con, "segment_sales", segment_sales(segments, covered))
    _insert(con, "batch_variance", variances)
    kept_readings = readings_std.filter(
        pl.col("begin").is_null() | (pl.col("read_at") >= pl.col("begin"))
    )
    _insert(con, "reading_std", kept_readings.select("station_id", "tank_id", "read_at",
                                                      "density_kg_m3", "volume_20_l"))  # fmt: skip
    _insert(con, "sale_std", sales_std.select("station_id", "txn_id", "tank_id", "at",
                                              "temperature_c", "density_kg_m3", "volume_l",
                                              "volume_20_l"))  # fmt: skip
    result.segments = segments.height
    result.sales = sales_std.height
    return result


def check_all_deliveries(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime
) -> int:
    """Rebuild delivery_check and open_dispatch (deliveries are few; whole is simplest)."""
    dispatch = _frame(con, "SELECT * FROM dispatch")
    delivery = _frame(con, "SELECT * FROM delivery")
    checks, open_ends = check_deliveries(dispatch, delivery, settings, now)
    readings = _frame(con, "SELECT station_id, tank_id, read_at, volume_20_l FROM reading_std")
    # With each sale's start and nozzle, a sale running at a reading counts in part.
    sales = _frame(con, """
        SELECT s.station_id, s.tank_id, s."at", s.volume_20_l, sa.nozzle_id, sa.started_at
        FROM sale_std s JOIN sale sa ON sa.station_id = s.station_id AND sa.txn_id = s.txn_id
    """)  # fmt: skip
    gauge = gauge_rise(delivery, readings, sales, settings)
    checks = checks.join(gauge.select("delivery_id", "gauge_rise_20_l", "gauge_difference_20_l",
                                      "gauge_status"), on="delivery_id", how="left")  # fmt: skip
    checks = checks.with_columns(pl.col("gauge_status").fill_null("no_readings"))
    con.execute("DELETE FROM delivery_check; DELETE FROM open_dispatch")
    _insert(con, "delivery_check", checks)
    _insert(con, "open_dispatch", open_ends)
    return checks.height


def run(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime, *,
        own_transaction: bool = True) -> TraceabilityResult:  # fmt: skip
    """Bring the traceability tables up to date with every load so far, atomically: in a
    transaction of its own, or (``own_transaction=False``) in the caller's, which then
    commits (``fueltrace.analyses``: one snapshot for every job of a run)."""
    if not own_transaction:
        return _update(con, settings, now)
    con.execute("BEGIN TRANSACTION")
    try:
        result = _update(con, settings, now)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # not con.execute: a failed COMMIT has rolled back already
        raise
    return result


def _update(con: duckdb.DuckDBPyConnection, settings: Settings,
            now: datetime) -> TraceabilityResult:  # fmt: skip
    watermark = scalar(con, "SELECT coalesce(max(load_id), 0) FROM analysis_watermark "
                            "WHERE job = $job", {"job": JOB})  # fmt: skip
    latest = scalar(con, "SELECT coalesce(max(load_id), 0) FROM ingest_load")
    if latest <= watermark:
        return TraceabilityResult()
    batches = _delivery_batches(con)
    result = update_lineage(con, settings, watermark, batches)
    con.execute("DELETE FROM delivery_batch")
    _insert(con, "delivery_batch", batches.select("delivery_id", "station_id", "tank_id",
                                                  "batch_id", "at", "litres_20",
                                                  "density_kg_m3"))  # fmt: skip
    result.deliveries = check_all_deliveries(con, settings, now)
    con.execute("INSERT OR REPLACE INTO analysis_watermark VALUES ($job, $load)",
                {"job": JOB, "load": latest})  # fmt: skip
    log.info("traceability updated tanks=%d segments=%d sales=%d deliveries=%d",
             result.tanks, result.segments, result.sales, result.deliveries)  # fmt: skip
    return result


__all__ = ["run", "untraced_batch"]
