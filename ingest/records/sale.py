"""Dispenser sales: natural key (station_id, txn_id); totalizer, amount and flow rules."""

from __future__ import annotations

import polars as pl

from fueltrace.settings import Settings
from ingest.records.base import RecordSpec, Rule, fmt, non_negative, ordered, positive


def rules(settings: Settings, now: pl.Expr) -> list[Rule]:
    counted = pl.col("totalizer_end_l") - pl.col("totalizer_start_l")
    expected_fen = pl.col("unit_price_fen") * pl.col("volume_l")
    minutes = (pl.col("ended_at") - pl.col("started_at")).dt.total_milliseconds() / 60_000
    flow = pl.col("volume_l") / minutes
    return [
        positive("volume_l"),
        positive("unit_price_fen", "negative_value"),
        non_negative("amount_fen"),
        ordered("started_at", "ended_at"),
        Rule(
            "totalizer_mismatch",
            "totalizer_end_l",
            # + 1e-6: the readings are decimals; their binary difference may exceed 0.02 by 4e-12
            (counted - pl.col("volume_l")).abs() > settings.totalizer_tolerance_l + 1e-6,
            fmt(
                "totalizer_end_l − totalizer_start_l = {} L but volume_l = {} L "
                f"(tolerance {settings.totalizer_tolerance_l} L)",
                counted.round(3),
                "volume_l",
            ),
        ),
        Rule(
            "amount_mismatch",
            "amount_fen",
            (pl.col("amount_fen") - expected_fen).abs() > settings.amount_tolerance_fen + 0.5,
            fmt(
                "amount_fen = {} but unit_price_fen × volume_l = {} fen "
                f"(tolerance {settings.amount_tolerance_fen} fen beyond rounding)",
                "amount_fen",
                expected_fen.round(2),
            ),
        ),
        Rule(
            "flow_rate_impossible",
            "volume_l",
            (minutes <= 0) | (flow > settings.max_flow_l_per_min),
            fmt(
                "volume_l = {} L in {} min is {} L/min; a nozzle reaches at most "
                f"{settings.max_flow_l_per_min} L/min",
                "volume_l",
                minutes.round(3),
                flow.round(1),
            ),
        ),
    ]


SPEC = RecordSpec(
    name="sale",
    topic_suffix="sale",
    kafka_key="station_id",
    natural_key=("station_id", "txn_id"),
    table="sale",
    time_fields=("started_at", "ended_at"),
    float_fields=("volume_l", "totalizer_start_l", "totalizer_end_l"),
    rules=rules,
)
