"""Inventory imbalance: a tank's book stock against its gauge, per Asia/Shanghai day.

Book = opening + deliveries − sales, in litres at 20 °C; the variance is closing − book
(:func:`processors.wetstock.daily_reconciliation`). A day whose |variance| exceeds
max(``imbalance_tolerance_pct`` % of the day's sales, ``imbalance_tolerance_min_l``) is a
finding; a loss (negative) and a gain (positive) alike — one is fuel gone without a sale
(theft, a leak, unrecorded sales), the other fuel come without a delivery record or sales
recorded larger than what left the tank. A day without a usable gauge reading at either
end cannot be reconciled and is no finding here (silence is the silence rules' job).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors import wetstock
from processors.rules.base import Frames, Reader, Rule, Scope, findings


def load(reader: Reader) -> Frames:
    return {
        "readings": reader.records("reading_std", "read_at",
                                   columns="t.station_id, t.tank_id, t.read_at, t.volume_20_l"),
        "sales": reader.sql("""
            SELECT t.station_id, t.tank_id, t."at", t.volume_20_l, x.started_at
            FROM sale_std t JOIN scope s ON s.station_id = t.station_id
            JOIN sale x ON x.station_id = t.station_id AND x.txn_id = t.txn_id
            WHERE t."at" >= s.load_from
        """),
        "deliveries": reader.records("delivery", "ended_at", columns="""
            t.station_id, t.tank_id, t.started_at, t.ended_at,
            coalesce(t.volume_20_l, t.volume_l) AS volume_20_l"""),
    }  # fmt: skip


def daily(frames: Frames, settings: Settings) -> pl.DataFrame:
    """Every tank-day of the frames reconciled with the configured tolerance."""
    return wetstock.daily_reconciliation(
        frames["readings"], frames["sales"], frames["deliveries"],
        tolerance_pct=settings.imbalance_tolerance_pct,
        tolerance_min_l=settings.imbalance_tolerance_min_l,
        max_reading_age=timedelta(minutes=settings.imbalance_reading_age_min),
    )  # fmt: skip


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    days = daily(frames, settings).filter(
        (pl.col("result") == "fail") & (pl.col("day_end") <= scope.now)
    )
    ratio = pl.col("variance_20_l").abs() / pl.col("tolerance_20_l")
    days = days.with_columns(
        subject=pl.col("tank_id"),
        severity=pl.when(ratio > settings.imbalance_critical_factor).then(pl.lit("critical"))
        .when(ratio > settings.imbalance_high_factor).then(pl.lit("high"))
        .otherwise(pl.lit("medium")),
        window_start=pl.col("day_start"),
        window_end=pl.col("day_end"),
    )  # fmt: skip
    return findings(days, [
        "tank_id", "day", "opening_at", "closing_at", "opening_20_l", "deliveries_20_l",
        "deliveries", "sales_20_l", "sales", "book_20_l",
        pl.col("closing_20_l").alias("measured_20_l"), "variance_20_l",
        "variance_pct_of_sales", "tolerance_20_l",
        pl.lit(settings.imbalance_tolerance_pct).alias("tolerance_pct"),
        pl.lit(settings.imbalance_tolerance_min_l).alias("tolerance_min_20_l"), "readings",
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    variance = e["variance_20_l"]
    what = "less" if variance < 0 else "more"
    pct = e.get("variance_pct_of_sales")
    share = f", {abs(pct):.2f} % of sales" if pct is not None else ""
    return (f"Tank {e['tank_id']} on {e['day']}: the gauge measured {abs(variance):.0f} L at "
            f"20 °C {what} than the book ({e['measured_20_l']:.0f} L against "
            f"{e['book_20_l']:.0f} L = opening {e['opening_20_l']:.0f} + deliveries "
            f"{e['deliveries_20_l']:.0f} ({e['deliveries']}) − sales {e['sales_20_l']:.0f} "
            f"({e['sales']}){share}); tolerance ±{e['tolerance_20_l']:.0f} L. Readings at "
            f"{e['opening_at']} and {e['closing_at']}.")  # fmt: skip


RULE = Rule(
    name="inventory_imbalance",
    title="Inventory imbalance (daily book vs measured stock)",
    title_zh="库存不平衡(日账面与实测库存)",
    load=load,
    detect=detect,
    describe=describe,
    # The day before ``since`` ends at ``since`` (a finding the engine asks for), and its
    # opening reading may be up to a few hours older.
    lookback=timedelta(days=2),
)
