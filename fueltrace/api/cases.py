"""The case workflow over HTTP: list and read cases, move them on, assign, add notes, and
export the audit trail. Regulators and admins; a city regulator works its city's cases
(another city's case answers 404, as if it did not exist)."""


from datetime import date, datetime
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse

from fueltrace.api.auth import Regulator, check_visible, city_filter
from fueltrace.api.errors import COMMON_RESPONSES, ErrorBody
from fueltrace.api.models import (
    AssignIn,
    AuditPage,
    CaseDetail,
    CasePage,
    CaseState,
    NoteIn,
    Resolution,
    Severity,
    TransitionIn,
)
from fueltrace.api.regulator import NOT_FOUND
from fueltrace.api.services import as_utc, one_of, read, services
from fueltrace.settings import Settings
from ingest.records.facility import CITIES
from warehouse import cases
from warehouse.access import Principal

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Not possible in the case's state "
          "(code illegal_transition; details list the allowed next states)."}}  # fmt: skip
CaseId = Annotated[int, Path(ge=1, le=2**62)]


def _case_city(con: duckdb.DuckDBPyConnection, case_id: int) -> str | None:
    rows = con.execute("SELECT coalesce(a.city, '') FROM anomaly_case c JOIN anomaly a "
                       "ON a.anomaly_id = c.anomaly_id WHERE c.case_id = $id",
                       {"id": case_id}).fetchall()  # fmt: skip
    return str(rows[0][0]) if rows else None


def _page(con: duckdb.DuckDBPyConnection, flt: cases.CaseFilter, limit: int,
          offset: int) -> dict[str, Any]:  # fmt: skip
    return {"total": cases.count_cases(con, flt), "limit": limit, "offset": offset,
            "items": cases.list_cases(con, flt, limit, offset)}  # fmt: skip


def _audit_page(con: duckdb.DuckDBPyConnection, flt: cases.AuditFilter, limit: int,
                offset: int) -> dict[str, Any]:  # fmt: skip
    return {"total": cases.count_audit(con, flt), "limit": limit, "offset": offset,
            "items": cases.audit_trail(con, flt, limit, offset)}  # fmt: skip


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["cases"], responses=COMMON_RESPONSES)
    Limit = Annotated[int, Query(ge=1, le=settings.api_max_page)]
    Offset = Annotated[int, Query(ge=0, le=10_000_000)]
    City = Annotated[str | None, Query(json_schema_extra={"enum": list(CITIES)})]

    def visible(request: Request, who: Principal, case_id: int) -> None:
        check_visible(request, who, lambda: read(request, _case_city, case_id),
                      f"no case {case_id}")  # fmt: skip

    @api.get("/cases", response_model=CasePage)
    def list_cases(request: Request, who: Regulator, state: CaseState | None = None,
                   resolution: Resolution | None = None,
                   assignee: Annotated[str | None, Query(max_length=200)] = None,
                   city: City = None, station_id: Annotated[str | None, Query(max_length=200)]
                   = None, rule: Annotated[str | None, Query(max_length=100)] = None,
                   severity: Severity | None = None,
                   anomaly_id: Annotated[str | None, Query(max_length=200)] = None,
                   limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:  # fmt: skip
        """Cases, most recently changed first."""
        one_of("city", city, CITIES)
        flt = cases.CaseFilter(state=state, resolution=resolution, assignee=assignee,
                               city=city_filter(request, who, city), station_id=station_id,
                               rule=rule, severity=severity, anomaly_id=anomaly_id)  # fmt: skip
        return read(request, _page, flt, limit, offset)

    @api.get("/cases/{case_id}", response_model=CaseDetail, responses=NOT_FOUND)
    def get_case(request: Request, who: Regulator, case_id: CaseId) -> dict[str, Any]:
        """A case with its finding, its notes, its audit trail and the next legal states."""
        visible(request, who, case_id)
        return read(request, cases.get_case, case_id)

    @api.post("/cases/{case_id}/transition", response_model=CaseDetail,
              responses={**NOT_FOUND, **CONFLICT})  # fmt: skip
    def transition(request: Request, who: Regulator, case_id: CaseId,
                   body: TransitionIn) -> dict[str, Any]:  # fmt: skip
        """Move a case on: open → acknowledged → investigating → closed (acknowledged may
        close directly). Closing needs a resolution; every move needs a reason."""
        visible(request, who, case_id)
        return read(request, cases.transition, case_id, body.to, actor=who.actor,
                    actor_role=who.role, reason=body.reason, resolution=body.resolution,
                    now=services(request).clock(), what="case update")  # fmt: skip

    @api.post("/cases/{case_id}/assign", response_model=CaseDetail,
              responses={**NOT_FOUND, **CONFLICT})  # fmt: skip
    def assign(request: Request, who: Regulator, case_id: CaseId,
               body: AssignIn) -> dict[str, Any]:  # fmt: skip
        """Give a case to someone (null: to nobody), with a reason."""
        visible(request, who, case_id)
        return read(request, cases.assign, case_id, body.assignee, actor=who.actor,
                    actor_role=who.role, reason=body.reason, now=services(request).clock(),
                    what="case update")  # fmt: skip

    @api.post("/cases/{case_id}/notes", response_model=CaseDetail, responses=NOT_FOUND)
    def add_note(request: Request, who: Regulator, case_id: CaseId,
                 body: NoteIn) -> dict[str, Any]:  # fmt: skip
        """Add a note (also to a closed case); it goes into the audit trail."""
        visible(request, who, case_id)
        return read(request, cases.add_note, case_id, body.text, actor=who.actor,
                    actor_role=who.role, now=services(request).clock(),
                    what="case update")  # fmt: skip

    @api.get("/audit", response_model=AuditPage,
             responses={200: {"content": {"text/csv": {}, "application/json": {}}}})
    def audit(request: Request, who: Regulator, format: Literal["json", "csv"] = "json",
              city: City = None, case_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
              anomaly_id: Annotated[str | None, Query(max_length=200)] = None,
              since: datetime | date | None = None, until: datetime | date | None = None,
              limit: Limit = 100,
              offset: Offset = 0) -> Any:  # fmt: skip
        """The audit trail in the order it was written (JSON, paginated; or CSV, whole):
        who did what to which case, when and why."""
        one_of("city", city, CITIES)
        flt = cases.AuditFilter(city=city_filter(request, who, city), case_id=case_id,
                                anomaly_id=anomaly_id, since=as_utc(since),
                                until=as_utc(until))  # fmt: skip
        if format == "csv":
            rows = read(request, cases.audit_trail, flt, None, report=True, what="audit export")
            return PlainTextResponse(cases.audit_csv(rows), media_type="text/csv", headers={
                "Content-Disposition": 'attachment; filename="fueltrace-audit.csv"'})
        return read(request, _audit_page, flt, limit, offset)

    return api
