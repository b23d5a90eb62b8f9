"""Scale-out (FUELTRACE_SCALE_OUT): two `fueltrace ingest` workers in one consumer group,
each with its own warehouse shard, share the partitions. A worker joins while the other
is loading and then leaves while records keep arriving; the two shards together hold
every record exactly once (docs/scale-out.md)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fueltrace.settings import Settings
from ingest.embedded_broker import free_port
from ingest.push import push_file
from ingest.topics import ensure_topics
from tests.helpers import write_jsonl
from tests.ops.tools import env_for

pytestmark = pytest.mark.broker
WAVES, PER_WAVE, WAVE_S = 16, 60, 0.5  # 960 sales over 8 s, 24 stations
ALL = 7 * 4  # partitions: 7 record topics of 4


class Worker:
    """One `fueltrace ingest` process with its own shard and /metrics port."""

    def __init__(self, settings: Settings, name: str, tmp_path: Path) -> None:
        self.port = free_port()
        self.db = tmp_path / f"shard-{name}.duckdb"
        shard = settings.model_copy(update={"db": self.db, "metrics_port": self.port})
        self.log = (tmp_path / f"{name}.log").open("w")
        shard = shard.model_copy(update={"log_level": "INFO"})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fueltrace", "ingest"], env=env_for(shard),
            stdout=subprocess.DEVNULL, stderr=self.log)  # fmt: skip

    def metric(self, name: str) -> float:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2)
            lines = text.read().decode().splitlines()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines
                   if line.startswith(name) and not line.startswith("#"))  # fmt: skip

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        self.log.close()
        return code


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def shard_rows(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ingest_duplicate").fetchall() == [(0,)]
        return con.execute("SELECT station_id, txn_id, src_partition FROM sale").fetchall()


def test_two_workers_share_the_partitions_without_loss_or_duplication(
    broker: Any, settings_factory: Callable[..., Settings], tmp_path: Path,
    sale_factory: Callable[..., dict[str, Any]],
) -> None:  # fmt: skip
    settings = settings_factory(broker.bootstrap, partitions=4, scale_out=True,
                                batch_max_records=40, batch_max_ms=200,
                                debug_pause_before_commit_ms=100)  # fmt: skip
    ensure_topics(settings, broker.bootstrap)
    produced: list[tuple[str, str]] = []

    def produce() -> None:
        for wave in range(WAVES):
            sales = [sale_factory(station_id=f"LN-DL-{i % 24:04d}") for i in range(PER_WAVE)]
            produced.extend((s["station_id"], s["txn_id"]) for s in sales)
            path = write_jsonl(tmp_path / f"wave{wave}.jsonl", sales)
            assert push_file(settings, broker.bootstrap, "sale", path).sent == PER_WAVE
            time.sleep(WAVE_S)

    producer = threading.Thread(target=produce)
    producer.start()
    a = Worker(settings, "a", tmp_path)
    b: Worker | None = None
    try:
        wait_for(lambda: a.metric("fueltrace_records_loaded_total") > 0, 30, "worker A to load")
        assert a.metric("fueltrace_partitions_assigned") == ALL  # alone: every partition
        b = Worker(settings, "b", tmp_path)  # joins while A loads: the group rebalances
        wait_for(lambda: b.metric("fueltrace_records_loaded_total") > 0, 30, "worker B to load")
        worker_a, worker_b = a, b

        def shared() -> bool:  # each updates its gauge on its own next poll after the rebalance
            held = [w.metric("fueltrace_partitions_assigned") for w in (worker_a, worker_b)]
            return sum(held) == ALL and min(held) > 0

        wait_for(shared, 30, "the two workers to hold every partition between them")
        assert a.stop() == 0  # leaves while records keep arriving: B takes its partitions
        producer.join(60)
        a_rows = shard_rows(a.db)
        wait_for(lambda: worker_b.metric("fueltrace_partitions_assigned") == ALL, 30,
                 "worker B to hold every partition")  # fmt: skip
        wait_for(lambda: len(a_rows) + worker_b.metric("fueltrace_records_loaded_total")
                 >= WAVES * PER_WAVE, 60, "every record to be loaded")  # fmt: skip
        wait_for(lambda: worker_b.metric("fueltrace_consumer_lag_messages") == 0, 10,
                 "worker B's lag to reach 0")  # fmt: skip
        assert b.stop() == 0
    finally:
        producer.join(60)
        for worker in (a, b):
            if worker is not None and worker.process.poll() is None:
                worker.process.kill()

    b_rows = shard_rows(b.db)
    union = [(s, t) for s, t, _ in a_rows + b_rows]
    assert len(union) == len(produced) == WAVES * PER_WAVE
    assert set(union) == set(produced)  # no loss, and (same length) no duplication
    assert a_rows and b_rows  # both did work
    # partitions that moved from A to B have rows in both shards: the handover happened
    moved = {p for *_, p in a_rows} & {p for *_, p in b_rows}
    assert moved
