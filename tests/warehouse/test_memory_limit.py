"""DuckDB's memory limit: the writing processes' bound (Settings.db_memory_limit), lifted
while the analyses run (warehouse.connection.memory_limit). No broker."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from ingest.frames import to_frame
from tests.warehouse.test_load import T0_MS, sale
from warehouse.connection import connect, memory_limit
from warehouse.load import DEAD_LETTER_SCHEMA, Batch, load_batch


def limit(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


def cached_table_mib(con: duckdb.DuckDBPyConnection) -> float:
    rows = con.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
                       "WHERE tag = 'BASE_TABLE'").fetchall()  # fmt: skip
    return float(rows[0][0]) / 2**20


def test_connect_sets_the_limit_and_analyses_lift_it_then_set_the_ingests(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb", memory_limit="100MB")
    try:
        assert limit(con) == "95.3 MiB"  # DuckDB shows 100 MB in MiB
        with memory_limit(con, "1GB", "100MB"):
            assert limit(con) == "953.6 MiB"
        assert limit(con) == "95.3 MiB"
        with pytest.raises(RuntimeError), memory_limit(con, "", "100MB"):
            assert limit(con) != "95.3 MiB"  # DuckDB's default: 80 % of RAM
            raise RuntimeError("an analysis failed")
        assert limit(con) == "95.3 MiB"  # set back on failure too
    finally:
        con.close()


def test_the_limit_bounds_the_cached_table_however_much_is_loaded(tmp_path: Path) -> None:
    """DuckDB keeps the table blocks it wrote or read cached up to its limit (by default
    80 % of RAM: the cache grew with every load); with the ingest's limit it stays within
    it while the table grows past it. 48 MB is about the least a 20 000-record batch and a
    checkpoint need (below it a commit fails)."""
    db = tmp_path / "w.duckdb"
    con = connect(db, memory_limit="48MB")
    n, rng = 20_000, np.random.default_rng(7)
    template = to_frame("sale", [sale(f"T{i}", i) for i in range(n)])
    try:
        for k in range(60):  # 1 200 000 varied sales
            volume = rng.uniform(5, 80, n).round(2)
            start = rng.uniform(0, 1e6, n).round(2)
            at = pl.Series(rng.integers(0, 86_400_000, n) + T0_MS).cast(pl.Datetime("ms", "UTC"))
            frame = template.with_columns(
                started_at=at, ended_at=at + pl.duration(seconds=90),
                txn_id=pl.col("txn_id") + f"-{k}", volume_l=volume,
                totalizer_start_l=start, totalizer_end_l=start + volume,
                amount_fen=pl.Series((volume * 780).round().astype(np.int64)),
                invoice_id=pl.Series([rng.bytes(16).hex() for _ in range(n)]),
            )  # fmt: skip
            load_batch(con, db, Batch({"sale": frame}, pl.DataFrame(schema=DEAD_LETTER_SCHEMA),
                                      {("fuel.sale", 0): k + 1}, {}))  # fmt: skip
        con.execute("CHECKPOINT")
        assert con.execute("SELECT count(*) FROM sale").fetchall() == [(60 * n,)]
        size = con.execute("SELECT block_size * used_blocks FROM pragma_database_size() "
                           "WHERE database_name = current_database()").fetchall()[0][0]
        assert size / 2**20 > 64, size / 2**20  # the table outgrew the limit …
        cached = cached_table_mib(con)
        assert cached <= 48, cached  # … its cache did not
    finally:
        con.close()


def test_a_checkpoint_waits_for_another_cursors_write_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The analyses write on a cursor of their own while the loads go on: a checkpoint
    after a load then finds their transaction open. DuckDB refuses it ("other write
    transactions active"); it is postponed to a later load, never the load's failure."""
    from warehouse import connection

    monkeypatch.setattr(connection, "CHECKPOINT_WAL_BYTES", 1)
    db = tmp_path / "w.duckdb"
    con = connect(db)
    try:
        con.execute("CREATE TABLE t (i INTEGER)")
        con.execute("INSERT INTO t VALUES (1)")
        analyses = con.cursor()
        analyses.execute("BEGIN")
        analyses.execute("UPDATE t SET i = 2 WHERE i = 1")  # as reconcile updates findings
        con.execute("INSERT INTO t VALUES (3)")
        with pytest.raises(duckdb.TransactionException, match="other write transactions"):
            con.execute("CHECKPOINT")  # what DuckDB says
        assert connection.checkpoint(con, db) is False  # postponed, not raised
        analyses.execute("COMMIT")
        assert connection.checkpoint(con, db) is True
        assert not Path(f"{db}.wal").exists() or Path(f"{db}.wal").stat().st_size == 0
    finally:
        con.close()
