"""The analyses that follow a load, in order. Wiring only: each lives in ``processors``."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from fueltrace.settings import Settings
from processors import traceability


def run_analyses(con: duckdb.DuckDBPyConnection, settings: Settings,
                 now: datetime | None = None) -> traceability.TraceabilityResult:  # fmt: skip
    """Bring every derived table up to date with what has been loaded."""
    return traceability.run(con, settings, now or datetime.now(UTC))
