"""Warehouse trouble: a file locked by another process, a full disk, a damaged file, a
file from a newer fueltrace or DuckDB. fueltrace refuses or waits with an error that
names the file and what to do; it never changes the file it refuses, and a load that
fails for space leaves nothing behind and is loaded exactly once when space is back.

A full disk is a real one where this process may mount a tiny tmpfs (root), and also,
everywhere, a failure injected at the load's COMMIT (the error DuckDB gives then).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import duckdb
import polars as pl
import pytest

from fueltrace.analyses import run_analyses
from fueltrace.errors import (
    FuelTraceError,
    WarehouseBusy,
    WarehouseDamaged,
    WarehouseFull,
    WarehouseInvalidated,
    WarehouseTooNew,
)
from fueltrace.settings import Settings
from ingest import consumer
from ingest.consumer import open_ingest
from ingest.frames import to_frame
from ingest.push import push_file
from tests.helpers import write_jsonl
from warehouse import connection
from warehouse.connection import connect, translate
from warehouse.load import DEAD_LETTER_SCHEMA, Batch, load_batch, stored_offsets
from warehouse.migrate import latest, migrate

T0_MS = int(datetime(2026, 11, 20, 8, tzinfo=UTC).timestamp() * 1000)
TOPIC = "fuel.sale"
TABLES = ("sale", "dead_letter", "ingest_duplicate", "key_conflict", "ingest_offset",
          "ingest_load", "schema_version")  # fmt: skip


# -- factories and probes ------------------------------------------------------------


def sales(first: int, n: int) -> Batch:
    """``n`` distinct sales at offsets ``first`` … of partition 0, with their offsets."""
    rows = [
        {"txn_id": f"T{i:06d}", "station_id": "LN-SY-0001", "dispenser_id": "D1",
         "nozzle_id": "N1", "product": "gasoline_92", "volume_l": 40.0, "unit_price_fen": 780,
         "amount_fen": 31200, "totalizer_start_l": 1000.0 + 40 * i,
         "totalizer_end_l": 1040.0 + 40 * i, "started_at": T0_MS + 120_000 * i,
         "ended_at": T0_MS + 120_000 * i + 90_000, "invoice_id": None,
         "src_partition": 0, "src_offset": i, "src_index": 0}
        for i in range(first, first + n)
    ]  # fmt: skip
    return Batch({"sale": to_frame("sale", rows)}, pl.DataFrame(schema=DEAD_LETTER_SCHEMA),
                 {(TOPIC, 0): first + n}, {TOPIC: "id-1"}, n, n)  # fmt: skip


def wal_bytes(db: Path) -> int:
    wal = Path(f"{db}.wal")
    return wal.stat().st_size if wal.exists() else 0


def state(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a load writes (and the schema versions)."""
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def files(directory: Path) -> dict[str, str]:
    """Each file in ``directory`` and the SHA-256 of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir()) if p.is_file()
    }  # fmt: skip


def warehouse_with_data(db: Path, n: int = 30) -> dict[str, list[tuple[Any, ...]]]:
    """A closed warehouse at ``db`` holding ``n`` sales; what it holds."""
    con = connect(db)
    try:
        load_batch(con, db, sales(0, n))
        return state(con)
    finally:
        con.close()


# -- a file locked by another process ------------------------------------------------

HOLD = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); " \
       "sys.stdin.read()"  # fmt: skip


@pytest.fixture
def hold() -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Start a process that holds a read-write DuckDB connection to a file."""
    started: list[subprocess.Popen[str]] = []

    def start(db: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)  # fmt: skip
        started.append(process)
        assert process.stdout and process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        if process.stdin:
            process.stdin.close()
        process.wait(10)


@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "reader"])
def test_a_locked_warehouse_is_refused_naming_the_file_and_the_holder(
    tmp_path: Path, hold: Callable[[Path], subprocess.Popen[str]], read_only: bool
) -> None:
    db = tmp_path / "w.duckdb"
    held = warehouse_with_data(db)
    holder = hold(db)
    before = files(tmp_path)
    with pytest.raises(WarehouseBusy) as caught:
        connect(db, read_only=read_only)
    message = str(caught.value)
    assert caught.value.transient
    assert f"warehouse {db} is locked by another process" in message
    assert f"PID {holder.pid}" in message and "FUELTRACE_DB" in message
    assert "\n" not in message
    assert files(tmp_path) == before
    assert holder.stdin
    holder.stdin.close()
    holder.wait(10)
    con = connect(db, read_only=True)
    assert state(con) == held
    con.close()


# -- damaged files, and files from a newer fueltrace or DuckDB -------------------------


def _checksum(block: bytes) -> int:
    """DuckDB's header checksum (storage/checksum.cpp): the words, multiplied and xored."""
    result = 5381
    for (word,) in struct.iter_unpack("<Q", block):
        result ^= (word * 0xBF58476D1CE4E5B9) & 0xFFFF_FFFF_FFFF_FFFF
    return result


def newer_duckdb(data: bytes) -> bytes:
    """The file as a DuckDB with a newer storage format would write it: the main header's
    storage version (after the checksum and b"DUCK") raised, the checksum redone."""
    assert data[8:12] == b"DUCK"
    header = bytearray(data[:4096])
    struct.pack_into("<Q", header, 12, 1000)
    struct.pack_into("<Q", header, 0, _checksum(bytes(header[8:])))
    return bytes(header) + data[4096:]


def newer_schema(db: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO schema_version VALUES (?, 'from_the_future', now())", [latest() + 1])
    con.close()


def foreign(db: Path) -> None:
    db.unlink()
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE invoices AS SELECT range AS id FROM range(10)")
    con.close()


def _rewrite(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    return lambda db: db.write_bytes(change(db.read_bytes()))


RESTORE, UPGRADE = "restore it from a backup", "upgrade fueltrace"
DAMAGE: dict[str, tuple[Callable[[Path], None], type[FuelTraceError], str, str]] = {
    # kind: (what is done to the file, the error, what it says is wrong, what to do)
    "random-bytes": (_rewrite(lambda d: os.urandom(len(d))), WarehouseDamaged,
                     "not a valid DuckDB database file", RESTORE),
    "empty": (_rewrite(lambda d: b""), WarehouseDamaged, "not a valid DuckDB database file",
              RESTORE),
    "truncated-header": (_rewrite(lambda d: d[:100]), WarehouseDamaged, "Could not read enough",
                         RESTORE),
    "truncated-half": (_rewrite(lambda d: d[: len(d) // 2]), WarehouseDamaged, "is truncated",
                       RESTORE),
    "scrambled-block": (_rewrite(lambda d: d[:12288 + 64] + os.urandom(4000) + d[12288 + 4064:]),
                        WarehouseDamaged, "checksum", RESTORE),
    "not-fueltrace": (foreign, WarehouseDamaged, "not a fueltrace warehouse",
                      "point FUELTRACE_DB at another file"),
    "newer-schema": (newer_schema, WarehouseTooNew, f"schema version {latest() + 1}, newer",
                     UPGRADE),
    "newer-duckdb": (_rewrite(newer_duckdb), WarehouseTooNew, "newer DuckDB", UPGRADE),
}  # fmt: skip


@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "reader"])
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_or_newer_warehouse_is_refused_and_left_untouched(
    tmp_path: Path, kind: str, read_only: bool
) -> None:
    db = tmp_path / "w.duckdb"
    warehouse_with_data(db)
    damage, error, says, todo = DAMAGE[kind]
    damage(db)
    before = files(tmp_path)
    with pytest.raises(error) as caught:
        connect(db, read_only=read_only)
    message = str(caught.value)
    assert not caught.value.transient
    assert message.startswith(f"warehouse {db} ") and says in message, message
    assert todo in message and "FUELTRACE_DB" in message and "\n" not in message
    assert files(tmp_path) == before  # same bytes, and no log or temp file left behind


def test_a_newer_schema_is_refused_by_a_process_that_has_the_file_open(tmp_path: Path) -> None:
    """Within one process DuckDB shares the open database, so the read-only check before
    opening is skipped: migrate refuses a newer schema all the same."""
    db = tmp_path / "w.duckdb"
    con = connect(db)
    con.execute("INSERT INTO schema_version VALUES (?, 'from_the_future', now())", [latest() + 1])
    before = state(con)
    with pytest.raises(WarehouseTooNew, match=f"schema version {latest() + 1}"):
        connect(db)
    with pytest.raises(WarehouseTooNew, match=f"warehouse {db} is at schema version"):
        migrate(con, db)
    assert state(con) == before
    con.close()


# -- a full disk ---------------------------------------------------------------------


class Disk:
    """Where a warehouse lives, and a way to fill that disk and free it again."""

    def __init__(self, directory: Path, kind: str) -> None:
        self.directory = directory
        self.kind = kind
        self.db = directory / "w.duckdb"
        self.full = threading.Event()

    def fill(self, leave: int = 8 * 1024) -> None:
        """Take all but ``leave`` bytes (tmpfs); or refuse every COMMIT (injected)."""
        self.full.set()
        if self.kind == "tmpfs":
            free = shutil.disk_usage(self.directory).free
            (self.directory / "filler").write_bytes(b"\0" * max(free - leave, 0))

    def free(self) -> None:
        self.full.clear()
        (self.directory / "filler").unlink(missing_ok=True)

    def wrap(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """``con`` as the loads see it: as is on tmpfs; injected, its COMMIT fails while
        the disk is 'full' with the error DuckDB raises then (and nothing is written)."""
        if self.kind == "tmpfs":
            return con
        return cast(duckdb.DuckDBPyConnection, _NoSpaceAtCommit(con, self))


class _NoSpaceAtCommit:
    def __init__(self, con: duckdb.DuckDBPyConnection, disk: Disk) -> None:
        self._con = con
        self._disk = disk

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if self._disk.full.is_set() and sql.strip().upper() == "COMMIT":
            raise duckdb.TransactionException(
                "TransactionContext Error: Failed to commit: Could not write file "
                f'"{self._disk.db}.wal": No space left on device'
            )
        return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def _mount_tmpfs(directory: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``directory``; None, or why it could not."""
    if not shutil.which("mount"):
        return "no mount command"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                          capture_output=True, text=True)  # fmt: skip
    return None if done.returncode == 0 else f"cannot mount a tmpfs: {done.stderr.strip()}"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A directory on an 8 MiB tmpfs (needs root); skipped, saying why, where it cannot
    be mounted — the injected-failure variants of the same tests run everywhere."""
    directory = tmp_path / "disk"
    directory.mkdir()
    why = _mount_tmpfs(directory, "8m")
    if why:
        pytest.skip(why)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture(params=["tmpfs", "injected"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Disk:
    if request.param == "tmpfs":
        return Disk(request.getfixturevalue("tmpfs"), "tmpfs")
    directory = tmp_path / "disk"
    directory.mkdir()
    return Disk(directory, "injected")


def test_a_load_on_a_full_disk_leaves_nothing_and_loads_once_space_is_back(disk: Disk) -> None:
    con = connect(disk.db)
    loads = disk.wrap(con)
    load_batch(loads, disk.db, sales(0, 20))
    before = state(con)
    disk.fill()
    with pytest.raises(WarehouseFull) as caught:
        load_batch(loads, disk.db, sales(20, 3000))
    message = str(caught.value)
    assert caught.value.transient and "\n" not in message
    assert message.startswith(f"warehouse {disk.db}: no space left on device")
    assert "rolled back" in message and "free space" in message
    assert state(con) == before  # the connection goes on, and holds only what it held
    assert stored_offsets(con) == {(TOPIC, 0): (20, "id-1")}
    con.close()  # on the full disk: what is durable is what a new process will see
    reader = connect(disk.db, read_only=True)
    assert state(reader) == before
    reader.close()

    disk.free()
    con = connect(disk.db)
    loads = disk.wrap(con)
    result = load_batch(loads, disk.db, sales(20, 3000))
    assert result.loaded["sale"] == 3000
    assert con.execute("SELECT count(*), count(DISTINCT txn_id), max(load_id) FROM sale"
                       ).fetchall() == [(3020, 3020, result.load_id)]  # fmt: skip
    assert con.execute("SELECT count(*) FROM ingest_duplicate").fetchall() == [(0,)]
    assert stored_offsets(con) == {(TOPIC, 0): (3020, "id-1")}
    con.close()


def test_a_checkpoint_waits_for_space_instead_of_breaking_the_database(
    tmpfs: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """DuckDB checkpoints into new blocks of 256 KiB; with less free than that a
    checkpoint fails and DuckDB gives up on the database until it is reopened. The loads
    checkpoint only with room: on a nearly full disk the log grows instead."""
    monkeypatch.setattr(connection, "CHECKPOINT_WAL_BYTES", 1)
    monkeypatch.setattr(connection, "CHECKPOINT_HEADROOM_BYTES", 1024 * 1024)
    db, disk = tmpfs / "w.duckdb", Disk(tmpfs, "tmpfs")
    con = connect(db)
    load_batch(con, db, sales(0, 10))
    assert wal_bytes(db) == 0  # checkpointed: the disk had room
    disk.fill(leave=128 * 1024)
    caplog.set_level(logging.WARNING, logger="warehouse.connection")
    load_batch(con, db, sales(10, 10))
    load_batch(con, db, sales(20, 10))  # the database still works
    assert wal_bytes(db) > 0
    deferred = [r.getMessage() for r in caplog.records if "checkpoint deferred" in r.getMessage()]
    assert len(deferred) == 1 and f"path={db}" in deferred[0]  # said once, not every load
    disk.free()
    load_batch(con, db, sales(30, 10))
    assert wal_bytes(db) == 0
    assert any("checkpoint done" in r.getMessage() for r in caplog.records)
    assert con.execute("SELECT count(*) FROM sale").fetchall() == [(40,)]
    con.close()


def test_a_checkpoint_that_fails_for_space_says_to_restart_and_loses_nothing(
    tmpfs: Path,
) -> None:
    """Why loads checkpoint only with room: DuckDB's own checkpoint on a full disk
    invalidates the database. The error says so; a restart finds every commit."""
    db, disk = tmpfs / "w.duckdb", Disk(tmpfs, "tmpfs")
    con = connect(db)
    load_batch(con, db, sales(0, 2000))
    disk.fill(leave=64 * 1024)
    with pytest.raises(duckdb.Error) as caught:
        con.execute("CHECKPOINT")
    error = translate(caught.value, db)
    assert isinstance(error, WarehouseInvalidated) and not error.transient
    assert str(error).startswith(f"warehouse {db}: DuckDB stopped using the file")
    assert "restart fueltrace" in str(error) and "\n" not in str(error)
    con.close()
    disk.free()
    con = connect(db)
    assert con.execute("SELECT count(*) FROM sale").fetchall() == [(2000,)]
    assert stored_offsets(con) == {(TOPIC, 0): (2000, "id-1")}
    con.close()


def test_analyses_on_a_full_disk_say_so_and_store_nothing(
    disk: Disk, settings_factory: Callable[..., Settings]
) -> None:
    """The analyses after a load write too: their error is the warehouse's, in one line
    (the rollback after a failed COMMIT used to hide it behind "no transaction is
    active", a raw DuckDB error and a traceback)."""
    con = connect(disk.db)
    load_batch(con, disk.db, sales(0, 50))
    disk.fill(leave=0)
    with pytest.raises(WarehouseFull, match=f"^warehouse {disk.db}: no space left on device"):
        run_analyses(disk.wrap(con), settings_factory(db=disk.db))
    # each job is one transaction: the anomaly run (after the lineage) left no trace
    assert con.execute("SELECT count(*) FROM analysis_run").fetchall() == [(0,)]
    disk.free()
    run_analyses(disk.wrap(con), settings_factory(db=disk.db))
    assert con.execute("SELECT count(*) FROM analysis_run").fetchall() == [(1,)]
    con.close()


# -- the ingest on a full disk: waits with back-off, then loads everything once ----------

N_SALES = 300


@pytest.mark.broker
def test_the_ingest_retries_a_full_disk_with_backoff_and_loads_everything_once(
    broker: Any, settings_factory: Callable[..., Settings], disk: Disk, tmp_path: Path,
    sale_factory: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from ingest.topics import ensure_topics

    monkeypatch.setattr(consumer, "RETRY_FIRST_S", 0.2)
    monkeypatch.setattr(consumer, "RETRY_MAX_S", 0.8)
    settings = settings_factory(broker.bootstrap, db=disk.db)
    ensure_topics(settings, broker.bootstrap)
    records = [sale_factory(station_id=f"S{i % 4}") for i in range(N_SALES)]
    push_file(settings, broker.bootstrap, "sale", write_jsonl(tmp_path / "s.jsonl", records))
    ingest = open_ingest(settings, broker.bootstrap)
    reader = ingest.con.cursor()  # a connection of its own, for this thread
    ingest.con = disk.wrap(ingest.con)
    disk.fill(leave=0)
    caplog.set_level(logging.WARNING, logger="ingest.consumer")
    stop = threading.Event()
    thread = threading.Thread(target=ingest.run, kwargs={"should_stop": stop.is_set})
    thread.start()
    try:

        def retries() -> list[str]:
            return [r.getMessage() for r in caplog.records if "load failed" in r.getMessage()]

        deadline = time.monotonic() + 25
        while len(retries()) < 3 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(retries()) >= 3 and thread.is_alive()  # waits, does not crash
        assert all("no space left on device" in m for m in retries())
        assert [m.rsplit("retry_in_s=", 1)[1].split()[0] for m in retries()[:3]] == [
            "0.2", "0.4", "0.8"
        ]  # fmt: skip
        assert reader.execute("SELECT (SELECT count(*) FROM sale), (SELECT count(*) FROM "
                              "ingest_offset), (SELECT count(*) FROM ingest_load)"
                              ).fetchall() == [(0, 0, 0)]  # fmt: skip

        disk.free()
        while time.monotonic() < deadline + 20:
            if reader.execute("SELECT count(*) FROM sale").fetchall()[0][0] >= N_SALES:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    got = reader.execute("SELECT count(*), count(DISTINCT (station_id, txn_id)) FROM sale")
    assert got.fetchall() == [(N_SALES, N_SALES)]
    assert reader.execute("SELECT count(*) FROM ingest_duplicate").fetchall() == [(0,)]
    assert reader.execute("SELECT sum(loaded) FROM ingest_load").fetchall() == [(N_SALES,)]
    assert sum(o for o, _ in stored_offsets(reader).values()) == N_SALES
    reader.close()
    ingest.close()
    cast(Any, ingest.con).close()
