"""One micro-batch being collected: decoded rows per record type, dead letters, offsets.

``take`` decodes a partition's polled messages (single objects on a lean path,
containers in one C loop); ``close`` turns the rows into validated, normalised Polars
frames and turns every rejected record into a dead letter carrying its own bytes.
Counters are kept here and published once per batch, not once per message.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from fueltrace.errors import RecordRejected
from fueltrace.settings import Settings
from ingest.codec import SINGLE_OBJECT_MAGIC, Decoded, decode_message, decode_single
from ingest.dead_letters import DeadLetter
from ingest.frames import to_frame
from ingest.validate import validate
from processors.normalize import normalize
from schemas import SchemaRegistry

log = logging.getLogger(__name__)


@dataclass
class MicroBatch:
    """Messages taken since the last load, decoded."""

    topics: dict[str, str]  # topic -> record type
    registry: SchemaRegistry
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    polled: dict[tuple[str, int], list[Any]] = field(default_factory=lambda: defaultdict(list))
    containers: dict[tuple[str, int, int], Decoded] = field(default_factory=dict)
    letters: list[DeadLetter] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset to read
    messages: Counter[str] = field(default_factory=Counter)  # per topic
    records: Counter[str] = field(default_factory=Counter)  # per topic
    started: float = field(default_factory=time.monotonic)

    @property
    def message_count(self) -> int:
        return sum(self.messages.values())

    @property
    def record_count(self) -> int:
        return sum(self.records.values())

    def take(self, topic: str, partition: int, messages: list[Any]) -> None:
        """Decode the messages one partition returned from a poll."""
        record_type = self.topics[topic]
        rows = self.rows[record_type]
        registry = self.registry
        records = 0
        for message in messages:
            value = message.value or b""
            try:
                if value[:2] == SINGLE_OBJECT_MAGIC:
                    record = decode_single(value, record_type, registry)
                    record["src_partition"] = partition
                    record["src_offset"] = message.offset
                    record["src_index"] = 0
                    rows.append(record)
                    records += 1
                    continue
                decoded = decode_message(value, record_type, registry)
            except RecordRejected as exc:
                self._letter(topic, message, -1, exc.reason, exc.detail, None, value)
                records += 1
                continue
            for reject in decoded.rejects:
                self._letter(topic, message, reject.index, reject.reason, reject.detail,
                             reject.field, reject.raw)  # fmt: skip
            for record in decoded.records:
                record["src_partition"] = partition
                record["src_offset"] = message.offset
            rows.extend(decoded.records)
            records += len(decoded.records) + len(decoded.rejects)
            self.containers[(topic, partition, message.offset)] = decoded
        self.polled[(topic, partition)].extend(messages)
        self.offsets[(topic, partition)] = messages[-1].offset + 1
        self.messages[topic] += len(messages)
        self.records[topic] += records

    def _letter(self, topic: str, message: Any, index: int, reason: str, detail: str,
                fld: str | None, raw: bytes) -> None:  # fmt: skip
        log.warning(
            "dead letter partition=\"%s[%d]\" offset=%d record_index=%d reason=%s field=%s "
            "detail=%r", topic, message.partition, message.offset, index, reason, fld, detail,
        )  # fmt: skip
        self.letters.append(DeadLetter(topic, message.partition, message.offset, index,
                                       self.topics[topic], reason, fld, detail, message.key,
                                       raw))  # fmt: skip

    def _message(self, topic: str, partition: int, offset: int) -> Any:
        polled = self.polled[(topic, partition)]
        i = bisect.bisect_left(polled, offset, key=lambda m: m.offset)
        return polled[i]

    def close(self, settings: Settings, now: datetime) -> dict[str, pl.DataFrame]:
        """Validated, normalised frames per record type; rejects become dead letters."""
        frames: dict[str, pl.DataFrame] = {}
        topic_of = {t: topic for topic, t in self.topics.items()}
        for record_type, rows in self.rows.items():
            valid, bad = validate(record_type, to_frame(record_type, rows), settings, now)
            frames[record_type] = normalize(record_type, valid)
            topic = topic_of[record_type]
            for p, o, i, reason, fld, detail in bad.select(
                "src_partition", "src_offset", "src_index", "reason", "field", "detail"
            ).iter_rows():
                message = self._message(topic, p, o)
                container = self.containers.get((topic, p, o))
                raw = container.record_bytes(i) if container else message.value
                self._letter(topic, message, i, reason, detail, fld, raw)
        return frames
