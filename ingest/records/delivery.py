"""Deliveries received by a station: natural key delivery_id."""

from __future__ import annotations

import polars as pl

from fueltrace.settings import Settings
from ingest.records.base import RecordSpec, Rule, density, ordered, positive, temperature


def rules(settings: Settings, now: pl.Expr) -> list[Rule]:
    return [positive("volume_l"), temperature(), density(), ordered("started_at", "ended_at")]


SPEC = RecordSpec(
    name="delivery",
    topic_suffix="delivery",
    kafka_key="station_id",
    natural_key=("delivery_id",),
    table="delivery",
    time_fields=("started_at", "ended_at"),
    float_fields=("volume_l", "temperature_c", "density_kg_m3"),
    rules=rules,
)
