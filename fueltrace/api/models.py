"""The shapes the API answers and accepts, for validation and the OpenAPI document.

Times are ISO-8601 strings in UTC (``2026-11-20T08:00:00.000Z``); dates are
``YYYY-MM-DD`` in the Asia/Shanghai calendar; litres at 20 °C unless a name says
``observed``; money in fen.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["critical", "high", "medium", "low"]
CaseState = Literal["open", "acknowledged", "investigating", "closed"]
Resolution = Literal["confirmed_violation", "explained", "false_alarm"]
Role = Literal["station", "depot", "city_regulator", "provincial_regulator", "admin"]


class Page(BaseModel):
    total: int = Field(description="How many match, over all pages.")
    limit: int
    offset: int


class CaseSummary(BaseModel):
    case_id: int
    state: CaseState
    resolution: Resolution | None = None
    assignee: str | None = None


class Anomaly(BaseModel):
    """A finding of an anomaly rule: the rule, where, when, and the evidence in numbers."""

    anomaly_id: str
    rule: str
    severity: Severity
    station_id: str
    depot_id: str | None = None
    city: str | None = None
    subject: str | None = Field(None, description="Tank, nozzle, dispatch, delivery, device…")
    window_start: str
    window_end: str
    evidence: dict[str, Any] = Field(description="The facts, numbers with units in the names.")
    summary: str = Field(description="The evidence as a sentence.")
    state: Literal["active", "resolved"] = Field(
        description="active, or resolved: later data explained it.")
    first_seen_at: str
    updated_at: str
    resolved_at: str | None = None
    case: CaseSummary | None = Field(None, description="Its current case (none yet: it was "
                                     "resolved by later data before a case was opened).")


class AnomalyPage(Page):
    items: list[Anomaly]


class HistoryEntry(BaseModel):
    at: str
    change: Literal["raised", "updated", "resolved", "reraised"]
    severity: Severity
    evidence: dict[str, Any]
    summary: str
    run_id: int


class Case(BaseModel):
    """A regulator's work on one finding."""

    case_id: int
    anomaly_id: str
    case_no: int = Field(description="1 for the finding's first case; more when reopened.")
    state: CaseState
    resolution: Resolution | None = None
    assignee: str | None = None
    opened_at: str
    opened_by: str
    updated_at: str
    closed_at: str | None = None
    reopened_from: int | None = Field(None, description="The closed case this one follows.")
    rule: str
    severity: Severity
    station_id: str
    depot_id: str | None = None
    city: str | None = None
    subject: str | None = None
    window_start: str
    window_end: str
    summary: str
    anomaly_state: Literal["active", "resolved"]


class CasePage(Page):
    items: list[Case]


class AuditEvent(BaseModel):
    """One row of the audit trail: who did what, when and why. Never rewritten."""

    event_id: int
    at: str
    case_id: int
    anomaly_id: str
    city: str | None = None
    station_id: str | None = None
    actor: str
    actor_role: str
    action: Literal["opened", "reopened", "acknowledged", "investigating", "closed",
                    "assigned", "note"]  # fmt: skip
    from_state: CaseState | None = None
    to_state: CaseState | None = None
    resolution: Resolution | None = None
    assignee: str | None = None
    reason: str | None = Field(None, description="Why (for a note: the note).")


class AuditPage(Page):
    items: list[AuditEvent]


class Note(BaseModel):
    at: str
    actor: str
    text: str


class CaseDetail(Case):
    events: list[AuditEvent]
    notes: list[Note]
    allowed_transitions: list[CaseState]


class AnomalyDetail(Anomaly):
    history: list[HistoryEntry]
    cases: list[Case] = Field(description="Every case of the finding, newest first.")


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: CaseState = Field(description="open → acknowledged → investigating → closed "
                          "(acknowledged may also close directly).")
    reason: str = Field(min_length=1, max_length=4000, description="Why: kept in the trail.")
    resolution: Resolution | None = Field(None, description="Required to close; else empty.")


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str | None = Field(max_length=200, description="Who works it; null: nobody.")
    reason: str = Field(min_length=1, max_length=4000)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


class RuleInfo(BaseModel):
    """One rule of the anomaly catalogue (docs/anomalies.md describes each)."""

    name: str
    title: str
    title_zh: str
    lookback_h: float = Field(description="Hours of data before its scope a run reads.")
    clock_driven: bool = Field(description="Also re-checked as time passes without data.")


class StationSummary(BaseModel):
    station_id: str
    name: str
    city: str
    operator: str
    updated_at: str
    active_anomalies: int


class StationPage(Page):
    items: list[StationSummary]


class Licence(BaseModel):
    kind: str
    number: str
    valid_from: str
    valid_until: str
    status: str
    standing: Literal["valid", "expiring", "expired", "not_yet_valid", "suspended", "revoked"]


class TankState(BaseModel):
    tank_id: str
    product: str
    capacity_l: float
    last_read_at: str | None = None
    last_volume_l: float | None = Field(None, description="Observed, at the fuel's temperature.")
    last_volume_20_l: float | None = None
    last_temperature_c: float | None = None
    last_water_mm: float | None = None
    fill_pct: float | None = None


class Nozzle(BaseModel):
    nozzle_id: str
    dispenser_id: str
    tank_id: str


class StationOverview(BaseModel):
    station_id: str
    name: str
    city: str
    operator: str
    updated_at: str
    licences: list[Licence]
    tanks: list[TankState]
    nozzles: list[Nozzle]
    active_anomalies: dict[str, int] = Field(description="Active findings by severity.")
    open_cases: int
    recent_anomalies: list[Anomaly]


class ReconciliationDay(BaseModel):
    date: str
    opening_at: str | None = None
    opening_20_l: float | None = None
    closing_at: str | None = None
    closing_20_l: float | None = None
    deliveries_20_l: float | None = None
    deliveries: int | None = None
    sales_20_l: float | None = None
    sales: int | None = None
    book_20_l: float | None = Field(None, description="opening + deliveries − sales")
    variance_20_l: float | None = Field(None, description="closing − book; < 0: fuel missing")
    variance_pct_of_sales: float | None = None
    tolerance_20_l: float | None = None
    readings: int | None = None
    result: Literal["pass", "fail", "inconclusive"]


class Reconciliation(BaseModel):
    station_id: str
    tank_id: str
    from_: str = Field(alias="from")
    to: str
    timezone: str
    unit: str
    tolerance_pct: float
    tolerance_min_l: float
    days: list[ReconciliationDay]


class InspectionReason(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: Literal["licence_missing", "licence_expired", "licence_not_yet_valid",
                  "licence_suspended", "licence_revoked", "traded_unlicensed",
                  "serious_anomalies_unresolved", "confirmed_violations"]  # fmt: skip
    text: str = Field(description="The reason as a sentence; the other fields are its facts.")


class InspectionStation(BaseModel):
    station_id: str
    name: str
    city: str
    operator: str
    reasons: list[InspectionReason]
    reason_codes: list[str]


class Inspection(Page):
    year: int
    as_of: str = Field(description="The inspection date: 31 December, or today.")
    city: str | None = None
    stations_inspected: int
    stations_failing: int
    stations: list[InspectionStation]


class RecordError(BaseModel):
    index: int = Field(description="Position of the record in the upload (0 for one record).")
    reason: str = Field(description="Machine-readable: schema_violation, totalizer_mismatch…")
    field: str | None = None
    message: str


class Receipt(BaseModel):
    """The gateway's answer: what reached Kafka (acknowledged by the broker)."""

    record_type: str
    received: int
    accepted: int = Field(description="Records acknowledged by the broker.")
    rejected: int
    messages: int = Field(description="Kafka messages they travelled in.")
    errors: list[RecordError]
    idempotency_key: str | None = None
    replayed: bool = Field(description="True: the answer to an earlier upload with the same "
                           "Idempotency-Key and body; nothing was sent again.")


class Token(BaseModel):
    token_id: str
    role: Role
    scope: str | None = None
    label: str
    created_at: str
    created_by: str
    expires_at: str | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None


class TokenCreated(Token):
    token: str = Field(description="The bearer token. Shown this once; only its hash is kept.")


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    scope: str | None = Field(None, max_length=200, description="station_id for station, "
                              "depot_id for depot, the city for city_regulator; else empty.")
    label: str = Field(min_length=1, max_length=200, description="Who holds it.")
    expires_at: str | None = Field(None, description="ISO-8601 with offset; empty: never.")


class WhoAmI(BaseModel):
    token_id: str
    role: Role
    scope: str | None = None
    label: str


class Health(BaseModel):
    status: Literal["ok", "ready", "not_ready"]
    checks: dict[str, bool] = Field(default_factory=dict)
