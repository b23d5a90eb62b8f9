"""SIGKILL the ingest process mid-batch; after a restart every record is there exactly once."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fueltrace.settings import Settings
from ingest.push import push_file
from tests.helpers import dead_letters_on_topic, run_ingest, settings_env, write_jsonl

pytestmark = pytest.mark.broker
N_GOOD = 600
N_BAD = 6


def _push_workload(settings: Settings, tmp_path: Path, sale_factory: Callable[..., Any]) -> None:
    good = [sale_factory(station_id=f"S{i % 5}") for i in range(N_GOOD)]
    assert settings.bootstrap
    push_file(settings, settings.bootstrap, "sale", write_jsonl(tmp_path / "g.jsonl", good))
    from ingest.topics import record_topic
    from tests.helpers import produce_raw

    produce_raw(settings, record_topic(settings, "sale"), [b"garbage %d" % i for i in range(N_BAD)])


def _start(settings: Settings) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fueltrace", "ingest", "--until-idle"],
        env=settings_env(settings), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def _assert_exactly_once(settings: Settings) -> None:
    with duckdb.connect(str(settings.db), read_only=True) as con:
        rows = con.execute("SELECT count(*), count(DISTINCT (station_id, txn_id)) FROM sale")
        assert rows.fetchall() == [(N_GOOD, N_GOOD)]
        assert con.execute("SELECT count(*) FROM ingest_duplicate").fetchall() == [(0,)]
        dead = con.execute('SELECT count(*), count(DISTINCT ("partition", "offset")) '
                           "FROM dead_letter").fetchall()  # fmt: skip
        assert dead == [(N_BAD, N_BAD)]
    letters = dead_letters_on_topic(settings, expected=N_BAD)
    # dead letters are at-least-once on the topic, exactly once by their source position
    assert len({(x.partition, x.offset) for x in letters}) == N_BAD


def test_sigkill_inside_the_warehouse_transaction(
    broker: Any, settings_factory: Callable[..., Settings], tmp_path: Path,
    sale_factory: Callable[..., Any],
) -> None:  # fmt: skip
    settings = settings_factory(broker.bootstrap, batch_max_records=100,
                                debug_pause_before_commit_ms=1500)  # fmt: skip
    _push_workload(settings, tmp_path, sale_factory)
    process = _start(settings)
    assert process.stderr
    pauses = 0
    for line in process.stderr:
        if "pausing before commit" in line:
            pauses += 1
            if pauses == 3:  # two batches committed, the third is mid-transaction
                process.send_signal(signal.SIGKILL)
                break
    assert process.wait(10) == -signal.SIGKILL
    with duckdb.connect(str(settings.db), read_only=True) as con:
        committed = con.execute("SELECT count(*) FROM ingest_load").fetchall()[0][0]
        assert committed == 2  # the killed batch left nothing behind

    run_ingest(settings.model_copy(update={"debug_pause_before_commit_ms": 0}))
    _assert_exactly_once(settings)


def test_sigkill_at_random_moments(
    broker: Any, settings_factory: Callable[..., Settings], tmp_path: Path,
    sale_factory: Callable[..., Any],
) -> None:  # fmt: skip
    settings = settings_factory(broker.bootstrap, batch_max_records=40,
                                debug_pause_before_commit_ms=150)  # fmt: skip
    _push_workload(settings, tmp_path, sale_factory)
    rng = random.Random(20261124)
    for _ in range(4):
        process = _start(settings)
        time.sleep(rng.uniform(1.2, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    final = _start(settings)
    assert final.wait(120) == 0
    _assert_exactly_once(settings)
