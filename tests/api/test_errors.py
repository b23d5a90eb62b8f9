"""One handler renders every error, in one shape; and a runaway query is cut off."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from fueltrace.api.db import Warehouse
from fueltrace.api.errors import QueryTimeout
from fueltrace.api.services import read
from tests.api.conftest import World, error_of

SLOW = "SELECT count(*) FROM range(100000000) a, range(100000000) b WHERE a.range + b.range = -1"


@pytest.mark.parametrize(("method", "path", "who", "body", "status", "code"), [
    ("GET", "/api/v1/anomalies", None, None, 401, "unauthorized"),
    ("GET", "/api/v1/tokens", "provincial", None, 403, "forbidden"),
    ("GET", "/api/v1/stations/NOPE", "provincial", None, 404, "not_found"),
    ("GET", "/api/v1/no-such-route", "provincial", None, 404, "not_found"),
    ("DELETE", "/api/v1/anomalies", "provincial", None, 405, "method_not_allowed"),
    ("GET", "/api/v1/anomalies?limit=0", "provincial", None, 422, "invalid_request"),
    ("GET", "/api/v1/anomalies?since=last+tuesday", "provincial", None, 422, "invalid_request"),
    ("GET", "/api/v1/anomalies?rule=no_such_rule", "provincial", None, 422, "invalid_request"),
    ("POST", "/api/v1/cases/1/transition", "provincial", {"to": "closed"}, 422,
     "invalid_request"),
    ("POST", "/api/v1/gateway/sale", "station_s1", None, 422, "malformed_json"),
])  # fmt: skip
def test_every_error_has_the_one_shape(world: World, client: TestClient, method: str,
                                       path: str, who: str | None, body: Any, status: int,
                                       code: str) -> None:  # fmt: skip
    response = client.request(method, path, headers=world.headers(who), json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in response.text and "SELECT" not in response.text


def test_a_bad_parameter_is_named_in_the_details(world: World, client: TestClient) -> None:
    error = error_of(client.get("/api/v1/anomalies?limit=5000&offset=-1",
                                headers=world.headers("provincial")))  # fmt: skip
    assert {d["where"] for d in error["details"]} == {"query.limit", "query.offset"}
    error = error_of(client.get("/api/v1/anomalies?rule=nope", headers=world.headers("admin")))
    assert "totalizer_gap" in error["message"] and error["details"][0]["where"] == "query.rule"


def test_a_bug_is_a_500_in_the_same_shape_without_its_traceback(
    world: World, client_for: Callable[..., TestClient]
) -> None:
    client = client_for(world)

    def boom() -> None:
        raise RuntimeError("secret internals")

    client.app.add_api_route("/boom", boom)  # type: ignore[attr-defined]
    response = client.get("/boom")
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error" and "secret" not in response.text


def test_a_runaway_query_is_cut_off_with_a_clear_error(
    world: World, client_for: Callable[..., TestClient]
) -> None:
    client = client_for(world, checks={})
    settings = world.settings.model_copy(update={"api_query_timeout_s": 0.5})
    client.app.state.services.settings = settings  # type: ignore[attr-defined]

    def slow(request: Request) -> Any:
        return read(request, lambda cur: cur.execute(SLOW).fetchall())

    client.app.add_api_route("/slow", slow)  # type: ignore[attr-defined]
    started = time.monotonic()
    response = client.get("/slow")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "query_timeout"
    assert "0.5 s" in error["message"] and "narrow" in error["message"]
    assert response.headers["retry-after"]
    # the warehouse is fine afterwards
    ok = client.get("/api/v1/stations", headers=world.headers("provincial"))
    assert ok.status_code == 200


def test_the_deadline_interrupts_only_its_own_cursor(world: World) -> None:
    warehouse = Warehouse(world.con)
    with pytest.raises(QueryTimeout):
        warehouse.run(0.3, lambda cur: cur.execute(SLOW).fetchall())
    assert warehouse.run(5, lambda cur: cur.execute("SELECT 42").fetchall()) == [(42,)]
    assert world.con.execute("SELECT count(*) FROM station").fetchall() == [(3,)]
