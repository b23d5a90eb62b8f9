"""Opening the DuckDB warehouse, and the one place DuckDB errors are translated.

An existing file is checked before it is opened for writing, through a read-only
connection that cannot change it: a file that is not a readable fueltrace warehouse
(corrupt, truncated, another application's database) or that a newer fueltrace or
DuckDB wrote is refused, never repaired or migrated.

DuckDB checkpoints (copies the write-ahead log into the file) on its own once the log
passes 16 MiB; a checkpoint that fails for lack of space leaves the whole database
unusable until it is reopened, even after a COMMIT that succeeded. So a writing
connection checkpoints only in :func:`checkpoint`, after a load, and only with room on
the disk: a full disk then fails a COMMIT cleanly (rolled back, retried later).
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from fueltrace.errors import (
    FuelTraceError,
    WarehouseBusy,
    WarehouseDamaged,
    WarehouseError,
    WarehouseFull,
    WarehouseInvalidated,
    WarehouseTooNew,
)
from warehouse.migrate import check_version, migrate

log = logging.getLogger(__name__)

MIB = 1024 * 1024
HEADER_BYTES = 3 * 4096  # a DuckDB file: its main header and two database headers
CHECKPOINT_WAL_BYTES = 16 * MIB  # DuckDB's own automatic-checkpoint threshold
CHECKPOINT_HEADROOM_BYTES = 64 * MIB  # free space kept beyond twice the log's size
_NO_SPACE = ("no space left on device", "disk quota exceeded", "disk is full")
_DAMAGED = ("not a valid duckdb database file", "could not read enough bytes", "corrupt",
            "checksum", "serialization error", "failed to load metadata")  # fmt: skip
_deferred: set[str] = set()  # warehouses whose checkpoint waits for space (warned once)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def translate(exc: duckdb.Error, path: Path | str) -> FuelTraceError:
    """A DuckDB error as a fueltrace error that says whether to retry and what to do."""
    text = str(exc)
    low, first = text.lower(), _first_line(text)
    if "could not set lock" in low or "conflicting lock" in low:
        holder = re.search(r"lock is held in (.+?) \(PID (\d+)\)", text)
        who = f" ({Path(holder[1]).name}, PID {holder[2]})" if holder else ""
        return WarehouseBusy(
            f"warehouse {path} is locked by another process{who}: stop that process (while "
            "`fueltrace serve` runs, use its API), or point FUELTRACE_DB at another file"
        )
    if isinstance(exc, duckdb.FatalException) or "has been invalidated" in low:
        return WarehouseInvalidated(
            f"warehouse {path}: DuckDB stopped using the file after a failed write ({first}); "
            "what was committed is safe — fix the cause (free disk space) and restart "
            "fueltrace: it resumes from the offsets stored in the warehouse"
        )
    if any(s in low for s in _NO_SPACE):
        return WarehouseFull(
            f"warehouse {path}: no space left on device ({first}); the write was rolled back "
            "and nothing of it stored — free space on that disk (FUELTRACE_DB's directory and "
            "DuckDB's temp directory next to it); loading resumes where the warehouse stopped"
        )
    if "newer version of duckdb" in low or "created with a newer version" in low:
        return WarehouseTooNew(
            f"warehouse {path} was written by a newer DuckDB than this fueltrace uses "
            f"(duckdb {duckdb.__version__}: {first}); upgrade fueltrace, or point "
            "FUELTRACE_DB at another file — the file was not changed"
        )
    if any(s in low for s in _DAMAGED):
        return WarehouseDamaged(
            f"warehouse {path} is damaged and cannot be read ({first}); restore it from a "
            "backup, or point FUELTRACE_DB at another file — fueltrace leaves it untouched"
        )
    if isinstance(exc, duckdb.TransactionException) and "conflict" in low:
        return WarehouseBusy(f"warehouse {path}: a concurrent write conflicted ({first}); "
                             "retry")  # fmt: skip
    if "permission denied" in low or "read-only file system" in low:
        return WarehouseError(
            f"warehouse {path} cannot be written ({first}); give this user write access to "
            "the file and its directory, or point FUELTRACE_DB elsewhere"
        )
    return WarehouseError(f"warehouse {path}: {first}")


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> int:
    """The one integer a statement returns (a count, a sequence value, an INSERT's rows).

    Reads the whole result: DuckDB 2 refuses new work while a result is unfinished.
    """
    rows = con.execute(sql, params).fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def check(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a file that is truncated, not a fueltrace warehouse, or of a newer schema.

    Reads only: how many blocks the database uses (a file too short to hold them was
    truncated), the catalogue, and the small tables that say where the ingest stands
    (which also proves their blocks are readable)."""
    rows = con.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size() "
        "WHERE database_name = current_database()"
    ).fetchall()
    if rows and path.is_file():
        block_size, used = int(rows[0][0]), int(rows[0][1])
        size = path.stat().st_size
        held = max(size - HEADER_BYTES, 0) // block_size if block_size else used
        if used > held:
            raise WarehouseDamaged(
                f"warehouse {path} is truncated: its {size} bytes hold {held} of the {used} "
                f"blocks of {block_size} bytes it uses; restore it from a backup, or point "
                "FUELTRACE_DB at another file — fueltrace leaves it untouched"
            )
    tables = {
        r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() AND schema_name = 'main'"
        ).fetchall()
    }  # fmt: skip
    if "schema_version" not in tables:
        if tables:
            shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
            raise WarehouseDamaged(
                f"warehouse {path} is a DuckDB database but not a fueltrace warehouse (no "
                f"schema_version table; it holds {shown}); point FUELTRACE_DB at another "
                "file — fueltrace leaves this one untouched"
            )
        return
    version = scalar(con, "SELECT max(version) FROM schema_version")
    check_version(version, path)
    if "ingest_offset" in tables:
        con.execute("SELECT * FROM ingest_offset").fetchall()


def _probe(path: Path) -> None:
    """:func:`check` an existing file through a read-only connection, which cannot
    change it (no migration, no checkpoint on close)."""
    try:
        probe = duckdb.connect(str(path), read_only=True)
    except duckdb.ConnectionException as exc:
        if "different configuration" in str(exc):
            return  # this process has it open for writing already: checked back then
        raise
    try:
        check(probe, path)
    finally:
        probe.close()


def connect(
    path: Path | str, *, read_only: bool = False, threads: int | None = None,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:  # fmt: skip
    """Open (creating and migrating if needed) the warehouse at ``path``; ``memory_limit``
    (a validated size, ``Settings.db_memory_limit``) bounds DuckDB's memory."""
    path = Path(path)
    on_disk = str(path) != ":memory:"
    if read_only and on_disk and not path.exists():
        raise WarehouseError(f"no warehouse at {path} yet: `fueltrace ingest` creates it "
                             "(or point FUELTRACE_DB at an existing one)")  # fmt: skip
    con: duckdb.DuckDBPyConnection | None = None
    try:
        if not read_only and on_disk:
            if path.exists():
                _probe(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
        if read_only and on_disk:
            check(con, path)
        con.execute("SET TimeZone = 'UTC'")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            con.execute("SET memory_limit = $limit", {"limit": memory_limit})
        if not read_only:
            con.execute("SET checkpoint_threshold = '1TB'")  # see checkpoint()
            migrate(con, path)
    except duckdb.Error as exc:
        _close_quietly(con)
        raise translate(exc, path) from exc
    except BaseException:
        _close_quietly(con)
        raise
    return con


def _close_quietly(con: duckdb.DuckDBPyConnection | None) -> None:
    if con is not None:
        with contextlib.suppress(duckdb.Error):
            con.close()


def checkpoint(con: duckdb.DuckDBPyConnection, path: Path | str) -> bool:
    """Copy the write-ahead log into the file once it passes ``CHECKPOINT_WAL_BYTES``, if
    the disk has room for it (twice the log, plus ``CHECKPOINT_HEADROOM_BYTES``);
    otherwise defer it and say so once. While another connection of the process has a
    write transaction open (the analyses, an API write) it is postponed to a later call.
    True if it checkpointed."""
    wal = Path(f"{path}.wal")
    try:
        wal_bytes = wal.stat().st_size
    except OSError:
        return False  # in memory, or nothing logged since the last checkpoint
    if wal_bytes < CHECKPOINT_WAL_BYTES:
        return False
    free = shutil.disk_usage(wal.parent).free
    needed = 2 * wal_bytes + CHECKPOINT_HEADROOM_BYTES
    if free < needed:
        if str(path) not in _deferred:
            _deferred.add(str(path))
            log.warning(
                "warehouse checkpoint deferred path=%s wal_bytes=%d free_bytes=%d "
                "needed_bytes=%d (the disk is nearly full: loads go on into the log until "
                "it is full, then wait for space)", path, wal_bytes, free, needed,
            )  # fmt: skip
        return False
    try:
        con.execute("CHECKPOINT").fetchall()
    except duckdb.TransactionException as exc:
        if "other write transactions" not in str(exc):
            raise translate(exc, path) from exc
        # the analyses (or an API write) are in a transaction: as DuckDB's own automatic
        # checkpoint does, leave it to a later load
        log.debug("warehouse checkpoint postponed path=%s wal_bytes=%d (other writes "
                  "active)", path, wal_bytes)  # fmt: skip
        return False
    except duckdb.Error as exc:
        raise translate(exc, path) from exc
    if str(path) in _deferred:
        _deferred.discard(str(path))
        log.warning("warehouse checkpoint done path=%s wal_bytes=%d (space is back)",
                    path, wal_bytes)  # fmt: skip
    return True


@contextmanager
def memory_limit(con: duckdb.DuckDBPyConnection, during: str, after: str) -> Iterator[None]:
    """DuckDB's memory limit set to ``during`` for the block (a validated size; empty:
    DuckDB's default, 80 % of RAM), then to ``after``. The analyses need far more than
    the ingest's bounded buffer cache (``Settings.db_memory_limit``): their scans of weeks
    of tank readings are pinned whole while Polars takes them. Setting ``after`` evicts
    down to it; if queries still pin more, that waits for the next time."""
    if during:
        con.execute("SET memory_limit = $limit", {"limit": during})
    else:
        con.execute("RESET memory_limit")
    try:
        yield
    finally:
        try:
            con.execute("SET memory_limit = $limit", {"limit": after})
        except duckdb.Error as exc:
            log.info("warehouse memory limit kept limit=%s wanted=%s error=\"%s\"",
                     during or "default", after, str(exc).splitlines()[0])  # fmt: skip


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK, where there is still something to roll back: a COMMIT that failed has
    ended its transaction already."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, path: Path | str) -> Iterator[None]:
    """BEGIN … COMMIT, rolled back on any error, DuckDB errors translated."""
    try:
        con.execute("BEGIN TRANSACTION")
    except duckdb.Error as exc:
        raise translate(exc, path) from exc
    try:
        yield
        con.execute("COMMIT")
    except duckdb.Error as exc:
        rollback(con)
        raise translate(exc, path) from exc
    except BaseException:
        rollback(con)
        raise
