"""Thin kafka-python wrappers, and the one place Kafka client errors are translated.

Everything speaks the plain Kafka protocol so the same code runs against the
embedded Tansu and a real Apache Kafka cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.coordinator.base import BaseCoordinator
from kafka.errors import KafkaError, RetriableError

from fueltrace.errors import BrokerUnavailable, NoBrokerConfigured, TerminalError
from fueltrace.settings import Settings
from ingest.embedded_broker import running_address


def resolve_bootstrap(settings: Settings) -> str:
    """FUELTRACE_BOOTSTRAP, else the running embedded broker, else say what to do."""
    if settings.bootstrap:
        return settings.bootstrap
    address = running_address(settings.state_dir)
    if address:
        return address
    raise NoBrokerConfigured(
        f"no Kafka broker: FUELTRACE_BOOTSTRAP is unset and no embedded broker runs "
        f"(none recorded in {settings.state_dir}/broker.json). Start one in another terminal "
        "with `fueltrace broker`, or set FUELTRACE_BOOTSTRAP=host:port"
    )


def translate(exc: KafkaError, bootstrap: str) -> BrokerUnavailable | TerminalError:
    """A kafka-python error as a fueltrace error that says whether to retry."""
    if isinstance(exc, RetriableError) or getattr(exc, "retriable", False):
        return BrokerUnavailable(
            f"Kafka broker at {bootstrap} is not answering ({type(exc).__name__}: {exc}); "
            "is it running? (`fueltrace broker` starts the embedded one)"
        )
    return TerminalError(f"Kafka at {bootstrap}: {type(exc).__name__}: {exc}")


@contextmanager
def kafka_errors(bootstrap: str) -> Iterator[None]:
    try:
        yield
    except KafkaError as exc:
        raise translate(exc, bootstrap) from exc


def _common(settings: Settings, bootstrap: str) -> dict[str, Any]:
    timeout_ms = int(settings.broker_timeout_s * 1000)
    return {
        "bootstrap_servers": bootstrap.split(","),
        "client_id": "fueltrace",
        "request_timeout_ms": max(timeout_ms, 5000),
        "bootstrap_timeout_ms": timeout_ms,
        "reconnect_backoff_max_ms": 2000,
    }


@contextmanager
def admin_client(settings: Settings, bootstrap: str) -> Iterator[KafkaAdminClient]:
    with kafka_errors(bootstrap):
        admin = KafkaAdminClient(**_common(settings, bootstrap))
    try:
        yield admin
    finally:
        admin.close()


def producer(settings: Settings, bootstrap: str, **overrides: Any) -> KafkaProducer:
    """acks=all and idempotence-safe retries: an acknowledged record is on the broker."""
    options = {
        **_common(settings, bootstrap),
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_request_size": 16 * 1024 * 1024,
        "max_block_ms": int(settings.broker_timeout_s * 1000),
        "retries": 5,
        **overrides,
    }
    with kafka_errors(bootstrap):
        return KafkaProducer(**options)


class _FinishedJoin:
    """A JoinGroup+SyncGroup attempt that finished while no ``poll()`` was waiting for it,
    shown to ``join_group_async`` as still running so that it takes the outcome."""

    is_done = False  # what join_group_async checks before starting a new attempt

    def __init__(self, task: Any) -> None:
        self._task = task

    def add_callback(self, f: Callable[[Any], None]) -> _FinishedJoin:
        self._task.add_callback(f)  # the task is done: called at once (on success)
        return self

    def add_errback(self, f: Callable[[BaseException], None]) -> _FinishedJoin:
        self._task.add_errback(f)  # … or this one, on failure
        return self

    def __await__(self) -> Generator[Any, None, Any]:
        return self._task.__await__()  # done: returns or raises without waiting


def _keep_finished_joins() -> None:
    """Work around kafka-python 3.0.12 dropping a finished group join.

    The join (JoinGroup, then SyncGroup) runs as a task on kafka-python's IO thread;
    ``poll()`` waits for it at most its own timeout, and the next ``poll()`` re-awaits it.
    But if the task finished *between* two polls, ``join_group_async`` sees it done and
    sends a new JoinGroup, throwing the assignment away. Tansu holds every JoinGroup for
    half the session timeout (1 s in the tests): when the ingest's work between its short
    polls (analyses, the broker check) keeps covering the moment the answer arrives, each
    round is thrown away and the next one lands in the same place — after a broker
    restart serve logged "partitions lost", then "no partitions assigned" for good, and a
    fresh consumer fell into the same loop. Here a finished task is handed back to
    ``join_group_async`` as one still running, so it awaits it (at once) and uses the
    assignment, or handles the error, exactly as if a poll had been waiting."""
    original = BaseCoordinator.join_group_async
    if getattr(original, "_keeps_finished_joins", False):
        return

    async def join_group_async(self: Any, timeout_ms: Any = None) -> Any:
        task = getattr(self, "_join_task", None)
        if task is not None and task.is_done:
            self._join_task = _FinishedJoin(task)
        return await original(self, timeout_ms)

    join_group_async._keeps_finished_joins = True  # type: ignore[attr-defined]
    BaseCoordinator.join_group_async = join_group_async


def consumer(settings: Settings, bootstrap: str, **overrides: Any) -> KafkaConsumer:
    """Manual commits only: the warehouse, not Kafka, holds the authoritative offsets."""
    _keep_finished_joins()
    options = {
        **_common(settings, bootstrap),
        "group_id": settings.group_id,
        "enable_auto_commit": False,
        # a subscribed consumer's metadata request must not recreate a lost topic with the
        # broker's default partition count (Tansu: 4) before ensure_topics makes it with
        # FUELTRACE_PARTITIONS
        "allow_auto_create_topics": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_records": settings.batch_max_records,
        "fetch_max_bytes": 64 * 1024 * 1024,
        "max_partition_fetch_bytes": 16 * 1024 * 1024,
        **overrides,
    }
    with kafka_errors(bootstrap):
        return KafkaConsumer(**options)


def topic_id(kafka: KafkaConsumer, topic: str) -> str | None:
    """The broker's id of ``topic`` from the consumer's metadata, if the broker has ids.

    kafka-python keeps it on the consumer's cluster metadata; reading it is kept here,
    the one place that knows the client's internals.
    """
    cluster = getattr(kafka, "_cluster", None)
    found = cluster.topic_id(topic) if cluster is not None else None
    return str(found) if found is not None and found.int != 0 else None
