"""The ingest: a consumer group reading every record topic in micro-batches.

One micro-batch: poll until ``batch_max_records`` or ``batch_max_ms`` → decode each
message (single object or container) → build one Polars frame per record type →
validate → dead-letter what fails (produced and acknowledged) → load the valid
rows, the dead-letter facts and the next offsets in ONE warehouse transaction.

On every partition assignment the consumer seeks to the offsets stored in the
warehouse (or the beginning), so a crash anywhere neither loses nor duplicates a
row. Kafka's own group offsets are committed afterwards, for tooling only.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from fueltrace import metrics
from fueltrace.errors import BrokerUnavailable, RecordRejected
from fueltrace.settings import Settings
from ingest import dead_letters
from ingest.codec import Decoded, decode_message
from ingest.dead_letters import DeadLetter
from ingest.frames import to_frame
from ingest.kafka_client import consumer as make_consumer
from ingest.kafka_client import kafka_errors, topic_id
from ingest.kafka_client import producer as make_producer
from ingest.topics import dead_letter_topic, record_topics
from ingest.validate import validate
from processors.normalize import normalize
from schemas import SchemaRegistry, default_registry
from warehouse.load import DEAD_LETTER_SCHEMA, Batch, LoadResult, load_batch, stored_offsets

log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    """What one run of the ingest did."""

    batches: int = 0
    messages: int = 0
    records: int = 0
    loaded: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    conflicts: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)

    def add(self, batch: Batch, result: LoadResult) -> None:
        self.batches += 1
        self.messages += batch.messages
        self.records += batch.records
        self.loaded.update(result.loaded)
        self.duplicates.update(result.duplicates)
        self.conflicts.update(result.conflicts)
        self.dead_letters.update(result.dead_letters)


class _SeekToWarehouse(ConsumerRebalanceListener):
    """On assignment, position every partition where the warehouse says."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.ingest.revoked = True  # the pending batch is dropped; it will be re-read

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        offsets = stored_offsets(self.ingest.con)
        kafka = self.ingest.kafka
        for tp in assigned:
            stored = offsets.get((tp.topic, tp.partition))
            current_id = topic_id(kafka, tp.topic)
            if stored is None:
                kafka.seek_to_beginning(tp)
            elif stored[1] and current_id and stored[1] != current_id:
                log.warning(
                    "topic recreated partition=\"%s[%d]\" stored_topic_id=%s topic_id=%s "
                    "stored_offset=%d action=read_from_beginning (re-sent records are caught "
                    "by natural key)", tp.topic, tp.partition, stored[1], current_id, stored[0],
                )  # fmt: skip
                kafka.seek_to_beginning(tp)
            else:
                kafka.seek(tp, stored[0])
        log.info("partitions assigned count=%d", len(assigned))


@dataclass
class _Pending:
    """The micro-batch being collected."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    messages: dict[tuple[int, int, str], tuple[bytes | None, bytes, Decoded]] = field(
        default_factory=dict
    )  # (partition, offset, topic) -> key, value, decoded
    letters: list[DeadLetter] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    records: int = 0
    count: int = 0  # messages taken
    started: float = 0.0


class Ingest:
    """Consumes the record topics into the warehouse. One instance per process."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        con: duckdb.DuckDBPyConnection,
        *,
        registry: SchemaRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.con = con
        self.registry = registry or default_registry()
        self.clock = clock
        self.topics = record_topics(settings)
        self.dlq_topic = dead_letter_topic(settings)
        self.kafka: KafkaConsumer = make_consumer(settings, bootstrap)
        self.producer: KafkaProducer = make_producer(settings, bootstrap)
        self.revoked = False
        self.kafka.subscribe(list(self.topics), listener=_SeekToWarehouse(self))

    def close(self) -> None:
        self.kafka.close(autocommit=False)
        self.producer.close()

    # -- collecting ------------------------------------------------------------

    def _take(self, pending: _Pending, topic: str, message: Any) -> None:
        record_type = self.topics[topic]
        metrics.MESSAGES_CONSUMED.labels(topic).inc()
        pending.count += 1
        pending.offsets[(topic, message.partition)] = message.offset + 1
        value = message.value or b""
        try:
            decoded = decode_message(value, record_type, self.registry)
        except RecordRejected as exc:
            pending.letters.append(self._letter(topic, message, -1, exc.reason, exc.detail,
                                                None, value))  # fmt: skip
            pending.records += 1
            metrics.RECORDS_CONSUMED.labels(topic).inc()
            return
        for reject in decoded.rejects:
            letter = self._letter(topic, message, reject.index, reject.reason, reject.detail,
                                  reject.field, reject.raw)  # fmt: skip
            pending.letters.append(letter)
        for record in decoded.records:
            record["src_partition"] = message.partition
            record["src_offset"] = message.offset
        pending.rows[record_type].extend(decoded.records)
        pending.records += len(decoded.records) + len(decoded.rejects)
        metrics.RECORDS_CONSUMED.labels(topic).inc(len(decoded.records) + len(decoded.rejects))
        pending.messages[(message.partition, message.offset, topic)] = (
            message.key, value, decoded,
        )  # fmt: skip

    def _letter(
        self, topic: str, message: Any, index: int, reason: str, detail: str,
        fld: str | None, raw: bytes,
    ) -> DeadLetter:  # fmt: skip
        log.warning(
            "dead letter partition=\"%s[%d]\" offset=%d record_index=%d reason=%s detail=%r",
            topic, message.partition, message.offset, index, reason, detail,
        )  # fmt: skip
        return DeadLetter(topic, message.partition, message.offset, index, self.topics[topic],
                          reason, fld, detail, message.key, raw)  # fmt: skip

    # -- one batch -------------------------------------------------------------

    def _validate(self, pending: _Pending) -> dict[str, pl.DataFrame]:
        frames: dict[str, pl.DataFrame] = {}
        now = self.clock()
        topic_of = {t: topic for topic, t in self.topics.items()}
        for record_type, rows in pending.rows.items():
            valid, bad = validate(record_type, to_frame(record_type, rows), self.settings, now)
            frames[record_type] = normalize(record_type, valid)
            topic = topic_of[record_type]
            for p, o, i, reason, fld, detail in bad.select(
                "src_partition", "src_offset", "src_index", "reason", "field", "detail"
            ).iter_rows():
                key, value, decoded = pending.messages[(p, o, topic)]
                position = next(n for n, r in enumerate(decoded.records) if r["src_index"] == i)
                raw = decoded.record_bytes(position, value)
                letter = DeadLetter(topic, p, o, i, record_type, reason, fld, detail, key, raw)
                log.warning(
                    "dead letter partition=\"%s[%d]\" offset=%d record_index=%d reason=%s "
                    "field=%s detail=%r", topic, p, o, i, reason, fld, detail,
                )  # fmt: skip
                pending.letters.append(letter)
        return frames

    def _flush(self, pending: _Pending, summary: IngestSummary) -> None:
        frames = self._validate(pending)
        if pending.letters:
            with kafka_errors(self.bootstrap):
                dead_letters.send(self.producer, self.dlq_topic, pending.letters)
                self.producer.flush(timeout=self.settings.broker_timeout_s)
        letters = pl.DataFrame([x.row() for x in pending.letters], schema=DEAD_LETTER_SCHEMA)
        topic_ids = {t: topic_id(self.kafka, t) for t, _ in pending.offsets}
        batch = Batch(frames, letters, pending.offsets, topic_ids, pending.count, pending.records)
        result = load_batch(
            self.con, self.settings.db, batch,
            pause_before_commit_s=self.settings.debug_pause_before_commit_ms / 1000,
        )  # fmt: skip
        summary.add(batch, result)
        self._observe(pending, result)
        self._commit_to_kafka(pending.offsets)

    def _observe(self, pending: _Pending, result: LoadResult) -> None:
        for table, n in result.loaded.items():
            metrics.RECORDS_LOADED.labels(table).inc(n)
        for record_type, n in result.duplicates.items():
            metrics.DUPLICATES.labels(record_type).inc(n)
        for record_type, n in result.conflicts.items():
            metrics.KEY_CONFLICTS.labels(record_type).inc(n)
        for letter in pending.letters:
            metrics.RECORDS_REJECTED.labels(letter.topic, letter.reason).inc()
        metrics.BATCH_DURATION.observe(time.monotonic() - pending.started)
        metrics.BATCH_RECORDS.observe(pending.records)
        metrics.LAST_LOAD.set_to_current_time()
        log.info(
            "batch loaded load_id=%d records=%d loaded=%d duplicates=%d conflicts=%d "
            "dead_letters=%d", result.load_id, pending.records, sum(result.loaded.values()),
            sum(result.duplicates.values()), sum(result.conflicts.values()),
            sum(result.dead_letters.values()),
        )  # fmt: skip

    def _commit_to_kafka(self, offsets: dict[tuple[str, int], int]) -> None:
        """Best effort, for lag tooling: the warehouse already holds the truth."""
        try:
            self.kafka.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                               for (t, p), o in offsets.items()})  # fmt: skip
        except KafkaError as exc:
            log.info("kafka offset commit skipped error=%s", exc)

    # -- the loop ----------------------------------------------------------------

    def caught_up(self) -> bool:
        """This process holds every partition of the record topics and has read each
        up to its fetch high-water mark.

        Holding *every* partition matters: after a crash the dead member keeps its
        partitions until its session times out, and "caught up on what I hold"
        would end an ``--until-idle`` run early.
        """
        assignment = self.kafka.assignment()
        if not assignment or assignment != self._all_partitions():
            return False
        for tp in assignment:
            high = self.kafka.highwater(tp)
            if high is None or self.kafka.position(tp) < high:
                return False
        return True

    def _all_partitions(self) -> set[TopicPartition]:
        return {
            TopicPartition(topic, p)
            for topic in self.topics
            for p in self.kafka.partitions_for_topic(topic) or ()
        }

    def _update_lag(self) -> None:
        for tp in self.kafka.assignment():
            high = self.kafka.highwater(tp)
            if high is not None:
                lag = max(high - self.kafka.position(tp), 0)
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)

    def _check_progress(self, last_data: float, joined_by: float) -> None:
        """In ``--until-idle``: raise when waiting longer cannot help."""
        settings = self.settings
        assignment = self.kafka.assignment()
        now = time.monotonic()
        if not assignment and now > joined_by:
            raise BrokerUnavailable(
                f"could not join consumer group {settings.group_id!r} at {self.bootstrap} "
                f"within {settings.broker_timeout_s} s"
            )
        quiet_s = now - last_data
        unknown = [tp for tp in assignment if self.kafka.highwater(tp) is None]
        if unknown and quiet_s > settings.broker_timeout_s:
            raise BrokerUnavailable(
                f"no fetch answer from {self.bootstrap} for {len(unknown)} partitions "
                f"in {settings.broker_timeout_s} s"
            )
        if assignment != self._all_partitions() and quiet_s > settings.broker_timeout_s + 3 * (
            settings.session_timeout_ms / 1000
        ):
            raise BrokerUnavailable(
                f"other members of group {settings.group_id!r} hold "
                f"{len(self._all_partitions() - assignment)} partitions; one warehouse has "
                "one ingest process — stop the other one"
            )

    def run(
        self, *, until_idle: bool = False, should_stop: Callable[[], bool] = lambda: False,
        on_batch: Callable[[IngestSummary], None] | None = None,
    ) -> IngestSummary:  # fmt: skip
        """Consume and load until stopped (or, with ``until_idle``, until caught up)."""
        summary = IngestSummary()
        settings = self.settings
        pending = _Pending(started=time.monotonic())
        last_data = time.monotonic()
        join_s = settings.broker_timeout_s + settings.session_timeout_ms / 1000
        joined_by = time.monotonic() + join_s
        while not should_stop():
            elapsed_ms = (time.monotonic() - pending.started) * 1000
            wait_ms = max(int(settings.batch_max_ms - elapsed_ms), 0) if pending.count else 200
            with kafka_errors(self.bootstrap):
                polled = self.kafka.poll(
                    timeout_ms=min(wait_ms, 200),
                    # small polls, so a batch of container messages is cut near its bound
                    max_records=max(min(settings.batch_max_records - pending.records, 500), 1),
                )
            if self.revoked:
                self.revoked = False
                pending = _Pending(started=time.monotonic())
                continue
            if polled:
                if not pending.count:
                    pending.started = time.monotonic()
                last_data = time.monotonic()
                for tp, messages in polled.items():
                    for message in messages:
                        self._take(pending, tp.topic, message)
            self._update_lag()
            full = pending.records >= settings.batch_max_records
            due = (time.monotonic() - pending.started) * 1000 >= settings.batch_max_ms
            idle = until_idle and not polled and self.caught_up()
            if pending.count and (full or due or idle):
                self._flush(pending, summary)
                pending = _Pending(started=time.monotonic())
                if on_batch:
                    on_batch(summary)
                continue
            if until_idle and not polled:
                if self.caught_up():
                    break
                self._check_progress(last_data, joined_by)
        if pending.count and not self.revoked:  # stopped on request: keep what was read
            self._flush(pending, summary)
        return summary


def open_ingest(settings: Settings, bootstrap: str, db: Path | None = None) -> Ingest:
    """An :class:`Ingest` over the warehouse at ``db`` (default: settings.db)."""
    from warehouse.connection import connect

    return Ingest(settings, bootstrap, connect(db or settings.db))
