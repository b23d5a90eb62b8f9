"""Read-side queries over the warehouse used by the CLI (and later the HTTP API)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import duckdb

from ingest.reasons import describe
from warehouse.connection import scalar

if TYPE_CHECKING:
    from ingest.consumer import IngestSummary

RECORD_TABLES = ("facility_version", "dispatch", "delivery", "tank_reading", "sale", "vapor",
                 "device_status")  # fmt: skip
DIMENSION_TABLES = ("station", "depot", "tank", "nozzle", "licence")


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    counts = {}
    for table in (*RECORD_TABLES, *DIMENSION_TABLES, "dead_letter", "ingest_duplicate",
                  "key_conflict"):  # fmt: skip
        counts[table] = scalar(con, f"SELECT count(*) FROM {table}")
    return counts


def dead_letters(
    con: duckdb.DuckDBPyConnection, reason: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    sql = (
        'SELECT topic, "partition", "offset", record_index, record_type, reason, field, detail, '
        'message_key FROM dead_letter WHERE $reason IS NULL OR reason = $reason '
        'ORDER BY topic, "partition", "offset", record_index LIMIT $limit'
    )
    cur = con.execute(sql, {"reason": reason, "limit": limit})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def key_conflicts(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    cur = con.execute(
        "SELECT record_type, natural_key, fields_differing, \"partition\", \"offset\" "
        "FROM key_conflict ORDER BY record_type, natural_key LIMIT ?", [limit]
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def print_summary(con: duckdb.DuckDBPyConnection, summary: IngestSummary) -> None:
    """The `ingest --until-idle` report: this run, then the warehouse totals."""
    print(f"ingested {summary.messages} messages ({summary.records} records) "
          f"in {summary.batches} batches")  # fmt: skip
    counts = table_counts(con)
    print(f"{'table':<18}{'loaded now':>12}{'in warehouse':>14}")
    for table in RECORD_TABLES:
        print(f"{table:<18}{summary.loaded.get(table, 0):>12}{counts[table]:>14}")
    for table in DIMENSION_TABLES:  # rebuilt from the latest facility versions
        print(f"{table:<18}{'':>12}{counts[table]:>14}")
    print(f"dead letters: {sum(summary.dead_letters.values())} now, "
          f"{counts['dead_letter']} in warehouse")  # fmt: skip
    for reason, n in sorted(summary.dead_letters.items()):
        print(f"  {reason:<24}{n:>8}  {describe(reason)}")
    print(f"duplicates (stored once): {sum(summary.duplicates.values())} now, "
          f"{counts['ingest_duplicate']} in warehouse")  # fmt: skip
    for record_type, n in sorted(x for x in summary.duplicates.items() if x[1]):
        print(f"  {record_type:<24}{n:>8}")
    print(f"conflicting duplicates (same key, other content — findings): "
          f"{sum(summary.conflicts.values())} now, {counts['key_conflict']} in warehouse")
    for record_type, n in sorted(x for x in summary.conflicts.items() if x[1]):
        print(f"  {record_type:<24}{n:>8}")
