"""The case workflow: what regulators do about a finding, and the audit trail of it.

A finding (``anomaly``) is what the rules see; a case is the regulator's work on it::

    open ──▶ acknowledged ──▶ investigating ──▶ closed (confirmed_violation | explained |
                    └────────────────────────────▶        false_alarm)

Every active finding gets a case (:func:`sync_cases`, after each analysis run). Each
action — a transition, an assignment, a note — appends one row to ``case_event``: who,
when, what, and why (a transition needs a reason). Rows of ``case_event`` are never
updated or deleted. A closed case stays closed: when the rules find its finding again
after the close (a ``raised``, ``reraised`` or ``updated`` entry in the finding's history
later than the close, and the finding active), :func:`sync_cases` opens a new case for it,
linked to the closed one by ``reopened_from``. That holds whatever the resolution: a
violation confirmed and sanctioned that shows up again is news too.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from fueltrace.errors import TerminalError, UsageError
from warehouse.connection import scalar, transaction
from warehouse.trace import NotFound, _jsonable

STATES = ("open", "acknowledged", "investigating", "closed")
RESOLUTIONS = ("confirmed_violation", "explained", "false_alarm")
#: The legal next states of each state.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("acknowledged",),
    "acknowledged": ("investigating", "closed"),
    "investigating": ("closed",),
    "closed": (),
}
SYSTEM = "system:rules"
#: History entries that mean "the rules found it (again)".
FOUND = ("raised", "reraised", "updated")


class CaseConflict(TerminalError):
    """The action does not fit the case's state (an illegal transition, or a case someone
    else changed meanwhile). ``allowed`` lists what is possible now."""

    def __init__(self, message: str, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.allowed = allowed


@dataclass(frozen=True)
class SyncResult:
    opened: int = 0
    reopened: int = 0


def sync_cases(con: duckdb.DuckDBPyConnection, now: datetime) -> SyncResult:
    """Open a case for every active finding that has none, and a new, linked case for
    every finding the rules found again after its latest case was closed."""
    with transaction(con, "warehouse"):
        opened = scalar(con, """
            INSERT INTO anomaly_case
            SELECT nextval('case_seq'), a.anomaly_id, 1, 'open', NULL, NULL, a.first_seen_at,
                   $system, $now, NULL, NULL
            FROM anomaly a
            WHERE a.state = 'active'
              AND NOT EXISTS (SELECT 1 FROM anomaly_case c WHERE c.anomaly_id = a.anomaly_id)
        """, {"system": SYSTEM, "now": now})  # fmt: skip
        again = con.execute("""
            WITH latest AS (
                SELECT * FROM anomaly_case
                QUALIFY row_number() OVER (PARTITION BY anomaly_id ORDER BY case_no DESC) = 1
            )
            SELECT l.case_id, l.anomaly_id, l.case_no, l.resolution,
                   arg_min(h.change, h."at") AS change, min(h."at") AS found_at
            FROM latest l JOIN anomaly a ON a.anomaly_id = l.anomaly_id
            JOIN anomaly_history h ON h.anomaly_id = l.anomaly_id AND h."at" > l.closed_at
            WHERE l.state = 'closed' AND a.state = 'active' AND h.change IN ('raised',
                  'reraised', 'updated')
            GROUP BY ALL ORDER BY l.case_id
        """).fetchall()  # fmt: skip
        for case_id, anomaly_id, case_no, resolution, change, found_at in again:
            new_case = scalar(con, """
                INSERT INTO anomaly_case VALUES (nextval('case_seq'), $a, $no, 'open', NULL,
                    NULL, $now, $system, $now, NULL, $from) RETURNING case_id
            """, {"a": anomaly_id, "no": case_no + 1, "now": now, "system": SYSTEM,
                  "from": case_id})  # fmt: skip
            when = _jsonable({"t": found_at})["t"]
            _event(con, new_case, now, SYSTEM, "system", "reopened", None, "open",
                   reason=f"found again by the rules ({change} at {when}) after case "
                          f"{case_id} was closed as {resolution}")  # fmt: skip
        # The opening event of every case that has none yet (those inserted above).
        con.execute("""
            INSERT INTO case_event
            SELECT nextval('case_event_seq'), c.case_id, c.anomaly_id, $now, $system, 'system',
                   'opened', NULL, 'open', NULL, NULL, 'raised by rule ' || a.rule
            FROM anomaly_case c JOIN anomaly a ON a.anomaly_id = c.anomaly_id
            WHERE NOT EXISTS (SELECT 1 FROM case_event e WHERE e.case_id = c.case_id)
        """, {"now": now, "system": SYSTEM}).fetchall()  # fmt: skip
    return SyncResult(opened, len(again))


def _event(con: duckdb.DuckDBPyConnection, case_id: int, now: datetime,
           actor: str, role: str, action: str, from_state: str | None, to_state: str | None,
           *, resolution: str | None = None, assignee: str | None = None,
           reason: str | None = None) -> None:  # fmt: skip
    """Append one audit row for case ``case_id``."""
    con.execute("""
        INSERT INTO case_event
        SELECT nextval('case_event_seq'), c.case_id, c.anomaly_id, $now, $actor, $role, $action,
               $from_state, $to_state, $resolution, $assignee, $reason
        FROM anomaly_case c WHERE c.case_id = $case_id
    """, {"case_id": case_id, "now": now, "actor": actor, "role": role, "action": action,
          "from_state": from_state, "to_state": to_state, "resolution": resolution,
          "assignee": assignee, "reason": reason}).fetchall()  # fmt: skip


# --- actions ---------------------------------------------------------------------------


def _state(con: duckdb.DuckDBPyConnection, case_id: int) -> str:
    rows = con.execute("SELECT state FROM anomaly_case WHERE case_id = $id",
                       {"id": case_id}).fetchall()  # fmt: skip
    if not rows:
        raise NotFound(f"no case {case_id}")
    return str(rows[0][0])


def _reason(reason: str | None, what: str) -> str:
    if reason is None or not reason.strip():
        raise UsageError(f"{what} needs a reason: why (it goes into the audit trail)")
    return reason.strip()


def transition(con: duckdb.DuckDBPyConnection, case_id: int, to_state: str, *, actor: str,
               actor_role: str, reason: str | None, now: datetime,
               resolution: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Move a case to ``to_state``; closing needs a resolution. Returns the case."""
    if to_state not in STATES:
        raise UsageError(f"unknown state {to_state!r}; states: {', '.join(STATES)}")
    why = _reason(reason, f"moving a case to {to_state}")
    if to_state == "closed":
        if resolution not in RESOLUTIONS:
            raise UsageError(f"closing a case needs a resolution: one of {', '.join(RESOLUTIONS)}")
    elif resolution is not None:
        raise UsageError("only closing a case takes a resolution")
    with transaction(con, "warehouse"):
        current = _state(con, case_id)
        allowed = TRANSITIONS[current]
        if to_state not in allowed:
            raise CaseConflict(f"case {case_id} is {current}; it cannot go to {to_state}"
                               + (f" (next: {', '.join(allowed)})" if allowed else
                                  " (a closed case stays closed; if the rules find the "
                                  "finding again, a new case is opened)"), allowed)  # fmt: skip
        changed = scalar(con, """
            UPDATE anomaly_case SET state = $to, resolution = $res, updated_at = $now,
                closed_at = CASE WHEN $to = 'closed' THEN $now END
            WHERE case_id = $id AND state = $from
        """, {"to": to_state, "res": resolution, "now": now, "id": case_id,
              "from": current})  # fmt: skip
        if changed != 1:  # pragma: no cover - a concurrent change between read and write
            raise CaseConflict(f"case {case_id} was changed meanwhile; reload it", ())
        _event(con, case_id, now, actor, actor_role, to_state, current, to_state,
               resolution=resolution, reason=why)  # fmt: skip
    return get_case(con, case_id)


def assign(con: duckdb.DuckDBPyConnection, case_id: int, assignee: str | None, *, actor: str,
           actor_role: str, reason: str | None, now: datetime) -> dict[str, Any]:  # fmt: skip
    """Give a case to someone (None: to nobody)."""
    who = assignee.strip() if assignee and assignee.strip() else None
    why = _reason(reason, "assigning a case")
    with transaction(con, "warehouse"):
        current = _state(con, case_id)
        if current == "closed":
            raise CaseConflict(f"case {case_id} is closed; it cannot be assigned", ())
        con.execute("UPDATE anomaly_case SET assignee = $who, updated_at = $now "
                    "WHERE case_id = $id", {"who": who, "now": now, "id": case_id}).fetchall()
        _event(con, case_id, now, actor, actor_role, "assigned", current, current,
               assignee=who, reason=why)  # fmt: skip
    return get_case(con, case_id)


def add_note(con: duckdb.DuckDBPyConnection, case_id: int, text: str, *, actor: str,
             actor_role: str, now: datetime) -> dict[str, Any]:  # fmt: skip
    """A note on a case (also a closed one): kept in the audit trail."""
    if not text or not text.strip():
        raise UsageError("a note needs text")
    with transaction(con, "warehouse"):
        current = _state(con, case_id)
        _event(con, case_id, now, actor, actor_role, "note", current, current,
               reason=text.strip())  # fmt: skip
    return get_case(con, case_id)


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFilter:
    state: str | None = None
    resolution: str | None = None
    assignee: str | None = None
    city: str | None = None
    station_id: str | None = None
    rule: str | None = None
    severity: str | None = None
    anomaly_id: str | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        for column, table in (("state", "c"), ("resolution", "c"), ("assignee", "c"),
                              ("city", "a"), ("station_id", "a"), ("rule", "a"),
                              ("severity", "a"), ("anomaly_id", "c")):  # fmt: skip
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{table}.{column} = ${column}")
                params[column] = value
        return (" AND ".join(clauses) or "TRUE"), params


_CASE_COLUMNS = """c.case_id, c.anomaly_id, c.case_no, c.state, c.resolution, c.assignee,
    c.opened_at, c.opened_by, c.updated_at, c.closed_at, c.reopened_from,
    a.rule, a.severity, a.station_id, a.depot_id, a.city, a.subject, a.window_start,
    a.window_end, a.summary, a.state AS anomaly_state"""


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [_jsonable(dict(zip(names, row, strict=True))) for row in cur.fetchall()]


def list_cases(con: duckdb.DuckDBPyConnection, flt: CaseFilter = CaseFilter(),
               limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:  # fmt: skip
    """Cases matching ``flt``, most recently changed first."""
    where, params = flt.where()
    return _rows(con, f"""
        SELECT {_CASE_COLUMNS} FROM anomaly_case c JOIN anomaly a ON a.anomaly_id = c.anomaly_id
        WHERE {where} ORDER BY c.updated_at DESC, c.case_id DESC LIMIT $limit OFFSET $offset
    """, params | {"limit": limit, "offset": offset})  # fmt: skip


def count_cases(con: duckdb.DuckDBPyConnection, flt: CaseFilter = CaseFilter()) -> int:
    where, params = flt.where()
    return scalar(con, f"SELECT count(*) FROM anomaly_case c JOIN anomaly a "
                       f"ON a.anomaly_id = c.anomaly_id WHERE {where}", params)  # fmt: skip


def get_case(con: duckdb.DuckDBPyConnection, case_id: int) -> dict[str, Any]:
    """One case with its finding's summary, its notes and its whole audit trail."""
    rows = _rows(con, f"SELECT {_CASE_COLUMNS} FROM anomaly_case c JOIN anomaly a "
                      f"ON a.anomaly_id = c.anomaly_id WHERE c.case_id = $id",
                 {"id": case_id})  # fmt: skip
    if not rows:
        raise NotFound(f"no case {case_id}")
    case = rows[0]
    case["events"] = audit_trail(con, AuditFilter(case_id=case_id), limit=None)
    case["notes"] = [{"at": e["at"], "actor": e["actor"], "text": e["reason"]}
                     for e in case["events"] if e["action"] == "note"]  # fmt: skip
    case["allowed_transitions"] = list(TRANSITIONS[case["state"]])
    return case


def cases_of_anomaly(con: duckdb.DuckDBPyConnection, anomaly_id: str) -> list[dict[str, Any]]:
    """Every case of a finding, newest first (a reopened finding has several)."""
    return list_cases(con, CaseFilter(anomaly_id=anomaly_id), limit=1000)


# --- the audit trail -------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    city: str | None = None
    case_id: int | None = None
    anomaly_id: str | None = None
    since: datetime | None = None  # "at" ≥ since
    until: datetime | None = None  # "at" < until

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        for column, table in (("case_id", "e"), ("anomaly_id", "e"), ("city", "a")):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{table}.{column} = ${column}")
                params[column] = value
        if self.since is not None:
            clauses.append('e."at" >= $since')
            params["since"] = self.since
        if self.until is not None:
            clauses.append('e."at" < $until')
            params["until"] = self.until
        return (" AND ".join(clauses) or "TRUE"), params


AUDIT_COLUMNS = ("event_id", "at", "case_id", "anomaly_id", "city", "station_id", "actor",
                 "actor_role", "action", "from_state", "to_state", "resolution", "assignee",
                 "reason")  # fmt: skip


def audit_trail(con: duckdb.DuckDBPyConnection, flt: AuditFilter = AuditFilter(),
                limit: int | None = 1000, offset: int = 0) -> list[dict[str, Any]]:  # fmt: skip
    """Audit rows in the order they were written."""
    where, params = flt.where()
    page = ""
    if limit is not None:
        page = "LIMIT $limit OFFSET $offset"
        params |= {"limit": limit, "offset": offset}
    return _rows(con, f"""
        SELECT e.event_id, e."at", e.case_id, e.anomaly_id, a.city, a.station_id, e.actor,
               e.actor_role, e.action, e.from_state, e.to_state, e.resolution, e.assignee,
               e.reason
        FROM case_event e LEFT JOIN anomaly a ON a.anomaly_id = e.anomaly_id
        WHERE {where} ORDER BY e.event_id {page}
    """, params)  # fmt: skip


def count_audit(con: duckdb.DuckDBPyConnection, flt: AuditFilter = AuditFilter()) -> int:
    where, params = flt.where()
    return scalar(con, f"SELECT count(*) FROM case_event e LEFT JOIN anomaly a "
                       f"ON a.anomaly_id = e.anomaly_id WHERE {where}", params)  # fmt: skip


def audit_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(AUDIT_COLUMNS)
    for row in rows:
        writer.writerow(tuple(row[c] for c in AUDIT_COLUMNS))
    return out.getvalue()


def current_cases(con: duckdb.DuckDBPyConnection,
                  anomaly_ids: list[str]) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The latest case of each of ``anomaly_ids`` (those that have one)."""
    if not anomaly_ids:
        return {}
    rows = _rows(con, """
        SELECT anomaly_id, case_id, state, resolution, assignee FROM anomaly_case
        WHERE anomaly_id IN (SELECT unnest($ids))
        QUALIFY row_number() OVER (PARTITION BY anomaly_id ORDER BY case_no DESC) = 1
    """, {"ids": anomaly_ids})  # fmt: skip
    return {r.pop("anomaly_id"): r for r in rows}
