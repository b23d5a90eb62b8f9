"""Bad requests at the HTTP doors: oversized, mistyped, not JSON, not UTF-8, SQL in every
parameter. Each gets a 4xx in the one error shape naming the parameter (or, for an id,
the 404 of a missing thing), and the warehouse is unchanged: every user value reaches
DuckDB as a bound parameter, never as SQL text (DuckDB's own query log says so)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import duckdb
import pytest
from fastapi.testclient import TestClient

from fueltrace.api.app import create_app
from tests.api.conftest import World, error_of

INJECT = "' OR '1'='1' --"
DROP = "'; DROP TABLE sale; --"
MARK = "Zq9x'); DELETE FROM station; --"  # a marker no query text can hold by chance


def counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of every table of the warehouse."""
    tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                         "ORDER BY ALL").fetchall()  # fmt: skip
    assert len(tables) > 10
    return {f"{s}.{t}": con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchall()[0][0]
            for s, t in tables}  # fmt: skip


@pytest.fixture(scope="module")
def loose(world: World) -> Iterator[TestClient]:
    """The app with a rate limit no test here reaches (the gateway has no producer: every
    upload below is refused before anything would be sent)."""
    settings = world.settings.model_copy(update={"gateway_burst": 10_000})
    with TestClient(create_app(settings, world.con, web=None),
                    raise_server_exceptions=False) as made:  # fmt: skip
        yield made


def call(client: TestClient, world: World, who: str, method: str, path: str,
         **kwargs: Any) -> Any:  # fmt: skip
    before = counts(world.con)
    response = client.request(method, path, headers={**world.headers(who),
                                                     **kwargs.pop("headers", {})}, **kwargs)
    assert counts(world.con) == before, f"{method} {path} changed the warehouse"
    assert "Traceback" not in response.text and "SELECT" not in response.text
    return response


ENUMERATED: list[tuple[str, dict[str, str], str]] = [
    ("/api/v1/anomalies", {"city": INJECT}, "query.city"),
    ("/api/v1/anomalies", {"rule": DROP}, "query.rule"),
    ("/api/v1/anomalies", {"severity": INJECT}, "query.severity"),
    ("/api/v1/anomalies", {"since": INJECT}, "query.since"),
    ("/api/v1/anomalies", {"until": "2026-11-20" + DROP}, "query.until"),
    ("/api/v1/anomalies", {"limit": "1; DROP TABLE sale"}, "query.limit"),
    ("/api/v1/anomalies", {"offset": "0 OR 1=1"}, "query.offset"),
    ("/api/v1/anomalies", {"include_resolved": INJECT}, "query.include_resolved"),
    ("/api/v1/anomalies", {"station_id": "S" * 201}, "query.station_id"),
    ("/api/v1/stations", {"city": "Dalian" + INJECT}, "query.city"),
    ("/api/v1/stations", {"limit": "-1"}, "query.limit"),
    ("/api/v1/inspections/2026; DROP TABLE sale", {}, "path.year"),
    ("/api/v1/inspections/2025", {"city": DROP}, "query.city"),
    ("/api/v1/inspections/2025", {"format": "csv" + INJECT}, "query.format"),
    ("/api/v1/recalls/B1", {"format": DROP}, "query.format"),
    ("/api/v1/recalls/B1", {"sales": INJECT}, "query.sales"),
    ("/api/v1/cases", {"state": "open" + INJECT}, "query.state"),
    ("/api/v1/cases/1 OR 1=1", {}, "path.case_id"),
    ("/api/v1/audit", {"since": DROP}, "query.since"),
    ("/api/v1/stations/S1/tanks/T1/reconciliation", {"from": INJECT}, "query.from"),
    ("/api/v1/stations/" + "S" * 201, {}, "path.station_id"),
]


@pytest.mark.parametrize(("path", "params", "where"), ENUMERATED,
                         ids=[f"{p} {w}" for p, _, w in ENUMERATED])  # fmt: skip
def test_sql_in_a_checked_parameter_is_a_422_naming_it(
    world: World, client: TestClient, path: str, params: dict[str, str], where: str
) -> None:
    response = call(client, world, "provincial", "GET", path, params=params)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert [d["where"] for d in error["details"]] == [where]
    assert error["message"].startswith(f"{where.split('.')[1]}: ") \
        or f"invalid request: {where}: " in error["message"]  # fmt: skip


def test_a_union_parameter_is_named_once_not_per_member(
    world: World, client: TestClient
) -> None:
    error = error_of(call(client, world, "provincial", "GET", "/api/v1/anomalies",
                          params={"since": "last tuesday", "until": "x"}))  # fmt: skip
    assert [d["where"] for d in error["details"]] == ["query.since", "query.until"]


@pytest.mark.parametrize(("url", "status", "where"), [
    ("/api/v1/anomalies?city=%FF%FE", 422, "query.city"),
    ("/api/v1/anomalies?since=%C0%AF", 422, "query.since"),
    ("/api/v1/cases?state=%E9", 422, "query.state"),
    ("/api/v1/stations/S%FF", 404, None),
])  # fmt: skip
def test_bytes_that_are_not_utf8_in_a_url_are_refused_like_any_bad_value(
    world: World, client: TestClient, url: str, status: int, where: str | None
) -> None:
    response = call(client, world, "provincial", "GET", url)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert [d["where"] for d in error["details"]] == ([where] if where else [])


IDS: list[tuple[str, str]] = [
    ("/api/v1/stations/{}", "no station"),
    ("/api/v1/stations/S1/tanks/{}/reconciliation", "no tank"),
    ("/api/v1/stations/{}/tanks/T1/reconciliation", "no tank"),
    ("/api/v1/anomalies/{}", "no anomaly"),
    ("/api/v1/trace/sales/S1/{}", "no sale"),
    ("/api/v1/trace/batches/{}", "batch"),
    ("/api/v1/trace/deliveries/{}", "no delivery"),
    ("/api/v1/recalls/{}", "batch"),
]


@pytest.mark.parametrize("who", ["provincial", "city_sy"])
@pytest.mark.parametrize(("route", "words"), IDS, ids=[t for t, _ in IDS])
@pytest.mark.parametrize("value", [INJECT, DROP, "B1' OR batch_id LIKE '%"])
def test_sql_in_an_id_is_just_an_id_nobody_has(
    world: World, client: TestClient, route: str, words: str, value: str, who: str
) -> None:
    """Ids are free text (the SPEC's ids are strings): SQL in one is an id that does not
    exist, answered as any missing thing is, to every caller alike."""
    response = call(client, world, who, "GET", route.format(quote(value, safe="")))
    assert response.status_code == 404, response.text
    error = error_of(response)
    assert error["code"] == "not_found" and words in error["message"]
    assert value in error["message"]  # the id asked for, verbatim


@pytest.mark.parametrize(("path", "name"), [
    ("/api/v1/anomalies", "station_id"),
    ("/api/v1/cases", "station_id"),
    ("/api/v1/cases", "assignee"),
    ("/api/v1/cases", "anomaly_id"),
])  # fmt: skip
def test_sql_in_a_free_text_filter_matches_nothing(
    world: World, client: TestClient, path: str, name: str
) -> None:
    everything = call(client, world, "provincial", "GET", path).json()["total"]
    assert everything > 0  # so "nothing" below is the filter, not an empty warehouse
    for value in (INJECT, DROP):
        page = call(client, world, "provincial", "GET", path, params={name: value})
        assert page.status_code == 200 and page.json()["total"] == 0


def test_user_values_reach_duckdb_only_as_bound_parameters(
    world: World, client: TestClient
) -> None:
    requests: list[tuple[str, str, dict[str, str]]] = [
        ("provincial", "/api/v1/anomalies", {"station_id": MARK}),
        ("provincial", "/api/v1/cases", {"station_id": MARK, "assignee": MARK,
                                         "anomaly_id": MARK, "rule": MARK}),
        ("provincial", "/api/v1/audit", {"anomaly_id": MARK}),
        *[(who, t.format(quote(MARK, safe="")), {}) for t, _ in IDS
          for who in ("provincial", "city_sy")],
    ]  # fmt: skip
    con = world.con
    con.execute("CALL enable_logging('QueryLog')")
    try:
        con.execute("CALL truncate_duckdb_logs()")
        con.execute("SELECT 'Zq9x self-check'").fetchall()  # the log does see query text
        for who, path, params in requests:
            assert call(client, world, who, "GET", path, params=params).status_code < 500
        bad = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer ft_{MARK}_x"})
        assert bad.status_code == 401
        logged = [m for (m,) in con.execute(
            "SELECT message FROM duckdb_logs WHERE type = 'QueryLog'").fetchall()]
    finally:
        con.execute("CALL disable_logging()")
    assert sum("Zq9x self-check" in m for m in logged) == 1
    assert len(logged) > 2 * len(requests)  # the requests' own queries were logged
    assert [m for m in logged if "Zq9x" in m and "self-check" not in m] == []


def test_sql_in_a_note_is_stored_as_text(fresh: tuple[World, TestClient]) -> None:
    world, client = fresh
    case_id = world.ids["case_S1"]
    before = counts(world.con)
    answer = client.post(f"/api/v1/cases/{case_id}/notes", json={"text": DROP},
                         headers=world.headers("provincial"))  # fmt: skip
    assert answer.status_code in (200, 201), answer.text
    after = counts(world.con)
    changed = {t: after[t] - n for t, n in before.items() if after[t] != n}
    assert changed == {"main.case_event": 1}
    assert world.con.execute("SELECT reason FROM case_event ORDER BY event_id DESC "
                             "LIMIT 1").fetchall() == [(DROP,)]  # fmt: skip


# --- bodies --------------------------------------------------------------------------


def sale(**overrides: Any) -> dict[str, Any]:
    record = {"txn_id": "T1", "station_id": "S1", "dispenser_id": "D1", "nozzle_id": "N-T1",
              "product": "gasoline_92", "volume_l": 20.0, "unit_price_fen": 780,
              "amount_fen": 15600, "totalizer_start_l": 1000.0, "totalizer_end_l": 1020.0,
              "started_at": "2026-11-20T08:00:00Z", "ended_at": "2026-11-20T08:01:30Z",
              "invoice_id": None}  # fmt: skip
    return {**record, **overrides}


GATEWAY = "/api/v1/gateway/sale"


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/xml", "application/json; charset=latin-1", "application/jsonp",
])  # fmt: skip
@pytest.mark.parametrize("path", [GATEWAY, GATEWAY + "/batch", "/api/v1/cases/1/notes",
                                  "/api/v1/tokens"])  # fmt: skip
def test_a_body_that_is_not_json_by_its_type_is_a_415(
    world: World, loose: TestClient, content_type: str, path: str
) -> None:
    who = "station_s1" if "gateway" in path else "admin"
    body = json.dumps(sale() if path == GATEWAY else {"records": [sale()]}).encode()
    response = call(loose, world, who, "POST", path, content=body,
                    headers={"Content-Type": content_type})  # fmt: skip
    assert response.status_code == 415, response.text
    error = error_of(response)
    assert error["code"] == "unsupported_media_type"
    assert [d["where"] for d in error["details"]] == ["header.Content-Type"]
    assert repr(content_type) in error["message"] and "application/json" in error["message"]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=UTF-8",
                                          "Application/JSON", "application/merge-patch+json"])
def test_json_by_any_usual_name_is_read(world: World, loose: TestClient,
                                        content_type: str) -> None:  # fmt: skip
    response = call(loose, world, "station_s1", "POST", GATEWAY,
                    content=json.dumps(sale(volume_l="many")).encode(),
                    headers={"Content-Type": content_type})  # fmt: skip
    assert response.status_code == 422  # read, checked, and refused for its content
    assert error_of(response)["details"][0]["field"] == "volume_l"


BODIES: list[tuple[str, bytes, str]] = [
    ("latin1", '{"txn_id": "café"}'.encode("latin-1"), "not UTF-8: byte 0xe9 at offset 15"),
    ("utf16", json.dumps(sale()).encode("utf-16"), "not UTF-8: byte 0xff at offset 0"),
    ("nul", b'{"txn_id": "T\x00"}', "not JSON"),
    ("binary", bytes(range(256)), "not UTF-8"),
    ("truncated", json.dumps(sale()).encode()[:-10], "not JSON"),
    ("deep", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("digits", b'{"amount_fen": ' + b"9" * 5000 + b"}", "a number with thousands of digits"),
    ("array", b"[1, 2]", "a JSON object"),
    ("string", b'"sale"', "a JSON object"),
    ("empty", b"", "not JSON"),
]


@pytest.mark.parametrize(("name", "body", "words"), BODIES, ids=[n for n, _, _ in BODIES])
def test_a_body_that_is_not_a_json_record_is_a_422_naming_the_body(
    world: World, loose: TestClient, name: str, body: bytes, words: str
) -> None:
    response = call(loose, world, "station_s1", "POST", GATEWAY, content=body,
                    headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "malformed_json"
    assert words in error["message"] and [d["where"] for d in error["details"]] == ["body"]


@pytest.mark.parametrize(("body", "code", "where"), [
    ({"records": "all of them"}, "malformed_json", "body"),
    ({"records": []}, "malformed_json", "body"),
    ({"record": [sale()]}, "malformed_json", "body"),
    ({"records": [{}] * 5001}, "too_many_records", "body.records"),
])  # fmt: skip
def test_a_batch_of_the_wrong_shape_is_a_422(world: World, loose: TestClient, body: Any,
                                             code: str, where: str) -> None:  # fmt: skip
    response = call(loose, world, "station_s1", "POST", GATEWAY + "/batch", json=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == code and [d["where"] for d in error["details"]] == [where]


def test_wrong_types_are_answered_record_by_record_field_by_field(
    world: World, loose: TestClient
) -> None:
    records = [sale(volume_l="20,5"), sale(unit_price_fen=7.8), sale(started_at=17),
               sale(station_id=None), sale(station_id=17), sale(txn_id=DROP, product=INJECT),
               "a string"]
    response = call(loose, world, "station_s1", "POST", GATEWAY + "/batch",
                    json={"records": records})  # fmt: skip
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "records_rejected"
    assert [(d["index"], d["field"]) for d in error["details"]] == [
        (0, "volume_l"), (1, "unit_price_fen"), (2, "started_at"), (3, "station_id"),
        (4, "station_id"), (5, "product"), (6, "record")]  # fmt: skip


def test_sql_in_a_header_is_a_422_naming_it(world: World, loose: TestClient) -> None:
    response = call(loose, world, "station_s1", "POST", GATEWAY, json=sale(),
                    headers={"Idempotency-Key": INJECT})  # fmt: skip
    assert response.status_code == 422
    assert [d["where"] for d in error_of(response)["details"]] == ["header.Idempotency-Key"]


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("path", [GATEWAY + "/batch", "/api/v1/cases/1/notes"])
def test_an_oversized_body_is_a_413_with_the_limit(world: World, loose: TestClient,
                                                   chunked: bool, path: str) -> None:  # fmt: skip
    limit = world.settings.gateway_max_body_bytes
    body = json.dumps({"records": [sale(txn_id="x" * limit)]}).encode()
    assert len(body) > limit
    content: Any = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) \
        if chunked else body  # fmt: skip
    who = "station_s1" if "gateway" in path else "provincial"
    response = call(loose, world, who, "POST", path, content=content,
                    headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 413, response.text
    error = error_of(response)
    assert error["code"] == "payload_too_large" and f"{limit} bytes" in error["message"]
