"""JSON line → Avro datum (ingest/jsonl.py): types, logical types and the field at fault."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fueltrace.errors import RecordRejected
from ingest.jsonl import convert_record
from schemas import default_registry

Factory = Callable[..., dict[str, Any]]
PRODUCTS = "gasoline_92, gasoline_95, gasoline_98, diesel_0, diesel_m10, diesel_m20, diesel_m35"


def schema(record_type: str) -> dict[str, Any]:
    return default_registry().current(record_type).schema


def epoch_ms(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def refused(record: dict[str, Any], record_type: str = "sale") -> RecordRejected:
    with pytest.raises(RecordRejected) as caught:
        convert_record(record, schema(record_type))
    assert caught.value.reason == "schema_violation"
    return caught.value


def delivery(**overrides: Any) -> dict[str, Any]:
    record = {
        "delivery_id": "DL-1", "station_id": "LN-SY-0001", "tank_id": "T1",
        "dispatch_id": "DP-1", "product": "diesel_0", "vehicle_plate": "辽A12345",
        "seal_ids": ["S1", "S2"], "seals_intact": True, "volume_l": 19980,
        "temperature_c": 10.5, "density_kg_m3": 835.0,
        "started_at": "2026-11-20T11:00:00Z", "ended_at": "2026-11-20T11:40:00Z",
    }  # fmt: skip
    record.update(overrides)
    return record


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T08:00:00Z", datetime(2026, 11, 20, 8, tzinfo=UTC)),
        ("2026-11-20T08:00:00.123Z", datetime(2026, 11, 20, 8, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-20T16:00:00.999+08:00", datetime(2026, 11, 20, 8, 0, 0, 999000, tzinfo=UTC)),
        ("2026-11-21T01:30:00+08:00", datetime(2026, 11, 20, 17, 30, tzinfo=UTC)),
        ("2026-11-20T08:00:00.001+00:00", datetime(2026, 11, 20, 8, 0, 0, 1000, tzinfo=UTC)),
    ],
)
def test_iso_timestamps_with_an_offset_give_utc_epoch_ms(
    sale_factory: Factory, text: str, expected: datetime
) -> None:
    got = convert_record(sale_factory(started_at=text), schema("sale"))
    assert got["started_at"] == epoch_ms(expected)
    assert isinstance(got["started_at"], int)


def test_z_and_plus_eight_are_the_same_instant(sale_factory: Factory) -> None:
    z = convert_record(sale_factory(ended_at="2026-11-20T08:01:30.250Z"), schema("sale"))
    cst = convert_record(sale_factory(ended_at="2026-11-20T16:01:30.250+08:00"), schema("sale"))
    assert z["ended_at"] == cst["ended_at"] == 1795161690250


@pytest.mark.parametrize("text", ["2026-11-20T08:00:00", "2026-11-20 08:00:00.5", "2026-11-20"])
def test_a_naive_timestamp_is_refused_naming_the_field(sale_factory: Factory, text: str) -> None:
    exc = refused(sale_factory(ended_at=text))
    assert exc.field == "ended_at"
    assert "ended_at" in exc.detail and "no UTC offset" in exc.detail and text in exc.detail


@pytest.mark.parametrize(
    ("value", "words"),
    [("yesterday", "not an ISO-8601 timestamp"), (True, "boolean"), (1.7e12, "got float")],
)
def test_a_timestamp_that_is_no_timestamp_is_refused(
    sale_factory: Factory, value: Any, words: str
) -> None:
    exc = refused(sale_factory(started_at=value))
    assert exc.field == "started_at" and words in exc.detail


def test_epoch_ms_integers_are_taken_as_they_are(sale_factory: Factory) -> None:
    got = convert_record(sale_factory(started_at=1795161600123), schema("sale"))
    assert got["started_at"] == 1795161600123


@pytest.mark.parametrize(("field", "value"), [
    ("unit_price_fen", 2**63), ("amount_fen", -(2**63) - 1), ("started_at", 10**30),
])  # fmt: skip
def test_an_integer_beyond_64_bits_is_refused_not_crashed_on(
    sale_factory: Factory, field: str, value: int
) -> None:
    exc = refused(sale_factory(**{field: value}))
    assert exc.field == field
    assert "out of range" in exc.detail or "does not fit" in exc.detail


def test_dates_become_days_since_the_epoch(facility_factory: Factory) -> None:
    got = convert_record(facility_factory(), schema("facility"))
    assert (got["licences"][0]["valid_from"], got["licences"][0]["valid_until"]) == (19723, 21549)


@pytest.mark.parametrize("value", ["2024-13-01", "01/02/2024", 19723])
def test_a_bad_date_is_refused_with_its_path(facility_factory: Factory, value: Any) -> None:
    licence = {"kind": "retail_approval", "number": "X", "valid_from": value,
               "valid_until": "2028-12-31", "status": "valid"}  # fmt: skip
    exc = refused(facility_factory(licences=[licence]), "facility")
    assert exc.field == "licences[0].valid_from"


def test_enums_take_their_symbols(sale_factory: Factory) -> None:
    got = convert_record(sale_factory(product="diesel_m35"), schema("sale"))
    assert got["product"] == "diesel_m35"


def test_a_bad_enum_symbol_names_the_allowed_ones(sale_factory: Factory) -> None:
    exc = refused(sale_factory(product="gasoline_93"))
    assert exc.field == "product"
    assert "'gasoline_93'" in exc.detail and PRODUCTS in exc.detail


def test_a_bad_nested_enum_names_its_path(facility_factory: Factory) -> None:
    licence = {"kind": "retail_approval", "number": "X", "valid_from": "2024-01-01",
               "valid_until": "2028-12-31", "status": "expired"}  # fmt: skip
    exc = refused(facility_factory(licences=[licence]), "facility")
    assert exc.field == "licences[0].status" and "valid, suspended, revoked" in exc.detail


def test_nested_records_in_arrays_report_their_path(facility_factory: Factory) -> None:
    tanks = [{"tank_id": "T1", "product": "gasoline_92", "capacity_l": 30000.0},
             {"tank_id": "T2", "product": "diesel_0", "capacity_l": "big"}]  # fmt: skip
    exc = refused(facility_factory(tanks=tanks), "facility")
    assert exc.field == "tanks[1].capacity_l"
    assert exc.detail.startswith("tanks[1].capacity_l: ") and "'big'" in exc.detail


def test_a_missing_nested_field_reports_its_path(facility_factory: Factory) -> None:
    nozzles = [{"nozzle_id": "N1", "dispenser_id": "D1"}]
    exc = refused(facility_factory(nozzles=nozzles), "facility")
    assert exc.field == "nozzles[0].tank_id" and "is required" in exc.detail


def test_nested_records_convert_whole(facility_factory: Factory) -> None:
    got = convert_record(facility_factory(), schema("facility"))
    assert got["tanks"] == [{"tank_id": "T1", "product": "gasoline_92", "capacity_l": 30000.0}]
    assert got["nozzles"] == [{"nozzle_id": "N1", "dispenser_id": "D1", "tank_id": "T1"}]


@pytest.mark.parametrize("name", ["txn_id", "volume_l", "started_at", "product"])
def test_a_missing_required_field_is_refused(sale_factory: Factory, name: str) -> None:
    record = sale_factory()
    del record[name]
    exc = refused(record)
    assert exc.field == name and exc.detail == f"{name}: is required"


@pytest.mark.parametrize(
    ("name", "words"),
    [("txn_id", "is required"), ("volume_l", "is required"), ("ended_at", "got null")],
)
def test_null_in_a_required_field_is_refused(sale_factory: Factory, name: str, words: str) -> None:
    exc = refused(sale_factory(**{name: None}))
    assert exc.field == name and words in exc.detail


def test_defaulted_optional_fields_may_be_absent(
    sale_factory: Factory, facility_factory: Factory
) -> None:
    sale = sale_factory(invoice_id="INV-9")
    del sale["invoice_id"]
    assert convert_record(sale, schema("sale"))["invoice_id"] is None
    record = delivery()
    del record["dispatch_id"]
    assert convert_record(record, schema("delivery"))["dispatch_id"] is None
    depot = facility_factory(kind="depot")
    for name in ("tanks", "nozzles", "licences"):
        del depot[name]
    got = convert_record(depot, schema("facility"))
    assert (got["tanks"], got["nozzles"], got["licences"]) == ([], [], [])


def test_nullable_fields_take_null_or_a_value() -> None:
    assert convert_record(delivery(dispatch_id=None), schema("delivery"))["dispatch_id"] is None
    assert convert_record(delivery(), schema("delivery"))["dispatch_id"] == "DP-1"


def test_an_unknown_field_is_refused(sale_factory: Factory) -> None:
    exc = refused(sale_factory(colour="red"))
    assert exc.field == "colour" and "is not a field of Sale" in exc.detail


def test_an_unknown_nested_field_names_its_path(facility_factory: Factory) -> None:
    tanks = [{"tank_id": "T1", "product": "gasoline_92", "capacity_l": 1.0, "colour": "red"}]
    exc = refused(facility_factory(tanks=tanks), "facility")
    assert exc.field == "tanks[0].colour"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("volume_l", True, "expected a number, got bool"),
        ("unit_price_fen", False, "expected an integer, got bool"),
        ("unit_price_fen", 780.0, "expected an integer, got float"),
        ("volume_l", "20.5", "expected a number, got str"),
        ("txn_id", 17, "expected a string, got int"),
    ],
)
def test_types_are_not_coerced(sale_factory: Factory, name: str, value: Any, words: str) -> None:
    exc = refused(sale_factory(**{name: value}))
    assert exc.field == name and words in exc.detail


def test_a_number_is_not_a_boolean() -> None:
    exc = refused(delivery(seals_intact=1), "delivery")
    assert exc.field == "seals_intact" and "expected true or false" in exc.detail


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused(sale_factory: Factory, value: float) -> None:
    exc = refused(sale_factory(totalizer_end_l=value))
    assert exc.field == "totalizer_end_l" and "not a finite number" in exc.detail


def test_integers_are_accepted_as_doubles() -> None:
    got = convert_record(delivery(volume_l=19980), schema("delivery"))
    assert got["volume_l"] == 19980.0 and isinstance(got["volume_l"], float)


def test_arrays_of_strings_and_their_items() -> None:
    assert convert_record(delivery(seal_ids=[]), schema("delivery"))["seal_ids"] == []
    exc = refused(delivery(seal_ids=["S1", 2]), "delivery")
    assert exc.field == "seal_ids[1]"
    exc = refused(delivery(seal_ids="S1"), "delivery")
    assert exc.field == "seal_ids" and "expected a list" in exc.detail


@pytest.mark.parametrize("value", [[1, 2], "x", None])
def test_a_record_must_be_an_object(value: Any) -> None:
    exc = refused(value)
    assert "expected a JSON object" in exc.detail


def test_a_valid_sale_converts_field_by_field(sale_factory: Factory) -> None:
    record = sale_factory(volume_l=25.0, invoice_id="INV-1")
    got = convert_record(record, schema("sale"))
    assert list(got) == [f["name"] for f in schema("sale")["fields"]]
    same = {k: v for k, v in got.items() if k not in ("started_at", "ended_at")}
    assert same == {k: v for k, v in record.items() if k not in ("started_at", "ended_at")}
    assert got["ended_at"] - got["started_at"] == 90_000
