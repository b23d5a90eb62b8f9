"""The Grafana dashboard, its provisioning and the alert rules refer only to metrics
fueltrace exports, and hold together (data source, folders, panel ids)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from fueltrace import metrics

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"
GRAFANA = DASHBOARDS / "grafana"
NAME = re.compile(r"\bfueltrace_[a-z_]+\b")
SUFFIXES = {"counter": ["_total", "_created"],
            "histogram": ["_bucket", "_count", "_sum", "_created"]}


def exported_series() -> set[str]:
    """Every series name the metrics module can expose."""
    names = set()
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            (family,) = obj.describe()
            names.update(family.name + s for s in SUFFIXES.get(family.type, [""]))
        elif isinstance(obj, metrics.ScrapeTimeGauge):
            names.add(obj.name)
    return names


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard_files() -> list[Path]:
    return sorted((GRAFANA / "dashboards").glob("*.json"))


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())
    return [r["expr"] for group in rules["groups"] for r in group["rules"]]


def dashboard_exprs() -> list[str]:
    return [t["expr"] for path in dashboard_files()
            for p in panels(json.loads(path.read_text())["panels"]) for t in p.get("targets", [])]


def test_every_referenced_metric_is_exported() -> None:
    for exprs in (rule_exprs(), dashboard_exprs()):
        refs = {name for expr in exprs for name in NAME.findall(expr)}
        assert len(refs) >= 8
        assert sorted(refs - exported_series()) == []


def test_the_dashboard_covers_flow_lag_freshness_rejects_and_anomalies() -> None:
    (path,) = dashboard_files()
    board = json.loads(path.read_text())
    rows = {p["title"] for p in panels(board["panels"]) if p["type"] == "row"}
    assert {"Flow", "Lag", "Freshness", "Rejects", "Anomalies"} <= rows
    text = " ".join(dashboard_exprs())
    for needed in ("fueltrace_records_loaded_total", "fueltrace_consumer_lag_messages",
                   "fueltrace_event_time_lag_seconds", "fueltrace_records_rejected_total",
                   "fueltrace_open_anomalies", "fueltrace_stations_silent"):  # fmt: skip
        assert needed in text


def test_panels_use_the_provisioned_data_source_and_unique_ids() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uids = {d["uid"] for d in sources["datasources"]}
    for path in dashboard_files():
        board = json.loads(path.read_text())
        ids = [p["id"] for p in panels(board["panels"])]
        assert len(ids) == len(set(ids)), path
        for panel in panels(board["panels"]):
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] in uids, panel["title"]
                assert panel["targets"], panel["title"]


def test_the_dashboard_provider_reads_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/fueltrace.yml").read_text())
    (path,) = {p["options"]["path"] for p in provider["providers"]}
    compose = yaml.safe_load((DASHBOARDS.parent / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./dashboards/grafana/dashboards:{path}:ro" in mounts


def test_every_alert_has_for_severity_summary_description_and_runbook() -> None:
    rules = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())
    catalogue = (DASHBOARDS.parent / "docs" / "metrics.md").read_text()
    names = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            names.append(rule["alert"])
            assert "for" in rule, rule["alert"]
            assert rule["labels"]["severity"] in {"page", "ticket"}
            assert {"summary", "description", "runbook"} <= set(rule["annotations"])
            assert "Runbook" in rule["annotations"]["description"]
            anchor = rule["annotations"]["runbook"].split("#")[1]
            assert f"### {rule['alert']}" in catalogue and anchor == rule["alert"].lower()
    assert {"FueltraceIngestStalled", "FueltraceConsumerLagGrowing", "FueltraceDeadLetterSpike",
            "FueltraceStationsSilent", "FueltraceEventTimeLagHigh",
            "FueltraceAnomalySurge"} <= set(names)  # fmt: skip
