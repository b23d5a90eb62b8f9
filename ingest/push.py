"""`fueltrace push`: JSON lines → schema and rules → Avro → Kafka.

Each line is one record. A bad line is reported with its line number, the field
at fault and why (not UTF-8, a NUL byte, longer than ``MAX_LINE_BYTES``, not JSON, not
an object, the schema, the rules); the good lines are still sent. A file that cannot be
JSON lines at all (UTF-16, compressed, an archive) or holds no record is refused whole,
and one that cannot be opened (missing, a directory) is a usage error. A record is
sent in single-object encoding, keyed as the SPEC says; with ``batch`` > 1, up to that
many records of one key travel in one message as an Avro object container file. The
broker is only looked for when there is something to send.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka.producer.future import FutureRecordMetadata

from fueltrace import metrics
from fueltrace.errors import RecordRejected, UsageError, Where
from fueltrace.settings import Settings
from ingest.codec import encode_container, encode_single
from ingest.frames import to_frame
from ingest.jsonl import convert_record, not_json_lines, parse_json, read_lines
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


Checked = tuple[list[tuple[int, dict[str, Any]]], list[LineError]]


def check_lines(
    record_type: str, lines: Iterable[str], settings: Settings, source: str = "<stdin>"
) -> Checked:
    """Parse and check lines; return (line number, datum) of the good ones and errors."""
    return check_numbered(record_type, enumerate(lines, start=1), settings, source)


def check_numbered(record_type: str, lines: Iterable[tuple[int, str | RecordRejected]],
                   settings: Settings, source: str) -> Checked:  # fmt: skip
    """:func:`check_lines` of numbered lines, some already refused by the reader."""
    schema = default_registry().current(record_type).schema
    good: list[tuple[int, dict[str, Any]]] = []
    errors: list[LineError] = []
    for number, line in lines:
        where = Where(file=source, line=number)
        if isinstance(line, RecordRejected):
            errors.append(LineError(where, line.reason, line.field, line.detail))
            continue
        if not line.strip():
            continue
        try:
            good.append((number, convert_record(parse_json(line), schema)))
        except RecordRejected as exc:
            detail = exc.detail
            if exc.reason == "malformed_json" and not line.endswith("\n"):
                detail += " (the last line has no newline: is the file cut short?)"
            errors.append(LineError(where, exc.reason, exc.field, detail))
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


def check_file(record_type: str, path: Path, settings: Settings) -> Checked:
    """Read and check a JSON-lines file; UsageError when it cannot be opened."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            what = not_json_lines(handle.peek(8)[:8])
            if what is not None:
                return [], [LineError(Where(file=source), "not_json_lines", None,
                                      f"the file is {what}")]  # fmt: skip
            good, errors = check_numbered(record_type, read_lines(handle), settings, source)
    except FileNotFoundError:
        raise UsageError("no such file", where=Where(file=source)) from None
    except IsADirectoryError:
        raise UsageError("a directory, not a JSON-lines file", where=Where(file=source)) from None
    except PermissionError:
        raise UsageError("not readable (permission denied)", where=Where(file=source)) from None
    except OSError as exc:
        raise UsageError(f"cannot be read: {exc.strerror or exc}",
                         where=Where(file=source)) from None  # fmt: skip
    if not good and not errors:
        errors = [LineError(Where(file=source), "empty_file", None,
                            "no records: the file is empty or holds only blank lines")]
    return good, errors


def push_file(
    settings: Settings, bootstrap: str | Callable[[], str], record_type: str, path: Path,
    batch: int = 1,
) -> PushResult:  # fmt: skip
    """`fueltrace push --type TYPE FILE.jsonl`. ``bootstrap`` may be a function: it is
    called only when some line is good, so a file is checked without a broker."""
    if record_type not in SPECS:
        raise RecordRejected("unknown_type", f"--type {record_type!r}: one of {', '.join(SPECS)}")
    good, errors = check_file(record_type, path, settings)
    result = PushResult(errors=errors)
    if good:
        address = bootstrap if isinstance(bootstrap, str) else bootstrap()
        result.messages = push_records(
            settings, address, record_type, [d for _, d in good], batch
        )
        result.sent = len(good)
    return result
