"""Device state changes: natural key (station_id, device_id, at)."""

from __future__ import annotations

import polars as pl

from fueltrace.settings import Settings
from ingest.records.base import RecordSpec, Rule


def rules(settings: Settings, now: pl.Expr) -> list[Rule]:
    return []


SPEC = RecordSpec(
    name="device_status",
    topic_suffix="device-status",
    kafka_key="station_id",
    natural_key=("station_id", "device_id", "at"),
    table="device_status",
    time_fields=("at",),
    float_fields=(),
    rules=rules,
)
