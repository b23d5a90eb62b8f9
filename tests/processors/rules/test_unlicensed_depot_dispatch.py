"""unlicensed_depot_dispatch: one finding per depot and licence lapse, listing its dispatches.

T0 is 2026-11-20 00:00 UTC = 08:00 in Beijing; a dispatch at T0 + 17 h is at 01:00 on
the 21st, Beijing time, so a licence valid until the 20th has expired for it (from
T0 + 16 h, midnight in Beijing).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from fueltrace.settings import Settings
from processors import anomalies, traceability
from processors.rules import unlicensed_depot_dispatch as rule
from processors.rules.base import EPOCH, Reader, Scope, local_day_start
from processors.rules.unlicensed_depot_dispatch import RULE
from simulator.generate import (
    DEFAULT_START,
    RandomScenarios,
    generate_province,
    generate_with_truth,
)
from simulator.licences import DEPOT_LICENCE_KINDS
from simulator.scoring import score
from tests.processors.rules.simulated import findings_on_province, rule_on_truth
from tests.processors.scenario import T0, at, dispatch, load, settings, station
from warehouse.connection import connect

UTC_US = pl.Datetime("us", "UTC")
NOW = T0 + timedelta(days=4)
KINDS = ("hazardous_chemicals", "business_licence", "environmental_approval")
#: 2026-11-21 00:00 Beijing: a licence valid until the 20th has expired from here on.
NOV_21 = T0 + timedelta(hours=16)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def licence(kind: str, until: str = "2030-12-31", status: str = "valid",
            since: str = "2020-01-01", number: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"kind": kind, "number": number or f"N-{kind[:3]}-{until}", "valid_from": since,
            "valid_until": until, "status": status}  # fmt: skip


def depot(updated: float = -240, depot_id: str = "DEPOT-1",
          **replaced: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    """A depot's facility record: every required licence valid, unless replaced by kind
    (``None``: the kind is not listed)."""
    licences = [replaced.get(k, licence(k)) for k in KINDS]
    return {
        "facility_id": depot_id, "kind": "depot", "name": f"Depot {depot_id}",
        "city": "Shenyang", "operator": "Sinopec", "updated_at": at(updated), "tanks": [],
        "nozzles": [], "licences": [x for x in licences if x],
    }  # fmt: skip


def sent(dispatch_id: str, hours: float, station_id: str = "S1", volume: float = 10_000,
         depot_id: str = "DEPOT-1") -> dict[str, Any]:  # fmt: skip
    return {**dispatch(dispatch_id, "B1", station_id, volume, hours), "depot_id": depot_id}


def stations(*ids: str) -> list[dict[str, Any]]:
    return [station(s) for s in ids]


def _analyse(con: duckdb.DuckDBPyConnection, tmp: Path,
             now: datetime = NOW) -> list[dict[str, Any]]:  # fmt: skip
    """Lineage and this rule through the engine; every stored finding, oldest first."""
    traceability.run(con, settings(tmp), now)
    anomalies.run(con, settings(tmp), now, (RULE,))
    cur = con.execute("""SELECT anomaly_id, station_id, depot_id, city, subject, severity,
                                state, window_start, window_end,
                                evidence::VARCHAR AS evidence, summary
                         FROM anomaly ORDER BY window_start, depot_id""")  # fmt: skip
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return [{**r, "evidence": json.loads(r["evidence"])} for r in rows]


def _by_rule(con: duckdb.DuckDBPyConnection, tmp: Path, since: dict[str, datetime],
             now: datetime = NOW) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The rule alone (load and detect) for depots in scope from ``since``, keyed by the
    id the engine would give each finding."""
    traceability.run(con, settings(tmp), now)
    scope = Scope(pl.DataFrame({"station_id": list(since), "since": list(since.values())},
                               schema={"station_id": pl.String, "since": UTC_US}), now)  # fmt: skip
    found = RULE.detect(RULE.load(Reader(con, scope, RULE.lookback)), settings(tmp), scope)
    return {anomalies.anomaly_id(RULE.name, f["station_id"], f["subject"], f["window_start"]): f
            for f in found.to_dicts()}  # fmt: skip


def test_the_required_kinds_are_the_simulators_depot_licences() -> None:
    assert set(Settings().depot_licence_kinds) == set(DEPOT_LICENCE_KINDS) == set(KINDS)


def test_a_lapse_with_many_dispatches_is_one_finding_of_the_depot(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    expiring = licence("hazardous_chemicals", until="2026-11-20")
    # 15:00 UTC is 23:00 on the 20th in Beijing (licensed); from 17:00 UTC, the 21st
    lawful = [sent("P-OK", 15)]
    unlawful = [sent(f"P{i:02}", 17 + i, f"S{i % 3 + 1}", 5_000 + 100 * i) for i in range(30)]
    load(con, tmp_path, facility=[*stations("S1", "S2", "S3"),
                                  depot(hazardous_chemicals=expiring)],
         dispatch=lawful + unlawful)  # fmt: skip
    [f] = _analyse(con, tmp_path)
    assert (f["station_id"], f["depot_id"], f["subject"], f["severity"], f["state"]) == (
        "DEPOT-1", "DEPOT-1", "hazardous_chemicals", "critical", "active")
    assert (f["window_start"], f["window_end"]) == (h(17), h(46))
    assert f["anomaly_id"] == anomalies.anomaly_id(RULE.name, "DEPOT-1", "hazardous_chemicals",
                                                   h(17))  # fmt: skip
    e = f["evidence"]
    assert (e["dispatches"], e["stations"], e["station_ids"]) == (30, 3, ["S1", "S2", "S3"])
    assert e["dispatched_20_l"] == pytest.approx(30 * 5_000 + 100 * sum(range(30)))
    assert e["dispatch_ids"] == [f"P{i:02}" for i in range(30)]
    assert e["dispatch_ids_omitted"] == 0
    assert (e["first_dispatch_id"], e["last_dispatch_id"]) == ("P00", "P29")
    assert (e["first_dispatch_at"], e["last_dispatch_at"]) == (
        "2026-11-20T17:00:00.000Z", "2026-11-21T22:00:00.000Z")
    assert e["lacking_since_at"] == "2026-11-20T16:00:00.000Z"
    assert e["licence_problems"] == [{
        "kind": "hazardous_chemicals", "problem": "expired", "number": "N-haz-2026-11-20",
        "valid_from": "2020-01-01", "valid_until": "2026-11-20", "status": "valid"}]  # fmt: skip
    assert e["depot_registered"] is True
    assert f["summary"] == (
        "Depot DEPOT-1 made 30 dispatches (193,500 L at 20 °C) to 3 stations (S1, S2, S3) "
        "from 2026-11-21 01:00 to 2026-11-22 06:00 Beijing time without a valid licence: "
        "hazardous_chemicals no. N-haz-2026-11-20 expired 2026-11-20 (lacking since "
        "2026-11-21 00:00). First dispatch P00, last P29.")  # fmt: skip


def test_the_dispatch_ids_are_capped_and_the_rest_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rule, "MAX_DISPATCH_IDS", 3)
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1"), depot(hazardous_chemicals=licence(
        "hazardous_chemicals", status="suspended"))],
        dispatch=[sent(f"P{i}", 10 - i) for i in range(5)])  # fmt: skip
    [f] = _by_rule(con, tmp_path, {"DEPOT-1": EPOCH}).values()
    e = f["evidence"]
    # the earliest three, in dispatch order (P4 left first)
    assert (e["dispatches"], e["dispatch_ids"], e["dispatch_ids_omitted"]) == (
        5, ["P4", "P3", "P2"], 2)
    assert (e["first_dispatch_id"], e["last_dispatch_id"]) == ("P4", "P0")
    assert RULE.describe(e).endswith("last P0; the first 3 dispatch ids are listed.")


def test_a_renewal_or_a_change_of_licence_state_starts_a_new_episode(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    expiring = licence("hazardous_chemicals", until="2026-11-20", number="OLD")
    renewed = licence("hazardous_chemicals", since="2026-11-21", number="NEW")
    records = [
        # DEPOT-1: expires (the 21st), is renewed at 20 h, the renewal revoked at 30 h
        depot(hazardous_chemicals=expiring),
        depot(20, hazardous_chemicals=renewed),
        depot(30, hazardous_chemicals={**renewed, "status": "revoked"}),
        # DEPOT-2: expires, and the expired licence is revoked at 25 h: two states
        depot(depot_id="DEPOT-2", hazardous_chemicals=expiring),
        depot(25, depot_id="DEPOT-2", hazardous_chemicals={**expiring, "status": "revoked"}),
        # DEPOT-3: suspended at 20 h, reinstated at 25 h, suspended again at 30 h: the same
        # state twice, with a lawful spell between (no dispatch in it)
        depot(depot_id="DEPOT-3"),
        *[depot(t, depot_id="DEPOT-3", hazardous_chemicals=licence(
            "hazardous_chemicals", status=status)) for t, status in (
            (20, "suspended"), (25, "valid"), (30, "suspended"))],
    ]
    dispatches = [sent(f"A{t}", t) for t in (17, 18, 21, 31, 32)] + [
        sent(f"B{t}", t, depot_id="DEPOT-2") for t in (17, 26)] + [
        sent(f"C{t}", t, depot_id="DEPOT-3") for t in (21, 31)]
    load(con, tmp_path, facility=[station("S1"), *records], dispatch=dispatches)
    found = _analyse(con, tmp_path)
    got = [(f["depot_id"], f["evidence"]["dispatch_ids"],
            [p["problem"] for p in f["evidence"]["licence_problems"]],
            [p["number"] for p in f["evidence"]["licence_problems"]],
            f["evidence"]["lacking_since_at"]) for f in found]  # fmt: skip
    assert got == [
        ("DEPOT-1", ["A17", "A18"], ["expired"], ["OLD"], "2026-11-20T16:00:00.000Z"),
        ("DEPOT-2", ["B17"], ["expired"], ["OLD"], "2026-11-20T16:00:00.000Z"),
        ("DEPOT-3", ["C21"], ["suspended"], ["N-haz-2030-12-31"], "2026-11-20T20:00:00.000Z"),
        ("DEPOT-2", ["B26"], ["revoked"], ["OLD"], "2026-11-21T01:00:00.000Z"),
        ("DEPOT-1", ["A31", "A32"], ["revoked"], ["NEW"], "2026-11-21T06:00:00.000Z"),
        ("DEPOT-3", ["C31"], ["suspended"], ["N-haz-2030-12-31"], "2026-11-21T06:00:00.000Z"),
    ]  # A21 left under the renewal
    assert len({f["anomaly_id"] for f in found}) == 6
    assert {f["severity"] for f in found} == {"critical"}


def test_dispatches_while_licensed_give_nothing(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    # DEPOT-2's expired permit sits beside its renewal: the kind is held
    beside = [licence("hazardous_chemicals", until="2026-01-01"), licence("hazardous_chemicals")]
    load(con, tmp_path, facility=[
        station("S1"), depot(), {**depot(depot_id="DEPOT-2"), "licences": [
            *beside, licence("business_licence"), licence("environmental_approval")]}],
        dispatch=[sent("P1", 1), sent("P2", 30), sent("Q1", 2, depot_id="DEPOT-2")])  # fmt: skip
    assert _analyse(con, tmp_path) == []


def test_status_dates_and_severity(tmp_path: Path) -> None:
    Case = tuple[dict[str, dict[str, Any] | None], str, list[tuple[str, str]]]
    cases: dict[str, Case] = {  # depot: (licences replaced by kind, severity, lacking)
        "D-SUS": ({"hazardous_chemicals": licence("hazardous_chemicals", status="suspended")},
                  "critical", [("hazardous_chemicals", "suspended")]),
        "D-REV": ({"business_licence": licence("business_licence", status="revoked")},
                  "critical", [("business_licence", "revoked")]),
        "D-ENV": ({"environmental_approval": licence("environmental_approval",
                                                     since="2026-12-01")},
                  "high", [("environmental_approval", "not_yet_valid")]),
        "D-OLD": ({"environmental_approval": licence("environmental_approval",
                                                     until="2026-01-01")},
                  "high", [("environmental_approval", "expired")]),
        "D-TWO": ({"hazardous_chemicals": None, "environmental_approval": None}, "critical",
                  [("environmental_approval", "missing"), ("hazardous_chemicals", "missing")]),
    }  # fmt: skip
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")] + [
        depot(-240, d, **replaced) for d, (replaced, _, _) in cases.items()],
        dispatch=[sent(f"P-{d}", 1, depot_id=d) for d in cases])  # fmt: skip
    found = {f["depot_id"]: f for f in _analyse(con, tmp_path)}
    assert {d: (f["severity"], [(p["kind"], p["problem"])
                                for p in f["evidence"]["licence_problems"]])
            for d, f in found.items()} == {d: c[1:] for d, c in cases.items()}  # fmt: skip
    assert found["D-TWO"]["subject"] == "environmental_approval+hazardous_chemicals"
    assert "environmental_approval missing; hazardous_chemicals missing" in (
        found["D-TWO"]["summary"])


def test_the_record_in_force_when_the_dispatch_left_counts(tmp_path: Path) -> None:
    revoked = licence("hazardous_chemicals", status="revoked")
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[
        # revoked at 12 h: the dispatch at 1 h was lawful, the one at 13 h was not
        station("S1"), depot(), depot(12, hazardous_chemicals=revoked),
        # a dispatch before the depot's first record is judged by that first record
        depot(12, depot_id="DEPOT-2", hazardous_chemicals=revoked),
    ], dispatch=[sent("P1", 1), sent("P13", 13), sent("Q1", 1, depot_id="DEPOT-2")])
    found = {f["depot_id"]: f["evidence"] for f in _analyse(con, tmp_path)}
    assert (found["DEPOT-1"]["dispatch_ids"], found["DEPOT-1"]["lacking_since_at"]) == (
        ["P13"], "2026-11-20T12:00:00.000Z")
    # (the first record's revoked permit counts from its valid_from: before, not yet valid)
    assert (found["DEPOT-2"]["dispatch_ids"], found["DEPOT-2"]["lacking_since_at"]) == (
        ["Q1"], "2019-12-31T16:00:00.000Z")


def test_a_depot_with_no_facility_record_lacks_every_kind(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")],
         dispatch=[sent("P1", 1, depot_id="GHOST"), sent("P2", 30, depot_id="GHOST")])
    [f] = _by_rule(con, tmp_path, {"GHOST": EPOCH}).values()
    e = f["evidence"]
    assert (f["severity"], e["depot_registered"], e["dispatches"]) == ("critical", False, 2)
    assert [p["problem"] for p in e["licence_problems"]] == ["missing"] * 3
    assert e["lacking_since_at"] is None
    assert RULE.describe(e).startswith("Depot GHOST (no facility record) made 2 dispatches")
    assert "missing (no record of any licence)" in RULE.describe(e)


def test_a_later_scope_still_counts_the_whole_episode_under_the_same_id(
    tmp_path: Path,
) -> None:
    """What the engine's incremental run asks of the rule: a depot in scope only from the
    day of its newest dispatch gets the episode it continues whole, under the same id."""
    con = connect(tmp_path / "w.duckdb")
    expiring = licence("hazardous_chemicals", until="2026-11-20")
    load(con, tmp_path, facility=[*stations("S1", "S2"), depot(hazardous_chemicals=expiring)],
         dispatch=[sent("P1", 17), sent("P2", 40, "S2"), sent("P3", 64)])
    full = _by_rule(con, tmp_path, {"DEPOT-1": EPOCH})
    newest_day = pl.select(local_day_start(pl.lit(h(64), UTC_US))).item()
    later = _by_rule(con, tmp_path, {"DEPOT-1": newest_day, "S1": newest_day})
    assert list(later) == list(full)
    [e] = [f["evidence"] for f in later.values()]
    assert (e["dispatches"], e["dispatch_ids"]) == (3, ["P1", "P2", "P3"])
    assert later == full


def test_incremental_runs_update_the_one_finding_as_dispatches_arrive(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    expiring = licence("hazardous_chemicals", until="2026-11-20")
    load(con, tmp_path, facility=[*stations("S1", "S2"), depot(hazardous_chemicals=expiring)],
         dispatch=[sent("P0", 1)])  # fmt: skip
    assert _analyse(con, tmp_path, h(2)) == []
    # the permit expires by date: no new facility record, only dispatches
    load(con, tmp_path, dispatch=[sent("P1", 17), sent("P2", 20, "S2")])
    [first] = _analyse(con, tmp_path, h(21))
    load(con, tmp_path, dispatch=[sent("P3", 40)])
    [now] = _analyse(con, tmp_path, h(41))
    assert now["anomaly_id"] == first["anomaly_id"]
    assert (first["evidence"]["dispatches"], now["evidence"]["dispatches"]) == (2, 3)
    assert now["window_end"] == h(40) and now["state"] == "active"
    assert now["city"] == "Shenyang"  # the depot's
    changes = con.execute('SELECT change FROM anomaly_history ORDER BY "at"').fetchall()
    assert changes == [("raised",), ("updated",)]
    # a full run over the same records finds the same
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    again = connect(fresh / "w.duckdb")
    load(again, fresh, facility=[*stations("S1", "S2"), depot(hazardous_chemicals=expiring)],
         dispatch=[sent("P0", 1), sent("P1", 17), sent("P2", 20, "S2"), sent("P3", 40)])
    [full] = _analyse(again, fresh, h(41))
    assert (full["anomaly_id"], full["evidence"]) == (now["anomaly_id"], now["evidence"])


def test_a_late_renewal_record_resolves_it(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    expired = licence("hazardous_chemicals", until="2026-11-01")
    load(con, tmp_path, facility=[station("S1"), depot(hazardous_chemicals=expired)],
         dispatch=[sent("P1", 1)])  # fmt: skip
    [f] = _analyse(con, tmp_path)
    assert (f["subject"], f["state"]) == ("hazardous_chemicals", "active")
    assert f["evidence"]["dispatched_20_l"] == pytest.approx(10_000.0)
    # the depot's renewal, registered before the dispatch, reaches us a day late
    renewed = licence("hazardous_chemicals", since="2026-11-01", number="N-new")
    load(con, tmp_path, facility=[depot(updated=-48, hazardous_chemicals=renewed)])
    [f] = _analyse(con, tmp_path, NOW + timedelta(hours=1))
    assert f["state"] == "resolved"


def test_a_clean_simulated_province_has_no_unlicensed_dispatch(tmp_path: Path) -> None:
    records = generate_province(seed=5, stations=10, days=2)
    assert len(records["delivery"]) > 5
    assert findings_on_province(tmp_path, records, DEFAULT_START + timedelta(days=2), RULE) == []


def test_injected_incidents_are_found_once_each_and_nothing_else(tmp_path: Path) -> None:
    generated = generate_with_truth(seed=3, stations=12, days=3, scenarios=RandomScenarios(
        per_kind=2, kinds=("unlicensed_depot",)))  # fmt: skip
    now = DEFAULT_START + timedelta(days=4)
    result = rule_on_truth(tmp_path, generated, now, RULE)
    assert result.expected
    assert (result.missed, result.unexplained) == ([], [])
    # one finding per lapsed depot, at the depot, listing every dispatch it sent unlicensed
    assert sorted(f[1] for f in result.found) == sorted(str(i.depot_id) for i in result.expected)
    con = connect(tmp_path / "w.duckdb")
    cur = con.execute("SELECT anomaly_id, rule, station_id, depot_id, subject, window_start, "
                      "window_end, evidence::VARCHAR AS evidence FROM anomaly")  # fmt: skip
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    listed = {r["depot_id"]: set(json.loads(r["evidence"])["dispatch_ids"]) for r in rows}
    assert listed == {i.depot_id: set(i.subject_aliases) for i in result.expected}
    scored = score(rows, generated.incidents).by_rule[RULE.name]
    assert (scored.recall, scored.precision) == (1.0, 1.0)
