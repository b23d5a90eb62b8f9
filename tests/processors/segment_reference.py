"""What ``segment_sales`` must hold, computed the way trace_batch did before migration 005:
by joining each segment with the sales in ``sale_std`` it covers."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

_COVERS = ("s.station_id = seg.station_id AND s.tank_id = seg.tank_id AND s.at >= seg.valid_from "
           "AND (seg.valid_to IS NULL OR s.at < seg.valid_to)")  # fmt: skip

# per segment row (a batch in a segment): sold litres of the batch, sales, first, last,
# and the litres of it left in the tank after the open segment's sales
BY_JOIN = f"""
    SELECT seg.station_id, seg.tank_id, seg.valid_from, seg.batch_id,
           count(s.txn_id) AS sales, min(s.at) AS first_sale_at, max(s.at) AS last_sale_at,
           coalesce(sum(seg.share * s.volume_20_l), 0) AS sold_l,
           CASE WHEN seg.valid_to IS NULL
                THEN seg.litres_20 - seg.share * coalesce(sum(s.volume_20_l), 0) END AS in_tank
    FROM tank_segment seg LEFT JOIN sale_std s ON {_COVERS}
    GROUP BY seg.station_id, seg.tank_id, seg.valid_from, seg.valid_to, seg.batch_id,
             seg.share, seg.litres_20
    ORDER BY ALL
"""
STORED = """
    SELECT station_id, tank_id, valid_from, batch_id, sales, first_sale_at, last_sale_at,
           sold_20_l, in_tank_20_l
    FROM segment_sales ORDER BY ALL
"""

# trace_batch's tanks as computed before migration 005 (warehouse/trace.py, _batch_tanks)
BATCH_TANKS_BY_JOIN = f"""
    WITH received AS (
        SELECT station_id, tank_id, sum(litres_20) AS received_l, min("at") AS received_at
        FROM delivery_batch WHERE batch_id = $b GROUP BY ALL
    ), segs AS (
        SELECT * FROM tank_segment WHERE batch_id = $b
    ), sold AS (
        SELECT seg.station_id, seg.tank_id, sum(seg.share * s.volume_20_l) AS sold_l,
               count(*) AS sales, min(s.at) AS first_sale_at, max(s.at) AS last_sale_at
        FROM segs seg JOIN sale_std s ON {_COVERS} GROUP BY ALL
    ), now_in AS (
        SELECT seg.station_id, seg.tank_id,
               seg.litres_20 - seg.share * coalesce(
                   (SELECT sum(s.volume_20_l) FROM sale_std s WHERE {_COVERS}), 0)
               AS in_tank_l
        FROM segs seg WHERE seg.valid_to IS NULL
    ), variance AS (
        SELECT station_id, tank_id, sum(litres_20) AS variance_l
        FROM batch_variance WHERE batch_id = $b GROUP BY ALL
    )
    SELECT r.station_id, st.name AS station_name, st.city, r.tank_id, r.received_at,
           r.received_l, coalesce(sold.sold_l, 0) AS sold_l,
           coalesce(now_in.in_tank_l, 0) AS in_tank_l,
           -coalesce(variance.variance_l, 0) AS losses_l,
           coalesce(sold.sales, 0) AS sales, sold.first_sale_at, sold.last_sale_at
    FROM received r
    LEFT JOIN sold USING (station_id, tank_id)
    LEFT JOIN now_in USING (station_id, tank_id)
    LEFT JOIN variance USING (station_id, tank_id)
    LEFT JOIN station st ON st.station_id = r.station_id
    ORDER BY r.station_id, r.tank_id
"""


def _same_rows(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]], what: str) -> None:
    """Equal rows; floats to 2e-6 L (a sum of products against a product of a sum, rounded)."""
    assert len(got) == len(want), f"{what}: {len(got)} rows stored, {len(want)} by the join"
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            if isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-9, abs=2e-6), f"{what}: {g} != {w}"
            else:
                assert a == b, f"{what}: {g} != {w}"


def assert_stored_equals_join(con: duckdb.DuckDBPyConnection) -> None:
    """Every segment row has its one ``segment_sales`` row, holding what the join finds."""
    twice = con.execute("SELECT count(*) FROM (SELECT station_id, tank_id, valid_from, batch_id "
                        "FROM segment_sales GROUP BY ALL HAVING count(*) > 1)").fetchall()
    assert twice == [(0,)], "a segment row with two segment_sales rows"
    _same_rows(con.execute(STORED).fetchall(), con.execute(BY_JOIN).fetchall(), "segment rows")


def assert_batch_tanks_as_by_join(con: duckdb.DuckDBPyConnection, batch_id: str,
                                  tanks: list[dict[str, Any]]) -> None:  # fmt: skip
    """``trace_batch``'s tanks equal what the join-based query of before 005 gave."""
    from warehouse.trace import _jsonable

    cur = con.execute(BATCH_TANKS_BY_JOIN, {"b": batch_id})
    names = [d[0] for d in cur.description]
    want = [_jsonable(dict(zip(names, row, strict=True))) for row in cur.fetchall()]
    assert [list(t) for t in tanks] == [list(w) for w in want]  # the same keys, in order
    _same_rows([tuple(t.values()) for t in tanks], [tuple(w.values()) for w in want],
               f"trace_batch({batch_id!r}) tanks")
