"""The annual inspection, on stations built by hand: licences expired, revoked, missing;
trading unlicensed; serious findings unresolved or confirmed; CSV and JSON, by the API."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fueltrace.api.app import create_app
from tests.api.conftest import GOOD_LICENCES, World, licensed, make_settings
from tests.processors.scenario import T0, load, sale
from warehouse import access, cases, inspection
from warehouse.connection import connect


def hours(day: str) -> float:
    """Scenario hours (from T0) of noon, Beijing time, on ``day`` of 2025."""
    at = datetime.fromisoformat(f"{day}T04:00:00+00:00")
    return (at - T0).total_seconds() / 3600


def with_licence(kind: str, **change: str) -> list[dict[str, Any]]:
    return [{**lic, **change} if lic["kind"] == kind else lic for lic in GOOD_LICENCES]


def finding(anomaly_id: str, station_id: str, severity: str, day: str, city: str = "Shenyang",
            state: str = "active") -> tuple:  # fmt: skip
    start = datetime.fromisoformat(f"{day}T00:00:00+00:00")
    return (anomaly_id, "totalizer_gap", severity, station_id, None, city, "N1", start,
            start + timedelta(hours=2), json.dumps({"gap_l": 30.0}), "a gap", state, start,
            start, None)  # fmt: skip


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("inspection")
    settings = make_settings(tmp)
    con = connect(settings.db)
    registered = "2025-01-01T00:00:00Z"
    stations = [
        licensed("OK", updated_at=registered),
        licensed("EXP", updated_at=registered,
                 licences=with_licence("retail_approval", valid_until="2025-10-31")),
        licensed("REV", updated_at=registered),
        licensed("MIS", updated_at=registered,
                 licences=[x for x in GOOD_LICENCES if x["kind"] != "environmental_approval"]),
        licensed("LATE", updated_at=registered,
                 licences=with_licence("retail_approval", valid_from="2025-07-01")),
        licensed("SER", updated_at=registered),
        licensed("DL", city="Dalian", updated_at=registered, licences=GOOD_LICENCES[:3]),
    ]  # fmt: skip
    # REV's hazardous-chemicals permit is revoked by a registry update on 1 September.
    revoked = licensed("REV", updated_at="2025-09-01T00:00:00Z",
                       licences=with_licence("hazardous_chemicals", status="revoked"))
    sales = [sale(s, hours("2025-06-01"), 20.0) for s in ("OK", "EXP", "REV", "SER", "DL")]
    sales += [sale("REV", hours("2025-10-01"), 30.0), sale("REV", hours("2025-10-02"), 10.0)]
    sales += [sale("LATE", hours("2025-03-01"), 25.0), sale("LATE", hours("2025-08-01"), 5.0)]
    load(con, tmp, facility=[*stations, revoked], sale=sales)
    con.executemany("INSERT INTO anomaly VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        finding("A-HIGH", "SER", "high", "2025-05-01"),
        finding("A-MEDIUM", "SER", "medium", "2025-05-02"),
        finding("A-CRIT-CONFIRMED", "SER", "critical", "2025-05-03"),
        finding("A-HIGH-FALSE", "SER", "high", "2025-05-04"),
        finding("A-HIGH-2024", "OK", "high", "2024-05-04"),
        finding("A-HIGH-RESOLVED", "OK", "high", "2025-05-04", state="resolved"),
    ])  # fmt: skip
    now = datetime(2026, 1, 5, tzinfo=UTC)
    cases.sync_cases(con, now)
    ids = dict(con.execute("SELECT anomaly_id, case_id FROM anomaly_case").fetchall())
    for anomaly_id, resolution in (("A-CRIT-CONFIRMED", "confirmed_violation"),
                                   ("A-HIGH-FALSE", "false_alarm")):  # fmt: skip
        for to in ("acknowledged", "closed"):
            cases.transition(con, ids[anomaly_id], to, actor="t", actor_role="admin",
                             reason="done", now=now,
                             resolution=resolution if to == "closed" else None)  # fmt: skip
    world = World(con, settings)
    for name, role, scope in (("provincial", "provincial_regulator", None),
                              ("city_sy", "city_regulator", "Shenyang")):  # fmt: skip
        world.tokens[name], _ = access.create_token(con, role=role, scope=scope, label=name,
                                                    created_by="t", now=now)  # fmt: skip
    yield world
    con.close()


def _reasons(report: dict[str, Any]) -> dict[str, dict[str, dict]]:
    return {s["station_id"]: {r["code"]: r for r in s["reasons"]} for s in report["stations"]}


def test_who_fails_and_why(province: World) -> None:
    report = inspection.annual_inspection(province.con, 2025, today=date(2026, 3, 1))
    assert report["as_of"] == "2025-12-31" and report["stations_inspected"] == 7
    found = _reasons(report)
    assert set(found) == {"EXP", "REV", "MIS", "LATE", "SER", "DL"}  # OK passes
    assert set(found["EXP"]) == {"licence_expired"}
    assert found["EXP"]["licence_expired"]["valid_until"] == "2025-10-31"
    assert set(found["REV"]) == {"licence_revoked", "traded_unlicensed"}
    traded = found["REV"]["traded_unlicensed"]
    assert (traded["days"], traded["sales"], traded["volume_l"]) == (2, 2, 40.0)
    assert (traded["first_day"], traded["last_day"]) == ("2025-10-01", "2025-10-02")
    assert traded["licences"] == ["hazardous_chemicals"]
    assert set(found["MIS"]) == {"licence_missing"}
    assert found["MIS"]["licence_missing"]["kind"] == "environmental_approval"
    assert set(found["LATE"]) == {"traded_unlicensed"}  # its approval came in July
    assert found["LATE"]["traded_unlicensed"]["first_day"] == "2025-03-01"
    assert found["LATE"]["traded_unlicensed"]["days"] == 1
    assert set(found["SER"]) == {"serious_anomalies_unresolved", "confirmed_violations"}
    assert found["SER"]["serious_anomalies_unresolved"]["anomaly_ids"] == ["A-HIGH"]
    assert found["SER"]["confirmed_violations"]["anomaly_ids"] == ["A-CRIT-CONFIRMED"]
    assert set(found["DL"]) == {"licence_missing"}
    for station in report["stations"]:
        assert all(r["text"] for r in station["reasons"])


def test_the_current_year_is_judged_as_of_today(province: World) -> None:
    report = inspection.annual_inspection(province.con, 2025, today=date(2025, 9, 15))
    assert report["as_of"] == "2025-09-15"
    found = _reasons(report)
    assert "EXP" not in found  # still valid on 15 September
    assert set(found["REV"]) == {"licence_revoked"}  # no sale since the revocation yet
    with pytest.raises(ValueError):
        inspection.annual_inspection(province.con, 2027, today=date(2026, 3, 1))


def test_the_inspection_csv(province: World) -> None:
    report = inspection.annual_inspection(province.con, 2025, today=date(2026, 3, 1))
    rows = list(csv.DictReader(io.StringIO(inspection.inspection_csv(report))))
    assert list(rows[0]) == list(inspection.CSV_COLUMNS)
    by = {(r["station_id"], r["reason"]): r for r in rows}
    assert len(rows) == sum(len(s["reasons"]) for s in report["stations"])
    evidence = json.loads(by[("REV", "traded_unlicensed")]["evidence"])
    assert evidence["days"] == 2 and by[("REV", "traded_unlicensed")]["year"] == "2025"


@pytest.fixture(scope="module")
def client(province: World) -> Iterator[TestClient]:
    with TestClient(create_app(province.settings, province.con, web=None)) as made:
        yield made


def test_the_inspection_through_the_api(province: World, client: TestClient) -> None:
    whole = client.get("/api/v1/inspections/2025", headers=province.headers("provincial"))
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body["total"] == body["stations_failing"] == 6
    page = client.get("/api/v1/inspections/2025?limit=2&offset=2",
                      headers=province.headers("provincial")).json()  # fmt: skip
    assert [s["station_id"] for s in page["stations"]] == [
        s["station_id"] for s in body["stations"][2:4]]
    mine = client.get("/api/v1/inspections/2025", headers=province.headers("city_sy")).json()
    assert {s["city"] for s in mine["stations"]} == {"Shenyang"} and mine["city"] == "Shenyang"
    exported = client.get("/api/v1/inspections/2025?format=csv&city=Shenyang",
                          headers=province.headers("city_sy"))  # fmt: skip
    assert exported.headers["content-type"].startswith("text/csv")
    assert "inspection-2025-Shenyang.csv" in exported.headers["content-disposition"]
    assert {r["city"] for r in csv.DictReader(io.StringIO(exported.text))} == {"Shenyang"}
    future = client.get("/api/v1/inspections/2099", headers=province.headers("provincial"))
    assert future.status_code == 422


