"""Access control: one table of endpoint × caller → status, covering every 401 and 403
path, then what a refusal says (nothing), that it is logged, and how tokens are kept."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import World, error_of
from warehouse import access

# Path templates: {anomaly_S2} etc. are filled from World.ids.
SALE_S1 = {"txn_id": "G1", "station_id": "S1", "dispenser_id": "D1", "nozzle_id": "N-T1",
           "product": "gasoline_92", "volume_l": 20.0, "unit_price_fen": 800,
           "amount_fen": 16000, "totalizer_start_l": 1.0, "totalizer_end_l": 21.0,
           "started_at": "2026-11-20T08:00:00Z", "ended_at": "2026-11-20T08:01:00Z",
           "invoice_id": None}  # fmt: skip
SALE_S2 = {**SALE_S1, "station_id": "S2"}
DISPATCH_OTHER = {"dispatch_id": "PX", "depot_id": "DEPOT-2", "batch_id": "B9",
                  "product": "gasoline_92", "station_id": "S1", "vehicle_plate": "辽A1",
                  "seal_ids": [], "volume_l": 100.0, "temperature_c": 20.0,
                  "density_kg_m3": 740.0, "dispatched_at": "2026-11-20T08:00:00Z"}  # fmt: skip
TRANSITION = {"to": "acknowledged", "reason": "seen"}
TOKEN_IN = {"role": "station", "scope": "S9", "label": "new"}

# (method, path, caller, body, expected status)
MATRIX: list[tuple[str, str, str | None, Any, int]] = [
    # 401: no token, a wrong one, a malformed one, a revoked one, an expired one
    ("GET", "/api/v1/anomalies", None, None, 401),
    ("GET", "/api/v1/anomalies", "wrong", None, 401),
    ("GET", "/api/v1/anomalies", "malformed", None, 401),
    ("GET", "/api/v1/anomalies", "revoked", None, 401),
    ("GET", "/api/v1/anomalies", "expired", None, 401),
    ("GET", "/api/v1/whoami", None, None, 401),
    ("POST", "/api/v1/gateway/sale", None, SALE_S1, 401),
    ("POST", "/api/v1/gateway/sale", "revoked", SALE_S1, 401),
    ("GET", "/api/v1/tokens", None, None, 401),
    ("POST", "/api/v1/cases/{case_S1}/transition", "wrong", TRANSITION, 401),
    # the regulators read
    ("GET", "/api/v1/anomalies", "provincial", None, 200),
    ("GET", "/api/v1/anomalies", "admin", None, 200),
    ("GET", "/api/v1/anomalies", "city_sy", None, 200),
    ("GET", "/api/v1/anomalies?city=Shenyang", "city_sy", None, 200),
    ("GET", "/api/v1/anomalies?city=Dalian", "provincial", None, 200),
    ("GET", "/api/v1/stations/S2", "provincial", None, 200),
    ("GET", "/api/v1/stations/S1", "city_sy", None, 200),
    ("GET", "/api/v1/whoami", "station_s1", None, 200),
    # 403: stations and depots do not read the regulator API
    ("GET", "/api/v1/anomalies", "station_s1", None, 403),
    ("GET", "/api/v1/stations/S1", "station_s1", None, 403),
    ("GET", "/api/v1/trace/batches/B1", "depot", None, 403),
    ("GET", "/api/v1/inspections/2026", "station_s1", None, 403),
    ("GET", "/api/v1/cases", "station_s1", None, 403),
    ("GET", "/api/v1/audit", "depot", None, 403),
    ("POST", "/api/v1/cases/{case_S1}/transition", "station_s1", TRANSITION, 403),
    # 403: a city reading another city by name
    ("GET", "/api/v1/anomalies?city=Dalian", "city_sy", None, 403),
    ("GET", "/api/v1/stations?city=Dalian", "city_sy", None, 403),
    ("GET", "/api/v1/cases?city=Dalian", "city_sy", None, 403),
    ("GET", "/api/v1/audit?city=Dalian", "city_sy", None, 403),
    ("GET", "/api/v1/inspections/2026?city=Dalian", "city_sy", None, 403),
    # 404: a city reading another city's things by id (as if they did not exist)
    ("GET", "/api/v1/stations/S2", "city_sy", None, 404),
    ("GET", "/api/v1/stations/S2/tanks/T1/reconciliation", "city_sy", None, 404),
    ("GET", "/api/v1/anomalies/{anomaly_S2}", "city_sy", None, 404),
    ("GET", "/api/v1/trace/sales/S2/{txn_S2}", "city_sy", None, 404),
    ("GET", "/api/v1/trace/deliveries/D2", "city_sy", None, 404),
    ("GET", "/api/v1/cases/{case_S2}", "city_sy", None, 404),
    ("POST", "/api/v1/cases/{case_S2}/transition", "city_sy", TRANSITION, 404),
    ("POST", "/api/v1/cases/{case_S2}/notes", "city_sy", {"text": "x"}, 404),
    ("GET", "/api/v1/anomalies/{anomaly_S1}", "city_dl", None, 404),
    # 403: only admins manage tokens
    ("GET", "/api/v1/tokens", "provincial", None, 403),
    ("GET", "/api/v1/tokens", "city_sy", None, 403),
    ("POST", "/api/v1/tokens", "provincial", TOKEN_IN, 403),
    ("POST", "/api/v1/tokens", "station_s1", TOKEN_IN, 403),
    ("DELETE", "/api/v1/tokens/{token_admin}", "city_sy", None, 403),
    ("GET", "/api/v1/tokens", "admin", None, 200),
    # 403: the gateway — a station writing as another station, a depot as another depot,
    # roles that do not send, record types a role does not send
    ("POST", "/api/v1/gateway/sale", "station_s1", SALE_S2, 403),
    ("POST", "/api/v1/gateway/sale/batch", "station_s1", {"records": [SALE_S1, SALE_S2]}, 403),
    ("POST", "/api/v1/gateway/dispatch", "depot", DISPATCH_OTHER, 403),
    ("POST", "/api/v1/gateway/dispatch", "station_s1", DISPATCH_OTHER, 403),
    ("POST", "/api/v1/gateway/sale", "depot", SALE_S1, 403),
    ("POST", "/api/v1/gateway/sale", "provincial", SALE_S1, 403),
    ("POST", "/api/v1/gateway/sale", "city_sy", SALE_S1, 403),
    ("POST", "/api/v1/gateway/facility", "station_s1", {"facility_id": "S1"}, 403),
]


def _fill(path: str, world: World) -> str:
    return path.format(**world.ids)


def _headers(world: World, caller: str | None) -> dict[str, str]:
    if caller == "wrong":
        return {"Authorization": "Bearer ft_000000000000_" + "x" * 43}
    if caller == "malformed":
        return {"Authorization": "Bearer not-a-token"}
    return world.headers(caller)


@pytest.mark.parametrize(("method", "path", "caller", "body", "expected"), MATRIX,
                         ids=[f"{m} {p} as {c} -> {e}" for m, p, c, _, e in MATRIX])  # fmt: skip
def test_access_matrix(world: World, client: TestClient, caplog: pytest.LogCaptureFixture,
                       method: str, path: str, caller: str | None, body: Any,
                       expected: int) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="fueltrace.api.auth")
    response = client.request(method, _fill(path, world), headers=_headers(world, caller),
                              json=body)  # fmt: skip
    assert response.status_code == expected, response.text
    if expected < 400:
        return
    error = error_of(response)
    refusals = [r.getMessage() for r in caplog.records if "access refused" in r.getMessage()]
    assert refusals and f"status={expected}" in refusals[-1]
    assert error["request_id"] in refusals[-1]
    # A refusal names nothing of the data: no other station's name, no city's findings.
    for secret in ("Station S2", "Station S1", "Sinopec", "totalizer", world.tokens["admin"]):
        assert secret not in response.text
    if expected == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert error["code"] == "unauthorized"
    if expected == 403:
        assert error["code"] == "forbidden"


@pytest.mark.parametrize(("other", "missing"), [
    ("/api/v1/stations/S2", "/api/v1/stations/S9"),
    ("/api/v1/anomalies/{anomaly_S2}", "/api/v1/anomalies/TOT-0000000000000000"),
    ("/api/v1/trace/sales/S2/{txn_S2}", "/api/v1/trace/sales/S9/{txn_S2}"),
    ("/api/v1/cases/{case_S2}", "/api/v1/cases/999999"),
])  # fmt: skip
def test_another_citys_thing_answers_exactly_as_a_missing_one(
    world: World, client: TestClient, other: str, missing: str
) -> None:
    def answer(path: str) -> dict[str, Any]:
        response = client.get(_fill(path, world), headers=world.headers("city_sy"))
        assert response.status_code == 404
        error = error_of(response)
        error.pop("request_id")
        # the message names what was asked for; with the asked id masked they are the same
        asked = _fill(path, world).rsplit("/", 1)[-1]
        station = _fill(path, world).split("/")[-2]
        error["message"] = error["message"].replace(asked, "ID").replace(station, "ST")
        return error

    assert answer(other) == answer(missing)


def test_tokens_are_stored_hashed_and_shown_once(world: World, client: TestClient) -> None:
    created = client.post("/api/v1/tokens", headers=world.headers("admin"),
                          json={"role": "city_regulator", "scope": "Anshan",
                                "label": "Anshan bureau"})  # fmt: skip
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    secret = token.split("_", 2)[2]
    stored = world.con.execute("SELECT * FROM api_token").fetchall()
    assert secret not in repr(stored) and token not in repr(stored)
    listed = client.get("/api/v1/tokens", headers=world.headers("admin")).json()
    assert token not in repr(listed) and all("secret_hash" not in t for t in listed)
    me = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}).json()
    assert me == {"token_id": created.json()["token_id"], "role": "city_regulator",
                  "scope": "Anshan", "label": "Anshan bureau"}  # fmt: skip
    # revoked: refused from the next request on
    token_id = created.json()["token_id"]
    revoked = client.delete(f"/api/v1/tokens/{token_id}", headers=world.headers("admin"))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    again = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401


@pytest.mark.parametrize(("body", "code"), [
    ({"role": "station", "label": "no scope"}, "invalid_parameter"),
    ({"role": "city_regulator", "scope": "Atlantis", "label": "x"}, "invalid_parameter"),
    ({"role": "admin", "scope": "S1", "label": "x"}, "invalid_parameter"),
    ({"role": "overlord", "label": "x"}, "invalid_request"),
    ({"role": "admin", "label": "x", "expires_at": "tomorrow"}, "invalid_parameter"),
])  # fmt: skip
def test_a_token_needs_the_right_scope(world: World, client: TestClient, body: dict,
                                       code: str) -> None:  # fmt: skip
    response = client.post("/api/v1/tokens", headers=world.headers("admin"), json=body)
    assert response.status_code == 422
    assert error_of(response)["code"] == code


def test_a_token_of_the_right_secret_but_another_id_is_refused(world: World) -> None:
    token = world.tokens["admin"]
    prefix, token_id, secret = token.split("_", 2)
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    assert access.verify_token(world.con, token, now) is not None
    assert access.verify_token(world.con, f"{prefix}_{world.ids['token_city_sy']}_{secret}",
                               now) is None  # fmt: skip
    assert access.verify_token(world.con, f"{prefix}_{token_id}_{secret[:-1]}x", now) is None
