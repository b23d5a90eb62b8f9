"""``fueltrace trace`` and ``fueltrace recall`` in-process, over a small scenario warehouse.

Batch B goes to S1, S2, S3 (10 000 L each, at 20 °C) into tanks holding 10 000, 5 000 and
0 L; each station then sells 2 000 and 1 000 L. So, from B: S1 sold 1 500 L and holds
8 500, S2 sold 2 000 and holds 8 000, S3 sold 3 000 and holds 7 000.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fueltrace.analyses import run_analyses
from fueltrace.cli import main
from tests.processors.scenario import (
    T0,
    delivery,
    dispatch,
    load,
    reading,
    sale,
    settings,
    station,
)
from warehouse.connection import connect
from warehouse.reports import SALE_COLUMNS, TANK_COLUMNS

STATIONS = ("S1", "S2", "S3")
OPENING = {"S1": 10_000.0, "S2": 5_000.0, "S3": 0.0}
SOLD_FROM_B = {"S1": 1_500.0, "S2": 2_000.0, "S3": 3_000.0}
IN_TANK = {"S1": 8_500.0, "S2": 8_000.0, "S3": 7_000.0}


@dataclass(frozen=True)
class Warehouse:
    db: Path
    first_sales: dict[str, str]  # station -> txn_id of its 2 000 L sale (at 5 h)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    tmp = tmp_path_factory.mktemp("cli_trace")
    db = tmp / "w.duckdb"
    con = connect(db)
    load(con, db, facility=[station(s) for s in STATIONS],
         dispatch=[dispatch(f"P{s}", "B", s, 10_000, 1) for s in STATIONS])  # fmt: skip
    first_sales = {}
    for s, stock in OPENING.items():
        first = sale(s, 5, 2_000)
        first_sales[s] = first["txn_id"]
        load(con, db,
             tank_reading=[reading(s, 0, stock), reading(s, 2, stock)],
             delivery=[delivery(f"D-{s}", s, 10_000, 3, 4, f"P{s}")],
             sale=[first, sale(s, 6, 1_000)])  # fmt: skip
    run_analyses(con, settings(tmp), T0 + timedelta(days=3))
    con.close()  # the CLI opens the file read-only
    return Warehouse(db, first_sales)


@pytest.fixture
def db(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("FUELTRACE_DB", str(warehouse.db))
    monkeypatch.setenv("FUELTRACE_STATE_DIR", str(tmp_path))
    return warehouse.db


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


def test_trace_sale_json(db: Path, warehouse: Warehouse,
                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    txn = warehouse.first_sales["S1"]
    result = run_json(capsys, "trace", "sale", "S1", txn, "--json")
    assert result["txn_id"] == txn and result["station_id"] == "S1"
    assert result["tank_id"] == "T1"
    assert result["volume_20_l"] == pytest.approx(2_000)
    # 20 000 L in the tank after the delivery, half of it B
    batches = {b["batch_id"]: b for b in result["batches"]}
    assert set(batches) == {"B", "OPENING:S1:T1"}
    assert batches["B"]["share"] == pytest.approx(0.5)
    assert batches["B"]["litres_20"] == pytest.approx(1_000)
    assert batches["B"]["depot_id"] == "DEPOT-1" and batches["B"]["dispatch_id"] == "PS1"
    assert batches["OPENING:S1:T1"]["litres_20"] == pytest.approx(1_000)
    assert batches["OPENING:S1:T1"]["depot_id"] is None


def test_trace_sale_from_a_tank_that_was_empty(
    db: Path, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_json(capsys, "trace", "sale", "S3", warehouse.first_sales["S3"], "--json")
    assert [(b["batch_id"], b["share"]) for b in result["batches"]] == [("B", 1.0)]
    assert result["batches"][0]["litres_20"] == pytest.approx(2_000)


def test_trace_sale_text(db: Path, warehouse: Warehouse,
                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    txn = warehouse.first_sales["S2"]
    code, out, err = run(capsys, "trace", "sale", "S2", txn)
    assert code == 0, err
    assert f"Sale {txn} at S2" in out
    assert "DEPOT-1" in out and "OPENING:S2:T1" in out
    assert "66.7%" in out and "33.3%" in out  # 10 000 L of B in 15 000


def test_trace_batch_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "trace", "batch", "B", "--json")
    totals = result["totals"]
    assert totals["dispatched_l"] == pytest.approx(30_000, abs=0.1)
    assert totals["in_transit_l"] == 0
    assert totals["transit_loss_l"] == pytest.approx(0, abs=0.1)
    assert totals["received_l"] == pytest.approx(30_000, abs=0.1)
    assert totals["sold_l"] == pytest.approx(sum(SOLD_FROM_B.values()), abs=0.1)
    assert totals["in_tanks_l"] == pytest.approx(sum(IN_TANK.values()), abs=0.1)
    assert totals["losses_l"] == pytest.approx(0, abs=0.1)
    assert totals["first_sale_at"] == "2026-11-20T05:00:00.000Z"
    assert totals["last_sale_at"] == "2026-11-20T06:00:00.000Z"
    tanks = {t["station_id"]: t for t in result["tanks"]}
    assert set(tanks) == set(STATIONS)
    for s in STATIONS:
        assert tanks[s]["sold_l"] == pytest.approx(SOLD_FROM_B[s], abs=0.1)
        assert tanks[s]["in_tank_l"] == pytest.approx(IN_TANK[s], abs=0.1)
        assert tanks[s]["sales"] == 2
    assert {(d["dispatch_id"], d["status"]) for d in result["dispatches"]} == {
        ("PS1", "matched"), ("PS2", "matched"), ("PS3", "matched")}


def test_trace_batch_text(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "trace", "batch", "B")
    assert code == 0, err
    assert out.startswith("Batch B")
    for s in STATIONS:
        assert s in out
    assert "dispatched 30,000.0" in out and "received 30,000.0" in out
    assert "sold 6,500.0" in out and "still in tanks 23,500.0" in out
    assert "losses 0.0" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.strip().startswith(STATIONS)}  # fmt: skip
    # station, city, tank, received, sold, in tank, losses, sales
    assert rows["S1"][2:] == ["T1", "10,000.0", "1,500.0", "8,500.0", "0.0", "2"]
    assert rows["S3"][2:] == ["T1", "10,000.0", "3,000.0", "7,000.0", "0.0", "2"]
    assert "!" not in out  # every dispatch matched


def test_trace_delivery_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "trace", "delivery", "D-S2", "--json")
    assert result["delivery_id"] == "D-S2"
    assert (result["station_id"], result["tank_id"]) == ("S2", "T1")
    assert result["batch_id"] == "B" and result["dispatch_id"] == "PS2"
    assert result["status"] == "matched" and result["mismatches"] == []
    assert result["volume_20_l"] == pytest.approx(10_000)
    assert result["difference_20_l"] == pytest.approx(0, abs=0.1)


def test_trace_delivery_text(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "trace", "delivery", "D-S1")
    assert code == 0, err
    assert "Delivery D-S1 into S1/T1" in out and "batch B via dispatch PS1: matched" in out


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_recall_csv_one_row_per_tank(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "recall", "B")
    assert code == 0, err
    header = next(csv.reader(io.StringIO(out)))
    assert header == ["batch_id", *TANK_COLUMNS]
    rows = _csv(out)
    assert [(r["batch_id"], r["station_id"], r["tank_id"]) for r in rows] == [
        ("B", s, "T1") for s in STATIONS]
    for r in rows:
        s = r["station_id"]
        assert float(r["received_l"]) == pytest.approx(10_000, abs=0.1)
        assert float(r["sold_l"]) == pytest.approx(SOLD_FROM_B[s], abs=0.1)
        assert float(r["in_tank_l"]) == pytest.approx(IN_TANK[s], abs=0.1)
        assert float(r["losses_l"]) == pytest.approx(0, abs=0.1)
        assert r["sales"] == "2" and r["city"] == "Shenyang"
        assert r["station_name"] == f"Station {s}"


def test_recall_csv_one_row_per_sale(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "recall", "B", "--sales")
    assert code == 0, err
    assert next(csv.reader(io.StringIO(out))) == ["batch_id", *SALE_COLUMNS]
    rows = _csv(out)
    assert len(rows) == 6
    assert len({(r["station_id"], r["txn_id"]) for r in rows}) == 6
    by_station: dict[str, float] = {}
    for r in rows:
        assert r["batch_id"] == "B"
        assert float(r["litres_from_batch_20"]) == pytest.approx(
            float(r["share"]) * float(r["volume_20_l"]), abs=1e-3)
        by_station[r["station_id"]] = (by_station.get(r["station_id"], 0.0)
                                       + float(r["litres_from_batch_20"]))  # fmt: skip
    assert by_station == pytest.approx(SOLD_FROM_B, abs=0.1)


def test_recall_json_to_a_file(db: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    target = tmp_path / "recall.json"
    code, out, err = run(capsys, "recall", "B", "--format", "json", "-o", str(target))
    assert code == 0, err
    assert out == ""
    assert str(target) in err
    report = json.loads(target.read_text(encoding="utf-8"))
    assert report["batch_id"] == "B"
    assert [t["station_id"] for t in report["tanks_to_seal"]] == list(STATIONS)
    assert sum(t["in_tank_l"] for t in report["tanks_to_seal"]) == pytest.approx(23_500, abs=0.1)
    assert len(report["sales"]) == 6
    assert report["totals"]["sold_l"] == pytest.approx(6_500, abs=0.1)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (("trace", "sale", "S1", "NO-SUCH-TXN"), "NO-SUCH-TXN"),
        (("trace", "sale", "S1", "NO-SUCH-TXN", "--json"), "NO-SUCH-TXN"),
        (("trace", "batch", "NO-SUCH-BATCH"), "NO-SUCH-BATCH"),
        (("trace", "batch", "NO-SUCH-BATCH", "--json"), "NO-SUCH-BATCH"),
        (("trace", "delivery", "NO-SUCH-DELIVERY"), "NO-SUCH-DELIVERY"),
        (("trace", "delivery", "NO-SUCH-DELIVERY", "--json"), "NO-SUCH-DELIVERY"),
        (("recall", "NO-SUCH-BATCH"), "NO-SUCH-BATCH"),
    ],
)
def test_unknown_ids_exit_2_naming_the_id(db: Path, capsys: pytest.CaptureFixture[str],
                                          argv: tuple[str, ...], named: str) -> None:  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert named in err and err.startswith(f"fueltrace {argv[0]}: error:")


def test_a_sale_known_at_another_station_is_unknown(
    db: Path, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    txn = warehouse.first_sales["S1"]
    code, out, err = run(capsys, "trace", "sale", "S2", txn, "--json")
    assert code == 2 and out == ""
    assert txn in err and "S2" in err
