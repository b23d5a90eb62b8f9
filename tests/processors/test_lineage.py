"""Tank lineage by hand: two deliveries mixing, sales drawn in proportion, a loss
found at a true-up, and every batch's litres conserved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from processors.lineage import TankState, replay_tank

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
OPENING = "OPENING:S1:T1"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def readings(*points: tuple[float, float]) -> pl.DataFrame:
    return pl.DataFrame({"read_at": [at(h) for h, _ in points],
                         "volume_20_l": [v for _, v in points],
                         "density_kg_m3": [740.0] * len(points)})  # fmt: skip


def deliveries(*rows: tuple[float, float, str, float]) -> pl.DataFrame:
    return pl.DataFrame({"started_at": [at(s) for s, _, _, _ in rows],
                         "ended_at": [at(e) for _, e, _, _ in rows],
                         "batch_id": [b for _, _, b, _ in rows],
                         "litres_20": [v for _, _, _, v in rows],
                         "density_kg_m3": [741.0] * len(rows)})  # fmt: skip


def sales(*points: tuple[float, float]) -> pl.DataFrame:
    schema = {"at": pl.Datetime("us", "UTC"), "volume_20_l": pl.Float64}
    return pl.DataFrame({"at": [at(h) for h, _ in points],
                         "volume_20_l": [v for _, v in points]}, schema=schema)  # fmt: skip


def shares_at(segments: list[dict[str, Any]], hours: float) -> dict[str, float]:
    t = at(hours)
    return {s["batch_id"]: s["share"] for s in segments
            if s["valid_from"] <= t and (s["valid_to"] is None or t < s["valid_to"])}  # fmt: skip


SCENARIO = dict(
    readings=readings((0, 10_000), (1.5, 8_000), (4.5, 11_900)),
    deliveries=deliveries((2, 3, "A", 8_000), (5, 6, "B", 12_000)),
    sales=sales((1, 2_000), (4, 4_000), (7, 2_390)),
)


def per_batch(lineage: Any, sales_frame: pl.DataFrame, delivered: pl.DataFrame) -> dict[str, Any]:
    """received, sold, in tank and variance per batch, computed from the segments."""
    out: dict[str, dict[str, float]] = {}
    for b, v in zip(delivered["batch_id"], delivered["litres_20"], strict=True):
        out.setdefault(b, {"received": 0, "sold": 0, "variance": 0})["received"] += v
    out.setdefault(OPENING, {"received": 10_000, "sold": 0, "variance": 0})
    for t, v in zip(sales_frame["at"], sales_frame["volume_20_l"], strict=True):
        for s in lineage.segments:
            if s["valid_from"] <= t and (s["valid_to"] is None or t < s["valid_to"]):
                out[s["batch_id"]]["sold"] += s["share"] * v
    for row in lineage.variances:
        out[row["batch_id"]]["variance"] += row["litres_20"]
    current = [s for s in lineage.segments if s["valid_to"] is None]
    last_from = current[0]["valid_from"]
    after = sum(v for t, v in zip(sales_frame["at"], sales_frame["volume_20_l"], strict=True)
                if t >= last_from)  # fmt: skip
    for s in current:
        out[s["batch_id"]]["in_tank"] = s["litres_20"] - s["share"] * after
    return out


def test_two_deliveries_mix_and_sales_draw_in_proportion() -> None:
    lineage = replay_tank("S1", "T1", None, SCENARIO["readings"], SCENARIO["deliveries"],
                          SCENARIO["sales"])  # fmt: skip
    assert shares_at(lineage.segments, 1) == {OPENING: 1.0}
    mid = shares_at(lineage.segments, 4)
    assert mid == pytest.approx({OPENING: 0.5, "A": 0.5})
    late = shares_at(lineage.segments, 7)
    assert late == pytest.approx({OPENING: 5_950 / 23_900, "A": 5_950 / 23_900,
                                  "B": 12_000 / 23_900})  # fmt: skip
    # the 2 390 L sale at 7 h: 595 L of the opening stock, 595 of A, 1 200 of B
    litres = {b: share * 2_390 for b, share in late.items()}
    assert litres == pytest.approx({OPENING: 595.0, "A": 595.0, "B": 1_200.0}, abs=0.1)


def test_a_loss_at_the_true_up_is_shared_by_the_batches_in_the_tank() -> None:
    lineage = replay_tank("S1", "T1", None, SCENARIO["readings"], SCENARIO["deliveries"],
                          SCENARIO["sales"])  # fmt: skip
    # book at 4.5 h: 16 000 − 4 000 = 12 000; the gauge says 11 900 → −100 L, half each
    losses = {v["batch_id"]: v["litres_20"] for v in lineage.variances}
    assert losses == pytest.approx({OPENING: -50.0, "A": -50.0}, abs=0.1)


def test_every_batch_is_conserved() -> None:
    lineage = replay_tank("S1", "T1", None, SCENARIO["readings"], SCENARIO["deliveries"],
                          SCENARIO["sales"])  # fmt: skip
    books = per_batch(lineage, SCENARIO["sales"], SCENARIO["deliveries"])
    assert books["A"]["sold"] == pytest.approx(2_000 + 595, abs=0.1)
    assert books["A"]["in_tank"] == pytest.approx(5_355.0, abs=0.1)
    for batch, b in books.items():
        # received = sold + in tank + losses   (losses = −variance)
        assert b["received"] == pytest.approx(b["sold"] + b["in_tank"] - b["variance"],
                                              abs=1e-6), batch  # fmt: skip


def test_restarting_from_a_stored_segment_gives_the_same_future() -> None:
    full = replay_tank("S1", "T1", None, SCENARIO["readings"], SCENARIO["deliveries"],
                       SCENARIO["sales"])  # fmt: skip
    seg = [s for s in full.segments if s["valid_from"] == at(3)]
    start = TankState(at(3), sum(s["litres_20"] for s in seg),
                      {s["batch_id"]: s["share"] for s in seg},
                      {s["batch_id"]: s["density_kg_m3"] for s in seg})  # fmt: skip
    again = replay_tank("S1", "T1", start, SCENARIO["readings"].filter(pl.col("read_at") >= at(3)),
                        SCENARIO["deliveries"], SCENARIO["sales"])  # fmt: skip
    later = [(s["valid_from"], s["batch_id"], round(s["litres_20"], 6))
             for s in full.segments if s["valid_from"] >= at(3)]  # fmt: skip
    assert [(s["valid_from"], s["batch_id"], round(s["litres_20"], 6))
            for s in again.segments] == later  # fmt: skip
