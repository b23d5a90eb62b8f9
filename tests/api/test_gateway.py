"""The station gateway end to end through the real broker: POST → Kafka (acknowledged) →
ingest → rows in the warehouse. Per-record errors, idempotent retries, 413 and 429."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fueltrace.api.app import create_app
from fueltrace.settings import Settings
from ingest.consumer import Ingest
from ingest.kafka_client import producer as make_producer
from ingest.topics import record_topic
from tests.api.conftest import World, error_of
from warehouse import access
from warehouse.connection import connect

pytestmark = pytest.mark.broker


@pytest.fixture
def gateway(settings: Settings) -> Iterator[tuple[World, TestClient]]:
    """The app with a producer to the session's broker, over an empty warehouse."""
    settings = settings.model_copy(update={"gateway_max_body_bytes": 64 * 1024,
                                           "gateway_rate_per_s": 1.0, "gateway_burst": 8})
    con = connect(settings.db)
    assert settings.bootstrap
    kafka = make_producer(settings, settings.bootstrap, linger_ms=0)
    world = World(con, settings)
    now = datetime.now(UTC)
    for name, role, scope in (("s1", "station", "LN-SY-0001"), ("s2", "station", "LN-SY-0002"),
                              ("depot", "depot", "DEPOT-1")):  # fmt: skip
        world.tokens[name], _ = access.create_token(con, role=role, scope=scope, label=name,
                                                    created_by="t", now=now)  # fmt: skip
    app = create_app(settings, con, producer=kafka, bootstrap=settings.bootstrap, web=None)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield world, client
    kafka.close()
    con.close()


def ingest_all(world: World) -> None:
    assert world.settings.bootstrap
    ingest = Ingest(world.settings, world.settings.bootstrap, world.con)
    try:
        ingest.run(until_idle=True)
    finally:
        ingest.close()


def test_records_posted_reach_the_warehouse_bad_ones_answered_one_by_one(
    gateway: tuple[World, TestClient], sale_factory: Callable[..., dict[str, Any]]
) -> None:
    world, client = gateway
    one = sale_factory()
    answer = client.post("/api/v1/gateway/sale", json=one, headers=world.headers("s1"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"record_type": "sale", "received": 1, "accepted": 1,
                             "rejected": 0, "messages": 1, "errors": [],
                             "idempotency_key": None, "replayed": False}  # fmt: skip
    good = [sale_factory() for _ in range(3)]
    bad_total = sale_factory()
    bad_total["totalizer_end_l"] += 40  # the rules: totalizer_mismatch
    no_offset = sale_factory(started_at="2026-11-20T08:00:00")  # the schema: naive time
    batch = [good[0], bad_total, good[1], no_offset, good[2]]
    answer = client.post("/api/v1/gateway/sale/batch", json={"records": batch},
                         headers=world.headers("s1"))  # fmt: skip
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert (receipt["received"], receipt["accepted"], receipt["rejected"]) == (5, 3, 2)
    assert receipt["messages"] == 1  # one container for the station's three
    assert [(e["index"], e["reason"], e["field"]) for e in receipt["errors"]] == [
        (1, "totalizer_mismatch", "totalizer_end_l"),
        (3, "schema_violation", "started_at")]
    # all bad: 422 with the per-record errors in the details
    answer = client.post("/api/v1/gateway/sale/batch", json={"records": [bad_total]},
                         headers=world.headers("s1"))  # fmt: skip
    assert answer.status_code == 422
    error = error_of(answer)
    assert error["code"] == "records_rejected" and error["details"][0]["index"] == 0
    ingest_all(world)
    stored = world.con.execute("SELECT txn_id FROM sale ORDER BY txn_id").fetchall()
    assert sorted(t for (t,) in stored) == sorted([one["txn_id"], *(g["txn_id"] for g in good)])


def test_a_retry_with_the_same_key_sends_nothing_twice(
    gateway: tuple[World, TestClient], sale_factory: Callable[..., dict[str, Any]]
) -> None:
    world, client = gateway
    body = {"records": [sale_factory(), sale_factory()]}
    headers = {**world.headers("s1"), "Idempotency-Key": "upload-0001"}
    first = client.post("/api/v1/gateway/sale/batch", json=body, headers=headers)
    again = client.post("/api/v1/gateway/sale/batch", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert {**first.json(), "replayed": True} == again.json()
    # the same key with other content is refused; another station's same key is its own
    other = client.post("/api/v1/gateway/sale/batch", json={"records": [sale_factory()]},
                        headers=headers)  # fmt: skip
    assert other.status_code == 422 and error_of(other)["code"] == "idempotency_key_reused"
    theirs = sale_factory(station_id="LN-SY-0002")
    answer = client.post("/api/v1/gateway/sale", json=theirs,
                         headers={**world.headers("s2"), "Idempotency-Key": "upload-0001"})
    assert answer.status_code == 200 and answer.json()["replayed"] is False
    ingest_all(world)
    assert world.con.execute("SELECT count(*) FROM sale").fetchall() == [(3,)]
    # a second send would have arrived as duplicates (same natural keys): there are none
    assert world.con.execute("SELECT count(*) FROM ingest_duplicate").fetchall() == [(0,)]
    messages = world.con.execute("SELECT sum(next_offset) FROM ingest_offset WHERE topic = $t",
                                 {"t": record_topic(world.settings, "sale")}).fetchall()
    assert messages == [(2,)]  # the batch (one container) and the other station's record


def test_a_depot_sends_its_dispatches(gateway: tuple[World, TestClient]) -> None:
    world, client = gateway
    dispatch = {"dispatch_id": "P-9", "depot_id": "DEPOT-1", "batch_id": "B-9",
                "product": "diesel_0", "station_id": "LN-SY-0001", "vehicle_plate": "辽A9",
                "seal_ids": ["S1"], "volume_l": 8000.0, "temperature_c": 12.0,
                "density_kg_m3": 835.0, "dispatched_at": "2026-11-20T06:00:00Z"}  # fmt: skip
    answer = client.post("/api/v1/gateway/dispatch", json=dispatch,
                         headers=world.headers("depot"))  # fmt: skip
    assert answer.status_code == 200, answer.text
    ingest_all(world)
    assert world.con.execute("SELECT dispatch_id, depot_id FROM dispatch").fetchall() == [
        ("P-9", "DEPOT-1")]


def test_too_large_and_too_fast(gateway: tuple[World, TestClient],
                                sale_factory: Callable[..., dict[str, Any]]) -> None:  # fmt: skip
    world, client = gateway
    huge = {"records": [sale_factory() for _ in range(400)]}  # ~150 kB > 64 kB
    answer = client.post("/api/v1/gateway/sale/batch", json=huge, headers=world.headers("s1"))
    assert answer.status_code == 413 and error_of(answer)["code"] == "payload_too_large"
    statuses = []
    for _ in range(12):  # the bucket holds 8 (one spent above), refills 1/s
        answer = client.post("/api/v1/gateway/sale", json=[], headers=world.headers("s2"))
        statuses.append(answer.status_code)
    assert statuses[:8] == [422] * 8 and 429 in statuses[8:]
    limited = client.post("/api/v1/gateway/sale", json=[], headers=world.headers("s2"))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1 and error_of(limited)["code"] == "rate_limited"
    # one station's limit is not another's
    assert client.post("/api/v1/gateway/sale", json=sale_factory(),
                       headers=world.headers("s1")).status_code == 200  # fmt: skip
