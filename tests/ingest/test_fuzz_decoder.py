"""Fuzzing the decoding path of the consumer (``ingest.micro_batch``), no broker.

Random bytes and damaged Avro — valid single-object and container messages of every
record type with bytes flipped, cut, added, wrong fingerprints, huge length prefixes —
are taken by a micro-batch between good messages, as a poll returns them. Whatever the
input: nothing raises out of it, every message is accounted for (its records loaded or
dead-lettered, by index, with a known reason and its topic, partition and offset), the
good messages around it load untouched, and the fast path (Polars, messages read
together) says exactly what the strict path (fastavro, record by record) says.

Damage whose right answer is known is checked against that answer; each bug the fuzzer
found has a regression test with its minimal input at the end.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import subprocess
import sys
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import fastavro
import polars as pl
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st

from fueltrace.settings import Settings
from ingest.codec import encode_single
from ingest.dead_letters import DeadLetter
from ingest.jsonl import convert_record
from ingest.micro_batch import MicroBatch
from ingest.reasons import REASONS
from schemas import RECORD_TYPES, SchemaRegistry, SchemaVersion
from simulator import generate_province

NOW = datetime(2026, 11, 22, tzinfo=UTC)  # after the simulated window (2026-11-20, 1 day)
SETTINGS = Settings(db=Path("unused.duckdb"), metrics_port=0)
TOPICS = {f"fuzz.{t}": t for t in RECORD_TYPES}
TOPIC = {t: topic for topic, t in TOPICS.items()}
PARTITION = 3
FIRST_OFFSET = 1000
#: ``FUZZ_SCALE=100`` multiplies the examples and draws them at random (a longer campaign);
#: by default the bounded set is the same every run, so the suite stays fast and stable.
FUZZ_SCALE = int(os.environ.get("FUZZ_SCALE", "1"))


def fuzz(examples: int) -> Callable[[Any], Any]:
    return fuzz_settings(
        max_examples=examples * FUZZ_SCALE, deadline=None, derandomize=FUZZ_SCALE == 1,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )  # fmt: skip


def _newer(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as a newer producer has it: one more field, defaulted."""
    newer = copy.deepcopy(schema)
    newer["fields"].append({"name": "gateway_note", "type": ["null", "string"], "default": None})
    return newer


REGISTRY = SchemaRegistry.from_directory()
CURRENT = {t: REGISTRY.current(t) for t in RECORD_TYPES}
NEWER = {t: REGISTRY.register(_newer(CURRENT[t].schema)) for t in RECORD_TYPES}


# -- running a micro-batch -------------------------------------------------------------


@dataclass(frozen=True)
class Polled:
    """What kafka-python's ConsumerRecord gives the micro-batch."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Outcome:
    """What one micro-batch made of its messages, by offset."""

    rows: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    letters: dict[int, list[DeadLetter]] = field(default_factory=lambda: defaultdict(list))

    def of(self, offset: int) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
        """(rows without their offset, sorted (record index, reason)) of one message."""
        rows = [{k: v for k, v in r.items() if k != "src_offset"} for r in self.rows[offset]]
        return rows, sorted((x.record_index, x.reason) for x in self.letters[offset])


def _as_is(record_type: str, frame: pl.DataFrame) -> pl.DataFrame:
    return frame


def consume(record_type: str, values: list[bytes | None], *, strict: bool = False) -> Outcome:
    """One micro-batch of ``values`` (offsets FIRST_OFFSET…) as the consumer runs it;
    ``strict``: with the fast path turned off, every message read record by record."""
    topic = TOPIC[record_type]
    batch = MicroBatch(TOPICS, REGISTRY)
    batch.take(topic, PARTITION, [Polled(topic, PARTITION, FIRST_OFFSET + i, b"ST-1", v)
                                  for i, v in enumerate(values)])  # fmt: skip
    # normalising (standard volumes, ``processors``) only adds columns to valid rows, and
    # costs a tenth of a second a call for dispatches and deliveries: left out here
    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch("ingest.micro_batch.normalize", _as_is))
        if strict:
            patches.enter_context(mock.patch("ingest.micro_batch.read_blocks", return_value=None))
        frames = batch.close(SETTINGS, NOW)
    outcome = Outcome()
    frame = frames.get(record_type)
    if frame is not None:
        for row in frame.sort("src_offset", "src_index").iter_rows(named=True):
            outcome.rows[row["src_offset"]].append(row)
    for letter in batch.letters:
        outcome.letters[letter.offset].append(letter)
    return outcome


# -- good messages ---------------------------------------------------------------------


@cache
def pool(record_type: str) -> list[dict[str, Any]]:
    """Simulated records of a type that load without a reject, as Avro datums."""
    province = generate_province(stations=3, depots=1, days=1.0)
    schema = CURRENT[record_type].schema
    records = [convert_record(r, schema) for r in province[record_type][:40]]
    values = [encode_single(CURRENT[record_type], r) for r in records]
    loaded = consume(record_type, list(values), strict=True)
    good = [r for i, r in enumerate(records) if not loaded.letters[FIRST_OFFSET + i]]
    assert len(good) >= 2, f"the simulator made too few clean {record_type} records"
    return good


def container_of(version: SchemaVersion, datums: list[bytes], codec: str = "null") -> bytes:
    """A container of one block holding ``datums`` (each one record's Avro bytes)."""
    out = io.BytesIO()
    fastavro.writer(out, version.writer, [], codec=codec)
    header = out.getvalue()
    body = b"".join(datums)
    if codec == "deflate":
        deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = deflate.compress(body) + deflate.flush()
    return header + zigzag(len(datums)) + zigzag(len(body)) + body + header[-16:]


@st.composite
def good_messages(draw: st.DrawFn, record_type: str, *, form: str | None = None
                  ) -> tuple[bytes, list[dict[str, Any]]]:  # fmt: skip
    """A valid message of ``record_type`` (a single object, or a container of one block
    or of one record a block), and the records it holds."""
    records = pool(record_type)
    picked = draw(st.lists(st.integers(0, len(records) - 1), min_size=1, max_size=4,
                           unique=True))  # fmt: skip
    chosen = [records[i] for i in picked]
    form = form or draw(st.sampled_from(["single", "null", "deflate", "blocks"]))
    if draw(st.booleans()):  # a newer producer: the strict path resolves it
        version = NEWER[record_type]
        chosen = [{**r, "gateway_note": draw(st.none() | st.text(max_size=5))} for r in chosen]
    else:
        version = CURRENT[record_type]
    if form == "single":
        return encode_single(version, chosen[0]), chosen[:1]
    if form == "blocks":  # fastavro's own writer, one record a block
        out = io.BytesIO()
        fastavro.writer(out, version.writer, chosen, codec="deflate", sync_interval=1)
        return out.getvalue(), chosen
    datums = [encode_single(version, r)[10:] for r in chosen]
    return container_of(version, datums, form), chosen


# -- damage ----------------------------------------------------------------------------


def zigzag(n: int) -> bytes:
    z, out = (n << 1) ^ (n >> 63), bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    return bytes([*out, z])


HUGE = st.sampled_from([2**31, 2**40, 2**62, -(2**62), -1, 10**9, 2**63 - 1])
Mutation = Callable[[bytes], bytes]


@st.composite
def mutations(draw: st.DrawFn, size: int) -> Mutation:
    """One way of damaging a message of ``size`` bytes."""
    kind = draw(st.sampled_from(["flip", "set", "cut", "append", "insert", "delete",
                                 "huge", "fingerprint"]))  # fmt: skip
    at = draw(st.integers(0, max(size - 1, 0)))
    if kind == "flip":
        bit = draw(st.integers(0, 7))
        return lambda b: b[:at] + bytes([b[at] ^ (1 << bit)]) + b[at + 1 :]
    if kind == "set":
        byte = draw(st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF]))
        return lambda b: b[:at] + bytes([byte]) + b[at + 1 :]
    if kind == "cut":
        return lambda b: b[:at]
    extra = draw(st.binary(min_size=1, max_size=12))
    if kind == "append":
        return lambda b: b + extra
    if kind == "insert":
        return lambda b: b[:at] + extra + b[at:]
    if kind == "delete":
        n = draw(st.integers(1, 8))
        return lambda b: b[:at] + b[at + n :]
    if kind == "huge":  # a varint (a length, a count, an index) set huge
        value = zigzag(draw(HUGE))
        return lambda b: b[:at] + value + b[at + 1 :]
    fingerprint = draw(st.binary(min_size=8, max_size=8)
                       | st.sampled_from([v.fingerprint for v in CURRENT.values()]))  # fmt: skip
    return lambda b: b[:2] + fingerprint + b[10:] if b[:2] == b"\xc3\x01" else b


@st.composite
def damaged_messages(draw: st.DrawFn, record_type: str) -> bytes:
    value, _ = draw(good_messages(record_type))
    for _ in range(draw(st.integers(1, 3))):
        if value:
            value = draw(mutations(len(value)))(value)
    return value


# -- what holds for every message ------------------------------------------------------


def check_accounted(outcome: Outcome, offset: int, value: bytes | None) -> None:
    """Every record of the message is loaded or dead-lettered, once; each dead letter
    says what and where; a letter for the whole message carries the whole message."""
    rows, letters = outcome.rows[offset], outcome.letters[offset]
    indices = [r["src_index"] for r in rows] + [x.record_index for x in letters]
    assert len(indices) == len(set(indices)), f"a record both loaded and rejected: {indices}"
    if -1 in indices:
        assert not rows and len(letters) == 1
    else:  # records 0…k (a corrupt block ends the message at the last index)
        assert sorted(indices) == list(range(len(indices)))
    if value and value[:2] == b"\xc3\x01" and -1 not in indices:
        assert indices == [0]
    for letter in letters:
        assert letter.reason in REASONS and letter.detail
        assert (letter.topic, letter.partition, letter.offset) == (TOPIC[letter.record_type],
                                                                   PARTITION, offset)  # fmt: skip
        assert letter.key == b"ST-1"
        for _, text in letter.headers():
            text.decode()  # headers a producer can send
        if letter.record_index == -1:
            assert letter.value == (value or b"")


def check_good(outcome: Outcome, offset: int, records: list[dict[str, Any]], id_field: str
               ) -> None:  # fmt: skip
    """A good message is loaded whole and never dead-lettered."""
    assert not outcome.letters[offset], [(x.reason, x.detail) for x in outcome.letters[offset]]
    assert [r[id_field] for r in outcome.rows[offset]] == [r[id_field] for r in records]


def first_field(record_type: str) -> str:
    return str(CURRENT[record_type].schema["fields"][0]["name"])


# -- the properties --------------------------------------------------------------------


@fuzz(300)
@given(data=st.data(), record_type=st.sampled_from(RECORD_TYPES))
def test_damaged_avro_among_good_messages(data: st.DataObject, record_type: str) -> None:
    before, before_records = data.draw(good_messages(record_type), "before")
    bad = data.draw(damaged_messages(record_type), "damaged")
    after, after_records = data.draw(good_messages(record_type), "after")

    outcome = consume(record_type, [before, bad, after])

    key = first_field(record_type)
    check_good(outcome, FIRST_OFFSET, before_records, key)
    check_good(outcome, FIRST_OFFSET + 2, after_records, key)
    check_accounted(outcome, FIRST_OFFSET + 1, bad)
    # the batch's path (fast, unless the damage sent it all to the strict one) says what
    # the strict path says of the message alone
    alone = consume(record_type, [bad], strict=True)
    assert outcome.of(FIRST_OFFSET + 1) == alone.of(FIRST_OFFSET)


@fuzz(300)
@given(
    record_type=st.sampled_from(RECORD_TYPES),
    prefix=st.sampled_from([b"", b"\xc3\x01", b"Obj\x01"]),
    body=st.binary(max_size=300),
    known_fingerprint=st.booleans(),
)
def test_random_bytes_never_raise(
    record_type: str, prefix: bytes, body: bytes, known_fingerprint: bool
) -> None:
    if prefix == b"\xc3\x01" and known_fingerprint:
        prefix += CURRENT[record_type].fingerprint
    value = prefix + body
    outcome = consume(record_type, [value, None])

    check_accounted(outcome, FIRST_OFFSET, value)
    assert outcome.of(FIRST_OFFSET) == consume(record_type, [value], strict=True).of(FIRST_OFFSET)
    assert [(x.record_index, x.reason) for x in outcome.letters[FIRST_OFFSET + 1]] == [
        (-1, "malformed_message")  # a tombstone (no value)
    ]
    if value[:2] != b"\xc3\x01" and value[:4] != b"Obj\x01":
        assert outcome.of(FIRST_OFFSET)[1] == [(-1, "malformed_message")]


# -- damage whose right answer is known ------------------------------------------------


def reasons_of(record_type: str, value: bytes) -> list[tuple[int, str]]:
    fast = consume(record_type, [value]).of(FIRST_OFFSET)
    assert fast == consume(record_type, [value], strict=True).of(FIRST_OFFSET)
    return fast[1]


@fuzz(150)
@given(data=st.data(), record_type=st.sampled_from(RECORD_TYPES))
def test_bytes_added_or_cut_are_always_found(data: st.DataObject, record_type: str) -> None:
    value, _ = data.draw(good_messages(record_type, form=data.draw(st.sampled_from(
        ["single", "null", "deflate"]))))  # fmt: skip
    extra = data.draw(st.binary(min_size=1, max_size=20))
    added = reasons_of(record_type, value + extra)
    assert added and all(r == "malformed_avro" for _, r in added)

    if value[:2] == b"\xc3\x01":
        cut = value[: data.draw(st.integers(0, len(value) - 1))]
        expected = "malformed_message" if len(cut) < 10 else "malformed_avro"
        assert reasons_of(record_type, cut) == [(-1, expected)]
    else:  # a container cut anywhere but right after its header (an empty container)
        header_end = value.index(value[-16:]) + 16
        at = data.draw(st.integers(0, len(value) - 1).filter(lambda n: n != header_end))
        assert reasons_of(record_type, value[:at])


@fuzz(100)
@given(data=st.data(), record_type=st.sampled_from(RECORD_TYPES))
def test_a_block_that_miscounts_its_records_is_refused(
    data: st.DataObject, record_type: str
) -> None:
    form = data.draw(st.sampled_from(["null", "deflate"]))
    value, records = data.draw(good_messages(record_type, form=form))
    header_end = value.index(value[-16:]) + 16  # one block: count, size, records, sync
    count_end = header_end + len(zigzag(len(records)))
    claimed = data.draw(st.integers(0, 2**62).filter(lambda n: n != len(records)))
    reasons = reasons_of(record_type, value[:header_end] + zigzag(claimed) + value[count_end:])
    assert reasons and reasons[-1] == (min(claimed, len(records)), "malformed_avro")


@fuzz(100)
@given(
    record_type=st.sampled_from(RECORD_TYPES),
    writer=st.sampled_from(["unknown", "other type"]),
    fingerprint=st.binary(min_size=8, max_size=8),
)
def test_a_wrong_fingerprint_is_named(record_type: str, writer: str, fingerprint: bytes) -> None:
    value = encode_single(CURRENT[record_type], pool(record_type)[0])
    if writer == "other type":
        other = RECORD_TYPES[(RECORD_TYPES.index(record_type) + 1) % len(RECORD_TYPES)]
        fingerprint, expected = CURRENT[other].fingerprint, "wrong_record_type"
    else:
        expected = "unknown_fingerprint"
        if REGISTRY.by_fingerprint(fingerprint) is not None:
            return
    assert reasons_of(record_type, value[:2] + fingerprint + value[10:]) == [(-1, expected)]


@fuzz(100)
@given(data=st.data(), length=HUGE)
def test_a_huge_string_length_is_malformed(data: st.DataObject, length: int) -> None:
    record_type = data.draw(st.sampled_from(RECORD_TYPES))
    value, _ = data.draw(good_messages(record_type, form="single"))
    damaged = value[:10] + zigzag(length) + value[11:]  # the first field's (an id's) length
    assert reasons_of(record_type, damaged) == [(-1, "malformed_avro")]


@fuzz(60)
@given(byte=st.integers(2, 255), form=st.sampled_from(["single", "null", "deflate"]))
def test_a_boolean_byte_other_than_0_or_1_is_malformed(byte: int, form: str) -> None:
    """Avro allows 0 or 1; fastavro reads any other byte as true, Polars as false."""
    record = pool("delivery")[0]
    false = encode_single(CURRENT["delivery"], {**record, "seals_intact": False})
    true = encode_single(CURRENT["delivery"], {**record, "seals_intact": True})
    (at,) = [i for i in range(len(false)) if false[i] != true[i]]
    damaged = false[:at] + bytes([byte]) + false[at + 1 :]
    if form == "single":
        value, index = damaged, -1
    else:
        value, index = container_of(CURRENT["delivery"], [true[10:], damaged[10:]], form), 1
    assert reasons_of("delivery", value) == [(index, "malformed_avro")]
    (letter,) = consume("delivery", [value]).letters[FIRST_OFFSET]
    assert "seals_intact" in letter.detail and f"{byte:#04x}" in letter.detail


# -- regressions: each bug the fuzzer found, with its minimal input --------------------


def sale_container(n: int = 3) -> tuple[bytes, int]:
    """A null-codec container of ``n`` sales in one block, and where its count starts."""
    version = CURRENT["sale"]
    value = container_of(version, [encode_single(version, r)[10:] for r in pool("sale")[:n]])
    return value, value.index(value[-16:]) + 16


def both_paths(record_type: str, value: bytes) -> tuple[list[Any], list[tuple[int, str]]]:
    fast = consume(record_type, [value]).of(FIRST_OFFSET)
    assert fast == consume(record_type, [value], strict=True).of(FIRST_OFFSET)
    return fast


def test_a_lowered_block_count_no_longer_drops_the_records_after_it() -> None:
    """Was: every path read the 2 records the block claimed and dropped the third,
    unseen (its bytes were simply left over)."""
    value, at = sale_container(3)
    rows, letters = both_paths("sale", value[:at] + zigzag(2) + value[at + 1 :])
    assert [r["src_index"] for r in rows] == [0, 1] and letters == [(2, "malformed_avro")]
    (letter,) = consume("sale", [value[:at] + zigzag(2) + value[at + 1 :]]).letters[FIRST_OFFSET]
    assert "left in a block" in letter.detail and letter.value[:4] == b"Obj\x01"


def test_bytes_after_the_last_block_are_no_longer_ignored() -> None:
    """Was: the Polars path loaded the three records and ignored the byte after them."""
    value, _ = sale_container(3)
    rows, letters = both_paths("sale", value + b"\xff")
    assert len(rows) == 3 and letters == [(3, "malformed_avro")]


def test_a_huge_block_count_no_longer_aborts_the_process() -> None:
    """Was: Polars sized its buffers by the count a block claims (10**14 records in 200
    bytes) and the failed allocation aborted the whole process, every restart anew."""
    code = f"""if True:
        from tests.ingest.test_fuzz_decoder import consume, sale_container, zigzag
        value, at = sale_container(3)
        outcome = consume("sale", [value[:at] + zigzag(10**14) + value[at + 1:]])
        print(outcome.of({FIRST_OFFSET})[1])
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[(3, 'malformed_avro')]"


def test_a_boolean_byte_2_no_longer_reads_differently_by_path() -> None:
    """Was: seals_intact = 0x02 loaded as false from the Polars path and as true from
    fastavro's, so the stored value depended on the message's neighbours."""
    record = {**pool("delivery")[0], "seals_intact": False}
    false = encode_single(CURRENT["delivery"], record)
    true = encode_single(CURRENT["delivery"], {**record, "seals_intact": True})
    (at,) = [i for i in range(len(false)) if false[i] != true[i]]
    assert both_paths("delivery", false[:at] + b"\x02" + false[at + 1 :]) == (
        [], [(-1, "malformed_avro")]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("record_type", "path", "value", "reason", "fld"),
    [
        ("sale", ("started_at",), 2**63 - 1, "timestamp_in_future", "started_at"),
        ("vapor", ("measured_at",), -(2**63), "timestamp_implausible", "measured_at"),
        ("tank_reading", ("read_at",), 9 * 10**15, "timestamp_in_future", "read_at"),
        ("facility", ("licences", 0, "valid_until"), 2**31 - 1, "timestamp_implausible",
         "licences.valid_until"),
    ],
)  # fmt: skip
def test_a_timestamp_beyond_the_calendar_is_a_dead_letter_not_a_panic(
    record_type: str, path: tuple[Any, ...], value: int, reason: str, fld: str
) -> None:
    """Was: Polars panicked formatting the value for the rules' detail, out of
    ``MicroBatch.close``: the ingest died and re-read the same message on restart."""
    record = copy.deepcopy(pool(record_type)[0])
    inner: Any = record
    for step in path[:-1]:
        inner = inner[step]
    inner[path[-1]] = value
    encoded = encode_single(CURRENT[record_type], record)
    good = encode_single(CURRENT[record_type], pool(record_type)[1])
    for strict in (False, True):
        outcome = consume(record_type, [good, encoded], strict=strict)
        (letter,) = outcome.letters[FIRST_OFFSET + 1]
        assert (letter.reason, letter.field) == (reason, fld)
        assert str(value) in letter.detail and "1–9999" in letter.detail
        assert len(outcome.rows[FIRST_OFFSET]) == 1 and not outcome.letters[FIRST_OFFSET]


def test_a_container_yielding_no_record_alone_in_a_batch() -> None:
    """Was: ``IndexError`` in ``MicroBatch.close`` (a record type with an empty row list
    and no frame), which stopped the ingest."""
    value, at = sale_container(1)
    size_at = at + 1
    damaged = value[:size_at] + zigzag(1000) + value[size_at + 1 :]  # the block's size
    assert both_paths("sale", damaged) == ([], [(0, "malformed_avro")])


def test_a_lone_surrogate_in_a_container_schema_makes_a_sendable_dead_letter() -> None:
    """Was: the error text carried the lone surrogate a JSON escape makes; encoding the
    dead letter's headers (and its table row) raised ``UnicodeEncodeError``."""
    header = io.BytesIO()
    header.write(b"Obj\x01")
    schema = b'{"type":"record","name":"fueltrace.records.Sale","fields":[{"name":"x",' \
             b'"type":"\\ud800"}]}'  # fmt: skip
    fastavro.schemaless_writer(header, {"type": "map", "values": "bytes"},
                               {"avro.schema": schema, "avro.codec": b"null"})  # fmt: skip
    value = header.getvalue() + b"S" * 16
    outcome = consume("sale", [value])
    (letter,) = outcome.letters[FIRST_OFFSET]
    assert letter.reason == "malformed_message" and "\\ud800" in letter.detail
    assert all(isinstance(v, bytes) for _, v in letter.headers())
    pl.DataFrame([letter.row()])  # what the warehouse loads


def test_a_newer_writers_message_cut_inside_a_field_the_reader_skips() -> None:
    """Was: accepted. Resolving skips the fields the reader does not have, and
    fastavro's skipping checks no length: the cut went unnoticed."""
    record = {**pool("vapor")[0], "gateway_note": "0"}
    value = encode_single(NEWER["vapor"], record)
    assert both_paths("vapor", value[:-1]) == ([], [(-1, "malformed_avro")])
    assert len(both_paths("vapor", value)[0]) == 1


def test_one_unresolvable_record_no_longer_misaligns_the_rest_of_its_block() -> None:
    """Was: the resolution error left the position inside the record; the records after
    it were read from there and dead-lettered as a corrupt block (or worse, misread)."""
    schema = copy.deepcopy(CURRENT["sale"].schema)
    for f in schema["fields"]:
        if f["name"] == "invoice_id":
            f["type"] = ["null", "string", "long"]  # a writer no registry knows
    records = [{**r, "invoice_id": None} for r in pool("sale")[:4]]
    records[1]["invoice_id"] = 5  # the branch the current schema lacks
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records, codec="null")
    rows, letters = both_paths("sale", out.getvalue())
    assert [r["src_index"] for r in rows] == [0, 2, 3]
    assert letters == [(1, "incompatible_schema")]
    assert [r["txn_id"] for r in rows] == [records[i]["txn_id"] for i in (0, 2, 3)]


def test_a_block_inflating_beyond_the_limit_is_refused() -> None:
    """A few kilobytes of deflate can claim gigabytes: a block inflating beyond
    ``MAX_BLOCK_BYTES`` is a reject, not an allocation."""
    version = CURRENT["sale"]
    datums = [encode_single(version, r)[10:] for r in pool("sale")[:10]]
    value = container_of(version, datums, "deflate")
    with mock.patch("ingest.codec.MAX_BLOCK_BYTES", 500):
        rows, letters = both_paths("sale", value)
        (letter,) = consume("sale", [value]).letters[FIRST_OFFSET]
    assert rows == [] and letters == [(0, "malformed_avro")]
    assert "inflates to more than 500 bytes" in letter.detail
    assert len(both_paths("sale", value)[0]) == 10
