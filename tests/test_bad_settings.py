"""Settings that make no sense stop every command before it starts: exit 2, one line per
bad variable naming it, its value and what it accepts; no traceback, nothing touched."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from fueltrace.bad_settings import settings_problems
from fueltrace.cli import HANDLERS, main
from fueltrace.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

#: A run of each command; with good settings most of them would start something.
COMMANDS: dict[str, list[str]] = {
    "demo": ["demo", "--no-serve"],
    "broker": ["broker"],
    "topics": ["topics"],
    "push": ["push", "--type", "sale", "sales.jsonl"],
    "ingest": ["ingest", "--until-idle"],
    "dead-letters": ["dead-letters"],
    "anomalies": ["anomalies", "--json"],
    "trace": ["trace", "batch", "B1"],
    "recall": ["recall", "B1"],
    "settings": ["settings"],
    "serve": ["serve"],
    "token": ["token", "list"],
}

#: (variable, value, words the message must hold besides the variable and value)
NONSENSE: list[tuple[str, str, list[str]]] = [
    ("FUELTRACE_PARTITIONS", "-3", ["greater than or equal to 1", "an integer ≥ 1 (default 4)"]),
    ("FUELTRACE_BATCH_MAX_RECORDS", "abc", ["valid integer", "an integer ≥ 1"]),
    ("FUELTRACE_BATCH_MAX_MS", "0", ["an integer ≥ 1"]),
    ("FUELTRACE_HTTP_PORT", "eighty", ["valid integer", "≥ 0 and ≤ 65535 (default 8080)"]),
    ("FUELTRACE_HTTP_PORT", "70000", ["≥ 0 and ≤ 65535"]),
    ("FUELTRACE_METRICS_PORT", "-1", ["≥ 0 and ≤ 65535"]),
    ("FUELTRACE_LOG_LEVEL", "LOUD", ["one of DEBUG, INFO, WARNING, ERROR, CRITICAL"]),
    ("FUELTRACE_LOG_FORMAT", "xml", ["one of text, json (default text)"]),
    ("FUELTRACE_BOOTSTRAP", "", ["empty", "host:port[,host:port…]", "(default unset)"]),
    ("FUELTRACE_BOOTSTRAP", "kafka:ninety", ["not accepted", "host:port"]),
    ("FUELTRACE_SESSION_TIMEOUT_MS", "-2000", ["an integer > 0"]),
    ("FUELTRACE_ANALYSIS_INTERVAL_S", "-1", ["a number ≥ 0"]),
    ("FUELTRACE_BROKER_TIMEOUT_S", "0", ["a number > 0"]),
    ("FUELTRACE_BROKER_TIMEOUT_S", "nan", ["finite number"]),
    ("FUELTRACE_DELIVERY_OVERDUE_H", "-24", ["a number > 0"]),
    ("FUELTRACE_API_QUERY_TIMEOUT_S", "inf", ["finite number"]),
    ("FUELTRACE_GATEWAY_MAX_BODY_BYTES", "10", ["≥ 1024"]),
    ("FUELTRACE_SCALE_OUT", "maybe", ["true or false"]),
    ("FUELTRACE_DB", "", ["an empty path"]),
    ("FUELTRACE_DB_MEMORY_LIMIT", "lots", ["not accepted", "a size: 128MB"]),
    ("FUELTRACE_DB_MEMORY_LIMIT", "32MB", ["below 64MB", "fails the commit"]),
    ("FUELTRACE_ANALYSIS_MEMORY_LIMIT", "1 gigabyte", ["not accepted"]),
    ("FUELTRACE_TOPIC_PREFIX", "fuel sale", ["Kafka topic names"]),
    ("FUELTRACE_GROUP_ID", "", ["at least 1 character"]),
    ("FUELTRACE_DEPOT_LICENCE_KINDS", "hazardous_chemicals", ["not valid JSON",
                                                             '"retail_approval"']),
    ("FUELTRACE_LICENCE_REQUIRED_KINDS", '["retail_aproval"]', ["'retail_approval'"]),
    ("FUELTRACE_SLOW_LEAK_FALSE_ALARM_PCT", "50", ["> 0 and < 50"]),
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean FUELTRACE_* environment in an empty directory; nothing may appear in it."""
    for name in [n for n in os.environ if n.startswith("FUELTRACE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FUELTRACE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FUELTRACE_DB", str(tmp_path / "w.duckdb"))
    yield tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no warehouse, no broker state


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    return code, err.splitlines()


def test_the_table_covers_every_command() -> None:
    assert set(COMMANDS) == set(HANDLERS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_to_start_with_a_nonsense_setting(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    monkeypatch.setenv("FUELTRACE_PARTITIONS", "-3")
    code, lines = run(COMMANDS[command], capsys)
    assert code == 2
    assert lines[0] == (f"fueltrace {command}: error: FUELTRACE_PARTITIONS='-3': Input should "
                        "be greater than or equal to 1; accepted: an integer ≥ 1 (default 4)")
    assert "README" in lines[-1] and len(lines) == 2


@pytest.mark.parametrize(("name", "value", "words"), NONSENSE,
                         ids=[f"{n}={v}" for n, v, _ in NONSENSE])  # fmt: skip
def test_a_nonsense_value_is_named_with_what_is_accepted(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    name: str, value: str, words: list[str],
) -> None:  # fmt: skip
    monkeypatch.setenv(name, value)
    code, lines = run(["settings"], capsys)
    assert code == 2
    assert lines[0].startswith(f"fueltrace settings: error: {name}={value!r}"), lines
    missing = [w for w in words if w not in lines[0]]
    assert missing == [], lines[0]


@pytest.mark.parametrize(("low", "high", "value"), [
    ("FUELTRACE_HEARTBEAT_INTERVAL_MS", "FUELTRACE_SESSION_TIMEOUT_MS", "2000"),
    ("FUELTRACE_VAPOR_AL_MIN", "FUELTRACE_VAPOR_AL_MAX", "1.5"),
    ("FUELTRACE_VAPOR_PRESSURE_MIN_PA", "FUELTRACE_VAPOR_PRESSURE_MAX_PA", "700"),
])  # fmt: skip
def test_a_pair_the_wrong_way_round_names_both(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    low: str, high: str, value: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(low, value)
    code, lines = run(["topics"], capsys)
    assert code == 2
    assert lines[0].startswith(f"fueltrace topics: error: {low} ({value}") and high in lines[0]


def test_every_number_setting_has_a_range() -> None:
    """A count, duration, port or tolerance without bounds would take -3 silently; only
    a pressure may be negative."""
    signed = {"vapor_pressure_max_pa", "vapor_pressure_min_pa"}
    unbounded = [name for name, info in Settings.model_fields.items()
                 if info.annotation in (int, float) and name not in signed
                 and not any(hasattr(m, a) for m in info.metadata
                             for a in ("ge", "gt"))]  # fmt: skip
    assert unbounded == []


@pytest.mark.parametrize("name", [n for n, i in Settings.model_fields.items()
                                  if i.annotation in (int, float)])  # fmt: skip
def test_every_number_setting_refuses_words_naming_itself(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{name: "lots"})
    [problem] = settings_problems(caught.value)
    assert problem.startswith(f"FUELTRACE_{name.upper()}='lots': Input should be a valid ")
    assert "; accepted: a" in problem and "(default " in problem


def test_sensible_values_are_still_accepted() -> None:
    settings = Settings(bootstrap="PLAINTEXT://kafka1:9092, kafka2:9092,[::1]:9093",
                        licence_required_kinds=("retail_approval",), http_port=0,
                        analysis_interval_s=0, topic_prefix="fuel.test-1_a")  # fmt: skip
    assert settings.bootstrap and settings.http_port == 0
    assert Settings().bootstrap is None  # the defaults are valid


def test_the_real_cli_reports_every_bad_variable_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUELTRACE_")}
    env |= {"FUELTRACE_PARTITIONS": "-3", "FUELTRACE_LOG_LEVEL": "LOUD",
            "FUELTRACE_HTTP_PORT": "eighty", "FUELTRACE_DB": str(tmp_path / "w.duckdb")}
    done = subprocess.run([sys.executable, "-m", "fueltrace", "ingest", "--until-idle"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    named = [line.split(": ")[2].split("=")[0] for line in done.stderr.splitlines()[:-1]]
    assert sorted(named) == ["FUELTRACE_HTTP_PORT", "FUELTRACE_LOG_LEVEL",
                             "FUELTRACE_PARTITIONS"]  # fmt: skip
    assert not (tmp_path / "w.duckdb").exists()
