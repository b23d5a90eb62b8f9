"""`fueltrace push`: JSON lines → schema and rules → Avro → Kafka.

Each line is one record. A bad line is reported with its line number, the field
at fault and why; the good lines are still sent. A record is sent in single-object
encoding, keyed as the SPEC says; with ``batch`` > 1, up to that many records of one
key travel in one message as an Avro object container file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka.producer.future import FutureRecordMetadata

from fueltrace import metrics
from fueltrace.errors import RecordRejected, Where
from fueltrace.settings import Settings
from ingest.codec import encode_container, encode_single
from ingest.frames import to_frame
from ingest.jsonl import convert_record
from ingest.kafka_client import kafka_errors, producer
from ingest.records import SPECS
from ingest.topics import ensure_topics, record_topic
from ingest.validate import validate
from schemas import default_registry


@dataclass(frozen=True)
class LineError:
    where: Where
    reason: str
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}: {self.message}"


@dataclass
class PushResult:
    sent: int = 0  # records acknowledged by the broker
    messages: int = 0
    errors: list[LineError] = field(default_factory=list)


def check_lines(
    record_type: str, lines: Iterable[str], settings: Settings, source: str = "<stdin>"
) -> tuple[list[tuple[int, dict[str, Any]]], list[LineError]]:
    """Parse and check lines; return (line number, datum) of the good ones and errors."""
    schema = default_registry().current(record_type).schema
    good: list[tuple[int, dict[str, Any]]] = []
    errors: list[LineError] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = Where(file=source, line=number)
        try:
            good.append((number, convert_record(json.loads(line), schema)))
        except json.JSONDecodeError as exc:
            errors.append(LineError(where, "malformed_json", None,
                                    f"not JSON: {exc.msg} at column {exc.colno}"))  # fmt: skip
        except RecordRejected as exc:
            errors.append(LineError(where, exc.reason, exc.field, exc.detail))
    if good:
        rows = [{**d, "src_partition": 0, "src_offset": n, "src_index": 0} for n, d in good]
        _, bad = validate(record_type, to_frame(record_type, rows), settings)
        rejected = set()
        for number, reason, fld, detail in bad.select(
            "src_offset", "reason", "field", "detail"
        ).iter_rows():
            rejected.add(number)
            errors.append(LineError(Where(file=source, line=number), reason, fld, detail))
        good = [(n, d) for n, d in good if n not in rejected]
    errors.sort(key=lambda e: e.where.line or 0)
    return good, errors


def push_records(
    settings: Settings, bootstrap: str, record_type: str, records: list[dict[str, Any]],
    batch: int = 1,
) -> int:  # fmt: skip
    """Encode and send checked records; return the number of messages acknowledged."""
    version = default_registry().current(record_type)
    key_field = SPECS[record_type].kafka_key
    topic = record_topic(settings, record_type)
    ensure_topics(settings, bootstrap)
    futures: list[FutureRecordMetadata] = []
    with kafka_errors(bootstrap):
        kafka = producer(settings, bootstrap)
        try:
            if batch <= 1:
                for record in records:
                    value = encode_single(version, record)
                    futures.append(kafka.send(topic, key=record[key_field].encode(), value=value))
            else:
                by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
                for record in records:
                    by_key[record[key_field]].append(record)
                for key, group in by_key.items():
                    for i in range(0, len(group), batch):
                        value = encode_container(version, group[i : i + batch])
                        futures.append(kafka.send(topic, key=key.encode(), value=value))
            kafka.flush(timeout=settings.broker_timeout_s)
            for future in futures:
                future.get(timeout=settings.broker_timeout_s)
        finally:
            kafka.close(timeout=settings.broker_timeout_s)
    metrics.PUSHED.labels(record_type).inc(len(records))
    return len(futures)


def push_file(
    settings: Settings, bootstrap: str, record_type: str, path: Path, batch: int = 1
) -> PushResult:
    """`fueltrace push --type TYPE FILE.jsonl`."""
    if record_type not in SPECS:
        raise RecordRejected("unknown_type", f"--type {record_type!r}: one of {', '.join(SPECS)}")
    with open(path, encoding="utf-8") as handle:
        good, errors = check_lines(record_type, handle, settings, str(path))
    result = PushResult(errors=errors)
    if good:
        result.messages = push_records(
            settings, bootstrap, record_type, [d for _, d in good], batch
        )
        result.sent = len(good)
    return result
