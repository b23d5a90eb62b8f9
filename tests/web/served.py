"""A small province, analysed, served by the real app on a loopback port, for the browser
test: the simulator's records (with injected wrongdoing) loaded the way the ingest loads
them, the analyses and the case sync run, tokens made, and uvicorn in a thread."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn

from fueltrace.analyses import run_analyses
from fueltrace.api.app import create_app
from fueltrace.settings import Settings
from simulator import Scenario, generate_with_truth, province_for
from tests.processors.scenario import load
from warehouse import access
from warehouse.cases import sync_cases
from warehouse.connection import connect

STATIONS = 8
DAYS = 5


@dataclass
class Site:
    """The running app and what the test needs to drive it."""

    url: str
    token: str  # provincial regulator
    label: str
    city_token: str  # city regulator of ``city``
    city: str
    station_token: str
    server: uvicorn.Server
    thread: threading.Thread

    def api(self, path: str, token: str | None = None) -> Any:
        """GET an API path (under /api/v1) as the provincial regulator; the parsed JSON."""
        request = urllib.request.Request(f"{self.url}/api/v1{path}", headers={
            "Authorization": f"Bearer {token or self.token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _scenarios(start: datetime) -> list[Scenario]:
    ids = [s.facility_id for s in province_for(seed=11, depots=1, stations=STATIONS, days=DAYS,
                                               start=start).stations]  # fmt: skip
    day = timedelta(days=1)
    return [
        Scenario("totalizer_tampering", start + 2 * day, station_id=ids[5]),
        Scenario("off_book_delivery", start + 3 * day, station_id=ids[4]),
        Scenario("expired_licence", start + 2 * day, station_id=ids[2]),
        Scenario("device_outage", start + 2 * day, station_id=ids[0], subject="ATG1",
                 options={"status": "offline"}),
        Scenario("pressure_fault", start + day, station_id=ids[1]),
        Scenario("shortfall", start + day, station_id=ids[6]),
        Scenario("diverted_load", start + day, station_id=ids[7]),
    ]


def build(directory: Path, now: datetime | None = None) -> tuple[Settings, Any]:
    """The warehouse: DAYS days of STATIONS stations up to the current hour, so that what
    the rules see does not depend on the time of day the test runs."""
    now = now or datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=DAYS)
    generated = generate_with_truth(seed=11, depots=1, stations=STATIONS, days=DAYS, start=start,
                                    sales_scale=0.3, reading_interval_min=30,
                                    scenarios=_scenarios(start))  # fmt: skip
    settings = Settings(db=directory / "web.duckdb", state_dir=directory)
    con = connect(settings.db)
    load(con, directory, **generated.records)
    run_analyses(con, settings, now)
    sync_cases(con, now)
    return settings, con


def serve(directory: Path) -> Site:
    settings, con = build(directory)
    now = datetime.now(UTC)
    tokens = {}
    for role, scope, label in (("provincial_regulator", None, "Inspector Wang"),
                               ("city_regulator", "Benxi", "Benxi Bureau Li"),
                               ("station", "ST-210100-0001", "Station gateway")):  # fmt: skip
        tokens[role], _ = access.create_token(con, role=role, scope=scope, label=label,
                                              created_by="test", now=now)  # fmt: skip
    app = create_app(settings, con)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="web-test-server")  # fmt: skip
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    site = Site(f"http://127.0.0.1:{port}", tokens["provincial_regulator"], "Inspector Wang",
                tokens["city_regulator"], "Benxi", tokens["station"], server, thread)
    try:
        site.api("/whoami")
    except urllib.error.URLError:
        site.stop()
        raise
    return site
