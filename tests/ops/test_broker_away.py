"""Broker away: `fueltrace serve` outlives a Kafka broker that stops, and picks up a
restarted Tansu that has lost every topic, record and committed offset.

One real serve process (never restarted) on its own embedded broker, which the test
stops and starts again on the same port: while the broker is away the process says so
(`/readyz` 503, `fueltrace_up` 0, retries with growing back-off in its log) and keeps
answering from the warehouse; when a restarted Tansu comes back, the recreated topics
are noticed by their ids and re-read from the beginning, so records sent after the
restart are loaded and records sent again are counted as duplicates, not stored twice.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fueltrace.settings import Settings
from ingest.embedded_broker import EmbeddedBroker, free_port
from ingest.push import push_file
from ingest.topics import record_topic
from tests.api.test_serve import call, environment, wait_for
from tests.helpers import write_jsonl
from warehouse import access
from warehouse.connection import connect

pytestmark = pytest.mark.broker
STATION = "LN-SY-0001"  # the sale factory's: every sale has this key, so one partition


def metric(port: int, name: str, **labels: str) -> float | None:
    """One sample of /metrics, scraped now (None if the series does not exist)."""
    status, _, body = call(port, "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def readyz(port: int) -> tuple[int, dict[str, bool]]:
    status, _, body = call(port, "/readyz")
    return status, json.loads(body)["checks"]


def log_events(path: Path, msg: str) -> list[dict[str, Any]]:
    """The JSON log lines of the serve process whose event is ``msg``."""
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg") == msg:
                events.append(entry)
    return events


def seconds(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")).timestamp()


def sale_found(port: int, token: str, sale: dict[str, Any]) -> bool:
    path = f"/api/v1/trace/sales/{STATION}/{sale['txn_id']}"
    return call(port, path, token)[0] == 200


def test_serve_rides_out_a_broker_that_stops_and_restarts_empty(
    tmp_path: Path, settings_factory: Callable[..., Settings],
    sale_factory: Callable[..., dict[str, Any]],
) -> None:  # fmt: skip
    started = time.monotonic()
    broker = EmbeddedBroker(tmp_path / "broker").start()
    again: EmbeddedBroker | None = None
    settings = settings_factory(broker.bootstrap, broker_timeout_s=3.0, analysis_interval_s=1.0,
                                log_level="INFO", log_format="json")  # fmt: skip
    con = connect(settings.db)
    token = access.create_token(con, role="provincial_regulator", scope=None, label="reader",
                                created_by="test", now=datetime.now(UTC))[0]  # fmt: skip
    con.close()
    topic = record_topic(settings, "sale")
    first = [sale_factory(station_id=STATION) for _ in range(20)]
    push_file(settings, broker.bootstrap, "sale", write_jsonl(tmp_path / "first.jsonl", first))
    port, log_path = free_port(), tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "fueltrace", "serve", "--port",
                                    str(port)], env=environment(settings), stdout=log_file,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        # 1. running: the first records are loaded, everything is ready
        wait_for(lambda: metric(port, "fueltrace_records_loaded_total", topic=topic) == 20, 30,
                 "the first 20 sales to be loaded")  # fmt: skip
        wait_for(lambda: readyz(port)[0] == 200, 10, "/readyz 200")
        assert readyz(port)[1] == {"warehouse": True, "broker": True, "ingest": True}
        assert metric(port, "fueltrace_up", component="broker") == 1

        # 2. the broker goes away: not ready, metric 0, alive, back-off, data still served
        broker.stop()
        # scraped alone (no /readyz call sets it): the pipeline itself reports the broker down
        wait_for(lambda: metric(port, "fueltrace_up", component="broker") == 0, 10,
                 'fueltrace_up{component="broker"} 0')  # fmt: skip
        assert metric(port, "fueltrace_up", component="ingest") == 0
        status, checks = readyz(port)
        assert status == 503 and checks == {"warehouse": True, "broker": False, "ingest": False}
        assert call(port, "/healthz")[0] == 200
        assert all(sale_found(port, token, sale) for sale in first)  # kept, and served
        wait_for(lambda: len(log_events(log_path, "ingest interrupted")) >= 4, 15,
                 "four retries")  # fmt: skip
        for _ in range(4):  # it stays down, and says so, on every scrape
            assert metric(port, "fueltrace_up", component="broker") == 0
            time.sleep(0.25)
        assert process.poll() is None
        retries = log_events(log_path, "ingest interrupted")
        assert len(retries) <= 5, retries  # about 8 s away: no tight loop
        assert [r["attempt"] for r in retries[:4]] == [1, 2, 3, 4]
        assert [r["retry_in_s"] for r in retries[:4]] == [1, 2, 4, 8]
        assert all(settings.bootstrap in r["error"] for r in retries)
        gaps = [seconds(b) - seconds(a) for a, b in zip(retries, retries[1:4], strict=False)]
        assert gaps == sorted(gaps) and gaps[-1] > 2 * gaps[0], gaps  # growing back-off
        for gap, announced in zip(gaps, (1, 2, 4), strict=True):
            assert announced - 0.1 <= gap <= announced + 3, gaps  # waited what it said

        # 3. Tansu restarts on the same port, empty: new records, and some sent again
        again = EmbeddedBroker(tmp_path / "again", port=broker.port).start()
        second = [sale_factory(station_id=STATION) for _ in range(15)]
        # 25 messages on the partition whose stored offset is 20: read from offset 20 of
        # the new log, the 15 new records would be skipped
        path = write_jsonl(tmp_path / "second.jsonl", second + first[:10])
        push_file(settings, again.bootstrap, "sale", path)
        wait_for(lambda: metric(port, "fueltrace_records_loaded_total", topic=topic) == 35, 40,
                 "the 15 new sales to be loaded")  # fmt: skip
        wait_for(lambda: metric(port, "fueltrace_duplicates_total", topic=topic) == 10, 10,
                 "the 10 re-sent sales to be counted as duplicates")  # fmt: skip
        wait_for(lambda: readyz(port)[0] == 200, 10, "/readyz 200 again")
        assert readyz(port)[1] == {"warehouse": True, "broker": True, "ingest": True}
        assert metric(port, "fueltrace_up", component="broker") == 1
        assert metric(port, "fueltrace_up", component="ingest") == 1
        assert all(sale_found(port, token, sale) for sale in second)
        time.sleep(2)  # nothing more arrives: each re-sent record counted once
        assert metric(port, "fueltrace_records_loaded_total", topic=topic) == 35
        assert metric(port, "fueltrace_duplicates_total", topic=topic) == 10
        assert process.poll() is None
        recreated = [e for e in log_events(log_path, "topic recreated")
                     if e["partition"].startswith(f"{topic}[")]  # fmt: skip
        assert recreated and {e["action"] for e in recreated} == {"read_from_beginning"}
        assert len(log_events(log_path, "broker back")) == 1
        assert len(log_events(log_path, "ingest interrupted")) <= 6

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        stop_all(process, broker, again)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert text.count("serving at http://") == 1, text[-3000:]  # one process, never restarted
    assert not log_events(log_path, "ingest stopped")
    assert_each_sale_once(settings, 35)
    assert time.monotonic() - started < 90


def stop_all(process: subprocess.Popen[bytes], *brokers: EmbeddedBroker | None) -> None:
    """The end of a broker-away test, whatever happened: the process and both brokers."""
    if process.poll() is None:
        process.kill()
        process.wait(10)
    for broker in brokers:
        if broker is not None:
            broker.stop()


def assert_each_sale_once(settings: Settings, expected: int) -> None:
    with duckdb.connect(str(settings.db), read_only=True) as db:
        assert db.execute("SELECT count(*), count(DISTINCT txn_id) FROM sale").fetchall() == [
            (expected, expected)
        ]
