"""The ingest: a consumer group reading every record topic in micro-batches.

One micro-batch: poll until ``batch_max_records`` or ``batch_max_ms`` → decode each
message (``ingest.micro_batch``) → one validated Polars frame per record type →
dead-letter what fails (produced and acknowledged) → load the valid rows, the
dead-letter facts and the next offsets in ONE warehouse transaction.

Loading runs in a background thread while the next batch is polled and decoded
(DuckDB and Polars release the GIL); batches still commit strictly in order, and the
Kafka client is only touched from the polling thread.

On every partition assignment the consumer waits for the load in flight, then seeks
to the offsets stored in the warehouse (or the beginning), so a crash anywhere
neither loses nor duplicates a row. Kafka's own group offsets are committed
afterwards: for tooling, and, with ``FUELTRACE_SCALE_OUT``, as the handover between
workers that each load their own warehouse shard (``docs/scale-out.md``): a partition
moving to another worker starts at the later of that worker's own offset and the
group's, and no load is in flight while the group can rebalance.

kafka-python runs the rebalance listener on its IO thread, which must not block on
Kafka: the listener touches the warehouse and the subscription only, and the polling
thread does the Kafka calls (commits, committed offsets) right after the poll.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from fueltrace import failpoints, metrics
from fueltrace.errors import BrokerUnavailable, WarehouseBusy, WarehouseError, WarehouseFull
from fueltrace.settings import Settings
from ingest import dead_letters
from ingest.kafka_client import consumer as make_consumer
from ingest.kafka_client import kafka_errors, topic_id
from ingest.kafka_client import producer as make_producer
from ingest.micro_batch import MicroBatch
from ingest.records import SPECS
from ingest.topics import dead_letter_topic, record_topics
from schemas import SchemaRegistry, default_registry
from warehouse.load import DEAD_LETTER_SCHEMA, Batch, LoadResult, load_batch, stored_offsets

log = logging.getLogger(__name__)
#: Back-off for what retrying can fix (a load the warehouse cannot take just now; under
#: ``serve``, a broker away): the first wait, doubled after each failed try …
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0  # … up to this
#: Batches handed on and not yet published: one decoding, one loading.
MAX_IN_FLIGHT = 2


#: The cyclic garbage collector's thresholds in an ingest process (CPython's: 700, 10, 10).
#: Every polled message allocates a few container objects (kafka-python's record tuple,
#: ours), so the default ran a young collection every few hundred messages, and an old
#: one — which walks every tracked object, the batch being collected included — every
#: 70 000: the single-record ingest ran 30 % faster with these (bench/README.md).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Collect less often (:data:`GC_THRESHOLDS`). (Not ``gc.freeze``: DuckDB's bindings
    then report their type objects leaked at every exit.)"""
    gc.set_threshold(*GC_THRESHOLDS)


class LoadSkipped(Exception):
    """A batch queued behind one that failed to load: not loaded, re-read on restart."""


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


class _Rebalance(ConsumerRebalanceListener):
    """Hands partitions over on a rebalance (on kafka-python's IO thread: no Kafka IO)."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.ingest.hand_over(set(revoked))

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self.ingest.hand_over(set(lost), lost=True)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.ingest.take_over(set(assigned))


@dataclass
class _InFlight:
    batch: MicroBatch
    future: Future[tuple[Batch, LoadResult]]  # what was loaded, and how


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
        tune_gc()
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
        self.summary = IngestSummary()
        self._topic_of_table = {SPECS[t].table: topic for topic, t in self.topics.items()}
        self._topic_of_type = {t: topic for topic, t in self.topics.items()}
        self._commit_pending: dict[tuple[str, int], int] = {}  # for the polling thread
        self._unpositioned: dict[TopicPartition, int | None] = {}  # scale-out: own offset
        # two stages after the polling thread, one thread each, batches in order: decoding
        # (Polars, fastavro) and loading (DuckDB) overlap, and both release the GIL
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fueltrace-decode")
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fueltrace-load")
        self._in_flight: deque[_InFlight] = deque()  # oldest first; the loader's queue
        self._load_failed = threading.Event()  # set by a failed load, cleared by run()
        self._on_batch: Callable[[IngestSummary], None] | None = None
        # records per message, until measured: as if every message were a full gateway
        # container, so the first poll cannot overshoot batch_max_records
        self._per_message = 500.0
        self.kafka.subscribe(list(self.topics), listener=_Rebalance(self))

    def close(self) -> None:
        self._decoder.shutdown(wait=True)
        self._loader.shutdown(wait=True)
        self.kafka.close(autocommit=False)
        self.producer.close()

    # -- loading (background thread) ---------------------------------------------

    def _decode(self, batch: MicroBatch, now: datetime,
                topic_ids: dict[str, str | None]) -> Batch:  # fmt: skip
        """Decode, validate and normalise the batch (Polars and fastavro): what to load."""
        frames = batch.close(self.settings, now)
        failpoints.hit("decode", self.settings.debug_failpoint)
        letters = pl.DataFrame([x.row() for x in batch.letters], schema=DEAD_LETTER_SCHEMA)
        return Batch(frames, letters, dict(batch.offsets), topic_ids, batch.message_count,
                     batch.record_count)  # fmt: skip

    def _load_decoded(self, batch: MicroBatch, decoded: Future[Batch]
                      ) -> tuple[Batch, LoadResult]:  # fmt: skip
        """In the load thread, the batches in turn, each once its decode is done: once one
        fails (decode or load), the batches queued behind it must not commit (their
        offsets would pass its records): they raise :class:`LoadSkipped` until ``run``
        starts again from the warehouse's offsets."""
        if self._load_failed.is_set():
            raise LoadSkipped("an earlier batch of this run failed to load")
        try:
            loaded = decoded.result()
            return loaded, self._load(batch, loaded)
        except BaseException:
            self._load_failed.set()
            raise

    def _load(self, batch: MicroBatch, loaded: Batch) -> LoadResult:
        if batch.letters:
            with kafka_errors(self.bootstrap):
                dead_letters.send(self.producer, self.dlq_topic, batch.letters)
                self.producer.flush(timeout=self.settings.broker_timeout_s)
        pause_s = self.settings.debug_pause_before_commit_ms / 1000
        try:
            result = load_batch(self.con, self.settings.db, loaded, pause_before_commit_s=pause_s,
                                failpoint=self.settings.debug_failpoint)  # fmt: skip
        except (WarehouseBusy, WarehouseError, WarehouseFull):
            metrics.HEALTHY.labels("warehouse").set(0)
            raise
        metrics.HEALTHY.labels("warehouse").set(1)
        return result

    def _start_load(self, batch: MicroBatch) -> None:
        """Hand the batch to the decode thread and then the load thread, in order, and go
        back to Kafka (single-record messages: unpacking Kafka's records on this thread
        is the bottleneck). At most ``MAX_IN_FLIGHT`` batches are on their way: with that
        many, this thread waits for the oldest (batch messages: the load is the
        bottleneck). The topic ids come from the consumer, which only this thread
        touches."""
        now = self.clock()
        topic_ids = {t: topic_id(self.kafka, t) for t, _ in batch.offsets}
        self._publish_done()
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            self._publish(self._in_flight.popleft(), commit=True)
        decoded = self._decoder.submit(self._decode, batch, now, topic_ids)
        future = self._loader.submit(self._load_decoded, batch, decoded)
        self._in_flight.append(_InFlight(batch, future))

    def _publish_done(self) -> None:
        """Publish the loads at the head of the queue that have finished."""
        while self._in_flight and self._in_flight[0].future.done():
            self._publish(self._in_flight.popleft(), commit=True)

    def finish_load(self, *, commit: bool = True) -> None:
        """Wait for every load in flight, in order; publish each (metrics, Kafka commit).

        ``commit=False`` (the rebalance listener, on kafka-python's IO thread) leaves the
        Kafka commit to the polling thread, right after the poll, and skips the lag update
        and ``on_batch``, which would hold up the group's heartbeats. A load that failed
        raises here, once the loads behind it (which refuse to commit) have ended."""
        while self._in_flight:
            head = self._in_flight.popleft()
            try:
                self._publish(head, commit=commit)
            except BaseException:
                for later in self._in_flight:  # each raises LoadSkipped: nothing committed
                    later.future.exception()
                self._in_flight.clear()
                raise

    def _publish(self, in_flight: _InFlight, *, commit: bool) -> None:
        loaded, result = in_flight.future.result()  # re-raises a load failure here
        failpoints.hit("after_commit", self.settings.debug_failpoint)
        self.summary.add(loaded, result)
        self._observe(in_flight.batch, result, lag=commit)
        if commit:
            self._commit_to_kafka(in_flight.batch.offsets)
        else:
            self._commit_pending.update(in_flight.batch.offsets)
        if self._on_batch and commit:
            self._on_batch(self.summary)

    # -- rebalancing -------------------------------------------------------------

    def hand_over(self, partitions: set[TopicPartition], *, lost: bool = False) -> None:
        """The group takes ``partitions`` away: load what is in flight (the warehouse
        then holds its offsets) and drop the batch being collected, which the next owner
        re-reads. With scale-out no load is in flight here (see ``run``), so every loaded
        offset is already committed to Kafka, where the next owner starts."""
        self.revoked = True
        self.finish_load(commit=False)
        metrics.PARTITIONS_ASSIGNED.set(len(set(self.kafka.assignment()) - partitions))
        for tp in partitions:
            self._unpositioned.pop(tp, None)
            with contextlib.suppress(KeyError):  # no lag reported for it yet
                metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))
        if lost and partitions:
            log.warning("partitions lost count=%d reason=group_membership_expired (the "
                        "next owner re-reads what this process had not committed)",
                        len(partitions))  # fmt: skip

    def _own_offset(self, stored: dict[tuple[str, int], tuple[int, str | None]],
                    tp: TopicPartition) -> int | None:  # fmt: skip
        """The warehouse's next offset for ``tp``; None when it has none or the topic was
        recreated since (a Tansu restart loses everything)."""
        found = stored.get((tp.topic, tp.partition))
        if found is None:
            return None
        current_id = topic_id(self.kafka, tp.topic)
        if found[1] and current_id and found[1] != current_id:
            log.warning(
                "topic recreated partition=\"%s[%d]\" stored_topic_id=%s topic_id=%s "
                "stored_offset=%d action=read_from_beginning (re-sent records are caught "
                "by natural key)", tp.topic, tp.partition, found[1], current_id, found[0],
            )  # fmt: skip
            return None
        return found[0]

    def take_over(self, assigned: set[TopicPartition]) -> None:
        """The group gives this process ``assigned``: position each where the warehouse
        says; with scale-out, pause them until the polling thread has also read the
        group's committed offsets (``_position_from_group``)."""
        self.finish_load(commit=False)  # the warehouse offsets must include the load
        self._position(assigned)
        metrics.PARTITIONS_ASSIGNED.set(len(assigned))
        metrics.REBALANCES.inc()
        log.info("partitions assigned count=%d", len(assigned))

    def _position(self, assigned: set[TopicPartition]) -> None:
        """Seek each of ``assigned`` to the warehouse's next offset (see ``take_over``)."""
        stored = stored_offsets(self.con)
        for tp in assigned:
            own = self._own_offset(stored, tp)
            if self.settings.scale_out:
                self._unpositioned[tp] = own
            elif own is None:
                self.kafka.seek_to_beginning(tp)
            else:
                self.kafka.seek(tp, own)
        if self.settings.scale_out and assigned:
            self.kafka.pause(*assigned)

    def _position_from_group(self) -> None:
        """Scale-out: start each newly assigned partition at the later of this shard's
        offset and the group's committed one (where the previous owner stopped)."""
        pending, self._unpositioned = self._unpositioned, {}
        held = self.kafka.assignment()
        ready = [tp for tp in pending if tp in held]
        moved = 0
        with kafka_errors(self.bootstrap):
            for tp in ready:
                own, group = pending[tp], self.kafka.committed(tp)
                known = [o for o in (own, group) if o is not None]
                if not known:
                    self.kafka.seek_to_beginning(tp)
                    continue
                moved += group is not None and (own is None or group > own)
                self.kafka.seek(tp, max(known))
            self.kafka.resume(*ready)
        log.info("partitions positioned count=%d from_previous_owner=%d", len(ready), moved)

    def _after_poll(self) -> None:
        """Kafka calls the rebalance listener could not make."""
        if self._unpositioned:
            self._position_from_group()
        if self._commit_pending:
            held = {(tp.topic, tp.partition) for tp in self.kafka.assignment()}
            pending, self._commit_pending = self._commit_pending, {}
            self._commit_to_kafka({k: o for k, o in pending.items() if k in held})

    def _observe(self, batch: MicroBatch, result: LoadResult, *, lag: bool = True) -> None:
        for topic, n in batch.messages.items():
            metrics.MESSAGES_CONSUMED.labels(topic).inc(n)
        for topic, n in batch.records.items():
            metrics.RECORDS_CONSUMED.labels(topic).inc(n)
        for table, n in result.loaded.items():
            metrics.RECORDS_LOADED.labels(self._topic_of_table[table]).inc(n)
        for record_type, n in result.duplicates.items():
            metrics.DUPLICATES.labels(self._topic_of_type[record_type]).inc(n)
        for record_type, n in result.conflicts.items():
            metrics.KEY_CONFLICTS.labels(self._topic_of_type[record_type]).inc(n)
        for (topic, reason), n in Counter((x.topic, x.reason) for x in batch.letters).items():
            metrics.RECORDS_REJECTED.labels(topic, reason).inc(n)
        metrics.BATCH_DURATION.observe(time.monotonic() - batch.started)
        metrics.BATCH_RECORDS.observe(batch.record_count)
        metrics.LAST_LOAD.set_to_current_time()
        if lag:  # not on the IO thread: a partition's position may need a Kafka round trip
            self._update_lag()
        log.info(
            "batch loaded load_id=%d records=%d loaded=%d duplicates=%d conflicts=%d "
            "dead_letters=%d", result.load_id, batch.record_count, sum(result.loaded.values()),
            sum(result.duplicates.values()), sum(result.conflicts.values()),
            sum(result.dead_letters.values()),
        )  # fmt: skip

    def _commit_to_kafka(self, offsets: dict[tuple[str, int], int]) -> None:
        """For lag tooling, and the handover between scale-out workers; the warehouse
        already holds the truth for this process."""
        if not offsets:
            return
        try:
            self.kafka.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                               for (t, p), o in offsets.items()})  # fmt: skip
        except KafkaError as exc:
            metrics.OFFSET_COMMIT_FAILURES.inc()
            log.log(logging.WARNING if self.settings.scale_out else logging.INFO,
                    "kafka offset commit failed partitions=%d error=\"%s\" (with scale-out "
                    "the next owner of these partitions re-reads up to one batch)",
                    len(offsets), exc)  # fmt: skip

    # -- progress ----------------------------------------------------------------

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
                f"{len(self._all_partitions() - assignment)} partitions; --until-idle needs "
                "them all — stop the other ingest (scale-out workers run without --until-idle)"
            )

    # -- the loop ----------------------------------------------------------------

    def _poll(self, batch: MicroBatch) -> dict[TopicPartition, list[Any]]:
        try:
            with kafka_errors(self.bootstrap):
                polled: dict[TopicPartition, list[Any]] = self.kafka.poll(
                    timeout_ms=self._poll_timeout_ms(batch), max_records=self._poll_size(batch))
        except BrokerUnavailable:
            metrics.HEALTHY.labels("broker").set(0)
            raise
        metrics.HEALTHY.labels("broker").set(1)
        return polled

    def _poll_timeout_ms(self, batch: MicroBatch) -> int:
        """Block no longer than the batch may wait, and only briefly while a load is in
        flight with nothing new to collect (its commit is what we wait for then)."""
        if batch.messages:
            waited_ms = (time.monotonic() - batch.started) * 1000
            return min(max(int(self.settings.batch_max_ms - waited_ms), 0), 200)
        return 10 if self._in_flight else 200

    def _poll_size(self, batch: MicroBatch) -> int:
        """Messages to ask for, so that a batch stops near ``batch_max_records`` even
        when messages are containers of hundreds of records: estimated from the
        records per message seen so far in this batch."""
        remaining = self.settings.batch_max_records - batch.record_count
        if batch.message_count:
            self._per_message = batch.record_count / batch.message_count
        return max(min(int(remaining / max(self._per_message, 1.0)), remaining), 1)

    def run(
        self, *, until_idle: bool = False, should_stop: Callable[[], bool] = lambda: False,
        on_batch: Callable[[IngestSummary], None] | None = None,
    ) -> IngestSummary:  # fmt: skip
        """Consume and load until stopped (or, with ``until_idle``, until caught up).

        A load the warehouse cannot take just now (disk full, a write conflict) was rolled
        back whole. ``until_idle`` ends with that error; otherwise the load is retried with
        back-off. Every (re)start puts the partitions held back to the offsets the
        warehouse holds: after a failure the consumer has read past records it did not
        load (a caller retrying after a broker error relies on that too)."""
        backoff = RETRY_FIRST_S
        while True:
            self._load_failed.clear()  # nothing in flight: the warehouse's offsets decide
            if held := self.kafka.assignment():
                self._position(set(held))
            batches = self.summary.batches
            try:
                return self._run(until_idle=until_idle, should_stop=should_stop,
                                 on_batch=on_batch)  # fmt: skip
            except (WarehouseBusy, WarehouseFull) as exc:
                if until_idle:
                    raise
                if self.summary.batches > batches:
                    backoff = RETRY_FIRST_S
                log.warning("warehouse load failed error=\"%s\" retry_in_s=%g (rolled back; "
                            "re-read from the warehouse's offsets)", exc, backoff)  # fmt: skip
                waited_until = time.monotonic() + backoff
                while time.monotonic() < waited_until:
                    if should_stop():
                        return self.summary
                    time.sleep(0.1)
                backoff = min(backoff * 2, RETRY_MAX_S)

    def _run(
        self, *, until_idle: bool, should_stop: Callable[[], bool],
        on_batch: Callable[[IngestSummary], None] | None,
    ) -> IngestSummary:  # fmt: skip
        settings = self.settings
        self._on_batch = on_batch
        batch = MicroBatch(self.topics, self.registry)
        last_data = time.monotonic()
        join_s = settings.broker_timeout_s + settings.session_timeout_ms / 1000
        joined_by = time.monotonic() + join_s
        try:
            while not should_stop():
                if settings.scale_out:
                    self.finish_load()  # no load in flight while the group may rebalance
                polled = self._poll(batch)
                self._after_poll()
                if self.revoked:
                    # what was collected is re-read by the partitions' owners; what this
                    # poll returned was fetched at the positions set on assignment
                    self.revoked = False
                    batch = MicroBatch(self.topics, self.registry)
                if polled:
                    if not batch.messages:
                        batch.started = time.monotonic()
                    last_data = time.monotonic()
                    for tp, messages in polled.items():
                        batch.take(tp.topic, tp.partition, messages)
                    self._publish_done()
                full = batch.record_count >= settings.batch_max_records
                due = (time.monotonic() - batch.started) * 1000 >= settings.batch_max_ms
                idle = not polled and until_idle and self.caught_up()
                if batch.messages and (full or due or idle):
                    self._start_load(batch)
                    batch = MicroBatch(self.topics, self.registry)
                    continue
                if not polled:
                    self.finish_load()
                    self._update_lag()
                    if until_idle:
                        if self.caught_up():
                            break
                        self._check_progress(last_data, joined_by)
            if batch.messages and not self.revoked:  # stopped on request: keep what was read
                self._start_load(batch)
        finally:
            self.finish_load()
        return self.summary


def open_ingest(settings: Settings, bootstrap: str, db: Path | None = None) -> Ingest:
    """An :class:`Ingest` over the warehouse at ``db`` (default: settings.db)."""
    from warehouse.connection import connect

    return Ingest(settings, bootstrap,
                  connect(db or settings.db, memory_limit=settings.db_memory_limit))  # fmt: skip
