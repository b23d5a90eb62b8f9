"""The anomaly engine: scope, deterministic ids, reruns, late data resolving a finding.

Driven by the ``totalizer_gap`` rule, whose answers are easy to compute by hand.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from fueltrace.cli import main
from processors import anomalies
from processors.rules import BY_NAME
from processors.rules.totalizer_gap import RULE as TOTALIZER_GAP
from tests.processors.scenario import T0, load, sale, settings, station
from warehouse.connection import connect

NOW = T0 + timedelta(days=2)
ONLY = (TOTALIZER_GAP,)


def _chained(station_id: str, hours: list[float], volume: float = 20.0,
             skip: int | None = None) -> list[dict]:  # fmt: skip
    """Sales on one nozzle with chained totalizers; the sale at index ``skip`` is left out
    (returned last), so the others show a gap of ``volume`` litres where it was."""
    sales = [sale(station_id, h, volume) for h in hours]
    if skip is None:
        return sales
    return [s for i, s in enumerate(sales) if i != skip] + [sales[skip]]


def _run(con: duckdb.DuckDBPyConnection, tmp: Path,
         now=NOW) -> anomalies.AnomalyRunResult:  # fmt: skip
    return anomalies.run(con, settings(tmp), now, ONLY)


def _rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT anomaly_id, rule, station_id, subject, state, "
                       "evidence::VARCHAR FROM anomaly ORDER BY anomaly_id").fetchall()


def test_every_rule_module_is_registered_under_its_own_name() -> None:
    assert BY_NAME["totalizer_gap"] is TOTALIZER_GAP
    assert all(rule.name == name for name, rule in BY_NAME.items())


def test_a_gap_is_found_once_with_its_evidence_and_a_rerun_changes_nothing(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    *sales, missing = _chained("S1", [1, 2, 3, 4], skip=2)
    load(con, tmp_path, facility=[station("S1")], sale=sales)
    first = _run(con, tmp_path)
    assert (first.raised, first.stations) == (1, 1)
    [(anomaly_id, rule, station_id, subject, state, evidence)] = _rows(con)
    assert (rule, station_id, subject, state) == ("totalizer_gap", "S1", "N-T1", "active")
    facts = json.loads(evidence)
    assert facts["gap_l"] == pytest.approx(20.0)
    assert facts["previous_txn_id"] == sales[1]["txn_id"]
    assert facts["txn_id"] == sales[2]["txn_id"]
    assert anomaly_id == anomalies.anomaly_id(
        "totalizer_gap", "S1", "N-T1", T0 + timedelta(hours=2))
    # Same data, later clock: nothing new, nothing resolved, one history row.
    again = anomalies.run(con, settings(tmp_path), NOW + timedelta(hours=1), ONLY)
    assert (again.raised, again.updated, again.resolved) == (0, 0, 0)
    assert con.execute("SELECT count(*) FROM anomaly_history").fetchall() == [(1,)]
    assert [r[0] for r in _rows(con)] == [anomaly_id]


def test_late_data_that_explains_a_gap_resolves_it_and_keeps_its_history(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    *sales, missing = _chained("S1", [1, 2, 3, 4], skip=2)
    load(con, tmp_path, facility=[station("S1")], sale=sales)
    _run(con, tmp_path)
    load(con, tmp_path, sale=[missing])  # the sale arrives a day late
    late = _run(con, tmp_path, NOW + timedelta(days=1))
    assert (late.raised, late.resolved) == (0, 1)
    [(_, _, _, _, state, _)] = _rows(con)
    assert state == "resolved"
    changes = con.execute("SELECT change FROM anomaly_history ORDER BY \"at\"").fetchall()
    assert changes == [("raised",), ("resolved",)]


def test_only_stations_touched_by_new_data_are_recomputed(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    *a, _ = _chained("S1", [1, 2, 3, 4], skip=1)
    b = _chained("S2", [1, 2, 3])
    load(con, tmp_path, facility=[station("S1"), station("S2")], sale=a + b)
    assert _run(con, tmp_path).stations == 2
    # New data for S2 only, on a later day: S1's finding is not looked at again.
    load(con, tmp_path, sale=[sale("S2", 30, 10.0)])
    later = _run(con, tmp_path, NOW + timedelta(days=1))
    assert later.stations == 1
    assert [(r[2], r[4]) for r in _rows(con)] == [("S1", "active")]
    # since: the start of the earliest Asia/Shanghai day touched. The late sale ended at
    # T0 + 30 h = 14:00 local on the 21st, whose local day began at T0 + 16 h (UTC).
    scope = anomalies.dirty_stations(con, since_load=1)
    assert scope.rows() == [("S2", T0 + timedelta(hours=16))]
    # A facility record puts the station's whole history in scope.
    first = anomalies.dirty_stations(con, since_load=0)
    assert first["since"].max() < T0 - timedelta(days=365)


def test_a_found_again_finding_is_reraised(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    *sales, missing = _chained("S1", [1, 2, 3], skip=1)
    load(con, tmp_path, facility=[station("S1")], sale=sales)
    _run(con, tmp_path)
    stored = con.execute("SELECT anomaly_id FROM anomaly").fetchall()
    con.execute("UPDATE anomaly SET state = 'resolved'")  # as if late data had explained it
    load(con, tmp_path, sale=[sale("S1", 9, 5.0)])
    result = _run(con, tmp_path, NOW + timedelta(days=1))
    assert result.raised == 1
    assert con.execute("SELECT anomaly_id, state FROM anomaly").fetchall() == [
        (stored[0][0], "active")]
    assert con.execute("SELECT change FROM anomaly_history ORDER BY \"at\"").fetchall()[-1] == (
        "reraised",)


def test_cli_lists_anomalies_as_json_lines_with_the_spec_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "w.duckdb"
    con = connect(db)
    *sales, _ = _chained("S1", [1, 2, 3], skip=1)
    load(con, tmp_path, facility=[station("S1", city="Dalian")], sale=sales)
    _run(con, tmp_path)
    con.close()
    monkeypatch.setenv("FUELTRACE_DB", str(db))
    assert main(["anomalies", "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    row = json.loads(line)
    for key in ("anomaly_id", "rule", "severity", "station_id", "city", "window_start",
                "window_end", "evidence"):  # fmt: skip
        assert key in row
    assert (row["city"], row["evidence"]["gap_l"]) == ("Dalian", 20.0)
    assert main(["anomalies", "--city", "Shenyang", "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["anomalies", "--rule", "no_such_rule"]) == 2
    assert "unknown rule" in capsys.readouterr().err


def test_rules_with_one_load_read_it_once_per_run_and_let_it_go() -> None:
    """slow_leak and persistent_gain share their 30-day read (anomalies._SharedLoads)."""
    from processors.anomalies import _SharedLoads
    from processors.rules import RULES
    from processors.rules.base import Rule

    calls: list[str] = []

    def hours(reader: object) -> dict[str, pl.DataFrame]:
        calls.append("hours")
        return {"hours": pl.DataFrame({"n": [len(calls)]})}

    def other(reader: object) -> dict[str, pl.DataFrame]:
        calls.append("other")
        return {}

    def rule(name: str, load: object, days: int = 62) -> Rule:
        return Rule(name=name, title=name, title_zh=name, load=load,  # type: ignore[arg-type]
                    detect=lambda *_: pl.DataFrame(), describe=str,
                    lookback=timedelta(days=days))  # fmt: skip

    rules = (rule("a", hours), rule("b", other), rule("c", hours), rule("d", hours, days=1))
    shared = _SharedLoads(rules)
    first = shared.load(rules[0], None)  # type: ignore[arg-type]
    shared.load(rules[1], None)  # type: ignore[arg-type]
    assert shared.load(rules[2], None) is first  # type: ignore[arg-type]
    shared.load(rules[3], None)  # type: ignore[arg-type]  (another lookback: its own read)
    assert calls == ["hours", "other", "hours"]
    assert shared._frames == {}  # nothing kept after its last rule
    by_name = {r.name: r for r in RULES}
    assert by_name["slow_leak"].load is by_name["persistent_gain"].load
    assert by_name["slow_leak"].lookback == by_name["persistent_gain"].lookback
