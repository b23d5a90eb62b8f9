"""The regulator API: read-only. Anomalies, stations, a tank's daily reconciliation,
traces, recalls and the annual inspection. Regulators and admins only; a city
regulator's every read is limited to its city (see :mod:`fueltrace.api.auth`)."""


from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse

from fueltrace.api.auth import Regulator, check_visible, city_filter
from fueltrace.api.errors import COMMON_RESPONSES, ErrorBody, InvalidRequest
from fueltrace.api.models import (
    AnomalyDetail,
    AnomalyPage,
    Inspection,
    Reconciliation,
    RuleInfo,
    Severity,
    StationOverview,
    StationPage,
)
from fueltrace.api.services import as_utc, one_of, read, services
from fueltrace.settings import Settings
from ingest.records.facility import CITIES
from processors.rules import BY_NAME, RULES
from processors.rules.base import LOCAL
from warehouse import inspection, stations, trace
from warehouse.anomalies import AnomalyFilter, count_anomalies, get_anomaly, list_anomalies
from warehouse.cases import cases_of_anomaly, current_cases
from warehouse.reports import recall_csv

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such thing (or not in the caller's city)."}}
CSV: dict[str, Any] = {"content": {"text/csv": {}, "application/json": {}}}
Id = Annotated[str, Path(min_length=1, max_length=200)]


def _anomaly_city(con: duckdb.DuckDBPyConnection, anomaly_id: str) -> str | None:
    rows = con.execute("SELECT coalesce(city, '') FROM anomaly WHERE anomaly_id = $id",
                       {"id": anomaly_id}).fetchall()  # fmt: skip
    return str(rows[0][0]) if rows else None


def _anomaly_page(con: duckdb.DuckDBPyConnection, flt: AnomalyFilter, limit: int,
                  offset: int) -> dict[str, Any]:  # fmt: skip
    items = list_anomalies(con, flt, limit=limit, offset=offset)
    found = current_cases(con, [a["anomaly_id"] for a in items])
    for item in items:
        item["case"] = found.get(item["anomaly_id"])
    return {"total": count_anomalies(con, flt), "limit": limit, "offset": offset, "items": items}


def _anomaly_detail(con: duckdb.DuckDBPyConnection, anomaly_id: str) -> dict[str, Any]:
    found = get_anomaly(con, anomaly_id)
    found["cases"] = cases_of_anomaly(con, anomaly_id)
    found["case"] = current_cases(con, [anomaly_id]).get(anomaly_id)
    return found


def _sale_city(con: duckdb.DuckDBPyConnection, station_id: str, txn_id: str) -> str | None:
    rows = con.execute("SELECT st.city FROM sale s JOIN station st USING (station_id) "
                       "WHERE s.txn_id = $txn AND s.station_id = $station",
                       {"txn": txn_id, "station": station_id}).fetchall()  # fmt: skip
    return str(rows[0][0]) if rows else None


def _delivery_city(con: duckdb.DuckDBPyConnection, delivery_id: str) -> str | None:
    rows = con.execute("SELECT st.city FROM delivery d JOIN station st USING (station_id) "
                       "WHERE d.delivery_id = $id", {"id": delivery_id}).fetchall()
    return str(rows[0][0]) if rows else None


def _batch(con: duckdb.DuckDBPyConnection, batch_id: str, city: str | None,
           recall: bool) -> dict[str, Any]:  # fmt: skip
    report = trace.recall_report(con, batch_id) if recall else trace.trace_batch(con, batch_id)
    if city is None:
        return report
    mine = stations.restrict_to_city(con, report, city)
    if mine is None:
        raise trace.NotFound(f"no dispatch or delivery of batch {batch_id!r}")
    return mine


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/api/v1", responses=COMMON_RESPONSES)
    Limit = Annotated[int, Query(ge=1, le=settings.api_max_page,
                                 description=f"Page size (≤ {settings.api_max_page}).")]
    Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]
    City = Annotated[str | None, Query(description="One of the 14 cities (English name).",
                                       json_schema_extra={"enum": list(CITIES)})]

    @api.get("/rules", tags=["anomalies"], response_model=list[RuleInfo])
    def rules() -> list[dict[str, Any]]:
        """The anomaly catalogue: every rule with its titles in English and Chinese. Public
        (no token): it says what fueltrace looks for, not what it found."""
        return [{"name": r.name, "title": r.title, "title_zh": r.title_zh,
                 "lookback_h": r.lookback.total_seconds() / 3600,
                 "clock_driven": r.clock_driven} for r in RULES]  # fmt: skip

    @api.get("/anomalies", tags=["anomalies"], response_model=AnomalyPage)
    def anomalies(request: Request, who: Regulator, city: City = None,
                  rule: Annotated[str | None, Query(description="A rule name, e.g. "
                                                    "totalizer_gap.", json_schema_extra={
                                                        "enum": sorted(BY_NAME)})] = None,
                  severity: Severity | None = None,
                  station_id: Annotated[str | None, Query(max_length=200)] = None,
                  since: Annotated[datetime | date | None, Query(
                      description="ISO-8601; windows ending at or after it (a date, or a time "
                                  "without offset: UTC).")] = None,
                  until: Annotated[datetime | date | None, Query(
                      description="ISO-8601; windows starting before it.")] = None,
                  include_resolved: Annotated[bool, Query(description="Also findings later "
                                                          "data resolved.")] = False,
                  limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:  # fmt: skip
        """Anomalies, most severe first, then newest window: the CLI's filters, paginated."""
        one_of("city", city, CITIES)
        one_of("rule", rule, sorted(BY_NAME))
        flt = AnomalyFilter(city=city_filter(request, who, city), rule=rule, severity=severity,
                            station_id=station_id, since=as_utc(since),
                            until=as_utc(until),
                            include_resolved=include_resolved)  # fmt: skip
        return read(request, _anomaly_page, flt, limit, offset)

    @api.get("/anomalies/{anomaly_id}", tags=["anomalies"], response_model=AnomalyDetail,
             responses=NOT_FOUND)  # fmt: skip
    def anomaly(request: Request, who: Regulator, anomaly_id: Id) -> dict[str, Any]:
        """One finding with its history (raised, updated, resolved, reraised) and cases."""
        check_visible(request, who, lambda: read(request, _anomaly_city, anomaly_id),
                      f"no anomaly {anomaly_id!r}")  # fmt: skip
        return read(request, _anomaly_detail, anomaly_id)

    @api.get("/stations", tags=["stations"], response_model=StationPage)
    def station_list(request: Request, who: Regulator, city: City = None, limit: Limit = 100,
                     offset: Offset = 0) -> dict[str, Any]:  # fmt: skip
        """Registered stations by city, with their count of active findings."""
        one_of("city", city, CITIES)
        total, items = read(request, stations.list_stations, city=city_filter(request, who, city),
                            limit=limit, offset=offset)  # fmt: skip
        return {"total": total, "limit": limit, "offset": offset, "items": items}

    @api.get("/stations/{station_id}", tags=["stations"], response_model=StationOverview,
             responses=NOT_FOUND)  # fmt: skip
    def station(request: Request, who: Regulator, station_id: Id,
                recent: Annotated[int, Query(ge=0, le=200, description="How many recent "
                                             "findings.")] = 20) -> dict[str, Any]:  # fmt: skip
        """A station's overview: registry, licences and their standing today, tanks with
        their latest gauge reading, nozzles, recent findings, open cases."""
        check_visible(request, who, lambda: read(request, stations.station_city, station_id),
                      f"no station {station_id!r}")  # fmt: skip
        return read(request, stations.station_overview, station_id,
                    services(request).clock(), recent)  # fmt: skip

    @api.get("/stations/{station_id}/tanks/{tank_id}/reconciliation", tags=["stations"],
             response_model=Reconciliation, response_model_by_alias=True,
             responses=NOT_FOUND)  # fmt: skip
    def reconciliation(request: Request, who: Regulator, station_id: Id, tank_id: Id,
                       from_: Annotated[date | None, Query(alias="from", description="First "
                                         "day, YYYY-MM-DD (Asia/Shanghai).")] = None,
                       to: Annotated[date | None, Query(description="Last day (default: the "
                                                        "tank's latest reading's).")] = None,
                       ) -> dict[str, Any]:  # fmt: skip
        """A tank's daily book against measured stock at 20 °C (≤ 366 days)."""
        check_visible(request, who, lambda: read(request, stations.station_city, station_id),
                      f"no tank {tank_id!r} at station {station_id!r}")  # fmt: skip
        start, end = from_, to
        if start and end and not 0 <= (end - start).days < stations.MAX_DAYS:
            raise InvalidRequest(f"from … to must cover 1…{stations.MAX_DAYS} days")
        if start and not end and start > datetime.now(LOCAL).date():
            raise InvalidRequest("from is in the future")
        settings = services(request).settings  # the inventory_imbalance rule's tolerance
        try:
            return read(request, stations.tank_reconciliation, station_id, tank_id, start, end,
                        tolerance_pct=settings.imbalance_tolerance_pct,
                        tolerance_min_l=settings.imbalance_tolerance_min_l,
                        max_reading_age=timedelta(minutes=settings.imbalance_reading_age_min))
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    @api.get("/trace/sales/{station_id}/{txn_id}", tags=["trace"], responses=NOT_FOUND)
    def trace_sale(request: Request, who: Regulator, station_id: Id,
                   txn_id: Id) -> dict[str, Any]:  # fmt: skip
        """Backward: the depot batches a sale's litres came from (litres at 20 °C, share)."""
        check_visible(request, who, lambda: read(request, _sale_city, station_id, txn_id),
                      f"no sale {txn_id!r} at station {station_id!r}")  # fmt: skip
        return read(request, trace.trace_sale, station_id, txn_id)

    @api.get("/trace/batches/{batch_id}", tags=["trace"], responses=NOT_FOUND)
    def trace_batch(request: Request, who: Regulator, batch_id: Id) -> dict[str, Any]:
        """Forward: dispatches, the tanks that received the batch, sold, in tanks, lost.
        A city regulator sees its city's part, with totals over that part."""
        return read(request, _batch, batch_id, who.city, False)

    @api.get("/trace/deliveries/{delivery_id}", tags=["trace"], responses=NOT_FOUND)
    def trace_delivery(request: Request, who: Regulator, delivery_id: Id) -> dict[str, Any]:
        """A delivery, its batch, and its checks against the dispatch and the tank gauge."""
        check_visible(request, who, lambda: read(request, _delivery_city, delivery_id),
                      f"no delivery {delivery_id!r}")  # fmt: skip
        return read(request, trace.trace_delivery, delivery_id)

    @api.get("/recalls/{batch_id}", tags=["trace"], responses={**NOT_FOUND, 200: CSV})
    def recall(request: Request, who: Regulator, batch_id: Id,
               format: Literal["json", "csv"] = "json",
               sales: Annotated[bool, Query(description="CSV: one row per sale (with invoice "
                                            "ids), not per tank.")] = False) -> Any:  # fmt: skip
        """The recall report of a batch: where it is, the tanks to seal, every sale."""
        report = read(request, _batch, batch_id, who.city, True, report=True,
                      what="recall report")  # fmt: skip
        if format == "csv":
            return PlainTextResponse(recall_csv(report, sales=sales), media_type="text/csv",
                                     headers={"Content-Disposition":
                                              f'attachment; filename="recall-{_safe(batch_id)}'
                                              f'{"-sales" if sales else ""}.csv"'})  # fmt: skip
        return report

    @api.get("/inspections/{year}", tags=["inspection"], response_model=Inspection,
             responses={200: CSV})  # fmt: skip
    def annual_inspection(request: Request, who: Regulator,
                          year: Annotated[int, Path(ge=2000, le=2100)], city: City = None,
                          format: Literal["json", "csv"] = "json", limit: Limit = 100,
                          offset: Offset = 0) -> Any:  # fmt: skip
        """The annual inspection list: every station that fails, with its reasons (JSON,
        paginated over stations; or CSV, whole, one row per station and reason)."""
        one_of("city", city, CITIES)
        today = datetime.now(UTC).astimezone(LOCAL).date()
        if year > today.year:
            raise InvalidRequest(f"the {year} inspection cannot be run before {year} starts")
        report = read(request, inspection.annual_inspection, year, today=today,
                      city=city_filter(request, who, city), report=True,
                      what="annual inspection")  # fmt: skip
        if format == "csv":
            return PlainTextResponse(inspection.inspection_csv(report), media_type="text/csv",
                                     headers={"Content-Disposition": "attachment; filename="
                                              f'"inspection-{year}{_city_suffix(report)}.csv"'})
        page = report["stations"][offset:offset + limit]
        return {**report, "stations": page, "total": report["stations_failing"], "limit": limit,
                "offset": offset}  # fmt: skip

    return api


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]


def _city_suffix(report: dict[str, Any]) -> str:
    return f"-{report['city']}" if report.get("city") else ""


__all__ = ["router"]
