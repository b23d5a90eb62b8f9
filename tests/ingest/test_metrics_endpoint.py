"""A running `fueltrace ingest` serves /metrics with real counts and stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fueltrace.settings import Settings
from ingest.embedded_broker import free_port
from ingest.push import push_file
from ingest.topics import record_topic
from tests.helpers import produce_raw, write_jsonl
from tests.ops.tools import env_for

pytestmark = pytest.mark.broker


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("fueltrace_"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_count_what_the_ingest_did(
    settings: Settings, tmp_path: Path, sale_factory: Callable[..., Any]
) -> None:
    port = free_port()
    settings = settings.model_copy(update={"metrics_port": port})
    assert settings.bootstrap
    push_file(settings, settings.bootstrap, "sale",
              write_jsonl(tmp_path / "s.jsonl", [sale_factory() for _ in range(30)]))  # fmt: skip
    topic = record_topic(settings, "sale")
    produce_raw(settings, topic, [b"junk", b"junk2"])
    process = subprocess.Popen([sys.executable, "-m", "fueltrace", "ingest"],
                               env=env_for(settings), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        loaded_key = f'fueltrace_records_loaded_total{{topic="{topic}"}}'
        samples: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                samples = scrape(port)
            except OSError:
                samples = {}
            if samples.get(loaded_key) == 30:
                break
            time.sleep(0.2)
        assert samples.get(loaded_key) == 30
        rejected = f'fueltrace_records_rejected_total{{reason="malformed_message",topic="{topic}"}}'
        assert samples[rejected] == 2
        assert samples['fueltrace_batch_duration_seconds_count'] >= 1
        assert samples[f'fueltrace_records_consumed_total{{topic="{topic}"}}'] == 32
        lag = [v for k, v in samples.items() if k.startswith("fueltrace_consumer_lag_messages")]
        assert lag and max(lag) == 0
        assert samples['fueltrace_up{component="broker"}'] == 1
        assert samples['fueltrace_up{component="warehouse"}'] == 1
        assert samples["fueltrace_partitions_assigned"] == 7 * settings.partitions
        assert samples["fueltrace_last_load_timestamp_seconds"] > time.time() - 60
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
