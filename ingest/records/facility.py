"""Facility registrations: natural key (facility_id, updated_at), keyed by facility_id."""

from __future__ import annotations

import polars as pl

from fueltrace.settings import Settings
from ingest.records.base import RecordSpec, Rule, fmt

CITIES = (
    "Shenyang", "Dalian", "Anshan", "Fushun", "Benxi", "Dandong", "Jinzhou",
    "Yingkou", "Fuxin", "Liaoyang", "Panjin", "Tieling", "Chaoyang", "Huludao",
)  # fmt: skip


def _described(items: str, which: pl.Expr, template: str, *fields: str) -> pl.Expr:
    """The elements of list column ``items`` where ``which`` holds, each rendered with
    ``template`` from its ``fields``, joined: the values at fault, for the detail."""
    element = pl.format(template, *[pl.element().struct.field(f) for f in fields])
    return pl.col(items).list.eval(pl.element().filter(which)).list.eval(element).list.join("; ")


def _repeated(items: str, field: str) -> pl.Expr:
    ids = pl.col(items).list.eval(pl.element().struct.field(field))
    return (ids.list.len() != ids.list.n_unique()).fill_null(False)


def rules(settings: Settings, now: pl.Expr) -> list[Rule]:
    capacity = pl.element().struct.field("capacity_l") <= 0
    reversed_dates = (
        pl.element().struct.field("valid_until") < pl.element().struct.field("valid_from")
    )
    tank_ids = pl.col("tanks").list.eval(pl.element().struct.field("tank_id"))
    nozzle_tanks = pl.col("nozzles").list.eval(pl.element().struct.field("tank_id"))
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
            pl.col("tanks").list.eval(capacity).list.any().fill_null(False),
            fmt("capacity_l must be > 0: {}",
                _described("tanks", capacity, "tank {} capacity_l = {}", "tank_id", "capacity_l")),
        ),
        Rule(
            "duplicate_id",
            "tanks.tank_id",
            _repeated("tanks", "tank_id"),
            fmt("a tank_id is listed twice in tanks: {}", tank_ids.list.join(", ")),
        ),
        Rule(
            "duplicate_id",
            "nozzles.nozzle_id",
            _repeated("nozzles", "nozzle_id"),
            fmt("a nozzle_id is listed twice in nozzles: {}",
                pl.col("nozzles").list.eval(pl.element().struct.field("nozzle_id"))
                .list.join(", ")),  # fmt: skip
        ),
        Rule(
            "unknown_tank",
            "nozzles.tank_id",
            (nozzle_tanks.list.set_difference(tank_ids).list.len() > 0).fill_null(False),
            fmt("nozzles draw from tanks {} that are not in tanks",
                nozzle_tanks.list.set_difference(tank_ids).list.join(", ")),  # fmt: skip
        ),
        Rule(
            "licence_dates_reversed",
            "licences.valid_until",
            pl.col("licences").list.eval(reversed_dates).list.any().fill_null(False),
            fmt("valid_until before valid_from: {}",
                _described("licences", reversed_dates, "licence {} valid {} – {}", "number",
                           "valid_from", "valid_until")),  # fmt: skip
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
