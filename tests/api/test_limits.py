"""The gateway's pieces that need no broker: the rate buckets, idempotency keys in flight,
and the checks of an upload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fueltrace.api.errors import Conflict, RateLimited
from fueltrace.api.gateway import Gateway, _check
from fueltrace.api.limits import TokenBuckets
from fueltrace.settings import Settings


def test_a_bucket_allows_its_burst_then_its_rate_per_sender() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        buckets.take("station:S1")
    with pytest.raises(RateLimited) as refused:
        buckets.take("station:S1")
    assert refused.value.headers["Retry-After"] == "1"
    buckets.take("station:S2")  # another sender has its own bucket
    now[0] = 0.5  # one token back at 2/s
    buckets.take("station:S1")
    with pytest.raises(RateLimited):
        buckets.take("station:S1")
    now[0] = 100.0  # refilled, never beyond the burst
    for _ in range(3):
        buckets.take("station:S1")
    with pytest.raises(RateLimited):
        buckets.take("station:S1")


def test_the_same_key_in_flight_twice_is_a_conflict() -> None:
    gateway = Gateway(Settings())
    gateway.begin("station:S1", "k1")
    with pytest.raises(Conflict) as refused:
        gateway.begin("station:S1", "k1")
    assert refused.value.code == "idempotency_in_progress"
    gateway.begin("station:S2", "k1")  # keys are per sender
    gateway.end("station:S1", "k1")
    gateway.begin("station:S1", "k1")


def test_an_upload_is_checked_record_by_record(
    sale_factory: Callable[..., dict[str, Any]]
) -> None:
    good = sale_factory()
    huge = sale_factory(amount_fen=10**30)  # JSON allows it; an Avro long does not
    wrong_type = sale_factory(volume_l="31,5")
    not_an_object = ["a list"]
    ok, errors = _check("sale", [good, huge, wrong_type, not_an_object], Settings())
    assert [i for i, _ in ok] == [0]
    assert [(e["index"], e["reason"], e["field"]) for e in errors] == [
        (1, "schema_violation", "amount_fen"), (2, "schema_violation", "volume_l"),
        (3, "schema_violation", "record")]  # fmt: skip
