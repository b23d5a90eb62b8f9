"""Declared delivery vs the tank gauge's rise: hand-computed scenarios, litres at 20 °C."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from fueltrace.settings import Settings
from processors.gauge_rise import GAUGE_SCHEMA, gauge_rise

START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)  # unloading 09:00–10:00
END = START + timedelta(hours=1)
MIN = timedelta(minutes=1)

DELIVERY_SCHEMA: dict[str, Any] = {
    "delivery_id": pl.String, "station_id": pl.String, "tank_id": pl.String,
    "started_at": pl.Datetime("ms", "UTC"), "ended_at": pl.Datetime("ms", "UTC"),
    "volume_20_l": pl.Float64,
}  # fmt: skip
READING_SCHEMA: dict[str, Any] = {
    "station_id": pl.String, "tank_id": pl.String, "read_at": pl.Datetime("us", "UTC"),
    "volume_20_l": pl.Float64,
}  # fmt: skip
SALE_SCHEMA: dict[str, Any] = {
    "station_id": pl.String, "tank_id": pl.String, "at": pl.Datetime("us", "UTC"),
    "volume_20_l": pl.Float64,
}  # fmt: skip


def settings() -> Settings:
    """The documented defaults, pinned: 1 % of declared but ≥ 50 L, readings within 2 h."""
    return Settings(gauge_rise_tolerance_pct=1.0, gauge_rise_min_l=50.0, gauge_window_min=120.0)


def delivery(delivery_id: str = "DL1", volume_20_l: float | None = 10_000.0, *,
             tank: str = "T1", station: str = "S1", start: datetime = START,
             end: datetime = END) -> dict[str, Any]:  # fmt: skip
    return {"delivery_id": delivery_id, "station_id": station, "tank_id": tank,
            "started_at": start, "ended_at": end, "volume_20_l": volume_20_l}  # fmt: skip


def reading(at: datetime, volume_20_l: float, *, tank: str = "T1",
            station: str = "S1") -> dict[str, Any]:  # fmt: skip
    return {"station_id": station, "tank_id": tank, "read_at": at, "volume_20_l": volume_20_l}


def sale(at: datetime, volume_20_l: float, *, tank: str = "T1",
         station: str = "S1") -> dict[str, Any]:  # fmt: skip
    return {"station_id": station, "tank_id": tank, "at": at, "volume_20_l": volume_20_l}


def run(deliveries: list[dict[str, Any]], readings: list[dict[str, Any]],
        sales: list[dict[str, Any]] | None = None) -> pl.DataFrame:  # fmt: skip
    return gauge_rise(
        pl.DataFrame(deliveries, schema=DELIVERY_SCHEMA),
        pl.DataFrame(readings, schema=READING_SCHEMA),
        pl.DataFrame(sales or [], schema=SALE_SCHEMA),
        settings(),
    )


def one(deliveries: list[dict[str, Any]], readings: list[dict[str, Any]],
        sales: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    result = run(deliveries, readings, sales)
    assert result.height == 1
    return result.row(0, named=True)


def test_rise_without_sales() -> None:
    row = one(
        [delivery()],
        [reading(START - 60 * MIN, 4_000.0), reading(START - 5 * MIN, 5_000.0),
         reading(START + 30 * MIN, 9_000.0),  # mid-unloading: not a bracket
         reading(END + 5 * MIN, 15_000.0), reading(END + 60 * MIN, 14_000.0)],
    )  # fmt: skip
    assert row["gauge_before_at"] == START - 5 * MIN
    assert row["gauge_after_at"] == END + 5 * MIN
    assert row["gauge_rise_20_l"] == pytest.approx(10_000.0, abs=0.1)
    assert row["gauge_difference_20_l"] == pytest.approx(0.0, abs=0.1)
    assert row["gauge_status"] == "ok"


def test_rise_with_sales_during_unloading() -> None:
    before_at, after_at = START - 2 * MIN, END + 3 * MIN
    row = one(
        [delivery()],
        [reading(before_at, 10_000.0), reading(after_at, 19_700.0)],
        [sale(before_at - MIN, 70.0),  # before the first bracket
         sale(before_at, 50.0),  # at the first bracket: already in its reading
         sale(START + 10 * MIN, 100.0), sale(START + 40 * MIN, 150.0),
         sale(after_at, 50.0),  # at the second bracket: counted (at ≤ after)
         sale(after_at + MIN, 80.0),  # after it
         sale(START + 20 * MIN, 999.0, tank="T2")],  # another tank
    )  # fmt: skip
    # 19 700 − 10 000 + (100 + 150 + 50) = 10 000
    assert row["gauge_rise_20_l"] == pytest.approx(10_000.0, abs=0.1)
    assert row["gauge_difference_20_l"] == pytest.approx(0.0, abs=0.1)
    assert row["gauge_status"] == "ok"


def test_sales_at_one_instant_are_summed() -> None:
    row = one(
        [delivery()],
        [reading(START, 10_000.0), reading(END, 19_700.0)],
        [sale(START + 10 * MIN, 120.0), sale(START + 10 * MIN, 180.0)],
    )
    assert row["gauge_rise_20_l"] == pytest.approx(10_000.0, abs=0.1)


@pytest.mark.parametrize(
    ("declared", "after", "difference", "status"),
    [
        (10_000.0, 14_850.0, 150.0, "mismatch"),  # 1 % of 10 000 = 100 L < 150
        (10_000.0, 14_920.0, 80.0, "ok"),
        (10_000.0, 15_120.0, -120.0, "mismatch"),  # the gauge saw more than declared
        (2_000.0, 6_960.0, 40.0, "ok"),  # 1 % = 20 L, but never less than 50 L
        (2_000.0, 6_940.0, 60.0, "mismatch"),
    ],
)
def test_tolerance(declared: float, after: float, difference: float, status: str) -> None:
    row = one([delivery(volume_20_l=declared)],
              [reading(START - MIN, 5_000.0), reading(END + MIN, after)])  # fmt: skip
    assert row["gauge_rise_20_l"] == pytest.approx(after - 5_000.0, abs=0.1)
    assert row["gauge_difference_20_l"] == pytest.approx(difference, abs=0.1)
    assert row["gauge_status"] == status


@pytest.mark.parametrize(
    ("readings", "before_present", "after_present"),
    [
        ([], False, False),
        ([reading(START - 121 * MIN, 5_000.0), reading(END + MIN, 15_000.0)], False, True),
        ([reading(START - MIN, 5_000.0), reading(END + 121 * MIN, 15_000.0)], True, False),
        ([reading(START + MIN, 5_000.0), reading(END - MIN, 15_000.0)], False, False),
        ([reading(START - MIN, 5_000.0, tank="T2"),
          reading(END + MIN, 15_000.0, tank="T2")], False, False),
        ([reading(START - MIN, 5_000.0, station="S2"),
          reading(END + MIN, 15_000.0, station="S2")], False, False),
    ],
    ids=["none", "before-too-early", "after-too-late", "only-inside-unloading",
         "other-tank", "other-station"],
)  # fmt: skip
def test_no_readings(readings: list[dict[str, Any]], before_present: bool,
                     after_present: bool) -> None:  # fmt: skip
    row = one([delivery()], readings, [sale(START + MIN, 10.0)])
    assert row["gauge_status"] == "no_readings"
    assert row["gauge_rise_20_l"] is None and row["gauge_difference_20_l"] is None
    assert (row["gauge_before_at"] is not None) is before_present
    assert (row["gauge_after_at"] is not None) is after_present


def test_readings_exactly_at_the_window_edges_count() -> None:
    row = one(
        [delivery()], [reading(START - 120 * MIN, 5_000.0), reading(END + 120 * MIN, 15_000.0)]
    )
    assert row["gauge_before_at"] == START - 120 * MIN
    assert row["gauge_after_at"] == END + 120 * MIN
    assert row["gauge_rise_20_l"] == pytest.approx(10_000.0, abs=0.1)


def test_readings_exactly_at_the_bracket_instants() -> None:
    row = one(
        [delivery()],
        [reading(START - MIN, 4_900.0), reading(START, 5_000.0),
         reading(START + MIN, 5_200.0), reading(END - MIN, 14_800.0),
         reading(END, 15_000.0), reading(END + MIN, 14_990.0)],
        [sale(START, 30.0), sale(END, 40.0)],  # first excluded (at = before), second counted
    )  # fmt: skip
    assert row["gauge_before_at"] == START
    assert row["gauge_after_at"] == END
    assert row["gauge_rise_20_l"] == pytest.approx(10_040.0, abs=0.1)
    assert row["gauge_difference_20_l"] == pytest.approx(-40.0, abs=0.1)
    assert row["gauge_status"] == "ok"


def test_two_tanks_at_one_station_kept_apart() -> None:
    result = run(
        [delivery("DL1", 10_000.0, tank="T1"), delivery("DL2", 3_000.0, tank="T2")],
        [reading(START - 3 * MIN, 5_000.0, tank="T1"),
         reading(START - 1 * MIN, 2_000.0, tank="T2"),
         reading(END + 1 * MIN, 14_900.0, tank="T1"),
         reading(END + 2 * MIN, 4_500.0, tank="T2")],
        [sale(START + 5 * MIN, 100.0, tank="T1"), sale(START + 6 * MIN, 400.0, tank="T2"),
         sale(START + 7 * MIN, 100.0, tank="T2")],
    )  # fmt: skip
    rows = {r["delivery_id"]: r for r in result.iter_rows(named=True)}
    # T1: 14 900 − 5 000 + 100 = 10 000; T2: 4 500 − 2 000 + 500 = 3 000
    assert rows["DL1"]["gauge_rise_20_l"] == pytest.approx(10_000.0, abs=0.1)
    assert rows["DL2"]["gauge_rise_20_l"] == pytest.approx(3_000.0, abs=0.1)
    assert rows["DL1"]["gauge_before_at"] == START - 3 * MIN
    assert rows["DL2"]["gauge_after_at"] == END + 2 * MIN
    assert [rows[k]["gauge_status"] for k in ("DL1", "DL2")] == ["ok", "ok"]


def test_same_tank_id_at_two_stations_kept_apart() -> None:
    result = run(
        [delivery("DL1", station="S1"), delivery("DL2", station="S2")],
        [reading(START - MIN, 5_000.0, station="S1"), reading(END + MIN, 15_000.0, station="S1"),
         reading(START - MIN, 1_000.0, station="S2"), reading(END + MIN, 9_000.0, station="S2")],
        [sale(START + MIN, 200.0, station="S2")],
    )  # fmt: skip
    assert result["gauge_rise_20_l"].to_list() == pytest.approx([10_000.0, 8_200.0], abs=0.1)
    assert result["gauge_status"].to_list() == ["ok", "mismatch"]  # S2: 1 800 L short


def test_overlapping_windows_in_one_tank_computed_independently() -> None:
    second_start, second_end = END + 30 * MIN, END + 90 * MIN  # 10:30–11:30
    result = run(
        [delivery("DL2", 5_000.0, start=second_start, end=second_end),
         delivery("DL1", 10_000.0)],
        [reading(START - 5 * MIN, 5_000.0), reading(END + 15 * MIN, 15_000.0),
         reading(second_end + 15 * MIN, 19_950.0)],
        [sale(START + 10 * MIN, 60.0), sale(END + 20 * MIN, 10.0),
         sale(second_start + 10 * MIN, 40.0)],
    )  # fmt: skip
    assert result["delivery_id"].to_list() == ["DL2", "DL1"]  # input order kept
    rows = {r["delivery_id"]: r for r in result.iter_rows(named=True)}
    # DL1: 09:00–10:00 bracketed 08:55 / 10:15: 15 000 − 5 000 + 60 = 10 060
    assert rows["DL1"]["gauge_rise_20_l"] == pytest.approx(10_060.0, abs=0.1)
    assert rows["DL1"]["gauge_difference_20_l"] == pytest.approx(-60.0, abs=0.1)
    assert rows["DL1"]["gauge_status"] == "ok"  # |−60| L ≤ max(1 % × 10 000, 50) = 100 L
    # DL2: 10:30–11:30 bracketed 10:15 / 11:45: 19 950 − 15 000 + 10 + 40 = 5 000
    assert rows["DL2"]["gauge_before_at"] == END + 15 * MIN
    assert rows["DL2"]["gauge_rise_20_l"] == pytest.approx(5_000.0, abs=0.1)
    assert rows["DL2"]["gauge_status"] == "ok"


def test_output_columns_and_types() -> None:
    result = run([delivery()], [reading(START, 5_000.0), reading(END, 15_000.0)])
    assert result.schema == pl.Schema(GAUGE_SCHEMA)
    assert result.columns == [
        "delivery_id",
        "gauge_before_at",
        "gauge_after_at",
        "gauge_rise_20_l",
        "gauge_difference_20_l",
        "gauge_status",
    ]


def test_empty_inputs() -> None:
    result = run([], [])
    assert result.is_empty() and result.schema == pl.Schema(GAUGE_SCHEMA)


def brute_force(deliveries: list[dict[str, Any]], readings: list[dict[str, Any]],
                sales: list[dict[str, Any]]) -> list[float | None]:  # fmt: skip
    """The definition, row by row, for cross-checking the vectorised lookups."""
    window, out = timedelta(minutes=120), []
    for d in deliveries:
        key = (d["station_id"], d["tank_id"])
        tank = [r for r in readings if (r["station_id"], r["tank_id"]) == key]
        before = [r for r in tank if d["started_at"] - window <= r["read_at"] <= d["started_at"]]
        after = [r for r in tank if d["ended_at"] <= r["read_at"] <= d["ended_at"] + window]
        if not before or not after:
            out.append(None)
            continue
        b = max(before, key=lambda r: r["read_at"])
        a = min(after, key=lambda r: r["read_at"])
        sold = sum(s["volume_20_l"] for s in sales
                   if (s["station_id"], s["tank_id"]) == key
                   and b["read_at"] < s["at"] <= a["read_at"])  # fmt: skip
        out.append(a["volume_20_l"] - b["volume_20_l"] + sold)
    return out


def test_matches_the_definition_on_random_overlapping_deliveries() -> None:
    rng = random.Random(20240301)
    tanks = [("S1", "T1"), ("S1", "T2"), ("S2", "T1")]
    readings = [reading(START + rng.randrange(-300, 400) * MIN, rng.uniform(0, 30_000),
                        station=s, tank=t) for s, t in tanks for _ in range(7)]  # fmt: skip
    readings = list({(r["station_id"], r["tank_id"], r["read_at"]): r for r in readings}.values())
    sales = [sale(START + rng.randrange(-300, 400) * MIN, rng.uniform(1, 80), station=s, tank=t)
             for s, t in tanks for _ in range(200)]  # fmt: skip
    deliveries = []
    for i in range(30):
        s, t = rng.choice(tanks)
        begin = START + rng.randrange(-200, 300) * MIN
        deliveries.append(delivery(f"DL{i}", station=s, tank=t, start=begin,
                                   end=begin + rng.randrange(0, 90) * MIN))  # fmt: skip
    result = run(deliveries, readings, sales)
    expected = brute_force(deliveries, readings, sales)
    assert result["delivery_id"].to_list() == [d["delivery_id"] for d in deliveries]
    for got, want in zip(result["gauge_rise_20_l"].to_list(), expected, strict=True):
        assert (got is None) is (want is None)
        if want is not None:
            assert got == pytest.approx(want, abs=1e-6)


def test_a_sale_running_at_a_reading_counts_for_the_part_the_gauge_saw_leave() -> None:
    """The case a simulated province showed (1.05 % off on a clean delivery): two sales
    still running at the closing reading. Each draws evenly; at the reading, 3/4 of the
    first (4 min of 5 min × 200 L = 160 L) and 1/2 of the second (1 of 2 min × 60 L = 30 L)
    had left the tank, and an opening-side sale 1/4 done at the opening reading had drawn
    25 L of its 100 L before it. The gauge saw 75 + 160 + 30 = 265 L of sales go between
    its two readings."""
    after_at = END + 5 * MIN
    sales = pl.DataFrame([
        {"station_id": "S1", "tank_id": "T1", "nozzle_id": "N1", "started_at": START - 6 * MIN,
         "at": START - 2 * MIN, "volume_20_l": 100.0},   # 1 of its 4 min before 09:00 - 5 min
        {"station_id": "S1", "tank_id": "T1", "nozzle_id": "N1", "started_at": after_at - 4 * MIN,
         "at": after_at + MIN, "volume_20_l": 200.0},
        {"station_id": "S1", "tank_id": "T1", "nozzle_id": "N2", "started_at": after_at - MIN,
         "at": after_at + MIN, "volume_20_l": 60.0},
    ], schema={**SALE_SCHEMA, "nozzle_id": pl.String, "started_at": pl.Datetime("us", "UTC")})
    declared = 10_000.0
    before_l, after_l = 5_000.0, 5_000.0 + declared - 265.0  # the tank got all 10 000 L
    result = gauge_rise(
        pl.DataFrame([delivery(volume_20_l=declared)], schema=DELIVERY_SCHEMA),
        pl.DataFrame([reading(START - 5 * MIN, before_l), reading(after_at, after_l)],
                     schema=READING_SCHEMA),
        sales, settings(),
    ).row(0, named=True)  # fmt: skip
    assert result["gauge_rise_20_l"] == pytest.approx(declared, abs=0.01)
    assert result["gauge_status"] == "ok"
    # Counted whole at their ends (no start times): 100 L between the readings instead of
    # 265, so the gauge seems to have seen 165 L less than declared.
    whole = one([delivery(volume_20_l=declared)],
                [reading(START - 5 * MIN, before_l), reading(after_at, after_l)],
                [sale(START - 2 * MIN, 100.0), sale(after_at + MIN, 200.0),
                 sale(after_at + MIN, 60.0)])  # fmt: skip
    assert whole["gauge_difference_20_l"] == pytest.approx(165.0)
