"""The embedded Tansu: starts on a free port, answers Kafka, stops, never orphaned;
and what commands say when the broker is missing or goes away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fueltrace.errors import BrokerUnavailable, NoBrokerConfigured
from fueltrace.settings import Settings
from ingest.embedded_broker import EmbeddedBroker, answers, running_address
from ingest.kafka_client import consumer as make_consumer
from ingest.kafka_client import resolve_bootstrap
from ingest.push import push_file
from ingest.topics import all_topics, ensure_topics, record_topics
from tests.helpers import run_ingest, settings_env, write_jsonl

pytestmark = pytest.mark.broker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_start_records_address_and_stop_cleans_up(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path).start()
    assert broker.process is not None
    pid = broker.process.pid
    assert running_address(tmp_path) == broker.bootstrap
    assert json.loads((tmp_path / "broker.json").read_text())["pid"] == pid
    broker.stop()
    assert not _alive(pid)
    assert running_address(tmp_path) is None
    assert not (tmp_path / "broker.json").exists()


def test_topics_of_the_spec_are_created_with_the_configured_partitions(
    broker: EmbeddedBroker, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(broker.bootstrap, partitions=3)
    created = ensure_topics(settings, broker.bootstrap)
    assert sorted(created) == sorted(all_topics(settings))
    assert f"{settings.topic_prefix}.dead-letter" in created
    assert ensure_topics(settings, broker.bootstrap) == []  # idempotent
    from ingest.kafka_client import admin_client

    with admin_client(settings, broker.bootstrap) as admin:
        described = admin.describe_topics(all_topics(settings))
    assert {len(t["partitions"]) for t in described} == {3}


def test_the_broker_dies_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from ingest.embedded_broker import EmbeddedBroker
        b = EmbeddedBroker(Path({str(tmp_path)!r})).start()
        print(b.process.pid, b.port, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout
    pid, port = map(int, parent.stdout.readline().split())
    assert _alive(pid) and answers("127.0.0.1", port)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    assert not answers("127.0.0.1", port)


def test_without_a_broker_commands_say_how_to_start_one(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(None)
    with pytest.raises(NoBrokerConfigured) as caught:
        resolve_bootstrap(settings)
    assert "fueltrace broker" in str(caught.value)
    cli = subprocess.run([sys.executable, "-m", "fueltrace", "ingest", "--until-idle"],
                         env=settings_env(settings), capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 2
    assert "no Kafka broker" in cli.stderr and "fueltrace broker" in cli.stderr


def test_a_broker_that_goes_away(
    tmp_path: Path, settings_factory: Callable[..., Settings], sale_factory: Callable[..., Any]
) -> None:
    """Data accepted before the broker died stays in the warehouse; push and ingest then
    fail with a transient error naming the broker; a new broker is picked up again."""
    own = EmbeddedBroker(tmp_path / "own").start()
    settings = settings_factory(own.bootstrap, broker_timeout_s=3.0)
    path = write_jsonl(tmp_path / "s.jsonl", [sale_factory() for _ in range(25)])
    push_file(settings, own.bootstrap, "sale", path)
    assert run_ingest(settings).loaded["sale"] == 25
    own.stop()

    with pytest.raises(BrokerUnavailable) as pushed:
        push_file(settings, own.bootstrap, "sale", path)
    assert own.bootstrap in str(pushed.value)
    started = time.monotonic()
    cli = subprocess.run([sys.executable, "-m", "fueltrace", "ingest", "--until-idle"],
                         env=settings_env(settings), capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert cli.returncode == 75, cli.stderr  # EX_TEMPFAIL: a supervisor may retry
    assert "transient" in cli.stderr and own.bootstrap in cli.stderr
    assert time.monotonic() - started < 40

    import duckdb

    with duckdb.connect(str(settings.db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM sale").fetchall() == [(25,)]

    # A restarted Tansu has lost everything (memory storage): the warehouse's offsets are
    # beyond the new log; re-sent data is caught by natural key, nothing is loaded twice.
    again = EmbeddedBroker(tmp_path / "again", port=own.port).start()
    try:
        push_file(settings, again.bootstrap, "sale", path)
        summary = run_ingest(settings)
        assert summary.loaded["sale"] == 0 and summary.duplicates["sale"] == 25
    finally:
        again.stop()


def test_a_consumer_busy_between_short_polls_still_gets_its_partitions(
    broker: EmbeddedBroker, settings: Settings
) -> None:
    """Tansu answers a JoinGroup after half the session timeout; a join that finishes while
    the consumer works between polls (serve analyses, checks the broker) must still give it
    its partitions, not start another join that finishes out of sight again, for ever
    (kafka-python 3.0.12 without ``ingest.kafka_client._keep_finished_joins``)."""
    kafka = make_consumer(settings, broker.bootstrap)
    try:
        kafka.subscribe(list(record_topics(settings)))
        deadline = time.monotonic() + 10 * settings.session_timeout_ms / 1000
        while not kafka.assignment() and time.monotonic() < deadline:
            kafka.poll(timeout_ms=200)
            time.sleep(0.5)  # the join's answer comes while we are away
        assert len(kafka.assignment()) == len(record_topics(settings)) * settings.partitions
    finally:
        kafka.close(autocommit=False)
