"""The regulator API's read side, in-process over a real warehouse."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from fueltrace.api.app import WEB, create_app
from tests.api.conftest import World, error_of


def get(client: TestClient, world: World, path: str, who: str = "provincial") -> dict:
    response = client.get(path, headers=world.headers(who))
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def test_anomalies_with_the_clis_filters_and_pages(world: World, client: TestClient) -> None:
    everything = get(client, world, "/api/v1/anomalies")
    assert everything["total"] == 2 and len(everything["items"]) == 2
    first = everything["items"][0]
    assert {"anomaly_id", "rule", "severity", "station_id", "city", "window_start",
            "window_end", "evidence", "summary", "state", "case"} <= set(first)  # fmt: skip
    assert first["evidence"]["gap_l"] == pytest.approx(20.0)
    assert first["case"]["state"] == "open"
    page = get(client, world, "/api/v1/anomalies?limit=1&offset=1")
    assert page["total"] == 2 and len(page["items"]) == 1
    assert page["items"][0]["anomaly_id"] == everything["items"][1]["anomaly_id"]
    dalian = get(client, world, "/api/v1/anomalies?city=Dalian&rule=totalizer_gap&severity=high")
    assert [a["station_id"] for a in dalian["items"]] == ["S2"]
    assert get(client, world, "/api/v1/anomalies?station_id=S1")["total"] == 1
    assert get(client, world, "/api/v1/anomalies?since=2026-11-21")["total"] == 0
    assert get(client, world, "/api/v1/anomalies?until=2026-11-20T00:00:00Z")["total"] == 0
    assert get(client, world, "/api/v1/anomalies?since=2026-11-20T00:00:00%2B08:00")["total"] == 2


def test_a_city_regulator_sees_its_city_only(world: World, client: TestClient) -> None:
    mine = get(client, world, "/api/v1/anomalies", who="city_sy")
    assert {a["city"] for a in mine["items"]} == {"Shenyang"} and mine["total"] == 1
    stations = get(client, world, "/api/v1/stations", who="city_sy")
    assert [s["station_id"] for s in stations["items"]] == ["S1", "S3"]
    cases = get(client, world, "/api/v1/cases", who="city_dl")
    assert [c["station_id"] for c in cases["items"]] == ["S2"]
    # batch B1 went to both cities: each sees its part, with totals over it
    whole = get(client, world, "/api/v1/trace/batches/B1")
    part = get(client, world, "/api/v1/trace/batches/B1", who="city_sy")
    assert {t["station_id"] for t in whole["tanks"]} == {"S1", "S2"}
    assert {t["station_id"] for t in part["tanks"]} == {"S1"}
    assert part["totals"]["received_l"] == pytest.approx(whole["totals"]["received_l"] / 2)


@pytest.mark.parametrize("evil", [
    "S1' OR '1'='1", "S1; DROP TABLE anomaly; --", "%' OR 1=1 --", "S1\x00", "' UNION SELECT "
    "secret_hash, salt, role, scope, label, token_id, created_by, created_at, created_at, "
    "'{}', label, role, created_at, created_at, NULL FROM api_token --",
])  # fmt: skip
def test_injection_in_filters_is_harmless(world: World, client: TestClient, evil: str) -> None:
    for path in ("/api/v1/anomalies", "/api/v1/cases"):
        response = client.get(path, params={"station_id": evil},
                              headers=world.headers("provincial"))  # fmt: skip
        assert response.status_code == 200 and response.json()["total"] == 0
    response = client.get("/api/v1/anomalies", params={"city": evil},
                          headers=world.headers("provincial"))  # fmt: skip
    assert response.status_code == 422
    assert client.get(f"/api/v1/stations/{quote(evil, safe='')}",
                      headers=world.headers("provincial")).status_code == 404
    assert world.con.execute("SELECT count(*) FROM anomaly").fetchall() == [(2,)]


def test_a_stations_overview(world: World, client: TestClient) -> None:
    overview = get(client, world, "/api/v1/stations/S1")
    assert (overview["name"], overview["city"]) == ("Station S1", "Shenyang")
    assert {lic["kind"] for lic in overview["licences"]} == {
        "retail_approval", "hazardous_chemicals", "business_licence", "environmental_approval"}
    assert all(lic["standing"] == "valid" for lic in overview["licences"])
    [tank] = overview["tanks"]
    assert tank["tank_id"] == "T1" and tank["last_read_at"] and tank["last_volume_20_l"] > 0
    assert overview["active_anomalies"] == {"high": 1} and overview["open_cases"] == 1
    assert [a["rule"] for a in overview["recent_anomalies"]] == ["totalizer_gap"]


def test_a_tanks_daily_reconciliation(world: World, client: TestClient) -> None:
    series = get(client, world, "/api/v1/stations/S1/tanks/T1/reconciliation"
                                "?from=2026-11-20&to=2026-11-21")  # fmt: skip
    assert series["from"] == "2026-11-20" and series["unit"] == "L at 20 °C"
    days = {d["date"]: d for d in series["days"]}
    assert set(days) <= {"2026-11-20", "2026-11-21"}
    for day in days.values():
        if day["result"] != "inconclusive":
            assert day["book_20_l"] == pytest.approx(
                day["opening_20_l"] + day["deliveries_20_l"] - day["sales_20_l"])
            assert day["variance_20_l"] == pytest.approx(day["closing_20_l"] - day["book_20_l"])
    bad = client.get("/api/v1/stations/S1/tanks/T1/reconciliation?from=2025-01-01&to=2026-11-21",
                     headers=world.headers("provincial"))  # fmt: skip
    assert bad.status_code == 422
    assert client.get("/api/v1/stations/S1/tanks/T9/reconciliation",
                      headers=world.headers("provincial")).status_code == 404


def test_traces_and_a_recall(world: World, client: TestClient) -> None:
    sale = get(client, world, f"/api/v1/trace/sales/S1/{world.ids['txn_S1']}")
    assert sale["station_id"] == "S1" and "batches" in sale
    delivery = get(client, world, "/api/v1/trace/deliveries/D1")
    assert delivery["batch_id"] == "B1"
    recall = get(client, world, "/api/v1/recalls/B1")
    assert {t["station_id"] for t in recall["tanks_to_seal"]} == {"S1", "S2"}
    response = client.get("/api/v1/recalls/B1?format=csv", headers=world.headers("city_sy"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["station_id"] for r in rows] == ["S1"] and rows[0]["batch_id"] == "B1"
    missing = client.get("/api/v1/trace/batches/NOPE", headers=world.headers("provincial"))
    assert error_of(missing)["code"] == "not_found"


def test_health_and_metrics(world: World, client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"warehouse": True}
    client.get("/api/v1/stations/S1", headers=world.headers("provincial"))
    text = client.get("/metrics").text
    assert 'route="/api/v1/stations/{station_id}"' in text
    assert 'route="/api/v1/stations/S1"' not in text  # templates, never paths
    assert "fueltrace_up" in text
    answer = client.get("/api/v1/stations", headers=world.headers("provincial"))
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_readyz_is_503_when_a_check_fails(world: World,
                                         client_for: Callable[..., TestClient]) -> None:
    client = client_for(world, checks={"broker": lambda: False, "ingest": lambda: True})
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready",
                               "checks": {"warehouse": True, "broker": False, "ingest": True}}


def test_the_openapi_document_describes_the_service(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/v1/anomalies", "/api/v1/stations/{station_id}",
                 "/api/v1/stations/{station_id}/tanks/{tank_id}/reconciliation",
                 "/api/v1/trace/sales/{station_id}/{txn_id}", "/api/v1/trace/batches/{batch_id}",
                 "/api/v1/recalls/{batch_id}", "/api/v1/inspections/{year}", "/api/v1/cases",
                 "/api/v1/audit", "/api/v1/gateway/sale", "/api/v1/gateway/sale/batch",
                 "/api/v1/tokens", "/healthz", "/readyz"):  # fmt: skip
        assert path in paths, path
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    body = paths["/api/v1/gateway/sale"]["post"]["requestBody"]["content"]["application/json"]
    assert "totalizer_end_l" in body["schema"]["required"]


def test_the_web_page_is_served_at_the_root_beside_the_api(world: World) -> None:
    if not (WEB / "index.html").is_file():
        pytest.skip("the web page is not there yet")
    client = TestClient(create_app(world.settings, world.con))
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/api/v1/stations", headers=world.headers("admin")).status_code == 200
    missing = client.get("/api/v1/nope", headers=world.headers("admin"))
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
