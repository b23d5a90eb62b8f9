"""The README, `--help` and CI agree with the code."""

from __future__ import annotations

import re
from pathlib import Path

from fueltrace.cli import COMMANDS, HANDLERS, build_parser
from fueltrace.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _code_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [f"FUELTRACE_{n.upper()}" for n in Settings.model_fields
               if f"`FUELTRACE_{n.upper()}`" not in README]  # fmt: skip
    assert missing == []


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_every_command_is_documented_and_wired() -> None:
    assert set(HANDLERS) == set(COMMANDS)
    assert [c for c in COMMANDS if f"`fueltrace {c}" not in README] == []
    help_text = build_parser().format_help()
    assert [c for c in COMMANDS if c not in help_text] == []


def test_readme_opens_with_the_demo_and_the_test_command_ci_runs() -> None:
    demo, tests = _code_blocks()[:2]
    assert demo.endswith("fueltrace demo")
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == tests
    assert "pytest" in tests and "pip install" in tests


def test_every_dead_letter_reason_is_in_the_readme() -> None:
    from ingest.reasons import REASONS

    assert [r for r in REASONS if f"`{r}`" not in README] == []
