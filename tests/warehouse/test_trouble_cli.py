"""Warehouse trouble as the operator meets it: `fueltrace ingest`, `serve` and a read
command in a subprocess, against the real broker. Each says in one line what is wrong
with which file and what to do, exits non-zero without a traceback, and changes
nothing: not the file, not the consumer group's offsets."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from fueltrace.settings import Settings
from ingest.kafka_client import consumer as make_consumer
from ingest.push import push_file
from ingest.topics import ensure_topics, record_topics
from tests.helpers import settings_env, write_jsonl
from tests.warehouse import test_trouble
from tests.warehouse.test_trouble import DAMAGE, Disk, files, warehouse_with_data
from warehouse.connection import connect

pytestmark = pytest.mark.broker
hold = test_trouble.hold  # fixtures shared with the in-process tests
tmpfs = test_trouble.tmpfs
N_SALES = 40
COMMANDS = {
    "ingest": ["ingest", "--until-idle"],
    "serve": ["serve", "--port", "0"],
    "anomalies": ["anomalies", "--json"],
}


def fueltrace(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fueltrace", *args], env=settings_env(settings),
                          capture_output=True, text=True, timeout=90)  # fmt: skip


def committed(settings: Settings) -> dict[tuple[str, int], int]:
    """The consumer group's committed offsets on the record topics."""
    assert settings.bootstrap
    kafka = make_consumer(settings, settings.bootstrap)
    try:
        found = {}
        for topic in record_topics(settings):
            for p in kafka.partitions_for_topic(topic) or ():
                offset = kafka.committed(TopicPartition(topic, p))
                if offset is not None:
                    found[(topic, p)] = offset
        return found
    finally:
        kafka.close(autocommit=False)


@pytest.fixture
def pushed(broker: Any, settings_factory: Callable[..., Settings], tmp_path: Path,
           sale_factory: Callable[..., dict[str, Any]]) -> Settings:  # fmt: skip
    """Settings whose warehouse is alone in its directory, and sales waiting on Kafka."""
    settings = settings_factory(broker.bootstrap, db=tmp_path / "warehouse" / "w.duckdb")
    ensure_topics(settings, broker.bootstrap)
    records = [sale_factory(station_id=f"S{i % 4}") for i in range(N_SALES)]
    push_file(settings, broker.bootstrap, "sale", write_jsonl(tmp_path / "s.jsonl", records))
    return settings


def one_error_line(done: subprocess.CompletedProcess[str], command: str, kind: str) -> str:
    """The error line of a failed command: exactly one, no traceback anywhere."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.startswith(f"fueltrace {command}: ")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"fueltrace {command}: {kind}: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_locked_warehouse_stops_each_command_and_changes_nothing(
    pushed: Settings, hold: Callable[[Path], subprocess.Popen[str]], command: str
) -> None:
    db = pushed.db
    db.parent.mkdir()
    held = warehouse_with_data(db)
    holder = hold(db)
    before = files(db.parent)
    done = fueltrace(pushed, *COMMANDS[command])
    assert done.returncode == 75  # EX_TEMPFAIL: trying again later can work
    line = one_error_line(done, command, "transient")
    assert f"warehouse {db} is locked by another process" in line
    assert f"PID {holder.pid}" in line and "FUELTRACE_DB" in line
    assert files(db.parent) == before
    assert committed(pushed) == {}
    assert holder.poll() is None  # the other process was left alone
    assert holder.stdin
    holder.stdin.close()
    holder.wait(10)
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM sale").fetchall() == [(len(held["sale"]),)]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", ["random-bytes", "truncated-half", "newer-schema",
                                  "newer-duckdb"])  # fmt: skip
def test_a_damaged_or_newer_warehouse_stops_each_command_untouched(
    pushed: Settings, kind: str, command: str
) -> None:
    db = pushed.db
    db.parent.mkdir()
    warehouse_with_data(db)
    damage, _, says, todo = DAMAGE[kind]
    damage(db)
    before = files(db.parent)
    done = fueltrace(pushed, *COMMANDS[command])
    assert done.returncode == 2
    line = one_error_line(done, command, "error")
    assert f"warehouse {db} " in line and says in line and todo in line, line
    assert files(db.parent) == before
    assert committed(pushed) == {}


def test_ingest_on_a_full_disk_exits_to_be_retried_and_loads_once_space_is_back(
    pushed: Settings, tmpfs: Path
) -> None:
    """`--until-idle` is a one-shot job: on a full disk it stops with EX_TEMPFAIL (75),
    having stored nothing, and the next run loads everything (a long-running ingest
    retries by itself: test_trouble.py)."""
    settings = pushed.model_copy(update={"db": tmpfs / "w.duckdb"})
    connect(settings.db).close()
    disk = Disk(tmpfs, "tmpfs")
    disk.fill(leave=0)
    done = fueltrace(settings, "ingest", "--until-idle")
    assert done.returncode == 75
    line = one_error_line(done, "ingest", "transient")
    assert f"warehouse {settings.db}: no space left on device" in line and "free space" in line
    with connect(settings.db, read_only=True) as con:
        assert con.execute("SELECT (SELECT count(*) FROM sale), (SELECT count(*) FROM "
                           "ingest_offset)").fetchall() == [(0, 0)]  # fmt: skip
    assert committed(settings) == {}

    disk.free()
    done = fueltrace(settings, "ingest", "--until-idle")
    assert done.returncode == 0, done.stderr
    with connect(settings.db, read_only=True) as con:
        got = con.execute("SELECT count(*), count(DISTINCT (station_id, txn_id)) FROM sale")
        assert got.fetchall() == [(N_SALES, N_SALES)]
        assert con.execute("SELECT count(*) FROM ingest_duplicate").fetchall() == [(0,)]
    assert sum(committed(settings).values()) == N_SALES
