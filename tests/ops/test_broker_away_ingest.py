"""Broker away under a running `fueltrace ingest` (no `--until-idle`): the same pipeline as
`fueltrace serve` (fueltrace.pipeline), so a Tansu that restarts empty is noticed.

Before the ingest ran the pipeline, kafka-python reconnected to the restarted broker on
its own and went on fetching at the old positions in the new, empty log: records sent
after the restart at offsets below the stored ones were skipped for good (2 runs in 11).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fueltrace.settings import Settings
from ingest.embedded_broker import EmbeddedBroker, free_port
from ingest.push import push_file
from ingest.topics import record_topic
from tests.api.test_serve import environment, wait_for
from tests.helpers import write_jsonl
from tests.ops.test_broker_away import (
    STATION,
    assert_each_sale_once,
    log_events,
    metric,
    stop_all,
)

pytestmark = pytest.mark.broker


def test_a_running_ingest_rereads_a_restarted_empty_broker_from_the_beginning(
    tmp_path: Path, settings_factory: Callable[..., Settings],
    sale_factory: Callable[..., dict[str, Any]],
) -> None:  # fmt: skip
    broker = EmbeddedBroker(tmp_path / "broker").start()
    again: EmbeddedBroker | None = None
    port = free_port()
    settings = settings_factory(broker.bootstrap, broker_timeout_s=3.0, analysis_interval_s=1.0,
                                log_level="INFO", log_format="json", metrics_port=port)  # fmt: skip
    topic = record_topic(settings, "sale")
    first = [sale_factory(station_id=STATION) for _ in range(20)]
    push_file(settings, broker.bootstrap, "sale", write_jsonl(tmp_path / "first.jsonl", first))
    log_path = tmp_path / "ingest.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "fueltrace", "ingest"],
                                   env=environment(settings), stdout=log_file,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        loaded = lambda: metric(port, "fueltrace_records_loaded_total", topic=topic)  # noqa: E731
        wait_for(lambda: loaded() == 20, 30, "the first 20 sales to be loaded")
        broker.stop()
        wait_for(lambda: metric(port, "fueltrace_up", component="broker") == 0, 10,
                 'fueltrace_up{component="broker"} 0')  # fmt: skip
        assert process.poll() is None  # it waits for the broker, it does not exit
        again = EmbeddedBroker(tmp_path / "again", port=broker.port).start()
        second = [sale_factory(station_id=STATION) for _ in range(15)]
        # 25 messages on the partition whose stored offset is 20: read from there, the
        # 15 new records would be skipped
        path = write_jsonl(tmp_path / "second.jsonl", second + first[:10])
        push_file(settings, again.bootstrap, "sale", path)
        wait_for(lambda: loaded() == 35, 40, "the 15 new sales to be loaded")
        wait_for(lambda: metric(port, "fueltrace_duplicates_total", topic=topic) == 10, 10,
                 "the 10 re-sent sales to be counted as duplicates")  # fmt: skip
        assert metric(port, "fueltrace_up", component="broker") == 1
        assert len(log_events(log_path, "broker back")) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        stop_all(process, again, broker)
    assert_each_sale_once(settings, 35)
