"""unlicensed_depot_dispatch: each dispatch against the depot's licences on its Beijing date.

T0 is 2026-11-20 00:00 UTC = 08:00 in Beijing; a dispatch at T0 + 17 h is at 01:00 on
the 21st, Beijing time, so a licence valid until the 20th has expired for it.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from fueltrace.settings import Settings
from processors import anomalies, traceability
from processors.rules.base import Scope
from processors.rules.unlicensed_depot_dispatch import RULE, detect
from simulator.generate import (
    DEFAULT_START,
    RandomScenarios,
    generate_province,
    generate_with_truth,
)
from simulator.licences import DEPOT_LICENCE_KINDS
from tests.processors.rules.simulated import findings_on_province, rule_on_truth
from tests.processors.scenario import T0, at, dispatch, load, settings, station
from warehouse.connection import connect

UTC_US = pl.Datetime("us", "UTC")
NOW = T0 + timedelta(days=2)
KINDS = ("hazardous_chemicals", "business_licence", "environmental_approval")


def h(hours: float) -> Any:
    return T0 + timedelta(hours=hours)


def licence(kind: str, until: str = "2030-12-31", status: str = "valid",
            since: str = "2020-01-01") -> dict[str, Any]:  # fmt: skip
    return {"kind": kind, "number": f"N-{kind[:3]}-{until}", "valid_from": since,
            "valid_until": until, "status": status}  # fmt: skip


def depot(updated: float = -240, **replaced: dict[str, Any]) -> dict[str, Any]:
    """DEPOT-1's facility record: every required licence valid, unless replaced by kind."""
    licences = [replaced.get(k, licence(k)) for k in KINDS]
    return {
        "facility_id": "DEPOT-1", "kind": "depot", "name": "Depot 1", "city": "Shenyang",
        "operator": "Sinopec", "updated_at": at(updated), "tanks": [], "nozzles": [],
        "licences": [x for x in licences if x],
    }  # fmt: skip


def test_the_required_kinds_are_the_simulators_depot_licences() -> None:
    assert set(Settings().depot_licence_kinds) == set(DEPOT_LICENCE_KINDS) == set(KINDS)


def _frames(versions: list[tuple[float, list[dict[str, Any]]]],
            dispatch_hours: list[float]) -> dict[str, pl.DataFrame]:  # fmt: skip
    dispatches = pl.DataFrame([{
        "dispatch_id": f"P{i}", "depot_id": "DEPOT-1", "station_id": "S1", "batch_id": "B",
        "product": "gasoline_92", "vehicle_plate": "辽A12345", "volume_20_l": 10_000.0,
        "dispatched_at": h(t)} for i, t in enumerate(dispatch_hours)],
        schema_overrides={"dispatched_at": UTC_US})  # fmt: skip
    rows = [{"depot_id": "DEPOT-1", "updated_at": h(u), **{
        **x, "valid_from": date.fromisoformat(x["valid_from"]),
        "valid_until": date.fromisoformat(x["valid_until"])}}
        for u, licences in versions for x in licences]  # fmt: skip
    licence_schema: dict[str, Any] = {
        "depot_id": pl.String, "updated_at": UTC_US, "kind": pl.String, "number": pl.String,
        "valid_from": pl.Date, "valid_until": pl.Date, "status": pl.String}  # fmt: skip
    return {
        "dispatches": dispatches,
        "versions": pl.DataFrame({"depot_id": "DEPOT-1", "updated_at": [h(u) for u, _ in versions]},
                                 schema={"depot_id": pl.String, "updated_at": UTC_US}),
        "licences": pl.DataFrame(rows, schema=licence_schema),
    }  # fmt: skip


def _found(frames: dict[str, pl.DataFrame]) -> dict[str, dict[str, Any]]:
    found = detect(frames, Settings(), Scope(pl.DataFrame(), NOW))
    return {r["subject"]: r for r in found.to_dicts()}


def test_expiry_is_judged_on_the_beijing_date_of_the_dispatch() -> None:
    lapsing = [licence("hazardous_chemicals", until="2026-11-20"), licence("business_licence"),
               licence("environmental_approval")]  # fmt: skip
    # 15:00 UTC is 23:00 on the 20th in Beijing (valid); 17:00 UTC is 01:00 on the 21st
    found = _found(_frames([(-240, lapsing)], [15, 17]))
    assert list(found) == ["P1"]
    f = found["P1"]
    assert (f["severity"], f["depot_id"], f["station_id"]) == ("critical", "DEPOT-1", "S1")
    assert (f["window_start"], f["window_end"]) == (h(17), h(17))
    e = f["evidence"]
    assert e["dispatch_date"] == date(2026, 11, 21)
    assert e["licence_problems"] == [{
        "kind": "hazardous_chemicals", "problem": "expired",
        "number": "N-haz-2026-11-20", "valid_from": "2020-01-01",
        "valid_until": "2026-11-20", "status": "valid"}]  # fmt: skip
    assert "hazardous_chemicals no. N-haz-2026-11-20 expired 2026-11-20" in RULE.describe(e)


@pytest.mark.parametrize(("licences", "severity", "problems"), [
    ([licence("hazardous_chemicals", status="suspended")], "critical",
     [("hazardous_chemicals", "suspended")]),
    ([licence("business_licence", status="revoked")], "critical",
     [("business_licence", "revoked")]),
    ([licence("environmental_approval", since="2026-12-01")], "high",
     [("environmental_approval", "not_yet_valid")]),
    ([licence("environmental_approval", until="2026-01-01")], "high",
     [("environmental_approval", "expired")]),
    # an expired licence beside its renewal: the kind is held
    ([licence("hazardous_chemicals", until="2026-01-01"), licence("hazardous_chemicals")],
     None, []),
])  # fmt: skip
def test_status_dates_and_severity(licences: list[dict[str, Any]], severity: str | None,
                                   problems: list[tuple[str, str]]) -> None:  # fmt: skip
    kinds = {x["kind"] for x in licences}
    held = licences + [licence(k) for k in KINDS if k not in kinds]
    found = _found(_frames([(-240, held)], [1]))
    if severity is None:
        assert found == {}
        return
    e = found["P0"]["evidence"]
    assert found["P0"]["severity"] == severity
    assert [(p["kind"], p["problem"]) for p in e["licence_problems"]] == problems


def test_missing_kinds_and_an_unregistered_depot() -> None:
    only_business = [licence("business_licence")]
    [f] = _found(_frames([(-240, only_business)], [1])).values()
    assert f["severity"] == "critical"
    assert [(p["kind"], p["problem"]) for p in f["evidence"]["licence_problems"]] == [
        ("environmental_approval", "missing"), ("hazardous_chemicals", "missing")]
    [f] = _found(_frames([], [1])).values()
    assert (f["severity"], f["evidence"]["depot_registered"]) == ("critical", False)
    assert len(f["evidence"]["licence_problems"]) == 3
    assert "(no facility record)" in RULE.describe(f["evidence"])


def test_the_record_in_force_when_the_dispatch_left_counts() -> None:
    valid = [licence(k) for k in KINDS]
    revoked = [licence("hazardous_chemicals", status="revoked"), *valid[1:]]
    # revoked at 12 h: the dispatch at 1 h was lawful, the one at 13 h was not
    found = _found(_frames([(-240, valid), (12, revoked)], [1, 13]))
    assert list(found) == ["P1"]
    assert found["P1"]["evidence"]["depot_record_updated_at"] == h(12)
    # a dispatch before the depot's first record is judged by that first record
    assert list(_found(_frames([(12, revoked)], [1]))) == ["P0"]


def _analyse(con: duckdb.DuckDBPyConnection, tmp: Path, now: Any = NOW) -> list[tuple]:
    traceability.run(con, settings(tmp), now)
    anomalies.run(con, settings(tmp), now, (RULE,))
    rows = con.execute("SELECT station_id, depot_id, subject, severity, state, "
                       "evidence::VARCHAR FROM anomaly").fetchall()
    return [(*r[:5], json.loads(r[5])) for r in rows]


def test_through_the_warehouse_and_a_late_renewal_record_resolves_it(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    expired = licence("hazardous_chemicals", until="2026-11-01")
    load(con, tmp_path, facility=[station("S1"), depot(hazardous_chemicals=expired)],
         dispatch=[dispatch("P1", "B", "S1", 10_000, 1)])  # fmt: skip
    [(station_id, depot_id, subject, severity, state, e)] = _analyse(con, tmp_path)
    assert (station_id, depot_id, subject, severity, state) == (
        "S1", "DEPOT-1", "P1", "critical", "active")
    assert e["licence_problems"][0]["problem"] == "expired"
    assert e["volume_20_l"] == pytest.approx(10_000.0)
    # the depot's renewal, registered before the dispatch, reaches us a day late
    renewed = {**licence("hazardous_chemicals", since="2026-11-01"), "number": "N-new"}
    load(con, tmp_path, facility=[depot(updated=-48, hazardous_chemicals=renewed)])
    [(*_, state, _)] = _analyse(con, tmp_path, NOW + timedelta(hours=1))
    assert state == "resolved"


def test_a_clean_simulated_province_has_no_unlicensed_dispatch(tmp_path: Path) -> None:
    records = generate_province(seed=5, stations=10, days=2)
    assert len(records["delivery"]) > 5
    assert findings_on_province(tmp_path, records, DEFAULT_START + timedelta(days=2), RULE) == []


def test_injected_incidents_are_found_and_nothing_else(tmp_path: Path) -> None:
    generated = generate_with_truth(seed=3, stations=12, days=3, scenarios=RandomScenarios(
        per_kind=2, kinds=("unlicensed_depot",)))  # fmt: skip
    result = rule_on_truth(tmp_path, generated, DEFAULT_START + timedelta(days=4), RULE)
    assert result.expected
    assert result.missed == []
    # every dispatch the depot sent while unlicensed, each at its destination
    assert {a for i in result.expected for a in i.subject_aliases} == {
        f[2] for f in result.found}
    assert result.unexplained == []
