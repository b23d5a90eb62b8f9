"""Structured logs (fueltrace/logs.py): key=value by default, JSON lines on request, levels
from the settings; and nothing logged per record."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fueltrace import logs
from fueltrace.settings import Settings
from ingest.push import push_file
from tests.helpers import run_ingest, write_jsonl


class Captured:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    """What the handler ``logs.configure`` installs writes to stderr."""
    yield Captured(capsys)
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


def emit() -> None:
    log = logging.getLogger("ingest.consumer")
    log.debug("not shown at INFO")
    log.info('batch loaded load_id=%d records=%d ratio=%.2f partition="%s[%d]"',
             7, 20000, 0.5, "fuel.sale", 3)  # fmt: skip
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("load failed")


def test_key_value_lines(captured: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUELTRACE_LOG_LEVEL", "info")
    logs.configure()
    emit()
    lines = captured.getvalue().splitlines()
    assert len(lines) == 2  # one line per event, the traceback included; no DEBUG
    first = lines[0]
    assert first.startswith("ts=") and first.endswith('partition="fuel.sale[3]"')
    assert ' level=info logger=ingest.consumer msg="batch loaded" load_id=7 records=20000 ' \
        "ratio=0.50 " in first
    event, fields = logs.split_message(first)
    assert fields["level"] == "info" and fields["load_id"] == 7 and fields["ratio"] == 0.5
    head = lines[1].split(" exc=")[0]
    assert head.endswith('level=error logger=ingest.consumer msg="load failed"')
    assert "ValueError: bad\\nthing" in lines[1]


def test_json_lines(captured: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUELTRACE_LOG_LEVEL", "INFO")
    monkeypatch.setenv("FUELTRACE_LOG_FORMAT", "json")
    logs.configure()
    emit()
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["level"] == "info" and first["logger"] == "ingest.consumer"
    assert first["msg"] == "batch loaded"
    assert (first["load_id"], first["records"], first["ratio"]) == (7, 20000, 0.5)
    assert first["partition"] == "fuel.sale[3]"
    assert first["ts"].endswith("Z")
    assert second["level"] == "error" and "ValueError: bad\nthing" in second["exc"]


def test_the_flag_overrides_the_setting_and_verbose_means_debug(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUELTRACE_LOG_FORMAT", "text")
    logs.configure(verbose=True, json_format=True)
    logging.getLogger("x").debug("shown k=v")
    assert json.loads(captured.getvalue()) | {"ts": ""} == {
        "ts": "", "level": "debug", "logger": "x", "msg": "shown", "k": "v"}


def test_a_bad_log_setting_still_logs_at_warning(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUELTRACE_LOG_LEVEL", "chatty")
    logs.configure()
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")
    text = captured.getvalue()
    assert text.count("\n") == 1 and "shown" in text


@pytest.mark.broker
def test_nothing_is_logged_per_record(
    settings: Settings, sale_factory: Callable[..., Any], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """At DEBUG, ingesting 2,000 records (8 batches) logs a handful of lines per batch."""
    assert settings.bootstrap
    sales = [sale_factory(station_id=f"S{i % 40}") for i in range(2000)]
    push_file(settings, settings.bootstrap, "sale", write_jsonl(tmp_path / "s.jsonl", sales))
    ours = ("fueltrace", "ingest", "processors", "warehouse", "schemas", "simulator")
    with caplog.at_level(logging.DEBUG):
        summary = run_ingest(settings.model_copy(update={"batch_max_records": 250}))
    assert sum(summary.loaded.values()) == 2000
    lines = [r for r in caplog.records if r.name.split(".")[0] in ours]
    assert len(lines) <= 10 * summary.batches + 20, [r.getMessage() for r in lines][:30]
