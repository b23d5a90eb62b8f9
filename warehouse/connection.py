"""Opening the DuckDB warehouse, and the one place DuckDB errors are translated."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from fueltrace.errors import WarehouseBusy, WarehouseError
from warehouse.migrate import migrate

log = logging.getLogger(__name__)


def translate(exc: duckdb.Error, path: Path | str) -> WarehouseBusy | WarehouseError:
    """A DuckDB error as a fueltrace error that says whether to retry."""
    text = str(exc)
    if "lock" in text.lower() or isinstance(exc, duckdb.TransactionException):
        return WarehouseBusy(
            f"warehouse {path} is in use by another process ({text.splitlines()[0]}); "
            "stop it or point FUELTRACE_DB elsewhere"
        )
    return WarehouseError(f"warehouse {path}: {text}")


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> int:
    """The one integer a statement returns (a count, a sequence value, an INSERT's rows).

    Reads the whole result: DuckDB 2 refuses new work while a result is unfinished.
    """
    rows = con.execute(sql, params).fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def connect(
    path: Path | str, *, read_only: bool = False, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """Open (creating and migrating if needed) the warehouse at ``path``."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
        con.execute("SET TimeZone = 'UTC'")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if not read_only:
            migrate(con)
    except duckdb.Error as exc:
        raise translate(exc, path) from exc
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, path: Path | str) -> Iterator[None]:
    """BEGIN … COMMIT, rolled back on any error, DuckDB errors translated."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise translate(exc, path) from exc
    except BaseException:
        con.execute("ROLLBACK")
        raise
