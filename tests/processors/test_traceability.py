"""The traceability job over a real DuckDB warehouse: hand-computed scenarios.

Everything is at 20 °C, so observed litres are standard litres and the numbers can be
checked by hand. Asserted to 0.1 L.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from fueltrace.analyses import run_analyses
from tests.processors.scenario import (
    T0,
    delivery,
    dispatch,
    load,
    reading,
    sale,
    settings,
    station,
)
from warehouse import trace
from warehouse.connection import connect

NOW = T0 + timedelta(days=3)


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return connect(tmp_path / "w.duckdb")


def analyse(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    run_analyses(con, settings(tmp_path), NOW)


def test_a_recall_across_three_stations(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """Batch B goes to S1, S2, S3 (10 000 L each) and is mixed with each tank's stock."""
    db = tmp_path / "w.duckdb"
    load(con, db, facility=[station("S1"), station("S2"), station("S3")],
         dispatch=[dispatch(f"P{i}", "B", f"S{i}", 10_000, 1) for i in (1, 2, 3)])  # fmt: skip
    opening = {"S1": 10_000.0, "S2": 5_000.0, "S3": 0.0}
    for s, stock in opening.items():
        load(con, db,
             tank_reading=[reading(s, 0, stock), reading(s, 2, stock)],
             delivery=[delivery(f"D-{s}", s, 10_000, 3, 4, f"P{s[1]}")],
             sale=[sale(s, 5, 2_000), sale(s, 6, 1_000)])  # fmt: skip
    analyse(con, tmp_path)

    report = trace.recall_report(con, "B")
    tanks = {t["station_id"]: t for t in report["tanks"]}
    assert set(tanks) == {"S1", "S2", "S3"}
    # S1: 20 000 L after the delivery, half B → 1 500 of the 3 000 L sold came from B
    assert tanks["S1"]["sold_l"] == pytest.approx(1_500, abs=0.1)
    assert tanks["S1"]["in_tank_l"] == pytest.approx(8_500, abs=0.1)
    # S2: 15 000 L, two thirds B → 2 000 sold from B, 8 000 left
    assert tanks["S2"]["sold_l"] == pytest.approx(2_000, abs=0.1)
    assert tanks["S2"]["in_tank_l"] == pytest.approx(8_000, abs=0.1)
    # S3: the tank was empty, everything sold is B
    assert tanks["S3"]["sold_l"] == pytest.approx(3_000, abs=0.1)
    assert all(t["sales"] == 2 for t in tanks.values())
    assert [t["station_id"] for t in report["tanks_to_seal"]] == ["S1", "S2", "S3"]
    assert len(report["sales"]) == 6
    totals = report["totals"]
    assert totals["dispatched_l"] == pytest.approx(30_000, abs=0.1)
    assert totals["in_transit_l"] == 0
    assert totals["received_l"] == pytest.approx(30_000, abs=0.1)
    assert totals["sold_l"] == pytest.approx(6_500, abs=0.1)
    # conservation: dispatched = received + in transit (+ transit loss);
    #               received = sold + in tanks + losses
    assert totals["dispatched_l"] == pytest.approx(
        totals["received_l"] + totals["in_transit_l"] + totals["transit_loss_l"], abs=0.1)
    assert totals["received_l"] == pytest.approx(
        totals["sold_l"] + totals["in_tanks_l"] + totals["losses_l"], abs=0.1)


def test_trace_a_sale_back_to_its_batches(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    late_sale = sale("S1", 6, 1_000)
    load(con, db, facility=[station("S1")], dispatch=[dispatch("P1", "B", "S1", 10_000, 1)],
         tank_reading=[reading("S1", 0, 10_000), reading("S1", 2, 10_000)],
         delivery=[delivery("D1", "S1", 10_000, 3, 4, "P1")], sale=[late_sale])  # fmt: skip
    analyse(con, tmp_path)
    traced = trace.trace_sale(con, "S1", late_sale["txn_id"])
    shares = {b["batch_id"]: (b["share"], b["litres_20"]) for b in traced["batches"]}
    assert shares == {"B": (0.5, 500.0), "OPENING:S1:T1": (0.5, 500.0)}
    assert traced["tank_id"] == "T1" and traced["volume_20_l"] == pytest.approx(1_000)
    assert {b["depot_id"] for b in traced["batches"] if b["batch_id"] == "B"} == {"DEPOT-1"}


def test_a_late_delivery_changes_later_sales_and_nothing_before(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    early, later = sale("S1", 1, 1_000), sale("S1", 8, 1_000)
    load(con, db, facility=[station("S1")],
         tank_reading=[reading("S1", 0, 10_000), reading("S1", 2, 9_000), reading("S1", 6, 9_000),
                       reading("S1", 7, 19_000)],
         sale=[early, later])  # fmt: skip
    analyse(con, tmp_path)
    assert {b["batch_id"] for b in trace.trace_sale(con, "S1", later["txn_id"])["batches"]} == {
        "OPENING:S1:T1"}
    before = con.execute("SELECT * FROM tank_segment WHERE valid_from < $t ORDER BY ALL",
                         {"t": T0 + timedelta(hours=2)}).fetchall()  # fmt: skip

    # a day late: the dispatch and the delivery at 3–4 h, 10 000 L of batch B
    load(con, db, dispatch=[dispatch("P1", "B", "S1", 10_000, 1)],
         delivery=[delivery("D1", "S1", 10_000, 3, 4, "P1")])  # fmt: skip
    analyse(con, tmp_path)

    shares = {b["batch_id"]: b["share"]
              for b in trace.trace_sale(con, "S1", later["txn_id"])["batches"]}  # fmt: skip
    assert shares == pytest.approx({"OPENING:S1:T1": 9_000 / 19_000, "B": 10_000 / 19_000})
    assert {b["batch_id"] for b in trace.trace_sale(con, "S1", early["txn_id"])["batches"]} == {
        "OPENING:S1:T1"}
    after = con.execute("SELECT * FROM tank_segment WHERE valid_from < $t ORDER BY ALL",
                        {"t": T0 + timedelta(hours=2)}).fetchall()  # fmt: skip
    assert [r[:3] + r[4:] for r in after] == [r[:3] + r[4:] for r in before]  # untouched
    totals = trace.trace_batch(con, "B")["totals"]
    assert totals["sold_l"] == pytest.approx(1_000 * 10_000 / 19_000, abs=0.1)


def test_a_delivery_without_dispatch_is_an_untraced_batch(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    load(con, db, facility=[station("S1")],
         tank_reading=[reading("S1", 0, 0.0), reading("S1", 2, 0.0)],
         delivery=[delivery("D9", "S1", 5_000, 3, 4, None)], sale=[sale("S1", 5, 100)])  # fmt: skip
    analyse(con, tmp_path)
    delivered = trace.trace_delivery(con, "D9")
    assert delivered["batch_id"] == "UNTRACED:D9" and delivered["status"] == "no_dispatch"
    assert trace.trace_batch(con, "UNTRACED:D9")["totals"]["sold_l"] == pytest.approx(100)
