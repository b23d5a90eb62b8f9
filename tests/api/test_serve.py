"""`fueltrace serve` as a subprocess on the real broker: it answers /healthz, /readyz,
/metrics and /openapi.json; a record pushed through its gateway becomes queryable through
its API; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from fueltrace.settings import Settings
from ingest.embedded_broker import free_port
from tests.helpers import settings_env
from warehouse import access
from warehouse.connection import connect

pytestmark = pytest.mark.broker


def call(port: int, path: str, token: str | None = None, body: Any = None,
         timeout: float = 5) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     headers=headers)  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, \
                response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def environment(settings: Settings) -> dict[str, str]:
    """What a `fueltrace` subprocess needs to see ``settings`` (list settings as JSON, the
    way pydantic-settings reads them)."""
    env = settings_env(settings)
    for name, value in settings.model_dump().items():
        if isinstance(value, (list, tuple, dict)):
            env[f"FUELTRACE_{name.upper()}"] = json.dumps(value)
    return env


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_runs_ingest_api_and_metrics_in_one_process(
    settings: Settings, facility_factory: Callable[..., dict[str, Any]],
    sale_factory: Callable[..., dict[str, Any]],
) -> None:  # fmt: skip
    port = free_port()
    settings = settings.model_copy(update={"analysis_interval_s": 0.5})
    con = connect(settings.db)
    now = datetime.now(UTC)
    tokens = {role: access.create_token(con, role=role, scope=scope, label=role,
                                        created_by="test", now=now)[0]
              for role, scope in (("admin", None), ("provincial_regulator", None),
                                  ("station", "LN-SY-0001"))}  # fmt: skip
    con.close()
    process = subprocess.Popen([sys.executable, "-m", "fueltrace", "serve", "--port", str(port)],
                               env=environment(settings), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: call(port, "/healthz")[0] == 200, 30, "/healthz")
        wait_for(lambda: call(port, "/readyz")[0] == 200, 30, "/readyz")
        status, _, body = call(port, "/readyz")
        assert json.loads(body)["checks"] == {"warehouse": True, "broker": True, "ingest": True}
        status, _, body = call(port, "/openapi.json")
        assert status == 200 and "/api/v1/anomalies" in json.loads(body)["paths"]
        facility = facility_factory()
        status, _, body = call(port, "/api/v1/gateway/facility", tokens["admin"], facility)
        assert status == 200, body
        sale = sale_factory()
        status, _, body = call(port, "/api/v1/gateway/sale", tokens["station"], sale)
        assert status == 200 and json.loads(body)["accepted"] == 1, body
        reader = tokens["provincial_regulator"]
        wait_for(lambda: call(port, f"/api/v1/trace/sales/LN-SY-0001/{sale['txn_id']}",
                              reader)[0] == 200, 30, "the sale to be queryable")  # fmt: skip
        wait_for(lambda: call(port, "/api/v1/stations/LN-SY-0001", reader)[0] == 200, 30,
                 "the station to be queryable")  # fmt: skip
        status, headers, text = call(port, "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        metrics = text.decode()
        assert 'fueltrace_gateway_records_total{outcome="accepted",record_type="sale"} 1.0' \
            in metrics  # fmt: skip
        assert 'route="/api/v1/gateway/sale"' in metrics
        assert 'fueltrace_records_loaded_total{' in metrics  # the ingest runs in here too
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        out, err = process.communicate(timeout=10)
    assert f"serving at http://127.0.0.1:{port}/" in out, (out, err[-3000:])
