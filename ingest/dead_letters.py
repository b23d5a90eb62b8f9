"""The dead-letter topic: rejected bytes with where they came from and why.

A dead letter's value is the original bytes (the whole message, or for one record
of a batch message that record's own Avro datum behind a single-object header);
its key is the original key; its headers say where and why:

``fueltrace.topic``, ``fueltrace.partition``, ``fueltrace.offset``,
``fueltrace.record_index`` (-1 for the whole message), ``fueltrace.record_type``,
``fueltrace.reason`` (see ``ingest.reasons``), ``fueltrace.field``, ``fueltrace.detail``.

Dead letters are produced and acknowledged *before* the warehouse commits the
batch, so none is lost; a crash between the two re-sends them (at-least-once,
unique by topic/partition/offset/record_index). The ``dead_letter`` table holds the
same facts exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

PREFIX = "fueltrace."
#: Characters of ``detail`` kept: it explains the reject, the value carries the bytes.
MAX_DETAIL = 2000


def clean_detail(detail: str) -> str:
    """``detail`` as a header and a table can carry it: UTF-8 (a lone surrogate, which a
    JSON escape in a bad container schema can put in an error message, is escaped) and
    at most :data:`MAX_DETAIL` characters."""
    text = detail.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    record_index: int
    record_type: str
    reason: str
    field: str | None
    detail: str
    key: bytes | None
    value: bytes

    def headers(self) -> list[tuple[str, bytes]]:
        items: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "record_index": self.record_index,
            "record_type": self.record_type,
            "reason": self.reason,
            "field": self.field or "",
            "detail": self.detail,
        }
        return [(PREFIX + k, str(v).encode()) for k, v in items.items()]

    def row(self) -> dict[str, Any]:
        """The ``dead_letter`` table row."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "record_index": self.record_index,
            "record_type": self.record_type,
            "reason": self.reason,
            "field": self.field,
            "detail": self.detail,
            "message_key": self.key.decode(errors="replace") if self.key is not None else None,
        }


def send(producer: KafkaProducer, topic: str, letters: list[DeadLetter]) -> None:
    """Produce dead letters; the caller flushes before committing the batch."""
    for letter in letters:
        producer.send(topic, key=letter.key, value=letter.value, headers=letter.headers())


def parse(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> DeadLetter:
    """A consumed dead-letter message back as a :class:`DeadLetter`."""
    h = {k[len(PREFIX) :]: v.decode() for k, v in headers if k.startswith(PREFIX)}
    return DeadLetter(
        topic=h["topic"],
        partition=int(h["partition"]),
        offset=int(h["offset"]),
        record_index=int(h["record_index"]),
        record_type=h["record_type"],
        reason=h["reason"],
        field=h["field"] or None,
        detail=h["detail"],
        key=key,
        value=value,
    )
