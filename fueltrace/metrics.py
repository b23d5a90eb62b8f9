"""Every Prometheus metric fueltrace exports, named here and nowhere else.

Labels are bounded: topic and table names, record types, reason names
(``ingest.reasons.REASONS``) and partition numbers; never offsets or ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CONSUMED = Counter(
    "fueltrace_messages_consumed_total", "Kafka messages consumed by the ingest.", ["topic"]
)
RECORDS_CONSUMED = Counter(
    "fueltrace_records_consumed_total",
    "Records decoded from consumed messages (a batch message holds many).",
    ["topic"],
)
RECORDS_LOADED = Counter(
    "fueltrace_records_loaded_total", "Records inserted into the warehouse.", ["table"]
)
RECORDS_REJECTED = Counter(
    "fueltrace_records_rejected_total",
    "Messages or records sent to the dead-letter topic, by reason.",
    ["topic", "reason"],
)
DUPLICATES = Counter(
    "fueltrace_duplicates_total",
    "Records whose natural key was already stored with the same content.",
    ["record_type"],
)
KEY_CONFLICTS = Counter(
    "fueltrace_key_conflicts_total",
    "Records whose natural key was already stored with different content (a finding).",
    ["record_type"],
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
    "Messages between the consumer's position and the partition's high-water mark.",
    ["topic", "partition"],
)
LAST_LOAD = Gauge(
    "fueltrace_last_load_timestamp_seconds", "Unix time of the last committed micro-batch."
)
PUSHED = Counter(
    "fueltrace_push_records_total", "Records sent by `fueltrace push`.", ["record_type"]
)

# --- analyses, serving, freshness (set by the analyses, the HTTP service and `serve`) ---
ANALYSIS_DURATION = Histogram(
    "fueltrace_analysis_duration_seconds",
    "Time of one analysis job run (lineage, or the anomaly rules).",
    ["job"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
OPEN_ANOMALIES = Gauge(
    "fueltrace_open_anomalies", "Active anomalies, by rule, severity and city.",
    ["rule", "severity", "city"],
)
EVENT_TIME_LAG = Gauge(
    "fueltrace_event_time_lag_seconds",
    "Now minus the newest event time loaded, per record type (how stale the data is).",
    ["record_type"],
)
WAREHOUSE_ROWS = Gauge("fueltrace_warehouse_rows", "Rows per warehouse table.", ["table"])
STATIONS_SILENT = Gauge(
    "fueltrace_stations_silent",
    "Stations with no record loaded for longer than the threshold, by city.",
    ["city"],
)
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
