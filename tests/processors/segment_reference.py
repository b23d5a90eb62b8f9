"""What ``segment_sales`` must hold, computed the way trace_batch did before migration 005:
by joining each segment with the sales in ``sale_std`` it covers."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from bench.segment_reference import BATCH_TANKS_BY_JOIN, BY_JOIN, STORED


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
