"""unlicensed_sales: selling while a licence is expired, suspended, revoked or missing.

Times: T0 = 2026-11-20T00:00Z = 08:00 Beijing, so the Beijing day 2026-11-21 begins at
T0 + 16 h. A scenario sale at hour h ends at T0 + h and starts two minutes before.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from processors import anomalies, traceability
from processors.rules.unlicensed_sales import RULE, lapses, timeline
from simulator.generate import DEFAULT_START, generate_province
from tests.processors.rules.conduct_factories import h, licence
from tests.processors.scenario import T0, at, load, sale, settings, station
from warehouse.connection import connect

NOW = T0 + timedelta(days=3)
KINDS = ("retail_approval", "hazardous_chemicals", "business_licence", "environmental_approval")
#: 2026-11-21 00:00 Beijing.
NOV_21 = T0 + timedelta(hours=16)


def licensed(station_id: str = "S1", retail_until: str = "2026-11-20", updated: float = -240,
             hazardous: str = "valid") -> dict[str, Any]:  # fmt: skip
    """A station holding every kind; its retail approval ends ``retail_until``."""
    record = station(station_id)
    record["updated_at"] = at(updated)
    record["licences"] = [
        licence("retail_approval", "油零售证书第21010001号", "2021-11-21", retail_until),
        licence("hazardous_chemicals", "沈危化经字〔2024〕000123", "2024-01-01", "2026-12-31",
                hazardous),
        licence("business_licence", "91210100MA0Q000000", "2000-01-01", "2050-12-31"),
        licence("environmental_approval", "沈环审〔2015〕12号", "2015-01-01", "2040-12-31"),
    ]  # fmt: skip
    return record


def run(con: duckdb.DuckDBPyConnection, tmp: Path, now: Any = NOW) -> anomalies.AnomalyRunResult:
    return anomalies.run(con, settings(tmp), now, (RULE,))


def rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    found = con.execute("""SELECT anomaly_id, subject, severity, state, window_start,
                                  window_end, evidence::VARCHAR, summary
                           FROM anomaly ORDER BY subject, window_start""").fetchall()
    keys = ("id", "subject", "severity", "state", "start", "end", "evidence", "summary")
    return [dict(zip(keys, r[:6] + (json.loads(r[6]),) + r[7:], strict=True)) for r in found]


# --- the licence timeline, pure ---------------------------------------------------------


def _frames(versions: list[tuple[float, list[dict[str, Any]]]]) -> tuple[pl.DataFrame, ...]:
    utc = pl.Datetime("us", "UTC")
    v = pl.DataFrame({"station_id": ["S1"] * len(versions),
                      "updated_at": [h(t) for t, _ in versions]}, schema_overrides={
                          "updated_at": utc})  # fmt: skip
    rows_ = [{"station_id": "S1", "updated_at": h(t), **{k: lic[k] for k in lic}}
             for t, lics in versions for lic in lics]  # fmt: skip
    lics = pl.DataFrame(rows_, schema={
        "station_id": pl.String, "updated_at": utc, "kind": pl.String, "number": pl.String,
        "valid_from": pl.Date, "valid_until": pl.Date, "status": pl.String})  # fmt: skip
    return pl.DataFrame({"station_id": ["S1"]}), v, lics


def _lic(kind: str, valid_from: str, valid_until: str, state: str = "valid") -> dict[str, Any]:
    return {**licence(kind, f"{kind}-1", valid_from, valid_until, state),
            "valid_from": date.fromisoformat(valid_from),
            "valid_until": date.fromisoformat(valid_until)}  # fmt: skip


def test_an_expiry_lapses_at_the_next_beijing_midnight_until_a_renewal_is_recorded() -> None:
    old = _lic("retail_approval", "2021-11-21", "2026-11-20")
    new = _lic("retail_approval", "2026-11-25", "2031-11-24")
    stations, versions, lics = _frames([(-240, [old]), (130, [old, new])])
    before, lapse, future = lapses(timeline(stations, versions, lics),
                                   ["retail_approval"]).to_dicts()  # fmt: skip
    assert (before["start_at"], before["problem"]) == (None, "not_yet_valid")  # before 2021
    # ...and the renewal lapses in turn after 2031-11-24 (at 2031-11-25 00:00 Beijing).
    assert (future["start_at"], future["end_at"]) == (datetime(2031, 11, 24, 16, tzinfo=UTC),
                                                      None)  # fmt: skip
    # Not valid from 2026-11-21 00:00 Beijing until the record listing the renewal.
    assert (lapse["start_at"], lapse["end_at"]) == (NOV_21, h(130))
    assert (lapse["problem"], lapse["number"]) == ("expired", "retail_approval-1")


def test_a_suspension_lapses_from_its_record_and_a_missing_kind_from_always() -> None:
    ok = _lic("hazardous_chemicals", "2024-01-01", "2026-12-31")
    stations, versions, lics = _frames([
        (-240, [ok]), (25, [_lic("hazardous_chemicals", "2024-01-01", "2026-12-31",
                                 "suspended")]), (35, [ok])])  # fmt: skip
    found = lapses(timeline(stations, versions, lics), ["hazardous_chemicals",
                                                        "business_licence"])  # fmt: skip
    spans = [(r["kind"], r["start_at"], r["end_at"], r["problem"]) for r in found.to_dicts()]
    assert spans == [
        # Never listed: not in force at any time (start null: before the first record).
        ("business_licence", None, None, "missing"),
        ("hazardous_chemicals", None, datetime(2023, 12, 31, 16, tzinfo=UTC), "not_yet_valid"),
        ("hazardous_chemicals", h(25), h(35), "suspended"),
        ("hazardous_chemicals", datetime(2026, 12, 31, 16, tzinfo=UTC), None, "expired"),
    ]


def test_a_renewal_registered_after_the_lapse_does_not_hide_it() -> None:
    old = _lic("retail_approval", "2021-11-21", "2026-11-20")
    renewed = _lic("retail_approval", "2026-11-21", "2031-11-20")  # backdated to the day after
    stations, versions, lics = _frames([(-240, [old]), (50, [renewed])])
    _, lapse, _ = lapses(timeline(stations, versions, lics), ["retail_approval"]).to_dicts()
    assert (lapse["start_at"], lapse["end_at"]) == (NOV_21, h(50))


# --- through the warehouse and the engine -------------------------------------------------


def test_sales_after_expiry_are_one_critical_episode_with_its_evidence(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    # 10 h = 18:00 Beijing on the 20th (licensed); 20, 30, 38 h on the 21st (lapsed).
    sales = [sale("S1", t, v) for t, v in ((10, 25.0), (20, 30.0), (30, 40.5), (38, 12.25))]
    load(con, tmp_path, facility=[licensed()], sale=sales)
    assert run(con, tmp_path).raised == 1
    [found] = rows(con)
    e = found["evidence"]
    assert (found["subject"], found["severity"]) == ("retail_approval", "critical")
    assert found["start"] == NOV_21  # the lapse start, not the first sale
    assert found["end"] == h(38) - timedelta(minutes=2)  # the last sale in the lapse
    assert (e["sales"], e["sales_l"], e["sale_days"]) == (3, pytest.approx(82.75), 1)
    assert (e["first_txn_id"], e["last_txn_id"]) == (sales[1]["txn_id"], sales[3]["txn_id"])
    assert (e["problem"], e["valid_until"], e["licence_number"]) == (
        "expired", "2026-11-20", "油零售证书第21010001号")
    assert e["lapse_end_at"] is None
    assert found["id"] == anomalies.anomaly_id("unlicensed_sales", "S1", "retail_approval",
                                               NOV_21)  # fmt: skip
    assert "82.8 L in 3 sales" in found["summary"] and "2026-11-21 00:00" in found["summary"]
    # Next day's sales extend the same episode: same id, updated.
    load(con, tmp_path, sale=[sale("S1", 45, 10.0)])
    later = run(con, tmp_path, NOW + timedelta(days=1))
    assert (later.raised, later.updated) == (0, 1)
    [grown] = rows(con)
    assert (grown["id"], grown["evidence"]["sales"], grown["evidence"]["sale_days"]) == (
        found["id"], 4, 2)


def test_a_suspension_takes_effect_at_its_record_and_ends_at_the_next(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    versions = [licensed(retail_until="2031-11-20"),
                licensed(retail_until="2031-11-20", updated=25, hazardous="suspended"),
                licensed(retail_until="2031-11-20", updated=35)]  # fmt: skip
    load(con, tmp_path, facility=versions,
         sale=[sale("S1", t, 20.0) for t in (24, 30, 33, 36)])  # fmt: skip
    run(con, tmp_path)
    [found] = rows(con)
    e = found["evidence"]
    assert (found["subject"], found["severity"], found["start"]) == (
        "hazardous_chemicals", "critical", h(25))
    assert (e["problem"], e["sales"], e["sales_l"]) == ("suspended", 2, 40.0)
    assert e["lapse_end_at"] == "2026-11-21T11:00:00.000Z"  # T0 + 35 h


def test_a_station_without_licences_lacks_every_kind(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[station("S1")], sale=[sale("S1", 5, 10.0)])
    run(con, tmp_path)
    found = {r["subject"]: r for r in rows(con)}
    assert set(found) == set(KINDS)
    assert found["environmental_approval"]["severity"] == "high"
    assert {found[k]["severity"] for k in KINDS[:3]} == {"critical"}
    # Missing since always: the episode starts at the first sale.
    assert found["retail_approval"]["start"] == h(5) - timedelta(minutes=2)
    assert found["retail_approval"]["evidence"]["problem"] == "missing"


def test_a_renewal_recorded_in_time_but_arriving_late_clears_the_finding(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[licensed()], sale=[sale("S1", t, 20.0) for t in (20, 30)])
    run(con, tmp_path)
    assert [r["state"] for r in rows(con)] == ["active"]
    # The renewal was registered at 15 h (before the lapse); its record reaches us late.
    load(con, tmp_path, facility=[licensed(retail_until="2031-11-20", updated=15)])
    assert run(con, tmp_path, NOW + timedelta(hours=1)).resolved == 1
    assert [r["state"] for r in rows(con)] == ["resolved"]


def test_a_renewal_registered_after_the_sales_leaves_the_lapse_standing(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, facility=[licensed()], sale=[sale("S1", t, 20.0) for t in (20, 30)])
    run(con, tmp_path)
    load(con, tmp_path, facility=[licensed(retail_until="2031-11-20", updated=40)])
    result = run(con, tmp_path, NOW + timedelta(hours=1))
    [found] = rows(con)
    assert (result.resolved, found["state"]) == (0, "active")
    assert found["evidence"]["lapse_end_at"] == "2026-11-21T16:00:00.000Z"  # T0 + 40 h
    assert result.updated == 1  # the lapse now has an end


def test_a_clean_province_sells_licensed(tmp_path: Path) -> None:
    records = generate_province(seed=11, stations=8, days=2)
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, **records)
    now = DEFAULT_START + timedelta(days=2)
    traceability.run(con, settings(tmp_path), now)
    result = anomalies.run(con, settings(tmp_path), now, (RULE,))
    assert len(records["sale"]) > 1000
    assert result.by_rule == {RULE.name: 0}
