"""The annual inspection (年检): for a year, the stations that fail, each with its reasons.

A station fails when, as of the inspection date (31 December, or today for the current
year), in the Asia/Shanghai calendar:

* ``licence_missing`` / ``licence_expired`` / ``licence_not_yet_valid`` /
  ``licence_suspended`` / ``licence_revoked`` — a required licence (retail approval,
  hazardous-chemicals permit, business licence, environmental approval) is not in
  force, judged on the registry version in force that day;
* ``traded_unlicensed`` — it sold fuel during the year on days when a licence needed
  to trade (retail approval, hazardous-chemicals permit, business licence) was not in
  force (by the registry version in force on each day, or its first registration when
  the sales precede it: a licence's own dates say whether it was valid then);
* ``serious_anomalies_unresolved`` — critical or high findings whose window falls in
  the year, still active, whose case is not closed;
* ``confirmed_violations`` — critical or high findings in the year whose case was
  closed as a confirmed violation.

Each reason carries its evidence as data and a sentence rendered from it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta
from typing import Any

import duckdb

from processors.rules.base import LOCAL

REQUIRED_LICENCES = ("retail_approval", "hazardous_chemicals", "business_licence",
                     "environmental_approval")  # fmt: skip
TRADING_LICENCES = ("retail_approval", "hazardous_chemicals", "business_licence")
SERIOUS = ("critical", "high")
REASONS = ("licence_missing", "licence_expired", "licence_not_yet_valid", "licence_suspended",
           "licence_revoked", "traded_unlicensed", "serious_anomalies_unresolved",
           "confirmed_violations")  # fmt: skip
#: At most this many anomaly ids are listed in a reason (the count is always complete).
MAX_IDS = 20


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), LOCAL)


def inspection_date(year: int, today: date) -> date:
    """31 December of ``year``, or ``today`` while the year is not over."""
    if year > today.year:
        raise ValueError(f"the {year} inspection cannot be run before {year} starts")
    return min(date(year, 12, 31), today)


def _registry(con: duckdb.DuckDBPyConnection, as_of_end: datetime,
              city: str | None) -> list[dict[str, Any]]:  # fmt: skip
    """Every registered station with the licences of its registry version in force at
    ``as_of_end`` (or its first version, if it was registered later)."""
    where = "" if city is None else "WHERE s.city = $city"
    cur = con.execute(f"""
        WITH v AS (
            SELECT facility_id, updated_at, licences,
                   row_number() OVER (PARTITION BY facility_id ORDER BY
                       CASE WHEN updated_at <= $end THEN 0 ELSE 1 END,
                       CASE WHEN updated_at <= $end THEN -epoch_ms(updated_at)
                            ELSE epoch_ms(updated_at) END, src_offset DESC) AS pick
            FROM facility_version WHERE kind = 'station'
        )
        SELECT s.station_id, s.name, s.city, s.operator, to_json(v.licences)::VARCHAR
        FROM station s LEFT JOIN v ON v.facility_id = s.station_id AND v.pick = 1
        {where} ORDER BY s.city, s.station_id
    """, {"end": as_of_end} | ({} if city is None else {"city": city}))  # fmt: skip
    out = []
    for station_id, name, city_, operator, licences in cur.fetchall():
        out.append({"station_id": station_id, "name": name, "city": city_,
                    "operator": operator, "licences": json.loads(licences or "[]")})
    return out


def licence_reasons(licences: list[dict[str, Any]], as_of: date) -> list[dict[str, Any]]:
    """What keeps each required licence from being in force on ``as_of``."""
    reasons = []
    for kind in REQUIRED_LICENCES:
        held = [x for x in licences if x["kind"] == kind]
        if not held:
            reasons.append({"code": "licence_missing", "kind": kind,
                            "text": f"no {kind} on the registry"})
            continue
        in_force = [x for x in held if x["status"] == "valid"
                    and date.fromisoformat(str(x["valid_from"])) <= as_of
                    <= date.fromisoformat(str(x["valid_until"]))]  # fmt: skip
        if in_force:
            continue
        latest = max(held, key=lambda x: str(x["valid_until"]))
        status, until = latest["status"], str(latest["valid_until"])
        facts = {"kind": kind, "number": latest["number"], "status": status,
                 "valid_from": str(latest["valid_from"]), "valid_until": until}
        if status in ("revoked", "suspended"):
            reasons.append({"code": f"licence_{status}", **facts,
                            "text": f"{kind} {latest['number']} is {status}"})
        elif date.fromisoformat(until) < as_of:
            reasons.append({"code": "licence_expired", **facts,
                            "text": f"{kind} {latest['number']} expired on {until}"})
        else:
            reasons.append({"code": "licence_not_yet_valid", **facts,
                            "text": f"{kind} {latest['number']} is valid only from "
                                    f"{latest['valid_from']}"})  # fmt: skip
    return reasons


def _unlicensed_trading(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                        city: str | None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per station: the days of the year it sold on while a trading licence was not in
    force, by the registry version of each day."""
    checks = ", ".join(
        f"len(list_filter(v.licences, lambda l: l.kind = '{kind}' AND l.status = 'valid' "
        f"AND l.valid_from <= d.day AND d.day <= l.valid_until)) = 0 AS no_{kind}"
        for kind in TRADING_LICENCES
    )
    lacking = " OR ".join(f"no_{kind}" for kind in TRADING_LICENCES)
    city_join = "" if city is None else "JOIN station st ON st.station_id = d.station_id " \
                                        "AND st.city = $city"
    cur = con.execute(f"""
        WITH d AS (
            SELECT station_id, (timezone('Asia/Shanghai', started_at))::DATE AS day,
                   count(*) AS sales, sum(volume_l) AS volume_l,
                   max(started_at) AS last_sale_at
            FROM sale WHERE started_at >= $start AND started_at < $end GROUP BY ALL
        ), first_version AS (
            SELECT facility_id, min(updated_at) AS updated_at FROM facility_version
            WHERE kind = 'station' GROUP BY ALL
        ), versions AS (
            SELECT facility_id, updated_at FROM facility_version WHERE kind = 'station'
        ), days AS (
            SELECT d.*, coalesce(at_day.updated_at, f.updated_at) AS version_at
            FROM d {city_join}
            ASOF LEFT JOIN versions at_day ON at_day.facility_id = d.station_id
                 AND d.last_sale_at >= at_day.updated_at
            LEFT JOIN first_version f ON f.facility_id = d.station_id
        ), checked AS (
            SELECT d.station_id, d.day, d.sales, d.volume_l, {checks}
            FROM days d LEFT JOIN facility_version v ON v.facility_id = d.station_id
                 AND v.updated_at = d.version_at
            QUALIFY row_number() OVER (PARTITION BY d.station_id, d.day
                                       ORDER BY v.src_offset DESC) = 1
        )
        SELECT station_id, count(*) AS days, min(day)::VARCHAR, max(day)::VARCHAR,
               sum(sales)::BIGINT, sum(volume_l),
               {", ".join(f"bool_or(coalesce(no_{k}, TRUE))" for k in TRADING_LICENCES)}
        FROM checked WHERE coalesce({lacking}, TRUE) GROUP BY station_id
    """, {"start": start, "end": end} | ({} if city is None else {"city": city}))  # fmt: skip
    out = {}
    for station_id, days, first, last, sales, volume, *lacks in cur.fetchall():
        kinds = [k for k, lacked in zip(TRADING_LICENCES, lacks, strict=True) if lacked]
        out[station_id] = {
            "code": "traded_unlicensed", "days": int(days), "first_day": first,
            "last_day": last, "sales": int(sales), "volume_l": round(float(volume), 2),
            "licences": kinds,
            "text": f"sold {float(volume):,.0f} L in {int(sales)} sales on {int(days)} "
                    f"day{'s' if days != 1 else ''} "
                    f"({first} – {last}) without a {' / '.join(kinds)} in force",
        }  # fmt: skip
    return out


def _serious(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
             city: str | None) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Per station: its unresolved serious findings and its confirmed violations."""
    where = "" if city is None else "AND a.city = $city"
    cur = con.execute(f"""
        WITH latest AS (
            SELECT anomaly_id, state, resolution FROM anomaly_case
            QUALIFY row_number() OVER (PARTITION BY anomaly_id ORDER BY case_no DESC) = 1
        )
        SELECT a.station_id,
               CASE WHEN c.state = 'closed' THEN 'confirmed_violations'
                    ELSE 'serious_anomalies_unresolved' END AS code,
               count(*) AS n, list(a.anomaly_id ORDER BY a.window_end DESC) AS ids,
               list(a.rule) AS rules
        FROM anomaly a LEFT JOIN latest c ON c.anomaly_id = a.anomaly_id
        WHERE a.severity IN ('critical', 'high') AND a.window_start < $end
          AND a.window_end >= $start {where}
          AND ((a.state = 'active' AND (c.state IS NULL OR c.state <> 'closed'))
               OR (c.state = 'closed' AND c.resolution = 'confirmed_violation'))
        GROUP BY ALL ORDER BY a.station_id, code
    """, {"start": start, "end": end} | ({} if city is None else {"city": city}))  # fmt: skip
    out: dict[str, list[dict[str, Any]]] = {}
    for station_id, code, n, ids, rules in cur.fetchall():
        by_rule: dict[str, int] = {}
        for rule in rules:
            by_rule[rule] = by_rule.get(rule, 0) + 1
        what = ("unresolved critical/high findings" if code == "serious_anomalies_unresolved"
                else "critical/high findings confirmed as violations")  # fmt: skip
        out.setdefault(station_id, []).append({
            "code": code, "count": int(n), "anomaly_ids": list(ids[:MAX_IDS]),
            "rules": dict(sorted(by_rule.items())),
            "text": f"{int(n)} {what} ("
                    + ", ".join(f"{r} ×{k}" for r, k in sorted(by_rule.items())) + ")",
        })  # fmt: skip
    return out


def annual_inspection(con: duckdb.DuckDBPyConnection, year: int, *, today: date,
                      city: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The inspection list of ``year``: every failing station with its reasons."""
    as_of = inspection_date(year, today)
    start, end = _start(date(year, 1, 1)), _start(as_of + timedelta(days=1))
    stations = _registry(con, end, city)
    trading = _unlicensed_trading(con, start, end, city)
    serious = _serious(con, start, end, city)
    failing = []
    for st in stations:
        reasons = licence_reasons(st["licences"], as_of)
        if st["station_id"] in trading:
            reasons.append(trading[st["station_id"]])
        reasons.extend(serious.get(st["station_id"], []))
        if reasons:
            failing.append({k: st[k] for k in ("station_id", "name", "city", "operator")}
                           | {"reasons": reasons,
                              "reason_codes": sorted({r["code"] for r in reasons})})
    return {"year": year, "as_of": as_of.isoformat(), "city": city,
            "stations_inspected": len(stations), "stations_failing": len(failing),
            "stations": failing}


CSV_COLUMNS = ("year", "as_of", "station_id", "name", "city", "operator", "reason", "detail",
               "evidence")  # fmt: skip


def inspection_csv(report: dict[str, Any]) -> str:
    """One row per failing station and reason (so it filters well in a spreadsheet); the
    evidence as JSON in the last column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for st in report["stations"]:
        for reason in st["reasons"]:
            evidence = {k: v for k, v in reason.items() if k not in ("code", "text")}
            writer.writerow((report["year"], report["as_of"], st["station_id"], st["name"],
                             st["city"], st["operator"], reason["code"], reason["text"],
                             json.dumps(evidence, ensure_ascii=False, sort_keys=True)))
    return out.getvalue()
