"""The rule catalogue is served once, from the rules; the web page keeps no copy."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from processors.rules import RULES

WEB = Path(__file__).resolve().parents[2] / "fueltrace" / "api" / "web"


def test_rules_are_served_publicly_with_both_titles(client: TestClient) -> None:
    answer = client.get("/api/v1/rules")  # no token: the catalogue is public
    assert answer.status_code == 200
    served = {r["name"]: (r["title_zh"], r["title"]) for r in answer.json()}
    assert served == {rule.name: (rule.title_zh, rule.title) for rule in RULES}
    assert all(zh and en and zh != en for zh, en in served.values())


def test_the_page_keeps_no_copy_of_the_rule_titles() -> None:
    labels = (WEB / "labels.js").read_text(encoding="utf-8")
    assert "export const RULES = {};" in labels
    assert all(rule.title not in labels for rule in RULES)
