"""Facility registrations: natural key (facility_id, updated_at), keyed by facility_id."""

from __future__ import annotations

import polars as pl

from fueltrace.settings import Settings
from ingest.records.base import RecordSpec, Rule, fmt

CITIES = (
    "Shenyang", "Dalian", "Anshan", "Fushun", "Benxi", "Dandong", "Jinzhou",
    "Yingkou", "Fuxin", "Liaoyang", "Panjin", "Tieling", "Chaoyang", "Huludao",
)  # fmt: skip


def rules(settings: Settings, now: pl.Expr) -> list[Rule]:
    capacity = pl.col("tanks").list.eval(pl.element().struct.field("capacity_l") <= 0).list.any()
    reversed_dates = (
        pl.col("licences")
        .list.eval(
            pl.element().struct.field("valid_until") < pl.element().struct.field("valid_from")
        )
        .list.any()
    )
    return [
        Rule(
            "unknown_city",
            "city",
            ~pl.col("city").is_in(CITIES),
            fmt("city = '{}' is not a city of Liaoning", "city"),
        ),
        Rule(
            "capacity_not_positive",
            "tanks.capacity_l",
            capacity.fill_null(False),
            pl.lit("a tank has capacity_l ≤ 0"),
        ),
        Rule(
            "licence_dates_reversed",
            "licences.valid_until",
            reversed_dates.fill_null(False),
            pl.lit("a licence has valid_until before valid_from"),
        ),
    ]


SPEC = RecordSpec(
    name="facility",
    topic_suffix="facility",
    kafka_key="facility_id",
    natural_key=("facility_id", "updated_at"),
    table="facility_version",
    time_fields=("updated_at",),
    float_fields=(),
    rules=rules,
)
