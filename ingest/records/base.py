"""What every record type declares: topic, Kafka key, natural key, table and rules.

A rule is a Polars expression that is true where a record breaks it, plus the
expression rendering the detail a person reads (with the values at fault), so
validation of a whole micro-batch is a handful of vectorised passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from fueltrace.settings import Settings

EPOCH_2000 = pl.datetime(2000, 1, 1, time_zone="UTC")


@dataclass(frozen=True)
class Rule:
    reason: str  # one of ingest.reasons.REASONS
    field: str  # the field at fault, for the error message
    broken: pl.Expr  # true where the record breaks the rule
    detail: pl.Expr  # string expression describing the violation


@dataclass(frozen=True)
class RecordSpec:
    name: str  # record type, e.g. "sale"
    topic_suffix: str  # fuel.<suffix>
    kafka_key: str  # field whose value keys the Kafka message
    natural_key: tuple[str, ...]  # a record with the same key is the same record
    table: str  # warehouse table
    time_fields: tuple[str, ...]  # timestamp-millis fields
    float_fields: tuple[str, ...]  # double fields that must be finite
    rules: Callable[[Settings, pl.Expr], list[Rule]]  # (settings, now) -> type rules


def fmt(template: str, *exprs: pl.Expr | str) -> pl.Expr:
    """``pl.format`` with column names allowed as plain strings."""
    return pl.format(template, *[pl.col(e) if isinstance(e, str) else e for e in exprs])


def common_rules(spec: RecordSpec, settings: Settings, now: pl.Expr) -> list[Rule]:
    """Rules every record type shares: its key present, finite numbers, sane times."""
    rules = [
        Rule(
            "missing_key",
            spec.kafka_key,
            pl.col(spec.kafka_key).str.strip_chars().str.len_chars() == 0,
            pl.lit(f"{spec.kafka_key} is empty"),
        )
    ]
    for f in spec.float_fields:
        rules.append(
            Rule("not_finite", f, ~pl.col(f).is_finite(), fmt(f"{f} = {{}}", pl.col(f)))
        )
    limit = now + pl.duration(seconds=settings.max_future_s)
    for f in spec.time_fields:
        rules.append(
            Rule(
                "timestamp_in_future",
                f,
                pl.col(f) > limit,
                fmt(f"{f} = {{}} is later than the clock ({{}}) + {settings.max_future_s} s",
                    f, now),  # fmt: skip
            )
        )
        rules.append(
            Rule("timestamp_implausible", f, pl.col(f) < EPOCH_2000, fmt(f"{f} = {{}}", f))
        )
    return rules


def positive(field: str, reason: str = "volume_not_positive") -> Rule:
    return Rule(reason, field, pl.col(field) <= 0, fmt(f"{field} = {{}} must be > 0", field))


def non_negative(field: str) -> Rule:
    return Rule(
        "negative_value", field, pl.col(field) < 0, fmt(f"{field} = {{}} must be ≥ 0", field)
    )


def temperature(field: str = "temperature_c") -> Rule:
    return Rule(
        "temperature_implausible",
        field,
        (pl.col(field) < -50) | (pl.col(field) > 70),
        fmt(f"{field} = {{}} °C outside −50…70 °C", field),
    )


def density(field: str = "density_kg_m3") -> Rule:
    return Rule(
        "density_implausible",
        field,
        (pl.col(field) < 600) | (pl.col(field) > 1100),
        fmt(f"{field} = {{}} kg/m³ outside 600…1100 kg/m³", field),
    )


def ordered(start: str, end: str) -> Rule:
    return Rule(
        "ended_before_started",
        end,
        pl.col(end) < pl.col(start),
        fmt(f"{end} = {{}} is before {start} = {{}}", end, start),
    )
