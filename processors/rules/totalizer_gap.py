"""Totalizer gap: a nozzle's pump totalizer moved between two consecutive sales.

A dispenser's totalizer counts every litre through the meter. Consecutive sales on a
nozzle must chain: each starts where the previous one ended. Litres between them were
dispensed without a sale record (selling off the books); a totalizer that went back
was reset or tampered with. Either is dispenser tampering in the SPEC's catalogue.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import Frames, Reader, Rule, Scope, findings


def load(reader: Reader) -> Frames:
    return {"sales": reader.records("sale", "started_at", columns="""
        t.station_id, t.nozzle_id, t.dispenser_id, t.txn_id, t.started_at, t.ended_at,
        t.totalizer_start_l, t.totalizer_end_l""")}  # fmt: skip


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    sales = frames["sales"].sort("station_id", "nozzle_id", "started_at", "txn_id")
    by_nozzle = ["station_id", "nozzle_id"]
    chained = sales.with_columns(
        previous_txn_id=pl.col("txn_id").shift(1).over(by_nozzle),
        previous_end_l=pl.col("totalizer_end_l").shift(1).over(by_nozzle),
        previous_ended_at=pl.col("ended_at").shift(1).over(by_nozzle),
    ).with_columns(gap_l=pl.col("totalizer_start_l") - pl.col("previous_end_l"))
    gaps = chained.filter(pl.col("gap_l").abs() > settings.totalizer_tolerance_l)
    gaps = gaps.with_columns(
        subject=pl.col("nozzle_id"),
        severity=pl.when(pl.col("gap_l") < 0).then(pl.lit("critical")).otherwise(pl.lit("high")),
        window_start=pl.col("previous_ended_at"),
        window_end=pl.col("started_at"),
    )
    return findings(gaps, [
        "dispenser_id", "nozzle_id", "previous_txn_id", "txn_id",
        pl.col("previous_end_l").alias("previous_totalizer_end_l"), "totalizer_start_l",
        "gap_l", pl.lit(settings.totalizer_tolerance_l).alias("tolerance_l"),
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    if e["gap_l"] < 0:
        what = f"went back {-e['gap_l']:.2f} L"
    else:
        what = f"advanced {e['gap_l']:.2f} L with no sale recorded"
    return (f"Nozzle {e['nozzle_id']} (dispenser {e['dispenser_id']}): totalizer {what} between "
            f"sale {e['previous_txn_id']} (ended at {e['previous_totalizer_end_l']:.2f} L) and "
            f"sale {e['txn_id']} (started at {e['totalizer_start_l']:.2f} L); "
            f"tolerance ±{e['tolerance_l']:.2f} L.")  # fmt: skip


RULE = Rule(
    name="totalizer_gap",
    title="Pump totalizer gap",
    title_zh="加油机累计数不连续",
    load=load,
    detect=detect,
    describe=describe,
    # The sale before the first one in scope, on a nozzle idle for up to a week.
    lookback=timedelta(days=7),
)
