"""Schema versions: ``migrations/NNN_name.sql`` applied in order, each exactly once.

A released migration is never edited; a change to the warehouse is a new file.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

import duckdb

from fueltrace.errors import WarehouseTooNew

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{3})_(\w+)\.sql$")


def available() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        m = _NAME.match(path.name)
        if m:
            found.append((int(m.group(1)), m.group(2), path))
    return found


def latest() -> int:
    """The highest schema version this code knows."""
    return max((number for number, _, _ in available()), default=0)


def check_version(version: int, path: Path | str) -> None:
    """Refuse a warehouse of a schema version newer than this code: its tables may mean
    something this code would misread or overwrite."""
    if version > latest():
        raise WarehouseTooNew(
            f"warehouse {path} is at schema version {version}, newer than this fueltrace "
            f"knows (up to {latest()}): a newer fueltrace wrote it — upgrade fueltrace, or "
            "point FUELTRACE_DB at another file; the file was not changed"
        )


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    rows = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
    return int(rows[0][0])


def migrate(con: duckdb.DuckDBPyConnection, path: Path | str = "warehouse") -> int:
    """Apply pending migrations, each in its own transaction; return the version.

    A warehouse newer than this code is refused (:class:`WarehouseTooNew`), untouched."""
    version = current_version(con)
    check_version(version, path)
    for number, name, path in available():
        if number <= version:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(path.read_text(encoding="utf-8"))
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, now())", [number, name]
            )
            con.execute("COMMIT")
        except duckdb.Error:
            with contextlib.suppress(duckdb.Error):  # a failed COMMIT has rolled back
                con.execute("ROLLBACK")
            raise
        log.info("warehouse migrated version=%d name=%s", number, name)
        version = number
    return version
