"""Helpers for tests that talk to the real broker and the warehouse."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from fueltrace.settings import Settings
from ingest.consumer import IngestSummary, open_ingest
from ingest.kafka_client import consumer as make_consumer
from ingest.kafka_client import producer as make_producer
from ingest.topics import dead_letter_topic

BASE_TIME = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run_ingest(settings: Settings) -> IngestSummary:
    """`ingest --until-idle` in-process against the real broker."""
    assert settings.bootstrap
    ingest = open_ingest(settings, settings.bootstrap)
    try:
        return ingest.run(until_idle=True)
    finally:
        ingest.con.close()
        ingest.close()


def produce_raw(settings: Settings, topic: str, values: list[bytes], key: bytes = b"k") -> None:
    assert settings.bootstrap
    kafka = make_producer(settings, settings.bootstrap)
    for value in values:
        kafka.send(topic, key=key, value=value)
    kafka.flush()
    kafka.close()


def read_topic(settings: Settings, topic: str, expected: int, timeout_s: float = 15.0) -> list[Any]:
    """Every message of ``topic`` (until ``expected`` are seen or the timeout)."""
    assert settings.bootstrap
    reader: KafkaConsumer = make_consumer(settings, settings.bootstrap, group_id=None)
    parts = reader.partitions_for_topic(topic) or set()
    reader.assign([TopicPartition(topic, p) for p in parts])
    reader.seek_to_beginning()
    found: list[Any] = []
    deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
    while len(found) < expected and datetime.now(UTC) < deadline:
        for batch in reader.poll(timeout_ms=200).values():
            found.extend(batch)
    reader.close()
    return found


def dead_letters_on_topic(settings: Settings, expected: int) -> list[Any]:
    from ingest.dead_letters import parse

    messages = read_topic(settings, dead_letter_topic(settings), expected)
    return [parse(m.key, m.value, m.headers) for m in messages]


def settings_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """The environment a `fueltrace` subprocess needs to see ``settings``: lists and
    mappings as JSON, which is how pydantic-settings reads them."""
    import json
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FUELTRACE_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            text = json.dumps(value) if isinstance(value, list | dict) else str(value)
            env[f"FUELTRACE_{name.upper()}"] = text
    env.update({k: str(v) for k, v in extra.items()})
    return env
