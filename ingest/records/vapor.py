"""Vapour-recovery samples: natural key (station_id, nozzle_id, measured_at)."""

from __future__ import annotations

import polars as pl

from fueltrace.settings import Settings
from ingest.records.base import RecordSpec, Rule, non_negative


def rules(settings: Settings, now: pl.Expr) -> list[Rule]:
    # A/L outside GB 20952's 1.0–1.2 band is a finding for the anomaly rules, not a
    # reject: only a negative ratio is physically impossible.
    return [non_negative("al_ratio")]


SPEC = RecordSpec(
    name="vapor",
    topic_suffix="vapor",
    kafka_key="station_id",
    natural_key=("station_id", "nozzle_id", "measured_at"),
    table="vapor",
    time_fields=("measured_at",),
    float_fields=("al_ratio", "pressure_pa"),
    rules=rules,
)
