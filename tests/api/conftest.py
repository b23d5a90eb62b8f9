"""A small province in a real warehouse, a token per role, and the app over it.

Two cities: Shenyang (stations S1, S3) and Dalian (S2). S1 and S2 each have a totalizer
gap (a finding each, so a case each); batch B1 went to both. Tokens: one per role and
scope, plus a revoked and an expired one.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fueltrace.api.app import create_app
from fueltrace.api.db import Warehouse
from fueltrace.api.gateway import Gateway
from fueltrace.settings import Settings
from processors import anomalies, traceability
from processors.rules.totalizer_gap import RULE as TOTALIZER_GAP
from tests.processors.scenario import T0, delivery, dispatch, load, reading, sale, station
from warehouse import access
from warehouse.cases import sync_cases
from warehouse.connection import connect

NOW = T0 + timedelta(days=2)
#: Every licence a station needs, valid for years around the scenario.
GOOD_LICENCES = [
    {"kind": kind, "number": f"{kind[:3].upper()}-1", "valid_from": "2020-01-01",
     "valid_until": "2030-12-31", "status": "valid"}
    for kind in ("retail_approval", "hazardous_chemicals", "business_licence",
                 "environmental_approval")
]  # fmt: skip
_stations = itertools.count(1)


def licensed(station_id: str, city: str = "Shenyang", licences: list[dict] | None = None,
             **overrides: Any) -> dict[str, Any]:  # fmt: skip
    record = station(station_id, city=city)
    record["licences"] = GOOD_LICENCES if licences is None else licences
    return {**record, **overrides}


def gap_sales(station_id: str, hours: tuple[float, ...] = (1, 2, 3, 4)) -> list[dict[str, Any]]:
    """Sales on one nozzle whose totalizers chain, but the third is missing: a gap."""
    sales = [sale(station_id, h, 20.0) for h in hours]
    return [s for i, s in enumerate(sales) if i != 2]


@dataclass
class World:
    con: duckdb.DuckDBPyConnection
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)

    def headers(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"db": tmp / "w.duckdb", "state_dir": tmp,
                              "topic_prefix": f"api{next(_stations)}"}  # fmt: skip
    values.update(overrides)
    return Settings(**values)


def analyse(con: duckdb.DuckDBPyConnection, settings: Settings,
            now: datetime = NOW) -> None:  # fmt: skip
    """Lineage and the totalizer rule only: the other rules are their authors' to test."""
    traceability.run(con, settings, now)
    anomalies.run(con, settings, now, (TOTALIZER_GAP,))
    sync_cases(con, now)


TOKENS = {
    "admin": ("admin", None),
    "provincial": ("provincial_regulator", None),
    "city_sy": ("city_regulator", "Shenyang"),
    "city_dl": ("city_regulator", "Dalian"),
    "station_s1": ("station", "S1"),
    "station_s2": ("station", "S2"),
    "depot": ("depot", "DEPOT-1"),
    "revoked": ("provincial_regulator", None),
    "expired": ("provincial_regulator", None),
}


def build_world(tmp: Path, **overrides: Any) -> World:
    settings = make_settings(tmp, **overrides)
    con = connect(settings.db)
    load(con, tmp,
         facility=[licensed("S1"), licensed("S2", city="Dalian"), licensed("S3")],
         sale=gap_sales("S1") + gap_sales("S2"),
         tank_reading=[reading(s, h, 20000 - 10 * h) for s in ("S1", "S2")
                       for h in range(0, 30, 2)],
         dispatch=[dispatch("P1", "B1", "S1", 5000, 5), dispatch("P2", "B1", "S2", 5000, 5)],
         delivery=[delivery("D1", "S1", 5000, 9, 9.5, "P1"),
                   delivery("D2", "S2", 5000, 9, 9.5, "P2")])  # fmt: skip
    analyse(con, settings)
    world = World(con, settings)
    now = datetime.now(UTC)
    for name, (role, scope) in TOKENS.items():
        expires = now - timedelta(minutes=1) if name == "expired" else None
        world.tokens[name], row = access.create_token(
            con, role=role, scope=scope, label=f"test {name}", created_by="test", now=now,
            expires_at=expires)  # fmt: skip
        world.ids[f"token_{name}"] = row["token_id"]
    access.revoke_token(con, world.ids["token_revoked"], by="test", now=now)
    rows = con.execute("SELECT a.station_id, a.anomaly_id, c.case_id FROM anomaly a "
                       "JOIN anomaly_case c USING (anomaly_id) ORDER BY 1").fetchall()
    for station_id, anomaly_id, case_id in rows:
        world.ids[f"anomaly_{station_id}"] = anomaly_id
        world.ids[f"case_{station_id}"] = case_id
    txns = con.execute("SELECT station_id, min(txn_id) FROM sale GROUP BY 1").fetchall()
    for station_id, txn_id in txns:
        world.ids[f"txn_{station_id}"] = txn_id
    return world


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The world built once per session (closed); tests get copies of its file."""
    built = build_world(tmp_path_factory.mktemp("template"))
    built.con.execute("CHECKPOINT")
    built.con.close()
    return built


def copy_world(template: World, tmp: Path) -> World:
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy(template.settings.db, tmp / "w.duckdb")
    settings = template.settings.model_copy(update={"db": tmp / "w.duckdb", "state_dir": tmp})
    return World(connect(settings.db), settings, dict(template.tokens), dict(template.ids))


@pytest.fixture(scope="module")
def world(template: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One warehouse for a module's read-only tests."""
    built = copy_world(template, tmp_path_factory.mktemp("api"))
    yield built
    built.con.close()


@pytest.fixture
def fresh_world(template: World, tmp_path: Path) -> Iterator[World]:
    """A warehouse of its own, for a test that changes it."""
    built = copy_world(template, tmp_path / "fresh")
    yield built
    built.con.close()


@pytest.fixture
def client_for() -> Iterator[Callable[..., TestClient]]:
    """``client_for(world, **create_app kwargs)``: a TestClient over the world's warehouse."""
    opened: list[TestClient] = []

    def make(world: World, **kwargs: Any) -> TestClient:
        app = create_app(world.settings, world.con, web=None, **kwargs)
        client = TestClient(app, raise_server_exceptions=False)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    """The app over the module's warehouse (building an app takes ~0.4 s: once per module)."""
    with TestClient(create_app(world.settings, world.con, web=None),
                    raise_server_exceptions=False) as made:  # fmt: skip
        yield made


def error_of(response: Any) -> dict[str, Any]:
    """The error object of an answer, checked to have exactly the pinned shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"status", "code", "message", "request_id", "details"}, error
    assert error["status"] == response.status_code
    assert error["request_id"] == response.headers["x-request-id"]
    return dict(error)


@pytest.fixture(scope="module")
def spare_app(world: World) -> FastAPI:
    """An app built once per module, pointed at each test's fresh warehouse in turn."""
    return create_app(world.settings, world.con, web=None)


@pytest.fixture
def fresh(fresh_world: World, spare_app: FastAPI) -> Iterator[tuple[World, TestClient]]:
    """A fresh warehouse and a client of an app over it."""
    services = spare_app.state.services
    before = (services.settings, services.warehouse)
    services.settings, services.warehouse = fresh_world.settings, Warehouse(fresh_world.con)
    spare_app.state.gateway = Gateway(fresh_world.settings)
    try:
        with TestClient(spare_app, raise_server_exceptions=False) as made:
            yield fresh_world, made
    finally:
        services.warehouse.close()
        services.settings, services.warehouse = before
