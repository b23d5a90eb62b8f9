"""The analyses that follow a load, in order. Wiring only: each lives in ``processors``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from fueltrace.settings import Settings
from processors import anomalies, traceability


@dataclass
class AnalysesResult:
    traceability: traceability.TraceabilityResult
    anomalies: anomalies.AnomalyRunResult


def run_analyses(con: duckdb.DuckDBPyConnection, settings: Settings,
                 now: datetime | None = None) -> AnalysesResult:  # fmt: skip
    """Bring every derived table up to date with what has been loaded: lineage, standard
    volumes and delivery checks first, then the anomaly rules that read them."""
    clock = now or datetime.now(UTC)
    return AnalysesResult(traceability.run(con, settings, clock),
                          anomalies.run(con, settings, clock))  # fmt: skip
