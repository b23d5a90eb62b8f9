"""Every metric is in the catalogue (docs/metrics.md) and has bounded labels only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from fueltrace import metrics

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
#: Label names that would make a series per station, transaction or message.
UNBOUNDED = re.compile(r"station|txn|transaction|offset|_id$|^id$|key|batch|plate|nozzle|tank")


def defined() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name → (type, label names) of every metric in fueltrace/metrics.py."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            (family,) = obj.describe()
            name = family.name + ("_total" if family.type == "counter" else "")
            found[name] = (family.type, tuple(obj._labelnames))
        elif isinstance(obj, metrics.ScrapeTimeGauge):
            found[obj.name] = ("gauge", obj.labelnames)
    return found


def catalogue_rows() -> dict[str, tuple[str, str]]:
    """name → (type, labels cell) from the catalogue table."""
    rows = re.findall(r"^\| `(fueltrace_\w+)` \| (\w+) \| ([^|]*) \|", CATALOGUE, flags=re.M)
    return {name: (kind, labels.strip()) for name, kind, labels in rows}


def test_every_metric_is_in_the_catalogue_with_its_type_and_labels() -> None:
    rows = catalogue_rows()
    assert sorted(set(defined()) - set(rows)) == []
    assert sorted(set(rows) - set(defined())) == []  # nothing documented that is not there
    for name, (kind, labels) in defined().items():
        documented = rows[name]
        assert documented[0] == kind, name
        assert documented[1] == (", ".join(labels) or "—"), name


@pytest.mark.parametrize("name", sorted(defined()))
def test_labels_are_bounded(name: str) -> None:
    _, labels = defined()[name]
    assert [label for label in labels if label not in metrics.LABELS] == []
    assert [label for label in labels if UNBOUNDED.search(label)] == []


@pytest.mark.parametrize("name", sorted(defined()))
def test_names_follow_prometheus_conventions(name: str) -> None:
    kind, _ = defined()[name]
    assert re.fullmatch(r"fueltrace_[a-z]+(_[a-z]+)*", name)
    assert name.endswith("_total") == (kind == "counter")
    if "duration" in name or "lag_seconds" in name or "timestamp" in name:
        assert name.endswith("_seconds")
    assert not re.search(r"_(ms|milliseconds|minutes|hours|percent)(_|$)", name)


def test_the_allow_list_explains_every_label() -> None:
    used = {label for _, labels in defined().values() for label in labels}
    assert sorted(used - set(metrics.LABELS)) == []
    assert all(reason for reason in metrics.LABELS.values())


def test_the_readme_points_at_the_catalogue() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    assert "docs/metrics.md" in section
