"""Semantic validation (ingest/validate.py + ingest/records/*.py) on decoded records.

Records are built as the decoder delivers them: timestamps as epoch milliseconds,
dates as epoch days, plus ``src_partition``/``src_offset``/``src_index``.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from fueltrace.settings import Settings
from ingest.frames import SOURCE_COLUMNS, to_frame
from ingest.reasons import REASONS
from ingest.records import SPECS
from ingest.validate import rules_for, validate
from schemas import RECORD_TYPES

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
SETTINGS = Settings(
    max_future_s=300, max_flow_l_per_min=150.0, totalizer_tolerance_l=0.02, amount_tolerance_fen=1
)


def ms(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def days(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def shown(epoch_ms: int) -> str:
    """How a detail renders a timestamp (to the second)."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def tank(tank_id: str, capacity_l: float = 30000.0) -> dict[str, Any]:
    return {"tank_id": tank_id, "product": "gasoline_92", "capacity_l": capacity_l}


def nozzle(nozzle_id: str, tank_id: str = "T1") -> dict[str, Any]:
    return {"nozzle_id": nozzle_id, "dispenser_id": "D1", "tank_id": tank_id}


def licence(valid_from: date = date(2024, 1, 1), valid_until: date = date(2028, 12, 31)) -> dict:
    return {"kind": "retail_approval", "number": "LN-RA-001", "valid_from": days(valid_from),
            "valid_until": days(valid_until), "status": "valid"}  # fmt: skip


STATION = "LN-SY-0001"
BASES: dict[str, dict[str, Any]] = {
    "facility": {
        "facility_id": STATION, "kind": "station", "name": "Shenyang No.1", "city": "Shenyang",
        "operator": "Sinopec", "updated_at": ms(T0 - timedelta(days=30)),
        "tanks": [tank("T1"), tank("T2")],
        "nozzles": [{"nozzle_id": "N1", "dispenser_id": "D1", "tank_id": "T1"}],
        "licences": [licence()],
    },
    "dispatch": {
        "dispatch_id": "DP-1", "depot_id": "DEPOT-1", "batch_id": "B-1", "product": "diesel_0",
        "station_id": STATION, "vehicle_plate": "辽A12345", "seal_ids": ["S1", "S2"],
        "volume_l": 20000.0, "temperature_c": 12.0, "density_kg_m3": 835.0,
        "dispatched_at": ms(T0),
    },
    "delivery": {
        "delivery_id": "DL-1", "station_id": STATION, "tank_id": "T1", "dispatch_id": "DP-1",
        "product": "diesel_0", "vehicle_plate": "辽A12345", "seal_ids": ["S1", "S2"],
        "seals_intact": True, "volume_l": 19980.0, "temperature_c": 10.0,
        "density_kg_m3": 835.0, "started_at": ms(T0 + timedelta(hours=3)),
        "ended_at": ms(T0 + timedelta(hours=3, minutes=40)),
    },
    "tank_reading": {
        "station_id": STATION, "tank_id": "T1", "product": "gasoline_92", "read_at": ms(T0),
        "level_mm": 1200.0, "volume_l": 15000.0, "water_mm": 5.0, "temperature_c": 11.0,
    },
    "vapor": {
        "station_id": STATION, "nozzle_id": "N1", "measured_at": ms(T0), "al_ratio": 1.1,
        "pressure_pa": -150.0,
    },
    "device_status": {
        "station_id": STATION, "device_id": "ATG-1", "device_kind": "atg", "status": "online",
        "at": ms(T0),
    },
}  # fmt: skip


def sale_fields(
    volume: float = 40.0, price: int = 780, seconds: float = 90, start: float = 123456.78
) -> dict[str, Any]:
    """A consistent sale: totalizers, amount and duration agree with the volume."""
    return {
        "volume_l": volume, "unit_price_fen": price, "amount_fen": round(price * volume),
        "totalizer_start_l": start, "totalizer_end_l": round(start + volume, 2),
        "started_at": ms(T0), "ended_at": ms(T0) + int(seconds * 1000),
    }  # fmt: skip


BASES["sale"] = {
    "txn_id": "T000001", "station_id": STATION, "dispenser_id": "D1", "nozzle_id": "N1",
    "product": "gasoline_92", **sale_fields(), "invoice_id": None,
}  # fmt: skip


def decoded(record_type: str, offset: int = 0, **overrides: Any) -> dict[str, Any]:
    row = copy.deepcopy(BASES[record_type])
    row.update(src_partition=1, src_offset=offset, src_index=0, **overrides)
    return row


def run(record_type: str, rows: list[dict[str, Any]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    return validate(record_type, to_frame(record_type, rows), SETTINGS, NOW)


def only_reject(record_type: str, **overrides: Any) -> dict[str, Any]:
    valid, bad = run(record_type, [decoded(record_type, **overrides)])
    assert valid.height == 0 and bad.height == 1
    return bad.row(0, named=True)


def assert_valid(record_type: str, **overrides: Any) -> None:
    valid, bad = run(record_type, [decoded(record_type, **overrides)])
    assert bad.select("reason", "field", "detail").rows() == []
    assert valid.height == 1


NON_FINITE = [(float("nan"), "NaN"), (float("inf"), "inf"), (-float("inf"), "-inf")]


def _common_rows() -> list[Any]:
    """One row per common rule: every type's key, float field and timestamp."""
    rows = []
    for t, spec in SPECS.items():
        rows.append(pytest.param(t, {spec.kafka_key: " "}, "missing_key", spec.kafka_key,
                                 f"{spec.kafka_key} is empty", id=f"{t}-missing_key"))  # fmt: skip
        for i, f in enumerate(spec.float_fields):
            value, text = NON_FINITE[i % 3]
            rows.append(pytest.param(t, {f: value}, "not_finite", f, f"{f} = {text}",
                                     id=f"{t}-not_finite-{f}"))  # fmt: skip
        for f in spec.time_fields:
            future = ms(NOW) + 301_000
            early = ms(datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC))
            rows.append(pytest.param(t, {f: future}, "timestamp_in_future", f, shown(future),
                                     id=f"{t}-future-{f}"))  # fmt: skip
            rows.append(pytest.param(t, {f: early}, "timestamp_implausible", f, shown(early),
                                     id=f"{t}-implausible-{f}"))  # fmt: skip
    return rows


def sale_row(reason: str, field: str, text: str, id: str, **fields: Any) -> Any:
    return pytest.param("sale", fields, reason, field, text, id=id)



TYPE_RULES = [
    pytest.param("dispatch", {"volume_l": 0.0}, "volume_not_positive", "volume_l",
                 "volume_l = 0.0 must be > 0", id="dispatch-volume"),
    pytest.param("delivery", {"volume_l": -5.5}, "volume_not_positive", "volume_l",
                 "volume_l = -5.5", id="delivery-volume"),
    sale_row("volume_not_positive", "volume_l", "volume_l = -2.5", "sale-volume",
             **sale_fields(volume=-2.5)),
    sale_row("negative_value", "unit_price_fen", "unit_price_fen = 0", "sale-price",
             **sale_fields(price=0)),
    sale_row("negative_value", "amount_fen", "amount_fen = -100", "sale-amount", amount_fen=-100),
    pytest.param("tank_reading", {"level_mm": -3.0}, "negative_value", "level_mm",
                 "level_mm = -3.0", id="tank-level"),
    pytest.param("tank_reading", {"volume_l": -2.0}, "negative_value", "volume_l",
                 "volume_l = -2.0", id="tank-volume"),
    pytest.param("tank_reading", {"water_mm": -1.5}, "negative_value", "water_mm",
                 "water_mm = -1.5", id="tank-water"),
    pytest.param("vapor", {"al_ratio": -0.1}, "negative_value", "al_ratio", "al_ratio = -0.1",
                 id="vapor-al"),
    sale_row("ended_before_started", "ended_at", shown(ms(T0) - 1000), "sale-ended",
             ended_at=ms(T0) - 1000),
    pytest.param("delivery", {"ended_at": ms(T0 + timedelta(hours=2))}, "ended_before_started",
                 "ended_at", shown(ms(T0 + timedelta(hours=2))), id="delivery-ended"),
    sale_row("totalizer_mismatch", "totalizer_end_l", "= 40.05 L", "sale-totalizer",
             totalizer_end_l=123496.83),
    sale_row("amount_mismatch", "amount_fen", "amount_fen = 31202", "sale-amount-2fen",
             amount_fen=31202),
    sale_row("flow_rate_impossible", "volume_l", "in 0.0 min", "sale-zero-duration",
             **sale_fields(seconds=0)),
    sale_row("flow_rate_impossible", "volume_l", "151.0 L/min", "sale-151-per-min",
             **sale_fields(volume=151.0, seconds=60)),
    pytest.param("dispatch", {"temperature_c": -51.0}, "temperature_implausible",
                 "temperature_c", "-51.0", id="dispatch-cold"),
    pytest.param("delivery", {"temperature_c": 71.0}, "temperature_implausible",
                 "temperature_c", "71.0", id="delivery-hot"),
    pytest.param("tank_reading", {"temperature_c": 85.0}, "temperature_implausible",
                 "temperature_c", "85.0", id="tank-hot"),
    pytest.param("dispatch", {"density_kg_m3": 599.0}, "density_implausible", "density_kg_m3",
                 "599.0", id="dispatch-light"),
    pytest.param("delivery", {"density_kg_m3": 1100.5}, "density_implausible", "density_kg_m3",
                 "1100.5", id="delivery-heavy"),
    pytest.param("facility", {"city": "Beijing"}, "unknown_city", "city", "'Beijing'",
                 id="facility-city"),
    pytest.param("facility", {"tanks": [tank("T1"), tank("T2", -1.0)]}, "capacity_not_positive",
                 "tanks.capacity_l", "-1.0", id="facility-capacity"),
    pytest.param("facility", {"licences": [licence(date(2025, 6, 1), date(2025, 5, 31))]},
                 "licence_dates_reversed", "licences.valid_until", "2025-05-31",
                 id="facility-licence"),
    pytest.param("facility", {"tanks": [tank("T1"), tank("T1")]}, "duplicate_id",
                 "tanks.tank_id", "T1, T1", id="facility-tank-twice"),
    pytest.param("facility", {"nozzles": [nozzle("N1"), nozzle("N1")]}, "duplicate_id",
                 "nozzles.nozzle_id", "N1, N1", id="facility-nozzle-twice"),
    pytest.param("facility", {"nozzles": [nozzle("N1", "T7")]}, "unknown_tank",
                 "nozzles.tank_id", "T7", id="facility-nozzle-unknown-tank"),
]  # fmt: skip
RULE_ROWS = _common_rows() + TYPE_RULES


def _without_marks(rows: list[Any]) -> list[Any]:
    return [pytest.param(*p.values, id=p.id) for p in rows]


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_a_valid_record_passes_with_its_columns(record_type: str) -> None:
    valid, bad = run(record_type, [decoded(record_type)])
    assert bad.height == 0
    assert valid.columns == [*BASES[record_type], *SOURCE_COLUMNS]


@pytest.mark.parametrize(("record_type", "overrides", "reason", "field", "text"),
                         _without_marks(RULE_ROWS))  # fmt: skip
def test_rule_rejects_with_reason_and_field(
    record_type: str, overrides: dict[str, Any], reason: str, field: str, text: str
) -> None:
    got = only_reject(record_type, **overrides)
    assert (got["reason"], got["field"]) == (reason, field)


@pytest.mark.parametrize(("record_type", "overrides", "reason", "field", "text"), RULE_ROWS)
def test_rule_detail_shows_the_offending_value(
    record_type: str, overrides: dict[str, Any], reason: str, field: str, text: str
) -> None:
    assert text in only_reject(record_type, **overrides)["detail"]


def test_every_rule_has_a_row_and_a_known_reason() -> None:
    covered = {(p.values[0], p.values[2], p.values[3]) for p in RULE_ROWS}
    for record_type in RECORD_TYPES:
        for rule in rules_for(record_type, SETTINGS, NOW):
            assert rule.reason in REASONS
            assert (record_type, rule.reason, rule.field) in covered


@pytest.mark.parametrize(
    ("record_type", "overrides"),
    [
        pytest.param("sale", {"totalizer_end_l": 123496.795}, id="totalizer-0.015-off"),
        pytest.param("sale", {**sale_fields(volume=20.37), "amount_fen": 15889}, id="fen-rounded"),
        pytest.param("sale", {**sale_fields(volume=20.37), "amount_fen": 15890}, id="fen-plus-1"),
        pytest.param("sale", {**sale_fields(volume=20.37), "amount_fen": 15888}, id="fen-minus-1"),
        pytest.param("sale", sale_fields(volume=149.0, seconds=60), id="149-per-min"),
        pytest.param("sale", sale_fields(volume=150.0, seconds=60), id="150-per-min"),
        pytest.param("sale", {"amount_fen": 31200, "invoice_id": "INV-1"}, id="invoice"),
        pytest.param("tank_reading", {"read_at": ms(NOW) + 300_000}, id="clock-skew-300s"),
        pytest.param("tank_reading", {"temperature_c": -50.0, "level_mm": 0.0}, id="edges"),
        pytest.param("dispatch", {"temperature_c": 70.0, "density_kg_m3": 600.0}, id="edges-lo"),
        pytest.param("delivery", {"density_kg_m3": 1100.0, "dispatch_id": None}, id="edges-hi"),
        pytest.param("vapor", {"al_ratio": 0.0, "pressure_pa": 2500.0}, id="vapor-edges"),
        pytest.param("facility", {"kind": "depot", "tanks": [], "nozzles": []}, id="depot"),
    ],
)
def test_boundaries_pass(record_type: str, overrides: dict[str, Any]) -> None:
    assert_valid(record_type, **overrides)


@pytest.mark.parametrize("amount", [15891, 15887])
def test_amount_two_fen_off_the_rounded_value_fails(amount: int) -> None:
    got = only_reject("sale", **{**sale_fields(volume=20.37), "amount_fen": amount})
    assert got["reason"] == "amount_mismatch" and str(amount) in got["detail"]


def test_exactly_the_tolerance_passes_at_a_realistic_totalizer() -> None:
    assert_valid("sale", **{**sale_fields(volume=20.0), "totalizer_end_l": 123476.8})


@pytest.mark.parametrize(
    ("record_type", "overrides", "reason"),
    [
        ("dispatch", {"temperature_c": -60.0, "density_kg_m3": 500.0}, "temperature_implausible"),
        ("dispatch", {"volume_l": -1.0, "density_kg_m3": 500.0}, "volume_not_positive"),
        ("dispatch", {"dispatched_at": ms(NOW) + 10**7, "volume_l": 0.0}, "timestamp_in_future"),
        ("sale", {"amount_fen": -5, "totalizer_end_l": 0.0}, "negative_value"),
        ("sale", {"ended_at": ms(T0) - 1, "amount_fen": 1}, "ended_before_started"),
        ("facility", {"city": "", "facility_id": ""}, "missing_key"),
        ("facility", {"city": "Harbin", "tanks": [tank("T1", 0.0)]}, "unknown_city"),
    ],
)
def test_first_broken_rule_in_the_type_order_is_reported(
    record_type: str, overrides: dict[str, Any], reason: str
) -> None:
    assert only_reject(record_type, **overrides)["reason"] == reason


def test_each_row_gets_its_own_reason_and_keeps_its_source() -> None:
    rows = [
        decoded("sale", offset=10, txn_id="A"),
        decoded("sale", offset=11, txn_id="B", amount_fen=1),
        decoded("sale", offset=12, txn_id="C"),
        decoded("sale", offset=13, txn_id="D", **sale_fields(seconds=0)),
    ]
    rows[2]["src_index"] = 7
    valid, bad = run("sale", rows)
    assert valid.select("txn_id", *SOURCE_COLUMNS).rows() == [("A", 1, 10, 0), ("C", 1, 12, 7)]
    assert bad.select("txn_id", *SOURCE_COLUMNS, "reason").rows() == [
        ("B", 1, 11, 0, "amount_mismatch"),
        ("D", 1, 13, 0, "flow_rate_impossible"),
    ]
    assert bad.columns == [*valid.columns, "reason", "field", "detail"]


def test_an_empty_frame_validates_to_two_empty_frames() -> None:
    valid, bad = run("sale", [])
    assert valid.height == bad.height == 0
    assert {"reason", "field", "detail"} <= set(bad.columns)
