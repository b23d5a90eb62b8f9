"""Every Prometheus metric fueltrace exports, named here and nowhere else.

The catalogue, with where each value comes from, is ``docs/metrics.md`` (a test keeps
the two in step). Labels are bounded: topic and table names, record types, reason
names (``ingest.reasons.REASONS``), partition numbers, rule, severity and city names,
route templates and status codes; never offsets, stations or transaction ids
(``LABELS`` is the allow-list the tests hold every metric to).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Every label a fueltrace metric may carry, and why its values are bounded.
LABELS: dict[str, str] = {
    "topic": "the SPEC's topics: 7 record topics",
    "partition": "partition numbers of those topics (FUELTRACE_PARTITIONS, tens)",
    "table": "warehouse tables, fixed by the migrations",
    "reason": "dead-letter reasons, ingest.reasons.REASONS",
    "record_type": "the 7 record types",
    "job": "analysis jobs: traceability, anomalies, observe",
    "rule": "anomaly rules, processors.rules.RULES",
    "severity": "critical, high, medium, low",
    "city": "the province's 14 prefecture-level cities (+ unknown)",
    "route": "HTTP route templates, never raw paths",
    "method": "HTTP methods",
    "status": "HTTP status codes",
    "outcome": "accepted, rejected, replayed",
    "component": "broker, warehouse; under `serve` also ingest, analyses",
    "version": "the running fueltrace version (one per process)",
}


class ScrapeTimeGauge(Collector):
    """A labelled gauge computed when Prometheus scrapes, from the clock at that moment.

    For values that must keep moving when nothing happens, such as "seconds since the
    newest record": a gauge set after each load would freeze exactly when data stops
    arriving. ``fueltrace.observe`` installs the source function.
    """

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._source: Callable[[float], dict[tuple[str, ...], float]] | None = None
        self._lock = threading.Lock()
        REGISTRY.register(self)

    def set_source(self, source: Callable[[float], dict[tuple[str, ...], float]] | None) -> None:
        """``source(now_epoch_s)`` returns {label values: value}; ``None`` exports nothing."""
        with self._lock:
            self._source = source

    def samples(self, now: float | None = None) -> dict[tuple[str, ...], float]:
        with self._lock:
            source = self._source
        return source(time.time() if now is None else now) if source else {}

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in sorted(self.samples().items()):
            family.add_metric(list(labels), value)
        yield family


# --- ingest: what the consumer read, loaded, rejected (set by ingest.consumer) ---
MESSAGES_CONSUMED = Counter(
    "fueltrace_messages_consumed_total", "Kafka messages consumed by the ingest.", ["topic"]
)
RECORDS_CONSUMED = Counter(
    "fueltrace_records_consumed_total",
    "Records decoded from consumed messages (a batch message holds many).",
    ["topic"],
)
RECORDS_LOADED = Counter(
    "fueltrace_records_loaded_total", "Records inserted into the warehouse.", ["topic"]
)
RECORDS_REJECTED = Counter(
    "fueltrace_records_rejected_total",
    "Messages or records sent to the dead-letter topic, by reason.",
    ["topic", "reason"],
)
DUPLICATES = Counter(
    "fueltrace_duplicates_total",
    "Records whose natural key was already stored with the same content.",
    ["topic"],
)
KEY_CONFLICTS = Counter(
    "fueltrace_key_conflicts_total",
    "Records whose natural key was already stored with different content (a finding).",
    ["topic"],
)
BATCH_DURATION = Histogram(
    "fueltrace_batch_duration_seconds",
    "Time to decode, validate and load one micro-batch (from its first poll to commit).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_RECORDS = Histogram(
    "fueltrace_batch_records",
    "Records per loaded micro-batch.",
    buckets=(1, 10, 100, 1000, 5000, 10000, 20000, 50000, 100000),
)
CONSUMER_LAG = Gauge(
    "fueltrace_consumer_lag_messages",
    "Messages between the consumer's position and the partition's high-water mark, for "
    "the partitions this process holds.",
    ["topic", "partition"],
)
LAST_LOAD = Gauge(
    "fueltrace_last_load_timestamp_seconds", "Unix time of the last committed micro-batch."
)
PARTITIONS_ASSIGNED = Gauge(
    "fueltrace_partitions_assigned", "Record-topic partitions this ingest process holds."
)
REBALANCES = Counter(
    "fueltrace_rebalances_total", "Consumer-group assignments this process received."
)
OFFSET_COMMIT_FAILURES = Counter(
    "fueltrace_offset_commit_failures_total",
    "Kafka offset commits that failed: the next owner of those partitions may re-read "
    "up to one micro-batch.",
)
PUSHED = Counter(
    "fueltrace_push_records_total", "Records sent by `fueltrace push`.", ["record_type"]
)

# --- analyses and freshness (set by fueltrace.analyses and fueltrace.observe) ---
ANALYSIS_DURATION = Histogram(
    "fueltrace_analysis_duration_seconds",
    "Time of one analysis job run (traceability, the anomaly rules, the gauge refresh).",
    ["job"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
LAST_ANALYSIS = Gauge(
    "fueltrace_last_analysis_timestamp_seconds",
    "Unix time the analyses last finished: how fresh the anomaly list is.",
)
OPEN_ANOMALIES = Gauge(
    "fueltrace_open_anomalies", "Active anomalies, by rule, severity and city.",
    ["rule", "severity", "city"],
)  # fmt: skip
WAREHOUSE_ROWS = Gauge("fueltrace_warehouse_rows", "Rows per warehouse table.", ["table"])
STATIONS = Gauge("fueltrace_stations", "Stations the warehouse knows, by city.", ["city"])
EVENT_TIME_LAG = ScrapeTimeGauge(
    "fueltrace_event_time_lag_seconds",
    "Now minus the newest event time loaded, per record type (how stale the data is).",
    ["record_type"],
)
STATIONS_SILENT = ScrapeTimeGauge(
    "fueltrace_stations_silent",
    "Stations with no record for longer than FUELTRACE_SILENT_STATION_H, by city.",
    ["city"],
)

# --- serving (set by the HTTP service) ---
HTTP_REQUESTS = Counter(
    "fueltrace_http_requests_total",
    "HTTP requests served, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "fueltrace_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GATEWAY_RECORDS = Counter(
    "fueltrace_gateway_records_total",
    "Records posted to the station gateway, by record type and outcome "
    "(accepted, rejected, replayed: an idempotent retry).",
    ["record_type", "outcome"],
)
HEALTHY = Gauge(
    "fueltrace_up",
    "1 while the pipeline's broker and warehouse are reachable, 0 while it retries.",
    ["component"],
)
BUILD_INFO = Gauge("fueltrace_build_info", "Always 1; the running version.", ["version"])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fueltrace")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


BUILD_INFO.labels(_version()).set(1)


def replace(gauge: Gauge, values: dict[tuple[str, ...], float]) -> None:
    """Set a labelled gauge to exactly ``values``: label sets that disappeared are
    removed (an anomaly count that went to zero), so no stale series stays behind."""
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
    for labels in [tuple(k) for k in gauge._metrics if tuple(k) not in values]:  # no public API
        gauge.remove(*labels)
