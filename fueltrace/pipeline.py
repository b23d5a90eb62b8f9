"""The running pipeline: the ingest, with the analyses between its batches, riding out a
broker that goes away. ``fueltrace serve`` runs it in a thread beside the HTTP service;
a running ``fueltrace ingest`` runs it in the foreground.

A broker that goes away (it stops accepting connections, or a Kafka call fails
transiently) pauses the ingest: the batch already read is loaded, ``fueltrace_up`` for
``broker`` and ``ingest`` drops to 0, and the broker is tried again after 1, 2, 4 … up
to ``RETRY_MAX_S`` seconds. When it answers again the topics are created if missing (a
restarted Tansu has none), the topic ids are read afresh and every held partition is put
back where the warehouse says, so a recreated topic is re-read from its beginning (the
re-sent records are caught by natural key) rather than from an offset of the old log.
Without that check kafka-python reconnects silently and goes on fetching at the old
positions in the new, empty log: records sent after the restart below those offsets
would be skipped. An error retrying cannot fix ends the run (``failed``).

The analyses run beside the ingest in a thread of their own (:class:`Analyst`), at most
every ``FUELTRACE_ANALYSIS_INTERVAL_S`` (later after a long run:
:class:`fueltrace.analyses.AnalysisSchedule`); they also forget old gateway receipts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import duckdb

from fueltrace import metrics
from fueltrace.analyses import AnalysisSchedule, run_analyses
from fueltrace.errors import BrokerUnavailable, FuelTraceError, TransientError
from fueltrace.settings import Settings
from ingest.consumer import RETRY_FIRST_S, RETRY_MAX_S, Ingest
from ingest.embedded_broker import answers
from ingest.kafka_client import kafka_errors
from ingest.topics import ensure_topics
from warehouse.access import prune_receipts

log = logging.getLogger(__name__)
#: How long the group may leave this process without a partition before it says so.
NO_PARTITIONS_WARN_S = 30.0
#: How often the running ingest checks that the broker still accepts connections.
BROKER_CHECK_S = 1.0


class Analyst(threading.Thread):
    """The analyses in a thread of their own, on a cursor of their own, at most every
    ``FUELTRACE_ANALYSIS_INTERVAL_S`` (:class:`fueltrace.analyses.AnalysisSchedule`).

    The loads go on while they run: between the batches, in the ingest's thread, a long
    analysis held every record back (produce → queryable p95 2.4 s under load with the
    analyses every 5 s). DuckDB isolates the two: the analyses write only derived tables,
    and each run reads the loads committed when it began (the next run takes the rest).
    A failure is logged and retried at the next turn; it never stops the ingest.
    """

    def __init__(self, settings: Settings, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__(name="fueltrace-analyses", daemon=True)
        self.settings = settings
        self.cursor = con.cursor()  # made by the caller, in the thread that owns ``con``
        self.cursor.execute("SET TimeZone = 'UTC'")
        self.schedule = AnalysisSchedule(settings.analysis_interval_s)
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.is_set():
                wait_s = self.schedule.started + self.schedule.wait_s() - time.monotonic()
                if wait_s > 0:
                    self.done.wait(min(wait_s, 0.5))
                    continue
                self.analyse()
        finally:
            self.cursor.close()

    def analyse(self) -> None:
        """Analyses (with their metrics), cases, receipts."""
        now = datetime.now(UTC)
        started = time.monotonic()
        try:  # run_analyses times its jobs and refreshes the warehouse gauges itself
            result = run_analyses(self.cursor, self.settings, now)
            synced = result.cases
            prune_receipts(self.cursor, now,
                           timedelta(hours=self.settings.gateway_idempotency_ttl_h))  # fmt: skip
            self.schedule.ran(started, time.monotonic() - started)
            metrics.HEALTHY.labels("analyses").set(1)
            log.info("analyses done duration_s=%.2f raised=%d resolved=%d cases_opened=%d "
                     "cases_reopened=%d next_in_s=%.1f", self.schedule.took_s,
                     result.anomalies.raised, result.anomalies.resolved, synced.opened,
                     synced.reopened, self.schedule.wait_s())  # fmt: skip
        except Exception as exc:
            self.schedule.ran(started, time.monotonic() - started)
            if self.done.is_set():  # interrupted by finish(): rolled back, redone next start
                log.info("analyses stopped (the pipeline stops; rolled back)")
                return
            metrics.HEALTHY.labels("analyses").set(0)
            log.error("analyses failed error=%s: %s (retried in %g s)", type(exc).__name__, exc,
                      self.schedule.wait_s(), exc_info=exc)  # fmt: skip

    def finish(self, grace_s: float = 30.0) -> None:
        """Stop: let a run in progress end for ``grace_s``, then interrupt it (its
        transaction rolls back; the next start redoes it)."""
        self.done.set()
        if not self.is_alive():
            return
        self.join(grace_s)
        if self.is_alive():
            self.cursor.interrupt()
            self.join()


class Pipeline(threading.Thread):
    """The ingest, with the analyses beside it (:class:`Analyst`): started beside the HTTP
    service, or ``run()`` in the foreground."""

    def __init__(self, settings: Settings, ingest: Ingest, stop: threading.Event,
                 on_fatal: Callable[[], None], *,
                 broker_answers: Callable[[], bool] | None = None,
                 daemon: bool = False) -> None:  # fmt: skip
        super().__init__(name="fueltrace-pipeline", daemon=daemon)
        self.settings = settings
        self.ingest = ingest
        self.stop = stop
        self.on_fatal = on_fatal
        self.broker_answers = broker_answers or (lambda: accepts_connections(ingest.bootstrap))
        self.failed: BaseException | None = None
        self.connected = False
        self._away: BrokerUnavailable | None = None  # set by _tick: the broker went away
        self._checked_at = float("-inf")
        self._unassigned_since: float | None = None
        self._warned_at = float("-inf")

    def healthy(self) -> bool:
        return self.is_alive() and self.failed is None and self.connected

    def _watch_assignment(self) -> None:
        """Warn (every ``NO_PARTITIONS_WARN_S``) while the group gives this process no
        partition: it consumes nothing, though it answers and reports the broker up."""
        now = time.monotonic()
        if self.ingest.kafka.assignment():
            self._unassigned_since = None
            return
        if self._unassigned_since is None:
            self._unassigned_since = now
        waited = now - self._unassigned_since
        if waited >= NO_PARTITIONS_WARN_S and now - self._warned_at >= NO_PARTITIONS_WARN_S:
            self._warned_at = now
            log.warning("no partitions assigned waited_s=%.0f group=%s topics=%d (another "
                        "member may hold them all, or the group coordinator does not answer)",
                        waited, self.settings.group_id, len(self.ingest.topics))  # fmt: skip

    def _broker_gone(self) -> bool:
        """Every ``BROKER_CHECK_S``: does the broker still accept connections? kafka-python
        itself reconnects silently, its polls just come back empty, so without this a dead
        broker would look like a quiet one (and a restarted Tansu be read from offsets of
        its old log)."""
        now = time.monotonic()
        if now - self._checked_at < BROKER_CHECK_S:
            return False
        self._checked_at = now
        if self.broker_answers():
            return False
        self._away = BrokerUnavailable(
            f"Kafka broker at {self.ingest.bootstrap} does not accept connections"
        )
        return True

    def _tick(self) -> bool:
        """Called by the ingest loop between polls: stop when asked, or when the broker went
        away (the ingest then loads what it read and returns)."""
        if self._broker_gone():
            return True
        self._watch_assignment()
        return self.stop.is_set()

    def _connect(self, attempt: int) -> None:
        """Before the ingest (re)starts: the broker accepts connections, the topics exist
        (a restarted Tansu has lost them), and the consumer knows the topics' current ids
        (``Ingest.run`` compares them with the ids stored beside the warehouse offsets).
        Anything failing here is a broker not (yet) back: transient."""
        bootstrap = self.ingest.bootstrap
        if not self.broker_answers():
            raise BrokerUnavailable(f"Kafka broker at {bootstrap} does not accept connections")
        try:
            ensure_topics(self.settings, bootstrap)
            with kafka_errors(bootstrap):
                self.ingest.kafka.topics()  # a metadata request: fresh topic ids
        except FuelTraceError as exc:
            raise BrokerUnavailable(f"Kafka broker at {bootstrap} is not ready: {exc}") from exc
        self.connected = True
        metrics.HEALTHY.labels("broker").set(1)
        metrics.HEALTHY.labels("ingest").set(1)
        if attempt:
            log.warning("broker back bootstrap=%s attempts=%d (partitions are put back where "
                        "the warehouse says; a recreated topic is re-read from its beginning)",
                        bootstrap, attempt)  # fmt: skip

    def _disconnected(self, exc: TransientError, attempt: int, backoff: float) -> None:
        self.connected = False
        metrics.HEALTHY.labels("ingest").set(0)
        if isinstance(exc, BrokerUnavailable):
            metrics.HEALTHY.labels("broker").set(0)
        log.warning("ingest interrupted error=\"%s\" attempt=%d retry_in_s=%g (the API "
                    "answers from the warehouse meanwhile)", exc, attempt, backoff)  # fmt: skip

    def run(self) -> None:
        analyst = Analyst(self.settings, self.ingest.con)  # no load in flight yet
        analyst.start()
        try:
            self._ingest()
        finally:
            analyst.finish()

    def _ingest(self) -> None:
        backoff, attempt = RETRY_FIRST_S, 0
        while not self.stop.is_set():
            try:
                if not self.connected:
                    self._connect(attempt)
                    backoff, attempt = RETRY_FIRST_S, 0
                self.ingest.run(should_stop=self._tick)
                away, self._away = self._away, None
                if away is not None:
                    raise away
            except TransientError as exc:
                self._away = None
                attempt += 1
                self._disconnected(exc, attempt, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
            except BaseException as exc:
                self.failed = exc
                log.error("ingest stopped error=%s: %s", type(exc).__name__, exc, exc_info=exc)
                self.on_fatal()
                return


def accepts_connections(bootstrap: str) -> bool:
    """Does any of the bootstrap servers accept a connection?"""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isdigit() and answers(host.strip("[]") or "127.0.0.1", int(port)):
            return True
    return False

