"""Dashboards and alert rules refer only to metrics fueltrace exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from fueltrace import metrics

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"
NAME = re.compile(r"\bfueltrace_[a-z_]+")


def exported_series() -> set[str]:
    """Every series name the metrics module can expose."""
    names = set()
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            (family,) = obj.describe()
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
            names.update(family.name + s for s in suffixes.get(family.type, [""]))
    return names


def referenced() -> set[str]:
    text = (DASHBOARDS / "alerts.yml").read_text()
    for path in (DASHBOARDS / "grafana" / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            text += " ".join(t["expr"] for t in panel["targets"])
    return set(NAME.findall(text))


def test_every_referenced_metric_is_exported() -> None:
    refs = referenced()
    assert len(refs) >= 5
    assert sorted(refs - exported_series()) == []


def test_metric_names_follow_prometheus_conventions() -> None:
    for name in exported_series():
        assert re.fullmatch(r"fueltrace_[a-z_]+", name)
        if name.endswith("_total"):
            continue
        assert name.endswith(("_seconds", "_messages", "_records", "_bucket", "_count", "_sum"))
