"""`promtool` checks the alert rules and the scrape config, and runs the rules' unit tests
(dashboards/alerts.test.yml). Needs Debian's `prometheus` package (tests/ops/tools.py)."""

from __future__ import annotations

import subprocess

import pytest

from tests.ops.tools import ROOT, need

DASHBOARDS = ROOT / "dashboards"


@pytest.mark.parametrize("args", [
    ["check", "rules", "alerts.yml"],
    ["test", "rules", "alerts.test.yml"],
    ["check", "config", "prometheus.yml"],
], ids=["check-rules", "test-rules", "check-config"])  # fmt: skip
def test_promtool(args: list[str]) -> None:
    done = subprocess.run([need("promtool"), *args], cwd=DASHBOARDS, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
