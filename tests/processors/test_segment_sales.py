"""What each segment's sales took of each batch, and what is left of it in the open
segment (``segment_sales``, migration 005), which ``trace_batch`` reads instead of
joining ``sale_std``: by hand, and equal to that join — after a delivery arriving a day
late, after a later load extends the open segment, and under random arrival orders.
Everything at 20 °C, so the numbers can be checked by hand (to 0.1 L)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors import traceability
from processors.lineage import replay_tank
from tests.processors import scenario
from tests.processors.scenario import T0, delivery, dispatch, load, reading, sale, station
from tests.processors.segment_reference import (
    assert_batch_tanks_as_by_join,
    assert_stored_equals_join,
)
from tests.processors.test_lineage import SCENARIO
from tests.processors.test_lineage_properties import (
    CONFIG,
    JOB_SETTINGS,
    NOW,
    Scenario,
    _chunks,
    _load,
    scenarios,
)
from warehouse import trace
from warehouse.connection import connect, scalar


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return connect(tmp_path / "w.duckdb")


def analyse(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    traceability.run(con, scenario.settings(tmp_path), T0 + timedelta(days=3))


def covered(con: duckdb.DuckDBPyConnection) -> dict[float, tuple[Any, ...]]:
    """The sales of each segment of S1/T1 (all its batches), by its start in hours:
    litres, how many, first, last."""
    rows = con.execute("""
        SELECT valid_from, round(sum(sold_20_l), 6), any_value(sales), any_value(first_sale_at),
               any_value(last_sale_at)
        FROM segment_sales GROUP BY valid_from ORDER BY valid_from
    """).fetchall()  # fmt: skip
    return {(r[0] - T0) / timedelta(hours=1): r[1:] for r in rows}


def check_batches(con: duckdb.DuckDBPyConnection, *batches: str) -> None:
    assert_stored_equals_join(con)
    for b in batches:
        result = trace.trace_batch(con, b)
        assert_batch_tanks_as_by_join(con, b, result["tanks"])
        totals = result["totals"]
        assert totals["received_l"] == pytest.approx(
            totals["sold_l"] + totals["in_tanks_l"] + totals["losses_l"], abs=0.1), b


# -- the replay alone -------------------------------------------------------------------


def test_replay_records_the_sales_of_each_segment() -> None:
    """tests/processors/test_lineage.py's tank: true-ups at 2 h and 5 h, A ends at 3 h, B
    at 6 h; sales at 1 h, 4 h, 7 h — plus one at 3 h, the instant A ends: it is A's
    segment's (valid_from <= at < valid_to), as in the join."""
    more = pl.DataFrame({"at": [at(3)], "volume_20_l": [100.0]}, schema=SCENARIO["sales"].schema)
    sales = pl.concat([SCENARIO["sales"], more]).sort("at")
    lineage = replay_tank("S1", "T1", None, SCENARIO["readings"], SCENARIO["deliveries"],
                          sales)  # fmt: skip
    got = {(r["valid_from"] - T0) / timedelta(hours=1): (r["sold_20_l"], r["sales"],
                                                         r["first_sale_at"], r["last_sale_at"])
           for r in lineage.segment_sales}  # fmt: skip
    assert got == {
        0: (2_000, 1, at(1), at(1)),
        2: (0, 0, None, None),
        3: (4_100, 2, at(3), at(4)),
        5: (0, 0, None, None),
        6: (2_390, 1, at(7), at(7)),
    }
    # one row per segment, in step with the segment rows
    starts = {r["valid_from"] for r in lineage.segments}
    assert sorted(starts) == [r["valid_from"] for r in lineage.segment_sales]


# -- the job: late data -----------------------------------------------------------------


def test_stored_sales_equal_the_join_when_a_delivery_arrives_a_day_late(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A (2–3 h, in time) and C (20–21 h, in time); B (6–8 h) arrives a day late.

    The book: 10 000 at 0 h, −1 000 at 1 h, +4 000 A at 3 h, −500 at 5 h, +10 000 B at
    8 h (22 500: B 10/22.5), −1 000 at 8 h, −2 000 at 12 h, trued to 19 500 at 20 h (no
    variance), +5 000 C at 21 h (24 500), −400 at 30 h. Without B the true-up at 20 h
    found a 10 000 L gain instead.
    """
    db = tmp_path / "w.duckdb"
    load(con, db, facility=[station("S1")],
         dispatch=[dispatch("PA", "A", "S1", 4_000, 1), dispatch("PC", "C", "S1", 5_000, 19)],
         tank_reading=[reading("S1", 0, 10_000), reading("S1", 1.5, 9_000),
                       reading("S1", 5.5, 12_500), reading("S1", 19, 19_500)],
         delivery=[delivery("DA", "S1", 4_000, 2, 3, "PA"),
                   delivery("DC", "S1", 5_000, 20, 21, "PC")],
         sale=[sale("S1", 1, 1_000), sale("S1", 5, 500), sale("S1", 8, 1_000),
               sale("S1", 12, 2_000), sale("S1", 30, 400)])  # fmt: skip
    analyse(con, tmp_path)
    check_batches(con, "A", "C")
    before = covered(con)
    assert before[3] == (3_500, 3, at(5), at(12))  # A's segment runs to the true-up at 20 h

    load(con, db, dispatch=[dispatch("PB", "B", "S1", 10_000, 5)],
         delivery=[delivery("DB", "S1", 10_000, 6, 8, "PB")])  # fmt: skip
    analyse(con, tmp_path)
    check_batches(con, "A", "B", "C")
    after = covered(con)
    assert {h: after[h] for h in (0, 2)} == {h: before[h] for h in (0, 2)}  # before B: kept
    assert after[3] == (500, 1, at(5), at(5))  # cut at B's true-up (6 h)
    assert after[8] == (3_000, 2, at(8), at(12))  # the sale at B's end is in B's segment
    b = {t["tank_id"]: t for t in trace.trace_batch(con, "B")["tanks"]}["T1"]
    in_b = 10_000 * (1 - 3_000 / 22_500)  # B at 21 h, then 400 L at 30 h at B's share there
    assert b["sold_l"] == pytest.approx(3_000 * 10 / 22.5 + 400 * in_b / 24_500, abs=0.1)
    assert b["in_tank_l"] == pytest.approx(in_b * (1 - 400 / 24_500), abs=0.1)
    assert (b["sales"], b["first_sale_at"], b["last_sale_at"]) == (
        3, "2026-11-20T08:00:00.000Z", "2026-11-21T06:00:00.000Z")


def test_the_open_segment_is_rewritten_when_a_later_load_extends_it(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """B (10 000 L) ends at 2 h into 10 000 L: half B. Two sales, analysed; two more in a
    later load fall in the open segment: the tank restarts at that segment's start and
    writes it again with all four sales."""
    db = tmp_path / "w.duckdb"
    load(con, db, facility=[station("S1")], dispatch=[dispatch("P1", "B", "S1", 10_000, 0)],
         tank_reading=[reading("S1", 0, 10_000)],
         delivery=[delivery("D1", "S1", 10_000, 1, 2, "P1")],
         sale=[sale("S1", 3, 1_000), sale("S1", 4, 1_000)])  # fmt: skip
    analyse(con, tmp_path)
    check_batches(con, "B")
    first = covered(con)
    assert first[2] == (2_000, 2, at(3), at(4))
    tank = trace.trace_batch(con, "B")["tanks"][0]
    assert (tank["sold_l"], tank["in_tank_l"]) == pytest.approx((1_000, 9_000), abs=0.1)
    closed = con.execute("SELECT * FROM tank_segment WHERE valid_to IS NOT NULL "
                         "ORDER BY ALL").fetchall()  # fmt: skip

    load(con, db, sale=[sale("S1", 5, 1_000), sale("S1", 6, 2_000)])
    watermark = scalar(con, "SELECT load_id FROM analysis_watermark")
    dirty = traceability._dirty_tanks(con, watermark, traceability._delivery_batches(con))
    points = traceability._restart_points(con, dirty)
    assert points.select("since", "begin").rows() == [(at(5), at(2))]  # the open segment
    analyse(con, tmp_path)
    check_batches(con, "B")
    second = covered(con)
    assert second == {**first, 2: (5_000, 4, at(3), at(6))}
    tank = trace.trace_batch(con, "B")["tanks"][0]
    assert (tank["sold_l"], tank["in_tank_l"]) == pytest.approx((2_500, 7_500), abs=0.1)
    assert (tank["sales"], tank["last_sale_at"]) == (4, "2026-11-20T06:00:00.000Z")
    assert con.execute("SELECT * FROM tank_segment WHERE valid_to IS NOT NULL "
                       "ORDER BY ALL").fetchall() == closed  # fmt: skip
    assert con.execute("SELECT count(*) FROM tank_segment WHERE valid_from = $t",
                       {"t": at(2)}).fetchall() == [(2,)]  # B and the opening, once each


# -- the job: random arrival orders ----------------------------------------------------


def _check_every_chunk(s: Scenario, rnd: random.Random, k: int) -> None:
    con = connect(":memory:")
    _load(con, [("facility", f) for f in s.facilities])
    for chunk in _chunks(s, rnd, k):
        _load(con, chunk)
        traceability.run(con, CONFIG, NOW)
        assert_stored_equals_join(con)
        for batch in sorted(s.batches):
            try:
                tanks = trace.trace_batch(con, batch)["tanks"]
            except trace.NotFound:  # its dispatch and deliveries are in a later chunk
                continue
            assert_batch_tanks_as_by_join(con, batch, tanks)
    con.close()


@JOB_SETTINGS
@given(s=scenarios(temperatures=True), rnd=st.randoms(use_true_random=False),
       k=st.integers(2, 4))  # fmt: skip
def test_stored_sales_equal_the_join_whatever_the_arrival_order(
    s: Scenario, rnd: random.Random, k: int
) -> None:
    """Records in 2–4 random chunks, analysed after each: at every step every segment's
    stored sales and every batch's tanks equal the join over sale_std."""
    _check_every_chunk(s, rnd, k)
