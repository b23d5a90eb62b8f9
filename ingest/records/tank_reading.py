"""ATG readings: natural key (station_id, tank_id, read_at)."""

from __future__ import annotations

import polars as pl

from fueltrace.settings import Settings
from ingest.records.base import RecordSpec, Rule, non_negative, temperature


def rules(settings: Settings, now: pl.Expr) -> list[Rule]:
    return [
        non_negative("level_mm"),
        non_negative("volume_l"),
        non_negative("water_mm"),
        temperature(),
    ]


SPEC = RecordSpec(
    name="tank_reading",
    topic_suffix="tank-reading",
    kafka_key="station_id",
    natural_key=("station_id", "tank_id", "read_at"),
    table="tank_reading",
    time_fields=("read_at",),
    float_fields=("level_mm", "volume_l", "water_mm", "temperature_c"),
    rules=rules,
)
