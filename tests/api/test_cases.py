"""The case workflow: transitions legal and not, assignment and notes, the audit trail (who,
when, what, why; append-only; exported), and a closed finding found again reopening."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import World, error_of
from warehouse import cases

ROOT = Path(__file__).resolve().parents[2]
T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def move(client: TestClient, world: World, case_id: int, to: str, who: str = "city_sy",
         **extra: str) -> tuple[int, dict]:  # fmt: skip
    response = client.post(f"/api/v1/cases/{case_id}/transition", headers=world.headers(who),
                           json={"to": to, "reason": f"because {to}", **extra})  # fmt: skip
    return response.status_code, response.json()


def test_a_case_goes_open_acknowledged_investigating_closed(
    fresh: tuple[World, TestClient]
) -> None:
    world, client = fresh
    case_id = world.ids["case_S1"]
    status, case = move(client, world, case_id, "acknowledged")
    assert status == 200 and case["state"] == "acknowledged"
    assert case["allowed_transitions"] == ["investigating", "closed"]
    assigned = client.post(f"/api/v1/cases/{case_id}/assign", headers=world.headers("city_sy"),
                           json={"assignee": "Inspector Wang", "reason": "his district"})
    assert assigned.status_code == 200 and assigned.json()["assignee"] == "Inspector Wang"
    noted = client.post(f"/api/v1/cases/{case_id}/notes", headers=world.headers("provincial"),
                        json={"text": "asked the station for the pump log"})  # fmt: skip
    assert noted.json()["notes"][-1]["text"] == "asked the station for the pump log"
    assert move(client, world, case_id, "investigating")[1]["state"] == "investigating"
    status, case = move(client, world, case_id, "closed", resolution="confirmed_violation")
    assert status == 200
    assert (case["state"], case["resolution"]) == ("closed", "confirmed_violation")
    assert case["closed_at"] and case["allowed_transitions"] == []
    events = case["events"]
    assert [e["action"] for e in events] == ["opened", "acknowledged", "assigned", "note",
                                             "investigating", "closed"]  # fmt: skip
    assert events[0]["actor"] == "system:rules"
    assert events[1]["actor"] == f"test city_sy ({world.ids['token_city_sy']})"
    assert events[1]["actor_role"] == "city_regulator"
    assert events[1]["reason"] == "because acknowledged"
    assert events[-1]["resolution"] == "confirmed_violation"
    assert all(e["at"] for e in events)
    # a note on a closed case is still welcome
    assert client.post(f"/api/v1/cases/{case_id}/notes", headers=world.headers("admin"),
                       json={"text": "fined 50,000 yuan"}).status_code == 200  # fmt: skip


@pytest.mark.parametrize(("path", "to", "body_extra", "status", "code"), [
    ([], "investigating", {}, 409, "illegal_transition"),  # open → investigating: skips ack
    ([], "closed", {"resolution": "explained"}, 409, "illegal_transition"),
    ([], "open", {}, 409, "illegal_transition"),
    (["acknowledged"], "acknowledged", {}, 409, "illegal_transition"),
    (["acknowledged"], "closed", {}, 422, "invalid_parameter"),  # no resolution
    (["acknowledged"], "investigating", {"resolution": "explained"}, 422, "invalid_parameter"),
    (["acknowledged"], "closed", {"resolution": "shrug"}, 422, "invalid_request"),
    (["acknowledged"], "archived", {}, 422, "invalid_request"),
    (["acknowledged", "closed"], "investigating", {}, 409, "illegal_transition"),
    (["acknowledged", "closed"], "open", {}, 409, "illegal_transition"),
])  # fmt: skip
def test_illegal_moves_are_refused_and_change_nothing(
    fresh: tuple[World, TestClient], path: list[str], to: str,
    body_extra: dict, status: int, code: str,
) -> None:  # fmt: skip
    world, client = fresh
    case_id = world.ids["case_S1"]
    for step in path:
        extra = {"resolution": "false_alarm"} if step == "closed" else {}
        assert move(client, world, case_id, step, **extra)[0] == 200
    before = world.con.execute("SELECT count(*) FROM case_event").fetchall()
    response = client.post(f"/api/v1/cases/{case_id}/transition",
                           headers=world.headers("city_sy"),
                           json={"to": to, "reason": "try", **body_extra})  # fmt: skip
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code
    if code == "illegal_transition":
        allowed = cases.TRANSITIONS[path[-1] if path else "open"]
        assert error["details"][0]["allowed"] == list(allowed)
    assert world.con.execute("SELECT count(*) FROM case_event").fetchall() == before


def test_every_move_needs_a_reason(fresh: tuple[World, TestClient]) -> None:
    world, client = fresh
    for body in ({"to": "acknowledged"}, {"to": "acknowledged", "reason": ""}):
        response = client.post(f"/api/v1/cases/{world.ids['case_S1']}/transition",
                               headers=world.headers("city_sy"), json=body)  # fmt: skip
        assert response.status_code == 422
    with pytest.raises(Exception, match="needs a reason"):
        cases.transition(world.con, world.ids["case_S1"], "acknowledged", actor="x",
                         actor_role="admin", reason="   ", now=T)  # fmt: skip


def _trail(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT * FROM case_event ORDER BY event_id").fetchall()


def test_the_audit_trail_is_append_only_and_exported(
    fresh: tuple[World, TestClient]
) -> None:
    world, client = fresh
    first = _trail(world.con)
    move(client, world, world.ids["case_S1"], "acknowledged")
    move(client, world, world.ids["case_S2"], "acknowledged", who="city_dl")
    second = _trail(world.con)
    move(client, world, world.ids["case_S1"], "closed", resolution="explained")
    cases.sync_cases(world.con, T + timedelta(days=1))
    third = _trail(world.con)
    assert second[: len(first)] == first and third[: len(second)] == second
    assert len(third) == len(first) + 3
    # The trail is written by INSERT only: no code anywhere updates or deletes it.
    sources = [p for d in ("warehouse", "fueltrace", "processors", "ingest")
               for p in (ROOT / d).rglob("*.py")]  # fmt: skip
    sources += list((ROOT / "warehouse" / "migrations").glob("*.sql"))
    pattern = re.compile(r"(UPDATE\s+case_event|DELETE\s+FROM\s+case_event|"
                         r"TRUNCATE\s+case_event|DROP\s+TABLE\s+case_event)", re.I)
    assert [p.name for p in sources if pattern.search(p.read_text(encoding="utf-8"))] == []
    # exported: JSON pages and CSV, a city regulator seeing its city's rows only
    page = client.get("/api/v1/audit?limit=2", headers=world.headers("provincial")).json()
    assert page["total"] == len(third) and len(page["items"]) == 2
    export = client.get("/api/v1/audit?format=csv", headers=world.headers("city_sy"))
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert {r["city"] for r in rows} == {"Shenyang"}
    assert [r["action"] for r in rows] == ["opened", "acknowledged", "closed"]
    assert rows[-1]["reason"] == "because closed" and rows[-1]["resolution"] == "explained"
    since = client.get("/api/v1/audit", params={"since": "2999-01-01"},
                       headers=world.headers("provincial")).json()  # fmt: skip
    assert since["total"] == 0


def _found_again(con: duckdb.DuckDBPyConnection, anomaly_id: str, at: datetime,
                 change: str = "reraised") -> None:  # fmt: skip
    """What the engine writes when the rules find a finding again (``reconcile``)."""
    con.execute("UPDATE anomaly SET state = 'active', updated_at = $at, resolved_at = NULL "
                "WHERE anomaly_id = $id", {"at": at, "id": anomaly_id})
    con.execute("""INSERT INTO anomaly_history SELECT anomaly_id, $at, $change, severity,
                   evidence, summary, 99 FROM anomaly WHERE anomaly_id = $id""",
                {"at": at, "change": change, "id": anomaly_id})  # fmt: skip


@pytest.mark.parametrize("change", ["reraised", "updated"])
def test_a_closed_finding_found_again_opens_a_linked_case(
    fresh: tuple[World, TestClient], change: str
) -> None:
    world, client = fresh
    anomaly_id, first = world.ids["anomaly_S1"], world.ids["case_S1"]
    cases.transition(world.con, first, "acknowledged", actor="a", actor_role="admin",
                     reason="seen", now=T)  # fmt: skip
    cases.transition(world.con, first, "closed", actor="a", actor_role="admin",
                     reason="pump replaced", resolution="false_alarm", now=T)  # fmt: skip
    # nothing new since the close: nothing reopens, however often the sync runs
    assert cases.sync_cases(world.con, T + timedelta(hours=1)).reopened == 0
    # resolved by late data after the close: still nothing to do
    world.con.execute("UPDATE anomaly SET state = 'resolved' WHERE anomaly_id = $id",
                      {"id": anomaly_id})  # fmt: skip
    world.con.execute("INSERT INTO anomaly_history SELECT anomaly_id, $at, 'resolved', "
                      "severity, evidence, summary, 98 FROM anomaly WHERE anomaly_id = $id",
                      {"at": T + timedelta(hours=2), "id": anomaly_id})  # fmt: skip
    assert cases.sync_cases(world.con, T + timedelta(hours=3)).reopened == 0
    # found again after the close: a new case, linked to the closed one
    _found_again(world.con, anomaly_id, T + timedelta(hours=4), change)
    assert cases.sync_cases(world.con, T + timedelta(hours=5)).reopened == 1
    assert cases.sync_cases(world.con, T + timedelta(hours=6)).reopened == 0
    detail = client.get(f"/api/v1/anomalies/{anomaly_id}",
                        headers=world.headers("provincial")).json()  # fmt: skip
    newer, older = detail["cases"]
    assert (older["case_id"], older["state"], older["resolution"]) == (first, "closed",
                                                                        "false_alarm")
    assert (newer["state"], newer["case_no"], newer["reopened_from"]) == ("open", 2, first)
    assert detail["case"]["case_id"] == newer["case_id"]
    events = client.get(f"/api/v1/cases/{newer['case_id']}",
                        headers=world.headers("city_sy")).json()["events"]  # fmt: skip
    assert [e["action"] for e in events] == ["reopened"]
    assert events[0]["actor"] == "system:rules" and f"case {first}" in events[0]["reason"]
    assert change in events[0]["reason"]
    # the closed case is kept as it was
    old = client.get(f"/api/v1/cases/{first}", headers=world.headers("city_sy")).json()
    assert old["state"] == "closed" and len(old["events"]) == 3


def test_cases_list_filters(world: World, client: TestClient) -> None:
    everything = client.get("/api/v1/cases", headers=world.headers("provincial")).json()
    assert everything["total"] == 2
    assert {c["state"] for c in everything["items"]} == {"open"}
    for query, total in (("state=open", 2), ("state=closed", 0), ("city=Dalian", 1),
                         ("rule=totalizer_gap&severity=high", 2), ("station_id=S1", 1),
                         ("assignee=nobody", 0)):  # fmt: skip
        found = client.get(f"/api/v1/cases?{query}", headers=world.headers("provincial"))
        assert found.json()["total"] == total, query
    assert json.loads(json.dumps(everything))["items"][0]["summary"]
