"""The API's side of the warehouse: a cursor per request, under a time bound.

The process has ONE DuckDB connection (the ingest and the analyses write through it).
Requests never use it directly: each gets its own cursor (a connection to the same
database, safe to use from the request's thread), with the session time zone set to
UTC, and a timer that interrupts whatever the cursor runs when the request's time
bound passes. The interrupted query is answered ``503 query_timeout``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import duckdb

from fueltrace.api.errors import QueryTimeout
from warehouse.connection import translate

log = logging.getLogger(__name__)
T = TypeVar("T")


class Warehouse:
    """Hands out cursors of the process's connection, each under a deadline."""

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str = "warehouse") -> None:
        self._root = con.cursor()  # created here, in the thread that owns ``con``
        self._lock = threading.Lock()
        self.name = name

    @contextmanager
    def cursor(self, timeout_s: float, what: str = "query") -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh cursor; a statement still running after ``timeout_s`` is interrupted."""
        with self._lock:
            cur = self._root.cursor()
        fired = threading.Event()

        def interrupt() -> None:
            fired.set()
            cur.interrupt()

        timer = threading.Timer(timeout_s, interrupt)
        timer.daemon = True
        try:
            cur.execute("SET TimeZone = 'UTC'")
            timer.start()
            yield cur
        except duckdb.Error as exc:
            if fired.is_set() or isinstance(exc, duckdb.InterruptException):
                log.warning("query interrupted what=%s timeout_s=%g", what, timeout_s)
                raise QueryTimeout(
                    f"the {what} ran longer than {timeout_s:g} s and was stopped; narrow it "
                    "(a shorter time range, one city or station, a smaller page) or try "
                    "again later", headers={"Retry-After": "30"}) from None  # fmt: skip
            raise translate(exc, self.name) from exc
        finally:
            timer.cancel()
            cur.close()

    def run(self, timeout_s: float, fn: Callable[..., T], *args: Any, what: str = "query",
            **kwargs: Any) -> T:  # fmt: skip
        """``fn(cursor, *args, **kwargs)`` under the deadline."""
        with self.cursor(timeout_s, what) as cur:
            return fn(cur, *args, **kwargs)

    def close(self) -> None:
        self._root.close()
