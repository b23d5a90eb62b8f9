"""The analyses that follow a load, in order. Wiring only: each lives in ``processors``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from fueltrace import failpoints, metrics
from fueltrace.observe import refresh_gauges
from fueltrace.settings import Settings
from processors import anomalies, traceability
from warehouse import cases
from warehouse.connection import memory_limit, rollback, translate

#: The most of the time the analyses may run: after a run of ``d`` seconds the next waits
#: at least ``d / ANALYSIS_SHARE`` from its start. A quiet pipeline analyses every
#: ``FUELTRACE_ANALYSIS_INTERVAL_S`` (a finding within seconds); in a flood, whose
#: analyses grow with every batch, they take at most half of one core (they run beside the
#: loads, fueltrace.pipeline.Analyst, and share the CPU with them).
ANALYSIS_SHARE = 0.5


@dataclass
class AnalysisSchedule:
    """When a running pipeline brings the analyses up to date next: ``interval_s`` after
    the last run started, or later if that run was long (:data:`ANALYSIS_SHARE`)."""

    interval_s: float
    started: float = -math.inf  # time.monotonic() of the last run's start
    took_s: float = 0.0

    def wait_s(self) -> float:
        """The least time between two starts, given the last run's duration."""
        return max(self.interval_s, self.took_s / ANALYSIS_SHARE)

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return now - self.started >= self.wait_s()

    def ran(self, started: float, took_s: float) -> None:
        self.started, self.took_s = started, took_s


@dataclass
class AnalysesResult:
    traceability: traceability.TraceabilityResult
    anomalies: anomalies.AnomalyRunResult
    cases: cases.SyncResult


def run_analyses(con: duckdb.DuckDBPyConnection, settings: Settings,
                 now: datetime | None = None) -> AnalysesResult:  # fmt: skip
    """Bring every derived table up to date with what has been loaded: lineage, standard
    volumes and delivery checks first, then the anomaly rules that read them, then the
    cases of the findings (opened for new ones, reopened for ones found again); then the
    warehouse gauges (``fueltrace.observe``). Each job is timed into
    ``fueltrace_analysis_duration_seconds{job}``."""
    clock = now or datetime.now(UTC)
    try:
        with memory_limit(con, settings.analysis_memory_limit, settings.db_memory_limit):
            return _run(con, settings, clock)
    except duckdb.Error as exc:  # a full disk, a damaged block: said as the warehouse's
        raise translate(exc, settings.db) from exc


def _run(con: duckdb.DuckDBPyConnection, settings: Settings, clock: datetime) -> AnalysesResult:
    # Traceability and the anomaly rules in ONE transaction: loads commit beside the
    # analyses (fueltrace.pipeline.Analyst), and a rule reading lineage and standard
    # volumes built from fewer loads than the records it judges would raise findings that
    # no later run revisits.
    con.execute("BEGIN TRANSACTION")
    try:
        with metrics.ANALYSIS_DURATION.labels("traceability").time():
            traced = traceability.run(con, settings, clock, own_transaction=False)
        failpoints.hit("analysis", settings.debug_failpoint)  # mid-analysis
        with metrics.ANALYSIS_DURATION.labels("anomalies").time():
            found = anomalies.run(con, settings, clock, own_transaction=False)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # not con.execute: a failed COMMIT has rolled back already
        raise
    with metrics.ANALYSIS_DURATION.labels("cases").time():
        synced = cases.sync_cases(con, clock)
    with metrics.ANALYSIS_DURATION.labels("observe").time():
        refresh_gauges(con, settings, clock)
    metrics.LAST_ANALYSIS.set_to_current_time()
    return AnalysesResult(traced, found, synced)
