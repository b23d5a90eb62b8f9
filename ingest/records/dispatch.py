"""Depot dispatches (tanker loads): natural key dispatch_id, keyed by dispatch_id."""

from __future__ import annotations

import polars as pl

from fueltrace.settings import Settings
from ingest.records.base import RecordSpec, Rule, density, positive, temperature


def rules(settings: Settings, now: pl.Expr) -> list[Rule]:
    return [positive("volume_l"), temperature(), density()]


SPEC = RecordSpec(
    name="dispatch",
    topic_suffix="dispatch",
    kafka_key="dispatch_id",
    natural_key=("dispatch_id",),
    table="dispatch",
    time_fields=("dispatched_at",),
    float_fields=("volume_l", "temperature_c", "density_kg_m3"),
    rules=rules,
)
