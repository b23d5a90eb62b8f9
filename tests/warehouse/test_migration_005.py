"""Migration 005 on a warehouse whose lineage predates it: ``segment_sales`` is filled
from ``sale_std`` with what the replay itself writes."""

from __future__ import annotations

from pathlib import Path

from processors import traceability
from tests.processors.scenario import T0, delivery, dispatch, load, reading, sale, settings, station
from tests.processors.segment_reference import assert_stored_equals_join
from warehouse.connection import connect
from warehouse.migrate import available

SEGMENT_SALES = "SELECT * FROM segment_sales ORDER BY ALL"


def test_005_fills_segment_sales_of_the_segments_already_there(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    con = connect(db)
    load(con, db, facility=[station("S1", ("T1", "T2"))],
         dispatch=[dispatch("P1", "B", "S1", 4_000, 1), dispatch("P2", "B", "S1", 3_000, 1)],
         tank_reading=[reading("S1", 0, 10_000), reading("S1", 1.5, 9_000),
                       reading("S1", 0, 5_000, tank="T2")],
         delivery=[delivery("D1", "S1", 4_000, 2, 3, "P1"),
                   delivery("D2", "S1", 3_000, 4, 5, "P2", tank="T2")],
         sale=[sale("S1", 1, 1_000), sale("S1", 3, 500), sale("S1", 7, 250),
               sale("S1", 5, 100, tank="T2"), sale("S1", 9, 50, tank="T2")])  # fmt: skip
    traceability.run(con, settings(tmp_path), T0)
    written = con.execute(SEGMENT_SALES).fetchall()
    # a row per batch per segment — T1: 0 h, 2 h (true-up): opening; 3 h: opening, B;
    # T2: 0 h: opening; 5 h: opening, B (no true-up: no reading since the start)
    assert len(written) == 7

    # as a warehouse of version 4 would be: no segment_sales; then 005 applied
    con.execute("DROP TABLE segment_sales")
    (sql,) = [path for number, _, path in available() if number == 5]
    con.execute(sql.read_text(encoding="utf-8"))
    assert con.execute(SEGMENT_SALES).fetchall() == written
    assert_stored_equals_join(con)
    con.close()
