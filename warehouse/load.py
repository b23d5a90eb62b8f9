"""Loading one micro-batch: rows, dead letters and consumed offsets in ONE transaction.

That single transaction is the exactly-once guarantee: a crash before COMMIT
leaves neither rows nor offsets, so the consumer resumes where the warehouse says
and re-reads the same messages; a crash after it re-reads nothing. A COMMIT that
fails for lack of disk space is the same as a crash before it (``WarehouseFull``, a
transient error: the consumer re-reads and retries once there is space).

Per record type: the first occurrence of a natural key is inserted; a later one
with the same content is counted in ``ingest_duplicate``; with different content it
is kept whole in ``key_conflict`` with the fields that differ.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from fueltrace import failpoints
from ingest.frames import SOURCE_COLUMNS, frame_schema
from ingest.records import SPECS
from ingest.records.base import RecordSpec
from warehouse.connection import checkpoint, scalar, transaction

log = logging.getLogger(__name__)

DEAD_LETTER_SCHEMA: dict[str, pl.DataType] = {
    "topic": pl.String(),
    "partition": pl.Int32(),
    "offset": pl.Int64(),
    "record_index": pl.Int32(),
    "record_type": pl.String(),
    "reason": pl.String(),
    "field": pl.String(),
    "detail": pl.String(),
    "message_key": pl.String(),
}


@dataclass
class Batch:
    """What one micro-batch brings to the warehouse."""

    frames: dict[str, pl.DataFrame]  # valid records per record type, with src_* columns
    dead_letters: pl.DataFrame  # DEAD_LETTER_SCHEMA
    offsets: dict[tuple[str, int], int]  # (topic, partition) -> next offset to read
    topic_ids: dict[str, str | None] = field(default_factory=dict)  # topic -> broker's id
    messages: int = 0
    records: int = 0


@dataclass
class LoadResult:
    load_id: int
    loaded: Counter[str] = field(default_factory=Counter)  # table -> rows inserted
    duplicates: Counter[str] = field(default_factory=Counter)  # record type -> count
    conflicts: Counter[str] = field(default_factory=Counter)  # record type -> count
    dead_letters: Counter[str] = field(default_factory=Counter)  # reason -> count


def _q(name: str) -> str:
    return f'"{name}"'


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[None]:
    """``frame`` visible to SQL as ``name`` for the block. Unregistering cannot mask the
    block's own error: in a transaction that error aborted, it fails too."""
    con.register(name, frame)
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):
            con.unregister(name)


def _key_bounds(record_type: str, frame: pl.DataFrame) -> tuple[str, dict[str, object]]:
    """A condition on the stored rows that every row sharing a key of ``frame`` meets,
    and its parameters: the key's timestamps lie between the batch's least and greatest.

    Exact, not a heuristic: rows with the same key have the same key timestamp. It lets
    DuckDB skip the row groups outside the batch's time range (their min/max), so the
    duplicate check of a tank reading, vapour sample or device status reads the recent
    part of the table, not all of it (which grew the check's time and the buffer cache
    with the table). A key without a timestamp (sale, delivery, dispatch) gets ``true``.
    """
    terms: list[str] = ["true"]
    params: dict[str, object] = {}
    for k in SPECS[record_type].natural_key:
        if isinstance(frame.schema[k], (pl.Datetime, pl.Date)):
            low, high = frame[k].min(), frame[k].max()
            if low is None or high is None:
                continue
            terms.append(f"t.{_q(k)} BETWEEN ${k}_low AND ${k}_high")
            params |= {f"{k}_low": low, f"{k}_high": high}
    return " AND ".join(terms), params


def _all_new(con: duckdb.DuckDBPyConnection, spec: RecordSpec, frame: pl.DataFrame,
             key_join: str, stored_near: str, bounds: dict[str, object]) -> bool:  # fmt: skip
    """No key of the batch (registered as ``batch_in``) repeats in it or is stored
    already: the usual case, which needs none of the duplicate bookkeeping."""
    if frame.select(spec.natural_key).is_duplicated().any():
        return False
    return not con.execute(
        f"SELECT 1 FROM {spec.table} t WHERE {stored_near} AND EXISTS "
        f"(SELECT 1 FROM batch_in s WHERE {key_join}) LIMIT 1",
        bounds,
    ).fetchall()


def _load_records(
    con: duckdb.DuckDBPyConnection, record_type: str, frame: pl.DataFrame, result: LoadResult
) -> None:
    spec = SPECS[record_type]
    content = list(frame_schema(record_type))  # compared to tell duplicates from conflicts
    derived = [c for c in frame.columns if c not in content and c not in SOURCE_COLUMNS]
    columns = [*content, *derived, *SOURCE_COLUMNS]
    table = spec.table
    key_join = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in spec.natural_key)
    key_text = "concat_ws('|', " + ", ".join(f"s.{_q(k)}::VARCHAR" for k in spec.natural_key) + ")"
    stored_near, bounds = _key_bounds(record_type, frame)
    with _registered(con, "batch_in", frame):
        if record_type != "facility" and _all_new(con, spec, frame, key_join, stored_near,
                                                  bounds):  # fmt: skip
            result.loaded[table] += scalar(
                con,
                f"INSERT INTO {table} ({', '.join(map(_q, columns))}, load_id) "
                f"SELECT {', '.join(map(_q, columns))}, $load FROM batch_in",
                {"load": result.load_id},
            )
            return
        con.execute(
            "CREATE OR REPLACE TEMP TABLE stg AS SELECT *, row_number() OVER (PARTITION BY "
            + ", ".join(_q(k) for k in spec.natural_key)
            + " ORDER BY src_partition, src_offset, src_index) AS rn FROM batch_in"
        )
    kept = ", ".join(_q(c) for c in (*content, "src_partition", "src_offset", "src_index"))
    # The warehouse is scanned once, for the rows already holding a key of this batch.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE existing AS SELECT {kept}, true AS old FROM {table} t "
        f"WHERE {stored_near} AND EXISTS (SELECT 1 FROM stg s WHERE {key_join})",
        bounds,
    )
    inserted = scalar(
        con,
        f"INSERT INTO {table} ({', '.join(map(_q, columns))}, load_id) "
        f"SELECT {', '.join('s.' + _q(c) for c in columns)}, $load FROM stg s "
        f"WHERE s.rn = 1 AND NOT EXISTS (SELECT 1 FROM existing t WHERE {key_join})",
        {"load": result.load_id},
    )
    result.loaded[table] += inserted

    # What stands for each key: the warehouse's row, else the batch's first occurrence.
    # Every other occurrence is a duplicate (same content) or a conflict (different).
    differing = ", ".join(
        f"CASE WHEN s.{_q(c)} IS DISTINCT FROM t.{_q(c)} THEN '{c}' END" for c in content
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE standing AS SELECT * FROM existing UNION ALL BY NAME "
        f"SELECT {kept}, false AS old FROM stg s WHERE s.rn = 1 "
        f"AND NOT EXISTS (SELECT 1 FROM existing t WHERE {key_join})"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rep AS SELECT s.*, "
        f"{key_text} AS natural_key, t.src_partition AS stored_partition, "
        "t.src_offset AS stored_offset, "
        f"list_filter([{differing}], lambda x: x IS NOT NULL) AS differing, "
        "to_json(struct_pack(" + ", ".join(f"{_q(c)} := s.{_q(c)}" for c in content) + ")) AS rec "
        f"FROM stg s JOIN standing t ON {key_join} "
        "WHERE t.old OR NOT (t.src_partition = s.src_partition "
        "AND t.src_offset = s.src_offset AND t.src_index = s.src_index)"
    )
    dup = scalar(
        con,
        "INSERT INTO ingest_duplicate SELECT $type, natural_key, src_partition, src_offset, "
        "src_index, $load FROM rep WHERE len(differing) = 0",
        {"type": record_type, "load": result.load_id},
    )
    conflict = scalar(
        con,
        "INSERT INTO key_conflict SELECT $type, natural_key, differing, stored_partition, "
        "stored_offset, src_partition, src_offset, src_index, rec, $load "
        "FROM rep WHERE len(differing) > 0",
        {"type": record_type, "load": result.load_id},
    )
    result.duplicates[record_type] += dup
    result.conflicts[record_type] += conflict
    if record_type == "facility":
        _refresh_facility_dimensions(con)
    con.execute("DROP TABLE stg; DROP TABLE rep; DROP TABLE existing; DROP TABLE standing")


def _refresh_facility_dimensions(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild the dimension rows of the facilities in ``stg`` from their latest version."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE latest AS SELECT * FROM facility_version "
        "WHERE facility_id IN (SELECT facility_id FROM stg) QUALIFY row_number() OVER "
        "(PARTITION BY facility_id ORDER BY updated_at DESC, load_id ASC) = 1"
    )
    con.execute(
        """
        DELETE FROM station WHERE station_id IN (SELECT facility_id FROM latest);
        DELETE FROM depot WHERE depot_id IN (SELECT facility_id FROM latest);
        DELETE FROM tank WHERE station_id IN (SELECT facility_id FROM latest);
        DELETE FROM nozzle WHERE station_id IN (SELECT facility_id FROM latest);
        DELETE FROM licence WHERE facility_id IN (SELECT facility_id FROM latest);
        INSERT INTO station SELECT facility_id, name, city, operator, updated_at
            FROM latest WHERE kind = 'station';
        INSERT INTO depot SELECT facility_id, name, city, operator, updated_at
            FROM latest WHERE kind = 'depot';
        INSERT INTO tank SELECT facility_id, x.tank_id, x.product, x.capacity_l
            FROM (SELECT facility_id, unnest(tanks) AS x FROM latest);
        INSERT INTO nozzle SELECT facility_id, x.nozzle_id, x.dispenser_id, x.tank_id
            FROM (SELECT facility_id, unnest(nozzles) AS x FROM latest);
        INSERT INTO licence SELECT facility_id, x.kind, x.number, x.valid_from, x.valid_until,
            x.status FROM (SELECT facility_id, unnest(licences) AS x FROM latest);
        DROP TABLE latest;
        """
    )


def load_batch(
    con: duckdb.DuckDBPyConnection,
    path: Path | str,
    batch: Batch,
    *,
    pause_before_commit_s: float = 0.0,
    failpoint: str = "",
) -> LoadResult:
    """Store a micro-batch and its offsets atomically; return what happened.
    ``pause_before_commit_s`` and ``failpoint`` (``settings.debug_failpoint``) are
    crash-test hooks inside the transaction."""
    with transaction(con, path):
        result = LoadResult(load_id=scalar(con, "SELECT nextval('load_seq')"))
        for record_type, frame in batch.frames.items():
            if not frame.is_empty():
                _load_records(con, record_type, frame, result)
        if not batch.dead_letters.is_empty():
            with _registered(con, "dead_in", batch.dead_letters):
                con.execute(
                    "INSERT INTO dead_letter SELECT topic, \"partition\", \"offset\", "
                    "record_index, record_type, reason, field, detail, message_key, $load "
                    "FROM dead_in",
                    {"load": result.load_id},
                )
            result.dead_letters.update(batch.dead_letters["reason"].to_list())
        if batch.offsets:
            con.executemany(
                'INSERT INTO ingest_offset (topic, "partition", next_offset, load_id, topic_id) '
                'VALUES (?, ?, ?, ?, ?) ON CONFLICT (topic, "partition") DO UPDATE SET '
                "next_offset = excluded.next_offset, load_id = excluded.load_id, "
                "topic_id = excluded.topic_id",
                [[t, p, o, result.load_id, batch.topic_ids.get(t)]
                 for (t, p), o in sorted(batch.offsets.items())],
            )  # fmt: skip
        con.execute(
            "INSERT INTO ingest_load VALUES (?, now(), ?, ?, ?, ?, ?, ?)",
            [
                result.load_id, batch.messages, batch.records, sum(result.loaded.values()),
                sum(result.duplicates.values()), sum(result.conflicts.values()),
                sum(result.dead_letters.values()),
            ],
        )  # fmt: skip
        if pause_before_commit_s:
            log.warning("pausing before commit load_id=%d (test hook)", result.load_id)
            time.sleep(pause_before_commit_s)
        failpoints.hit("load", failpoint)
    checkpoint(con, path)  # committed: a failure here is the checkpoint's, not the load's
    return result


def stored_offsets(
    con: duckdb.DuckDBPyConnection,
) -> dict[tuple[str, int], tuple[int, str | None]]:
    """(next offset to read, topic id) per (topic, partition), as last committed."""
    rows = con.execute(
        'SELECT topic, "partition", next_offset, topic_id FROM ingest_offset'
    ).fetchall()
    return {(t, int(p)): (int(o), i) for t, p, o, i in rows}
