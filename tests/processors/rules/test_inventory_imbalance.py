"""inventory_imbalance: the daily book (opening + deliveries − sales) against the gauge.

Hand-computed days in litres at 20 °C (gauge at 20 °C, so observed = standard volume).
T0 = 2026-11-20 00:00 UTC = 08:00 local; local 2026-11-21 runs from T0 + 16 h to T0 + 40 h.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from fueltrace.settings import Settings
from processors import anomalies, traceability
from processors.rules.base import UTC_US, Reader, Scope
from processors.rules.inventory_imbalance import RULE, daily, describe, detect
from simulator import generate_province
from tests.processors.scenario import T0, load, reading, sale, settings, station
from tests.processors.test_wetstock import deliveries, readings, sales
from warehouse.connection import connect

NOW = T0 + timedelta(days=2)
STORED = ("facility", "dispatch", "delivery", "tank_reading", "sale")


def _scope(now=NOW) -> Scope:
    return Scope(pl.DataFrame({"station_id": ["S1"], "since": [T0 - timedelta(days=1)]},
                              schema={"station_id": pl.String, "since": UTC_US}), now)  # fmt: skip


def _frames(loss_l: float, sold: tuple[float, ...] = (100.0, 100.0, 100.0)) -> dict:
    closing = 10_000.0 - sum(sold) - loss_l
    return {
        "readings": readings((15.75, 10_000.0), (39.75, closing)),
        "sales": sales(*[(20.0 + 5 * i, litres) for i, litres in enumerate(sold)]),
        "deliveries": deliveries(),
    }


@pytest.mark.parametrize(("loss_l", "severity"), [
    (30.0, None),  # within ±40 L
    (60.0, "medium"),  # 1.5 tolerances
    (-150.0, "high"),  # a gain of 3.75 tolerances
    (500.0, "critical"),  # 12.5 tolerances
])  # fmt: skip
def test_a_day_beyond_tolerance_is_a_finding_with_severity_by_its_size(
    loss_l: float, severity: str | None
) -> None:
    found = detect(_frames(loss_l), Settings(), _scope())
    if severity is None:
        assert found.is_empty()
        return
    [row] = found.to_dicts()
    assert (row["station_id"], row["subject"], row["severity"]) == ("S1", "T1", severity)
    assert row["window_start"] == T0 + timedelta(hours=16)
    assert row["window_end"] == T0 + timedelta(hours=40)
    e = row["evidence"]
    assert e["variance_20_l"] == pytest.approx(-loss_l)
    assert (e["opening_20_l"], e["sales_20_l"], e["sales"], e["deliveries_20_l"]) == (
        10_000.0, 300.0, 3, 0.0)  # fmt: skip
    assert e["book_20_l"] == 9_700.0 and e["measured_20_l"] == 9_700.0 - loss_l
    assert e["tolerance_20_l"] == 40.0 and e["readings"] == 2
    assert e["variance_pct_of_sales"] == pytest.approx(-100 * loss_l / 300)


def test_a_day_not_yet_over_is_not_judged() -> None:
    assert detect(_frames(500.0), Settings(), _scope(T0 + timedelta(hours=39.9))).is_empty()


def test_the_summary_names_the_numbers() -> None:
    [row] = detect(_frames(200.0), Settings(), _scope()).to_dicts()
    evidence = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in row["evidence"].items()}  # fmt: skip
    text = describe(evidence)
    assert "Tank T1 on 2026-11-21" in text and "200 L at 20 °C less than the book" in text
    assert "9500 L against 9700 L" in text and "tolerance ±40 L" in text


# --- through the warehouse and the engine ----------------------------------------------


def _run(con: duckdb.DuckDBPyConnection, tmp: Path, now=NOW) -> anomalies.AnomalyRunResult:
    traceability.run(con, settings(tmp), now)
    return anomalies.run(con, settings(tmp), now, (RULE,))


def _day(missing_sale: bool) -> dict[str, list[dict]]:
    sold = [sale("S1", 20.0, 100.0), sale("S1", 25.0, 100.0), sale("S1", 30.0, 100.0),
            sale("S1", 33.0, 200.0)]  # fmt: skip
    return {
        "tank_reading": [reading("S1", 15.75, 10_000.0), reading("S1", 39.75, 9_500.0)],
        "sale": sold[:3] if missing_sale else sold,
    }


def test_a_loss_found_through_the_warehouse_then_explained_by_a_late_sale(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    day = _day(missing_sale=True)
    load(con, tmp_path, facility=[station("S1")], **day)
    first = _run(con, tmp_path)
    assert first.raised == 1
    [(anomaly_id, subject, severity, evidence, summary)] = con.execute(
        "SELECT anomaly_id, subject, severity, evidence::VARCHAR, summary FROM anomaly"
    ).fetchall()
    assert anomaly_id == anomalies.anomaly_id("inventory_imbalance", "S1", "T1",
                                              T0 + timedelta(hours=16))  # fmt: skip
    facts = json.loads(evidence)
    assert (subject, severity) == ("T1", "high")  # 200 L = 5 tolerances
    assert facts["variance_20_l"] == pytest.approx(-200.0)
    assert facts["book_20_l"] == pytest.approx(9_700.0)
    assert facts["day"] == "2026-11-21" and facts["sales"] == 3
    assert facts["opening_at"] == "2026-11-20T15:45:00.000Z"
    assert "200 L at 20 °C less than the book" in summary
    # Same data, later clock: nothing changes.
    again = _run(con, tmp_path, NOW + timedelta(hours=1))
    assert (again.raised, again.updated, again.resolved) == (0, 0, 0)
    # The 200 L sale arrives a day late: the day balances, the finding is resolved.
    load(con, tmp_path, sale=_day(missing_sale=False)["sale"][3:])
    late = _run(con, tmp_path, NOW + timedelta(days=1))
    assert (late.raised, late.resolved) == (0, 1)
    assert con.execute("SELECT state FROM anomaly").fetchall() == [("resolved",)]


def test_a_late_reading_makes_a_day_reconcilable_and_the_finding_appears(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    day = _day(missing_sale=True)
    load(con, tmp_path, facility=[station("S1")], tank_reading=day["tank_reading"][:1],
         sale=day["sale"])  # fmt: skip
    assert _run(con, tmp_path).raised == 0  # no closing reading: inconclusive, silent
    load(con, tmp_path, tank_reading=day["tank_reading"][1:])
    assert _run(con, tmp_path, NOW + timedelta(hours=1)).raised == 1


def test_a_clean_simulated_province_has_no_imbalance(tmp_path: Path) -> None:
    records = generate_province(seed=5, stations=3, days=4)
    con = connect(tmp_path / "w.duckdb")
    load(con, tmp_path, **{t: records[t] for t in STORED})
    now = T0 + timedelta(days=4)
    assert _run(con, tmp_path, now).by_rule == {"inventory_imbalance": 0}
    assert con.execute("SELECT rule, subject, summary FROM anomaly").fetchall() == []
    # …and not for want of data: every tank-day with gauge readings at both ends passed.
    scope = Scope(con.sql("SELECT station_id, TIMESTAMPTZ '1970-01-01 00:00Z' AS since "
                          "FROM station").pl(), now)  # fmt: skip
    days = daily(RULE.load(Reader(con, scope, RULE.lookback)), Settings())
    checked = days.filter(pl.col("result") != "inconclusive")
    assert checked.height >= 3 * 9 and (checked["result"] == "pass").all()
