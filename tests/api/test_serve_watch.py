"""The running pipeline (`fueltrace serve`, `fueltrace ingest`) says when the consumer group
leaves it without partitions."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest

from fueltrace import pipeline
from fueltrace.settings import Settings


class _Kafka:
    def __init__(self) -> None:
        self.held: set[str] = set()

    def assignment(self) -> set[str]:
        return self.held


def test_a_process_without_partitions_warns_until_it_gets_some(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pipeline, "NO_PARTITIONS_WARN_S", 0.0)
    kafka = _Kafka()
    ingest = SimpleNamespace(kafka=kafka, topics={"a": "sale", "b": "delivery"})
    running = pipeline.Pipeline(Settings(group_id="g1"), ingest, threading.Event(),  # type: ignore[arg-type]
                                lambda: None)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger=pipeline.__name__):
        running._watch_assignment()
        assert "no partitions assigned" in caplog.text and "group=g1" in caplog.text
        caplog.clear()
        kafka.held = {"a-0"}
        running._watch_assignment()
        assert caplog.text == ""
