"""One micro-batch being collected: decoded rows per record type, dead letters, offsets.

``take`` files a partition's polled messages: single objects and containers written
with the current schema go to the fast path (``ingest.avro_frames``: decoded in Rust
straight into Polars frames, verified byte for byte); anything else is decoded record by
record with fastavro. ``close`` turns everything into validated, normalised frames and
every rejected record into a dead letter carrying its own bytes. Counters are kept
here and published once per batch, not once per message.
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
from ingest.avro_frames import read_container, read_single_objects, size_of
from ingest.codec import (
    CONTAINER_MAGIC,
    SINGLE_OBJECT_MAGIC,
    Decoded,
    container_writer,
    decode_message,
    decode_single,
)
from ingest.dead_letters import DeadLetter
from ingest.frames import to_frame
from ingest.validate import validate
from processors.normalize import normalize
from schemas import SchemaRegistry

log = logging.getLogger(__name__)


@dataclass
class _Singles:
    """Single-object messages of the current schema, waiting to be read together."""

    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)


@dataclass
class MicroBatch:
    """Messages taken since the last load."""

    topics: dict[str, str]  # topic -> record type
    registry: SchemaRegistry
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    frames: dict[str, list[pl.DataFrame]] = field(default_factory=lambda: defaultdict(list))
    singles: dict[str, _Singles] = field(default_factory=lambda: defaultdict(_Singles))
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

    def _fast(self, record_type: str) -> bytes | None:
        """The fingerprint the fast path takes for this type, if it takes any."""
        current = self.registry.current(record_type)
        return current.fingerprint if size_of(current) is not None else None

    def take(self, topic: str, partition: int, messages: list[Any]) -> None:
        """File the messages one partition returned from a poll."""
        record_type = self.topics[topic]
        fast = self._fast(record_type)
        singles = self.singles[record_type]
        records = 0
        for message in messages:
            value = message.value or b""
            if value[:2] == SINGLE_OBJECT_MAGIC and value[2:10] == fast:
                singles.partitions.append(partition)
                singles.offsets.append(message.offset)
                singles.values.append(value)
                records += 1
                continue
            records += self._take_one(topic, record_type, partition, message, value)
        self.polled[(topic, partition)].extend(messages)
        self.offsets[(topic, partition)] = messages[-1].offset + 1
        self.messages[topic] += len(messages)
        self.records[topic] += records

    def _take_one(self, topic: str, record_type: str, partition: int, message: Any,
                  value: bytes) -> int:  # fmt: skip
        """The strict path for one message (and the fast one for a whole container)."""
        try:
            if value[:2] == SINGLE_OBJECT_MAGIC:
                record = decode_single(value, record_type, self.registry)
                record.update(src_partition=partition, src_offset=message.offset, src_index=0)
                self.rows[record_type].append(record)
                return 1
            if value[:4] == CONTAINER_MAGIC and self._container_frame(
                topic, record_type, partition, message.offset, value
            ):
                return self.frames[record_type][-1].height
            decoded = decode_message(value, record_type, self.registry)
        except RecordRejected as exc:
            self._letter(topic, message, -1, exc.reason, exc.detail, None, value)
            return 1
        for reject in decoded.rejects:
            self._letter(topic, message, reject.index, reject.reason, reject.detail,
                         reject.field, reject.raw)  # fmt: skip
        for record in decoded.records:
            record["src_partition"] = partition
            record["src_offset"] = message.offset
        self.rows[record_type].extend(decoded.records)
        self.containers[(topic, partition, message.offset)] = decoded
        return len(decoded.records) + len(decoded.rejects)

    def _container_frame(self, topic: str, record_type: str, partition: int, offset: int,
                         value: bytes) -> bool:  # fmt: skip
        writer, registered = container_writer(value, self.registry)
        if not registered or writer is not self.registry.current(record_type):
            return False
        frame = read_container(writer, value)
        if frame is None:
            return False
        self.frames[record_type].append(frame.with_columns(
            src_partition=pl.lit(partition, pl.Int32), src_offset=pl.lit(offset, pl.Int64),
            src_index=pl.int_range(frame.height, dtype=pl.Int32),
        ))  # fmt: skip
        self.containers[(topic, partition, offset)] = Decoded(
            container=True, message=value, framing=SINGLE_OBJECT_MAGIC + writer.fingerprint,
            context=(record_type, self.registry),
        )  # fmt: skip
        return True

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

    def _read_singles(self, topic: str, record_type: str) -> None:
        """All single objects of the current schema at once; if the frame cannot be
        trusted, each message on the strict path (which finds the bad one)."""
        singles = self.singles.pop(record_type, None)
        if not singles or not singles.values:
            return
        frame = read_single_objects(self.registry.current(record_type),
                                    [v[10:] for v in singles.values])  # fmt: skip
        if frame is not None:
            self.frames[record_type].append(frame.with_columns(
                src_partition=pl.Series(singles.partitions, dtype=pl.Int32),
                src_offset=pl.Series(singles.offsets, dtype=pl.Int64),
                src_index=pl.lit(0, pl.Int32),
            ))  # fmt: skip
            return
        for p, o in zip(singles.partitions, singles.offsets, strict=True):
            message = self._message(topic, p, o)
            self._take_one(topic, record_type, p, message, message.value)

    def close(self, settings: Settings, now: datetime) -> dict[str, pl.DataFrame]:
        """Validated, normalised frames per record type; rejects become dead letters."""
        out: dict[str, pl.DataFrame] = {}
        topic_of = {t: topic for topic, t in self.topics.items()}
        for record_type in list(self.singles):
            self._read_singles(topic_of[record_type], record_type)
        for record_type in set(self.rows) | set(self.frames):
            parts = list(self.frames.get(record_type, []))
            if self.rows.get(record_type):
                parts.append(to_frame(record_type, self.rows[record_type]))
            frame = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
            valid, bad = validate(record_type, frame, settings, now)
            out[record_type] = normalize(record_type, valid)
            topic = topic_of[record_type]
            for p, o, i, reason, fld, detail in bad.select(
                "src_partition", "src_offset", "src_index", "reason", "field", "detail"
            ).iter_rows():
                message = self._message(topic, p, o)
                container = self.containers.get((topic, p, o))
                raw = container.record_bytes(i) if container else message.value
                self._letter(topic, message, i, reason, detail, fld, raw)
        return out
