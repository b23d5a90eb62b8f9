"""Deliveries before a tank's first gauge reading, and a first reading that finds less
than they brought: the loss is a true-up, so the batch is conserved in the segments.

Before, the loss went to ``batch_variance`` but the open segment kept the litres from
before it: received 5 000 L = sold 100 + in tank 4 900 + losses 2 000 (7 000)."""

from __future__ import annotations

import pytest

from processors.lineage import replay_tank
from tests.processors.test_lineage import at, deliveries, readings, sales


def test_a_first_reading_below_the_deliveries_before_it_is_a_loss_of_them() -> None:
    lineage = replay_tank("S1", "T1", None, readings((3, 3_000)),
                          deliveries((1, 2, "B", 5_000)), sales((4, 100)))  # fmt: skip
    assert [(v["at"], v["batch_id"], v["litres_20"]) for v in lineage.variances] == [
        (at(3), "B", pytest.approx(-2_000))]
    current = [r for r in lineage.segments if r["valid_to"] is None]
    assert [(r["valid_from"], r["batch_id"], r["litres_20"]) for r in current] == [
        (at(3), "B", pytest.approx(3_000))]
    (covered,) = [c for c in lineage.segment_sales if c["valid_from"] == at(3)]
    sold = covered["sold_20_l"]
    in_tank = current[0]["litres_20"] - sold
    assert (sold, in_tank) == pytest.approx((100, 2_900))
    assert pytest.approx(sold + in_tank + 2_000) == 5_000  # received = sold + in tank + losses


def test_a_first_reading_equal_to_the_deliveries_before_it_changes_nothing() -> None:
    lineage = replay_tank("S1", "T1", None, readings((3, 5_000)),
                          deliveries((1, 2, "B", 5_000)), sales((4, 100)))  # fmt: skip
    assert lineage.variances == []
    assert [(r["valid_from"], r["batch_id"]) for r in lineage.segments] == [(at(2), "B")]
