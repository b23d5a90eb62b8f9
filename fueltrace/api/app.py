"""The ASGI app: routes, the one error handler, request ids, metrics, limits, the web page.

``create_app(settings, con, producer=…, bootstrap=…, checks=…)`` wires it over the
process's warehouse connection (requests use cursors of it, see :mod:`fueltrace.api.db`)
and, for the gateway, a Kafka producer. Without a producer the gateway answers 503 and
the rest works (the in-process tests of the read side need no broker).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from kafka import KafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fueltrace import metrics
from fueltrace.api import cases, errors, gateway, regulator, tokens
from fueltrace.api.db import Warehouse
from fueltrace.api.limits import BodyLimit
from fueltrace.api.models import Health
from fueltrace.api.services import Services
from fueltrace.settings import Settings

log = logging.getLogger(__name__)
WEB = Path(__file__).resolve().parent / "web"
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
_SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                     (b"referrer-policy", b"no-referrer")]
DESCRIPTION = """
The regulator API and the station gateway of **fueltrace**, Liaoning's refined-oil
supervision pipeline.

* **Authentication**: every `/api/v1` call needs `Authorization: Bearer ft_…`. A token has
  a role: `station` and `depot` send records through the gateway (their own only);
  `city_regulator` reads its city; `provincial_regulator` reads everything; `admin` also
  manages tokens. 401 for no or a bad token, 403 when the role or scope does not allow
  the call; another city's station, anomaly, case or sale answers 404.
* **Errors**: always `{"error": {"status", "code", "message", "request_id", "details"}}`.
* **Pagination**: `limit` and `offset`; answers carry `total`.
* **Time bound**: a query running longer than the configured bound is stopped and
  answered `503 query_timeout`.
* **Units**: litres (at 20 °C unless *observed*), °C, kg/m³, fen; times ISO-8601 UTC.
"""


class Observe:
    """ASGI middleware: a request id for every answer (``X-Request-ID``), the usual
    security headers (and ``Cache-Control: no-store`` on the API), the HTTP metrics
    labelled by route template (bounded), never by path, and a 500 in the common shape
    for an exception no handler knew."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        api = str(scope.get("path", "")).startswith("/api/")
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(_SECURITY_HEADERS)
                if api:  # answers carry regulated data: no cache keeps a copy
                    headers.append((b"cache-control", b"no-store"))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # a bug: answered 500 in the common shape, if still possible
            response = errors.unexpected(request_id, scope.get("method", "-"),
                                         scope.get("path", "-"), exc)  # fmt: skip
            await response(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            label = (template or "/") if route is not None else "unmatched"
            method = scope.get("method", "GET")
            method = method if method in _METHODS else "other"
            metrics.HTTP_REQUESTS.labels(label, method, str(status)).inc()
            metrics.HTTP_REQUEST_DURATION.labels(label).observe(time.perf_counter() - started)


def create_app(settings: Settings, con: duckdb.DuckDBPyConnection, *,
               producer: KafkaProducer | None = None, bootstrap: str | None = None,
               checks: dict[str, Callable[[], bool]] | None = None,
               clock: Callable[[], datetime] | None = None,
               web: Path | None = WEB) -> FastAPI:  # fmt: skip
    """The service over ``con``. ``checks`` are extra readiness checks (the broker, the
    ingest thread) for /readyz; ``web`` is the directory served at / if it exists."""
    # FastAPIOffline: FastAPI whose /docs (Swagger UI) and /redoc load their scripts from
    # the installed package, not a CDN — a regulator's network is often closed to the
    # internet, and the docs must work there too
    app = FastAPIOffline(title="fueltrace", version="1", description=DESCRIPTION, openapi_tags=[
        {"name": "anomalies", "description": "What the rules found."},
        {"name": "stations", "description": "Registry, tanks, reconciliation."},
        {"name": "trace", "description": "Batch ↔ sale, recalls."},
        {"name": "inspection", "description": "The annual inspection list."},
        {"name": "cases", "description": "The case workflow and audit trail."},
        {"name": "gateway", "description": "Stations and depots send records."},
        {"name": "access", "description": "Tokens."},
        {"name": "operations", "description": "Health and metrics."},
    ])  # fmt: skip
    app.state.services = Services(settings=settings, warehouse=Warehouse(con),
                                  producer=producer, bootstrap=bootstrap,
                                  checks=dict(checks or {}),
                                  clock=clock or (lambda: datetime.now(UTC)))  # fmt: skip
    app.state.gateway = gateway.Gateway(settings)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.gateway_max_body_bytes)
    app.add_middleware(Observe)
    app.include_router(regulator.router(settings))
    app.include_router(cases.router(settings))
    app.include_router(gateway.router(settings))
    app.include_router(tokens.router())

    @app.get("/healthz", tags=["operations"], response_model=Health)
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {"status": "ok", "checks": {}}

    @app.get("/readyz", tags=["operations"], response_model=Health,
             responses={503: {"model": Health, "description": "Not ready: see checks."}})
    def readyz(request: Request) -> JSONResponse:
        """Readiness: the warehouse answers a query, and the broker (and the ingest) are
        up; 503 with the failing checks otherwise."""
        svc: Services = request.app.state.services
        results = {"warehouse": _warehouse_ok(svc)}
        for name, check in svc.checks.items():
            try:
                results[name] = bool(check())
            except Exception:
                results[name] = False
        for name, ok in results.items():
            metrics.HEALTHY.labels(name).set(1 if ok else 0)
        ready = all(results.values())
        return JSONResponse({"status": "ready" if ready else "not_ready", "checks": results},
                            status_code=200 if ready else 503)  # fmt: skip

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if web is not None and web.is_dir():
        app.mount("/", StaticFiles(directory=web, html=True), name="web")
    return app


def _warehouse_ok(svc: Services) -> bool:
    try:
        svc.warehouse.run(min(svc.settings.api_query_timeout_s, 5.0),
                          lambda cur: cur.execute("SELECT 1").fetchall(), what="readiness")
        return True
    except Exception as exc:
        log.warning("readiness check failed component=warehouse error=%s", exc)
        return False
