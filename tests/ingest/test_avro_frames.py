"""The Rust fast path gives exactly the frame the strict path gives, or steps aside."""

from __future__ import annotations

from functools import cache
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ingest.avro_frames import encoded_size, read_container, read_single_objects
from ingest.codec import decode_message, encode_container, encode_single
from ingest.frames import frame_schema, to_frame
from ingest.jsonl import convert_record
from schemas import default_registry
from simulator import generate_province

FAST_TYPES = ("dispatch", "delivery", "tank_reading", "sale", "vapor", "device_status")


@cache
def province() -> dict[str, list[dict[str, Any]]]:
    return generate_province(stations=3, depots=1, days=1.0)


def records(record_type: str, n: int = 200) -> list[dict[str, Any]]:
    schema = default_registry().current(record_type).schema
    return [convert_record(r, schema) for r in province()[record_type][:n]]


def strict(record_type: str, messages: list[bytes]) -> pl.DataFrame:
    rows = []
    for m in messages:
        rows.extend(decode_message(m, record_type, default_registry()).records)
    for r in rows:
        r.update(src_partition=0, src_offset=0)
    return to_frame(record_type, rows).drop("src_partition", "src_offset", "src_index")


@pytest.mark.parametrize("record_type", FAST_TYPES)
def test_single_objects_read_together_equal_the_strict_path(record_type: str) -> None:
    version = default_registry().current(record_type)
    messages = [encode_single(version, r) for r in records(record_type)]
    assert messages, f"the simulator made no {record_type}"
    fast = read_single_objects(version, [m[10:] for m in messages])
    assert fast is not None
    assert_frame_equal(fast, strict(record_type, messages))
    assert list(fast.schema.items()) == list(frame_schema(record_type).items())


@pytest.mark.parametrize("record_type", FAST_TYPES)
def test_a_container_reads_like_the_strict_path(record_type: str) -> None:
    version = default_registry().current(record_type)
    message = encode_container(version, records(record_type))
    fast = read_container(version, message)
    assert fast is not None
    assert_frame_equal(fast, strict(record_type, [message]))


def datums(n: int = 50) -> list[bytes]:
    version = default_registry().current("sale")
    return [encode_single(version, r)[10:] for r in records("sale", n)]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda d: d.__setitem__(7, d[7] + b"\x00"), id="trailing-byte"),
        pytest.param(lambda d: (d.__setitem__(7, d[7] + b"\x02"),
                                d.__setitem__(8, d[8][:-1])), id="shift-that-compensates"),
        pytest.param(lambda d: d.__setitem__(3, d[3][:-4]), id="truncated"),
        pytest.param(lambda d: d.__setitem__(0, b"\xff" + d[0][1:]), id="garbage"),
    ],
)  # fmt: skip
def test_any_misfit_datum_sends_the_batch_to_the_strict_path(tamper: Any) -> None:
    version = default_registry().current("sale")
    tampered = datums()
    tamper(tampered)
    assert read_single_objects(version, tampered) is None
    assert read_single_objects(version, datums()) is not None


def test_nested_records_are_left_to_the_strict_path() -> None:
    version = default_registry().current("facility")
    assert encoded_size(version.schema) is None
    assert read_container(version, encode_container(version, records("facility", 2))) is None
