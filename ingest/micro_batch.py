"""One micro-batch being collected: decoded rows per record type, dead letters, offsets.

``take`` files a partition's polled messages: single objects and containers written
with the current schema go to the fast path (``ingest.avro_frames``: all of a batch's
decoded at once in Rust straight into Polars frames, verified byte for byte); anything
else — or everything, if the fast frame cannot be trusted — is decoded record by record
with fastavro. ``close`` turns everything into validated, normalised frames and every
rejected record into a dead letter carrying its own bytes; nothing a message holds can
make it raise (a timestamp beyond the calendar is refused before the rules format it).
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
from ingest.avro_frames import container_blocks_of, read_blocks, size_of
from ingest.codec import (
    CONTAINER_MAGIC,
    SINGLE_OBJECT_MAGIC,
    Decoded,
    container_writer,
    decode_message,
    decode_single,
)
from ingest.dead_letters import DeadLetter, clean_detail
from ingest.frames import to_frame
from ingest.validate import validate
from processors.normalize import normalize
from schemas import SchemaRegistry

log = logging.getLogger(__name__)

# A timestamp or date must lie in the years 1–9999 to be compared or shown at all: Polars
# panics formatting one beyond its calendar (any long decodes as a timestamp).
_MS = (-62_135_596_800_000, 253_402_300_799_999)  # 0001-01-01 … 9999-12-31T23:59:59.999
_DAYS = (-719_162, 2_932_896)  # the same, in days
_YEARS = "outside the years 1–9999"
_BAD_SCHEMA = {"src_partition": pl.Int32(), "src_offset": pl.Int64(), "src_index": pl.Int32(),
               "reason": pl.String(), "field": pl.String(), "detail": pl.String()}  # fmt: skip


def _outside(value: pl.Expr, dtype: Any) -> tuple[pl.Expr, pl.Expr, str] | None:
    """(out of the years 1–9999, the raw number, its unit) for a temporal value, else None."""
    if isinstance(dtype, pl.Datetime):
        (low, high), unit, raw = _MS, "ms", value.cast(pl.Int64)
    elif isinstance(dtype, pl.Date):
        (low, high), unit, raw = _DAYS, "days", value.cast(pl.Int32).cast(pl.Int64)
    else:
        return None
    return (raw < low) | (raw > high), raw, unit


def _uncalendared(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split off the rows holding a timestamp or date outside the years 1–9999, before
    the rules (which compare and format them) run: (the rest, those as rejects).

    A timestamp beyond the range is ``timestamp_in_future``, any other
    ``timestamp_implausible``, as the rules would say if they could."""
    checks: list[tuple[pl.Expr, pl.Expr, str, pl.Expr]] = []  # broken, reason, field, detail
    for name, dtype in frame.schema.items():
        top = _outside(pl.col(name), dtype)
        if top is not None:
            broken, raw, unit = top
            reason = pl.when(raw > 0).then(pl.lit("timestamp_in_future"))
            detail = pl.format(f"{name} = {{}} {unit} since 1970-01-01: {_YEARS}", raw)
            checks.append((broken, reason.otherwise(pl.lit("timestamp_implausible")), name,
                           detail))  # fmt: skip
        if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
            for f in dtype.inner.fields:
                inner = _outside(pl.element().struct.field(f.name), f.dtype)
                if inner is None:
                    continue
                broken, raw, unit = inner
                value = pl.col(name).list.eval(raw.filter(broken)).list.first()
                detail = pl.format(f"{name}[].{f.name} = {{}} {unit} since 1970-01-01: "
                                   f"{_YEARS}", value)  # fmt: skip
                within = pl.col(name).list.eval(broken).list.any()
                checks.append((within, pl.lit("timestamp_implausible"), f"{name}.{f.name}",
                               detail))  # fmt: skip
    if not checks or frame.is_empty():
        return frame, pl.DataFrame(schema=_BAD_SCHEMA)
    flags = [broken.fill_null(False) for broken, _, _, _ in checks]
    flagged = frame.with_columns(_broken=pl.any_horizontal(flags))

    def first(values: list[pl.Expr]) -> pl.Expr:  # of the first check broken
        expr = pl.lit(None, pl.String)
        for broken, value in zip(reversed(flags), reversed(values), strict=True):
            expr = pl.when(broken).then(value).otherwise(expr)
        return expr

    bad = flagged.filter(pl.col("_broken")).select(
        "src_partition", "src_offset", "src_index",
        reason=first([reason for _, reason, _, _ in checks]),
        field=first([pl.lit(fld) for _, _, fld, _ in checks]),
        detail=first([detail for _, _, _, detail in checks]),
    )  # fmt: skip
    return flagged.filter(~pl.col("_broken")).drop("_broken"), bad


_HEADER = len(SINGLE_OBJECT_MAGIC) + 8  # a single object's marker and schema fingerprint


@dataclass
class _Pending:
    """Messages of the current schema waiting to be read together on the fast path:
    single objects (one block of one record) and containers (their blocks)."""

    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # records per message
    # a container's blocks as (records, bytes); a single object as its whole message
    blocks: list[tuple[int, bytes] | bytes] = field(default_factory=list)
    containers: dict[int, bytes] = field(default_factory=dict)  # position -> message

    def add(self, partition: int, offset: int, blocks: list[tuple[int, bytes]],
            container: bytes) -> int:  # fmt: skip
        """A container's blocks; returns its records."""
        self.containers[len(self.offsets)] = container
        self.partitions.append(partition)
        self.offsets.append(offset)
        records = 0
        for n, _ in blocks:
            records += n
        self.counts.append(records)
        self.blocks.extend(blocks)
        return records

    def add_singles(self, partition: int, offsets: list[int], values: list[bytes]) -> None:
        """Single objects (one record each), filed in bulk: at one message a record, this
        is the polling thread's hottest loop. Their 10-byte headers are cut off later, in
        :meth:`datums` (on the load thread)."""
        self.partitions.extend([partition] * len(offsets))
        self.offsets.extend(offsets)
        self.counts.extend([1] * len(offsets))
        self.blocks.extend(values)  # no tuple per message: allocations here cost GC time

    def datums(self) -> list[tuple[int, bytes]]:
        """(records, their bytes) per block, for :func:`ingest.avro_frames.read_blocks`."""
        return [(1, b[_HEADER:]) if isinstance(b, bytes) else b for b in self.blocks]


@dataclass
class MicroBatch:
    """Messages taken since the last load."""

    topics: dict[str, str]  # topic -> record type
    registry: SchemaRegistry
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    frames: dict[str, list[pl.DataFrame]] = field(default_factory=lambda: defaultdict(list))
    pending: dict[str, _Pending] = field(default_factory=lambda: defaultdict(_Pending))
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
        pending = self.pending[record_type]
        records = 0
        head = SINGLE_OBJECT_MAGIC + fast if fast else None
        offsets: list[int] = []  # single objects of the current schema, filed in bulk
        values: list[bytes] = []
        for message in messages:
            value = message.value or b""
            if head is not None and value.startswith(head):
                offsets.append(message.offset)
                values.append(value)
                continue
            if offsets:  # keep the pending messages in offset order
                pending.add_singles(partition, offsets, values)
                records += len(offsets)
                offsets, values = [], []
            blocks = self._current_blocks(record_type, value) if fast else None
            if blocks is not None:
                records += pending.add(partition, message.offset, blocks, value)
                continue
            records += self._take_one(topic, record_type, partition, message, value)
        if offsets:
            pending.add_singles(partition, offsets, values)
            records += len(offsets)
        self.polled[(topic, partition)].extend(messages)
        self.offsets[(topic, partition)] = messages[-1].offset + 1
        self.messages[topic] += len(messages)
        self.records[topic] += records

    def _current_blocks(self, record_type: str, value: bytes) -> list[tuple[int, bytes]] | None:
        """A container of the current schema: its blocks for the fast path (framing
        checked), else None."""
        if value[:4] != CONTAINER_MAGIC:
            return None
        current = self.registry.current(record_type)
        try:
            writer, registered = container_writer(value, self.registry)
        except RecordRejected:
            return None
        if not registered or writer is not current:
            return None
        return container_blocks_of(current, value)

    def _take_one(self, topic: str, record_type: str, partition: int, message: Any,
                  value: bytes) -> int:  # fmt: skip
        """The strict path for one message: record by record, isolating what is bad."""
        try:
            if value[:2] == SINGLE_OBJECT_MAGIC:
                record = decode_single(value, record_type, self.registry)
                record.update(src_partition=partition, src_offset=message.offset, src_index=0)
                self.rows[record_type].append(record)
                return 1
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

    def _letter(self, topic: str, message: Any, index: int, reason: str, detail: str,
                fld: str | None, raw: bytes) -> None:  # fmt: skip
        detail = clean_detail(detail)
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

    def _read_pending(self, topic: str, record_type: str) -> None:
        """All messages of the current schema at once; if the frame cannot be trusted,
        each message on the strict path (which finds the bad one)."""
        pending = self.pending.pop(record_type, None)
        if not pending or not pending.offsets:
            return
        current = self.registry.current(record_type)
        frame = read_blocks(current, pending.datums())
        if frame is None:
            for p, o in zip(pending.partitions, pending.offsets, strict=True):
                message = self._message(topic, p, o)
                self._take_one(topic, record_type, p, message, message.value)
            return
        owner = pl.Series([k for k, n in enumerate(pending.counts) for _ in range(n)])
        self.frames[record_type].append(frame.with_columns(
            src_partition=pl.Series(pending.partitions, dtype=pl.Int32).gather(owner),
            src_offset=pl.Series(pending.offsets, dtype=pl.Int64).gather(owner),
            src_index=pl.Series([i for n in pending.counts for i in range(n)], dtype=pl.Int32),
        ))  # fmt: skip
        framing = SINGLE_OBJECT_MAGIC + current.fingerprint
        for k, value in pending.containers.items():
            self.containers[(topic, pending.partitions[k], pending.offsets[k])] = Decoded(
                container=True, message=value, framing=framing,
                context=(record_type, self.registry),
            )  # fmt: skip

    def close(self, settings: Settings, now: datetime) -> dict[str, pl.DataFrame]:
        """Validated, normalised frames per record type; rejects become dead letters."""
        out: dict[str, pl.DataFrame] = {}
        topic_of = {t: topic for topic, t in self.topics.items()}
        for record_type in list(self.pending):
            self._read_pending(topic_of[record_type], record_type)
        for record_type in set(self.rows) | set(self.frames):
            parts = list(self.frames.get(record_type, []))
            if self.rows.get(record_type):
                parts.append(to_frame(record_type, self.rows[record_type]))
            if not parts:  # only containers that held no readable record
                continue
            frame = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
            frame, uncalendared = _uncalendared(frame)
            valid, bad = validate(record_type, frame, settings, now)
            out[record_type] = normalize(record_type, valid)
            topic = topic_of[record_type]
            for p, o, i, reason, fld, detail in pl.concat(
                [uncalendared, bad.select(list(_BAD_SCHEMA))], how="vertical_relaxed"
            ).iter_rows():
                message = self._message(topic, p, o)
                container = self.containers.get((topic, p, o))
                raw = container.record_bytes(i) if container else message.value
                self._letter(topic, message, i, reason, detail, fld, raw)
        return out
