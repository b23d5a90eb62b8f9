"""The page's own label tables agree with the code they describe (no browser needed)."""

from __future__ import annotations

import re
from pathlib import Path

from processors.rules import RULES

LABELS = Path(__file__).resolve().parents[2] / "fueltrace" / "api" / "web" / "labels.js"


def _block(source: str, name: str) -> str:
    start = source.index(f"const {name} = {{")
    return source[start:source.index("\n};", start)]


def test_every_rule_has_its_titles_in_both_languages_on_the_page() -> None:
    """The API does not serve the rule titles, so the page keeps a copy: adding a rule or
    changing a title in processors/rules/*.py means updating RULES in labels.js."""
    block = _block(LABELS.read_text(encoding="utf-8"), "RULES")
    page = {name: (zh, en) for name, zh, en in
            re.findall(r'(\w+): \[\s*"([^"]*)",\s*"([^"]*)",?\s*\]', block)}  # fmt: skip
    code = {rule.name: (rule.title_zh, rule.title) for rule in RULES}
    assert page == code
