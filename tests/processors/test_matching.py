"""Delivery vs dispatch checks: hand-computed scenarios, volumes in litres at 20 °C."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from fueltrace.settings import Settings
from processors.matching import CHECK_SCHEMA, OPEN_DISPATCH_SCHEMA, check_deliveries

T0 = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=6)

DISPATCH_SCHEMA: dict[str, Any] = {
    "dispatch_id": pl.String, "depot_id": pl.String, "batch_id": pl.String,
    "product": pl.String, "station_id": pl.String, "vehicle_plate": pl.String,
    "seal_ids": pl.List(pl.String), "volume_l": pl.Float64, "temperature_c": pl.Float64,
    "density_kg_m3": pl.Float64, "dispatched_at": pl.Datetime("ms", "UTC"),
    "volume_20_l": pl.Float64,
}  # fmt: skip
DELIVERY_SCHEMA: dict[str, Any] = {
    "delivery_id": pl.String, "station_id": pl.String, "tank_id": pl.String,
    "dispatch_id": pl.String, "product": pl.String, "vehicle_plate": pl.String,
    "seal_ids": pl.List(pl.String), "seals_intact": pl.Boolean, "volume_l": pl.Float64,
    "temperature_c": pl.Float64, "density_kg_m3": pl.Float64,
    "started_at": pl.Datetime("ms", "UTC"), "ended_at": pl.Datetime("ms", "UTC"),
    "volume_20_l": pl.Float64,
}  # fmt: skip


def settings() -> Settings:
    """The documented defaults, pinned so the environment cannot change the scenarios."""
    return Settings(
        transit_loss_tolerance_pct=0.5,
        transit_gain_tolerance_pct=0.3,
        density_tolerance_kg_m3=2.0,
        delivery_overdue_h=24.0,
    )


def dispatch(dispatch_id: str = "D1", **overrides: Any) -> dict[str, Any]:
    """10 000 L of gasoline 92 at 20 °C (so volume_20_l = volume_l), 740 kg/m³, to S1."""
    row = {
        "dispatch_id": dispatch_id, "depot_id": "DEP1", "batch_id": "B1",
        "product": "gasoline_92", "station_id": "S1", "vehicle_plate": "辽A12345",
        "seal_ids": ["SL-1", "SL-2"], "volume_l": 10_000.0, "temperature_c": 20.0,
        "density_kg_m3": 740.0, "dispatched_at": T0, "volume_20_l": 10_000.0,
    }  # fmt: skip
    row.update(overrides)
    return row


def delivery(delivery_id: str = "DL1", **overrides: Any) -> dict[str, Any]:
    """The honest receipt of :func:`dispatch`: 9 980 L (−0.2 %), seals in another order."""
    row = {
        "delivery_id": delivery_id, "station_id": "S1", "tank_id": "T1", "dispatch_id": "D1",
        "product": "gasoline_92", "vehicle_plate": "辽A12345", "seal_ids": ["SL-2", "SL-1"],
        "seals_intact": True, "volume_l": 9_980.0, "temperature_c": 20.0,
        "density_kg_m3": 740.5, "started_at": T0 + timedelta(hours=3),
        "ended_at": T0 + timedelta(hours=4), "volume_20_l": 9_980.0,
    }  # fmt: skip
    if "volume_20_l" in overrides and "volume_l" not in overrides:
        overrides["volume_l"] = overrides["volume_20_l"]
    row.update(overrides)
    return row


def dispatches(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=DISPATCH_SCHEMA)


def deliveries(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=DELIVERY_SCHEMA)


def check_one(**overrides: Any) -> dict[str, Any]:
    checks, _ = check_deliveries(dispatches(dispatch()), deliveries(delivery(**overrides)),
                                 settings(), NOW)  # fmt: skip
    assert checks.height == 1
    return checks.row(0, named=True)


def test_clean_match() -> None:
    row = check_one()
    assert row["status"] == "matched"
    assert row["mismatches"] == []
    assert row["delivery_id"] == "DL1" and row["dispatch_id"] == "D1" and row["station_id"] == "S1"
    assert row["dispatched_20_l"] == pytest.approx(10_000.0, abs=0.1)
    assert row["received_20_l"] == pytest.approx(9_980.0, abs=0.1)
    assert row["difference_20_l"] == pytest.approx(-20.0, abs=0.1)
    assert row["difference_pct"] == pytest.approx(-0.2, abs=1e-6)
    assert row["density_dispatched"] == pytest.approx(740.0)
    assert row["density_received"] == pytest.approx(740.5)


def test_output_columns_and_types() -> None:
    checks, open_ends = check_deliveries(dispatches(dispatch()), deliveries(delivery()),
                                         settings(), NOW)  # fmt: skip
    assert checks.schema == pl.Schema(CHECK_SCHEMA)
    assert list(checks.columns) == [
        "delivery_id", "dispatch_id", "station_id", "status", "mismatches", "dispatched_20_l",
        "received_20_l", "difference_20_l", "difference_pct", "density_dispatched",
        "density_received",
    ]  # fmt: skip
    assert open_ends.schema == pl.Schema(OPEN_DISPATCH_SCHEMA)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"station_id": "S2"}, ["station"]),
        ({"product": "gasoline_95"}, ["product"]),
        ({"vehicle_plate": "辽B54321"}, ["vehicle"]),
        ({"seal_ids": ["SL-1", "SL-3"]}, ["seals"]),
        ({"seal_ids": ["SL-1"]}, ["seals"]),
        ({"seal_ids": ["SL-1", "SL-2", "SL-9"]}, ["seals"]),
        ({"seals_intact": False}, ["seals_broken"]),
        ({"volume_20_l": 9_940.0}, ["volume"]),  # −60 L = −0.6 % < −0.5 %
        ({"volume_20_l": 10_040.0}, ["volume"]),  # +40 L = +0.4 % > +0.3 %
        ({"density_kg_m3": 743.0}, ["density"]),  # +3 kg/m³ > 2
        ({"density_kg_m3": 737.0}, ["density"]),  # −3 kg/m³
    ],
    ids=["station", "product", "vehicle", "seal-swapped", "seal-missing", "seal-extra",
         "seals-broken", "volume-short", "volume-gain", "density-up", "density-down"],
)  # fmt: skip
def test_each_mismatch_alone(overrides: dict[str, Any], expected: list[str]) -> None:
    row = check_one(**overrides)
    assert row["status"] == "mismatch"
    assert row["mismatches"] == expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"vehicle_plate": "辽A·12345"},
        {"vehicle_plate": "辽a-123 45"},
        {"vehicle_plate": "辽Ａ１２３４５"},  # full-width letters and digits
        {"volume_20_l": 9_960.0},  # −0.4 %: within the 0.5 % loss allowance
        {"volume_20_l": 10_020.0},  # +0.2 %: within the 0.3 % gain allowance
        {"density_kg_m3": 741.5},  # 1.5 kg/m³: within 2
        {"seal_ids": ["SL-2", "SL-1", "SL-1"]},  # a set: repeats do not count
    ],
    ids=["plate-middle-dot", "plate-case-spaces-hyphen", "plate-full-width", "loss-within",
         "gain-within", "density-within", "seals-repeated"],
)  # fmt: skip
def test_within_tolerance_is_matched(overrides: dict[str, Any]) -> None:
    row = check_one(**overrides)
    assert row["mismatches"] == []
    assert row["status"] == "matched"


def test_volume_numbers_short_beyond_tolerance() -> None:
    row = check_one(volume_20_l=9_940.0)
    assert row["difference_20_l"] == pytest.approx(-60.0, abs=0.1)
    assert row["difference_pct"] == pytest.approx(-0.6, abs=1e-6)


def test_several_mismatches_in_fixed_order() -> None:
    row = check_one(density_kg_m3=745.0, seals_intact=False, station_id="S9",
                    volume_20_l=9_000.0, vehicle_plate="辽B1")  # fmt: skip
    assert row["mismatches"] == ["station", "vehicle", "seals_broken", "volume", "density"]
    assert row["difference_20_l"] == pytest.approx(-1_000.0, abs=0.1)


def test_missing_standard_volume_falls_back_and_is_flagged() -> None:
    row = check_one(volume_20_l=None, volume_l=10_000.0)
    assert row["received_20_l"] == pytest.approx(10_000.0, abs=0.1)
    assert row["difference_20_l"] == pytest.approx(0.0, abs=0.1)
    assert row["mismatches"] == ["volume"]


@pytest.mark.parametrize("claimed", [None, "", "  "])
def test_no_dispatch(claimed: str | None) -> None:
    row = check_one(dispatch_id=claimed)
    assert row["status"] == "no_dispatch"
    assert row["dispatch_id"] is None
    assert row["mismatches"] == []
    assert row["dispatched_20_l"] is None and row["difference_20_l"] is None
    assert row["received_20_l"] == pytest.approx(9_980.0, abs=0.1)


def test_no_dispatch_still_reports_broken_seals() -> None:
    row = check_one(dispatch_id=None, seals_intact=False)
    assert (row["status"], row["mismatches"]) == ("no_dispatch", ["seals_broken"])


def test_unknown_dispatch() -> None:
    row = check_one(dispatch_id="D404", station_id="S7")
    assert row["status"] == "unknown_dispatch"
    assert row["dispatch_id"] == "D404"
    assert row["mismatches"] == []
    assert row["dispatched_20_l"] is None and row["density_dispatched"] is None


def test_duplicate_claim_flags_all_but_the_earliest() -> None:
    later = delivery("DL1", started_at=T0 + timedelta(hours=5))
    earliest = delivery("DL2", started_at=T0 + timedelta(hours=3), station_id="S1")
    latest = delivery("DL3", started_at=T0 + timedelta(hours=9), volume_20_l=9_000.0)
    checks, open_ends = check_deliveries(
        dispatches(dispatch()), deliveries(later, earliest, latest), settings(), NOW
    )
    by_id = {r["delivery_id"]: r for r in checks.iter_rows(named=True)}
    assert checks["delivery_id"].to_list() == ["DL1", "DL2", "DL3"]  # input order kept
    assert (by_id["DL2"]["status"], by_id["DL2"]["mismatches"]) == ("matched", [])
    assert (by_id["DL1"]["status"], by_id["DL1"]["mismatches"]) == (
        "mismatch", ["duplicate_claim"])  # fmt: skip
    assert by_id["DL3"]["mismatches"] == ["volume", "duplicate_claim"]
    assert open_ends.is_empty()


def test_deliveries_against_their_own_dispatches() -> None:
    checks, _ = check_deliveries(
        dispatches(dispatch("D1"), dispatch("D2", station_id="S2", volume_20_l=20_000.0)),
        deliveries(delivery("DL1"), delivery("DL2", dispatch_id="D2", station_id="S2",
                                             volume_20_l=19_950.0)),
        settings(), NOW,
    )  # fmt: skip
    assert checks["status"].to_list() == ["matched", "matched"]
    assert checks["difference_20_l"].to_list() == pytest.approx([-20.0, -50.0], abs=0.1)
    assert checks["difference_pct"].to_list() == pytest.approx([-0.2, -0.25], abs=1e-6)


def test_open_dispatches_overdue_or_not() -> None:
    frame = dispatches(
        dispatch("D1"),  # claimed by DL1: not open
        dispatch("D2", dispatched_at=NOW - timedelta(hours=30), volume_20_l=8_000.0),
        dispatch("D3", dispatched_at=NOW - timedelta(hours=2), depot_id="DEP2",
                 station_id="S3", batch_id="B7"),
        dispatch("D4", dispatched_at=NOW - timedelta(hours=24)),  # exactly 24 h: not yet
    )  # fmt: skip
    _, open_ends = check_deliveries(frame, deliveries(delivery()), settings(), NOW)
    rows = {r["dispatch_id"]: r for r in open_ends.iter_rows(named=True)}
    assert set(rows) == {"D2", "D3", "D4"}
    assert rows["D2"]["overdue"] is True
    assert rows["D2"]["volume_20_l"] == pytest.approx(8_000.0, abs=0.1)
    assert rows["D3"]["overdue"] is False
    assert (rows["D3"]["depot_id"], rows["D3"]["station_id"], rows["D3"]["batch_id"]) == (
        "DEP2", "S3", "B7")  # fmt: skip
    assert rows["D3"]["dispatched_at"] == NOW - timedelta(hours=2)
    assert rows["D4"]["overdue"] is False


def test_dispatch_claimed_from_another_station_is_not_open() -> None:
    _, open_ends = check_deliveries(
        dispatches(dispatch()), deliveries(delivery(station_id="S2")), settings(), NOW
    )
    assert open_ends.is_empty()


def test_naive_now_is_utc() -> None:
    frame = dispatches(dispatch("D2", dispatched_at=NOW - timedelta(hours=25)))
    naive = NOW.replace(tzinfo=None)
    _, open_ends = check_deliveries(frame, deliveries(), settings(), naive)
    assert open_ends["overdue"].to_list() == [True]


def test_empty_inputs() -> None:
    checks, open_ends = check_deliveries(dispatches(), deliveries(), settings(), NOW)
    assert checks.is_empty() and checks.schema == pl.Schema(CHECK_SCHEMA)
    assert open_ends.is_empty() and open_ends.schema == pl.Schema(OPEN_DISPATCH_SCHEMA)
