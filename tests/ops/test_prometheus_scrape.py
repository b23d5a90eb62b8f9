"""A real Prometheus on loopback scrapes `fueltrace serve` running demo data (a simulated
province, pushed as the demo pushes it), loads fueltrace's alert rules, and answers
queries about the series through its HTTP API. Needs Debian's `prometheus` package."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fueltrace.settings import Settings
from ingest.embedded_broker import free_port
from ingest.push import check_lines, push_records
from simulator import generate_province, write_jsonl
from tests.ops.tools import ROOT, env_for, need

pytestmark = pytest.mark.broker
DEADLINE_S = 90  # a bound on waiting, not a speed check: typically 10–20 s (`serve`
# starts in ~6 s, then loads and analyses); a busy 2-core machine has taken over 25 s
STATIONS = 3


def push_demo_data(settings: Settings, directory: Path) -> int:
    """A small province whose last half day ends now, pushed record by record and (tank
    readings) in gateway batch messages, as `fueltrace demo` does."""
    assert settings.bootstrap
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=13)
    records = generate_province(seed=11, depots=1, stations=STATIONS, days=0.5, start=start)
    sent = 0
    for record_type, path in write_jsonl(records, directory).items():
        with open(path, encoding="utf-8") as handle:
            good, errors = check_lines(record_type, handle, settings, str(path))
        assert errors == []
        batch = 200 if record_type == "tank_reading" else 1
        push_records(settings, settings.bootstrap, record_type, [d for _, d in good], batch)
        sent += len(good)
    return sent


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _own_metrics(port: int) -> str:
    """fueltrace's own /metrics, for a failure's report ("" if it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except OSError as exc:
        return f"(no answer: {exc})"


def value(port: int, promql: str) -> float | None:
    result = query(port, promql)
    return float(result[0]["value"][1]) if result else None


def started(command: list[str], log: Path, env: dict[str, str] | None = None
            ) -> subprocess.Popen[bytes]:  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def serving(settings: Settings, tmp_path: Path) -> Iterator[tuple[int, int]]:
    """(fueltrace port, Prometheus port), both running, the demo data pushed."""
    prometheus = need("prometheus")
    pushed = push_demo_data(settings, tmp_path / "demo")
    assert pushed > 500
    app_port, prom_port = free_port(), free_port()
    serve_settings = settings.model_copy(update={"http_port": app_port, "analysis_interval_s": 1.0})
    app = started([sys.executable, "-m", "fueltrace", "serve", "--host", "127.0.0.1"],
                  tmp_path / "serve.log", env_for(serve_settings, FUELTRACE_LOG_LEVEL="INFO")
                  )  # fmt: skip
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "dashboards" / "alerts.yml")],
        "scrape_configs": [{"job_name": "fueltrace",
                            "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}],
    }))  # fmt: skip
    prom = started([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path}/tsdb",
                    f"--web.listen-address=127.0.0.1:{prom_port}"], tmp_path / "prometheus.log")
    try:
        yield app_port, prom_port
    finally:
        stop(prom)
        stop(app)


def test_prometheus_scrapes_fueltrace_serve(serving: tuple[int, int], settings: Settings,
                                            tmp_path: Path) -> None:  # fmt: skip
    _, prom = serving
    deadline = time.monotonic() + DEADLINE_S
    checks = {
        "scraped": 'up{job="fueltrace"} == 1',
        "loaded": "sum(fueltrace_records_loaded_total) > 500",
        "broker reachable": 'fueltrace_up{component="broker"} == 1',
        "rows counted after an analysis run": 'fueltrace_warehouse_rows{table="sale"} > 0',
        "fresh tank readings": 'fueltrace_event_time_lag_seconds{record_type="tank_reading"}'
                               " < 7200",
        "stations known": f"sum(fueltrace_stations) == {STATIONS}",
    }  # fmt: skip
    pending = dict(checks)
    while pending and time.monotonic() < deadline:
        for name, promql in list(pending.items()):
            try:
                if query(prom, promql):
                    del pending[name]
            except OSError:  # Prometheus still starting
                break
        time.sleep(0.5)
    logs = "".join(f"\n--- {p.name}\n" + p.read_text()[-3000:]
                   for p in (tmp_path / "serve.log", tmp_path / "prometheus.log"))
    if pending:
        logs += "\n--- /metrics (fueltrace_*)\n" + "\n".join(
            line for line in _own_metrics(serving[0]).splitlines()
            if line.startswith(("fueltrace_up", "fueltrace_partitions", "fueltrace_records",
                                "fueltrace_consumer_lag", "fueltrace_rebalances")))
    assert pending == {}, f"not seen within {DEADLINE_S} s: {sorted(pending)}{logs}"

    topics = {r["metric"]["topic"] for r in query(prom, "fueltrace_records_loaded_total > 0")}
    assert {settings.topic("sale"), settings.topic("tank-reading")} <= topics
    assert value(prom, "sum(fueltrace_consumer_lag_messages)") == 0
    assert value(prom, "time() - max(fueltrace_last_load_timestamp_seconds)") is not None
    rules = json.load(urllib.request.urlopen(f"http://127.0.0.1:{prom}/api/v1/rules", timeout=5))
    alerts = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert "FueltraceIngestStalled" in alerts
    firing = {r["metric"]["alertname"] for r in query(prom, 'ALERTS{alertstate="firing"}')}
    assert "FueltraceDown" not in firing
