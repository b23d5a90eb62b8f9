"""Shared fixtures: the real embedded broker (once per session, only when asked for),
isolated settings per test, and record factories."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fueltrace.settings import Settings
from ingest.embedded_broker import EmbeddedBroker
from ingest.topics import ensure_topics
from tests.helpers import BASE_TIME, iso


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One real Tansu for the whole session, started the first time a test asks."""
    with EmbeddedBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    """Settings isolated per test: own topic prefix, group, warehouse and state dir."""

    def make(bootstrap: str | None = None, **overrides: Any) -> Settings:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        values: dict[str, Any] = {
            "bootstrap": bootstrap,
            "db": tmp_path / "warehouse.duckdb",
            "state_dir": tmp_path / "state",
            "topic_prefix": prefix,
            "group_id": f"{prefix}-ingest",
            "partitions": 2,
            "batch_max_ms": 300,
            "broker_timeout_s": 10.0,
            "metrics_port": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(broker: EmbeddedBroker, settings_factory: Callable[..., Settings]) -> Settings:
    made = settings_factory(broker.bootstrap)
    ensure_topics(made, broker.bootstrap)
    return made


@pytest.fixture
def sale_factory() -> Callable[..., dict[str, Any]]:
    """A valid sale as a JSON line would carry it; keyword arguments override fields."""
    counter = iter(range(1, 10**9))

    def make(**overrides: Any) -> dict[str, Any]:
        n = next(counter)
        given = overrides.get("volume_l")
        volume = float(given) if isinstance(given, (int, float)) else 20.0 + n % 30
        start = overrides.get("started_at", BASE_TIME + timedelta(minutes=n))
        if not isinstance(start, datetime):
            start = BASE_TIME
        overrides = {k: iso(v) if isinstance(v, datetime) else v for k, v in overrides.items()}
        totalizer = 1000.0 + 100 * n
        record = {
            "txn_id": f"T{n:06d}",
            "station_id": "LN-SY-0001",
            "dispenser_id": "D1",
            "nozzle_id": "N1",
            "product": "gasoline_92",
            "volume_l": volume,
            "unit_price_fen": 780,
            "amount_fen": round(780 * volume),
            "totalizer_start_l": totalizer,
            "totalizer_end_l": round(totalizer + volume, 2),
            "started_at": iso(start),
            "ended_at": iso(start + timedelta(seconds=90)),
            "invoice_id": None,
        }
        record.update(overrides)
        return record

    return make


@pytest.fixture
def facility_factory() -> Callable[..., dict[str, Any]]:
    def make(**overrides: Any) -> dict[str, Any]:
        record = {
            "facility_id": "LN-SY-0001",
            "kind": "station",
            "name": "Shenyang No.1",
            "city": "Shenyang",
            "operator": "Sinopec",
            "updated_at": iso(BASE_TIME - timedelta(days=30)),
            "tanks": [{"tank_id": "T1", "product": "gasoline_92", "capacity_l": 30000.0}],
            "nozzles": [{"nozzle_id": "N1", "dispenser_id": "D1", "tank_id": "T1"}],
            "licences": [
                {"kind": "retail_approval", "number": "LN-RA-001", "valid_from": "2024-01-01",
                 "valid_until": "2028-12-31", "status": "valid"},
            ],
        }  # fmt: skip
        record.update(overrides)
        return record

    return make


