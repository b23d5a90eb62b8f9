"""The simulated province: deterministic, schema-valid, and its volumes add up."""

from __future__ import annotations

import json
import re
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema
from fastavro.validation import validate

from simulator import (
    RECORD_TYPES,
    RandomScenarios,
    generate_province,
    generate_with_truth,
    read_ground_truth,
    write_ground_truth,
    write_jsonl,
)
from simulator.geography import CITIES
from simulator.licences import social_credit_code
from simulator.monitors import CLEAN_PRESSURE_PA
from simulator.tank import TankGeometry, to_20c
from tests.simulator.measure import TankBook

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
SPEC_CITIES = {
    "Shenyang", "Dalian", "Anshan", "Fushun", "Benxi", "Dandong", "Jinzhou", "Yingkou",
    "Fuxin", "Liaoyang", "Panjin", "Tieling", "Chaoyang", "Huludao",
}  # fmt: skip
ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
Records = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def generated() -> tuple[Records, float]:
    started = time.perf_counter()
    records = generate_province()
    return records, time.perf_counter() - started


@pytest.fixture(scope="module")
def province(generated: tuple[Records, float]) -> Records:
    return generated[0]


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def to_avro(value: Any, schema: Any) -> Any:
    """Undo the JSON encoding of ``value`` as ``schema`` describes it: timestamps and
    dates back to ``datetime`` and ``date``."""
    if isinstance(schema, list):  # a union: null or the one other branch
        return None if value is None else to_avro(value, next(s for s in schema if s != "null"))
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical == "timestamp-millis":
            return ts(value)
        if logical == "date":
            return date.fromisoformat(value)
        if schema.get("type") == "record":
            return {f["name"]: to_avro(value[f["name"]], f["type"]) for f in schema["fields"]}
        if schema.get("type") == "array":
            return [to_avro(v, schema["items"]) for v in value]
        if isinstance(schema.get("type"), dict | list):
            return to_avro(value, schema["type"])
    return value


def tank_index(province: Records) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["facility_id"], t["tank_id"]): t for f in province["facility"] for t in f["tanks"]}


def nozzle_tank(province: Records) -> dict[tuple[str, str], str]:
    return {
        (f["facility_id"], n["nozzle_id"]): n["tank_id"]
        for f in province["facility"]
        for n in f["nozzles"]
    }


def test_same_seed_same_output_other_seed_differs() -> None:
    first = generate_province(seed=11, depots=2, stations=5, days=0.75)
    assert generate_province(seed=11, depots=2, stations=5, days=0.75) == first
    other = generate_province(seed=12, depots=2, stations=5, days=0.75)
    assert other["sale"] != first["sale"]
    assert other["tank_reading"] != first["tank_reading"]


def test_default_size_is_fast_and_in_the_expected_range(
    generated: tuple[Records, float],
) -> None:
    records, seconds = generated
    assert seconds < 10
    assert set(records) == set(RECORD_TYPES)
    assert all(records[t] for t in RECORD_TYPES)
    assert 20_000 <= sum(len(v) for v in records.values()) <= 40_000
    assert len(records["facility"]) == 27
    assert len(records["dispatch"]) >= 5


def test_every_record_validates_against_its_schema(province: Records) -> None:
    for record_type in RECORD_TYPES:
        schema = json.loads((SCHEMA_DIR / f"{record_type}.avsc").read_text())
        parsed = parse_schema(schema, named_schemas={})
        field_names = [f["name"] for f in schema["fields"]]
        for record in province[record_type]:
            assert list(record) == field_names  # every field present, optional ones too
            assert validate(to_avro(record, schema), parsed, raise_errors=True)


def test_timestamps_are_iso_utc_millis_in_the_past(province: Records) -> None:
    cutoff = datetime(2026, 11, 24, tzinfo=UTC)
    fields = ("updated_at", "dispatched_at", "started_at", "ended_at", "read_at",
              "measured_at", "at")  # fmt: skip
    for records in province.values():
        for record in records:
            for f in fields:
                if f in record:
                    assert ISO_MS_Z.match(record[f]), record[f]
                    assert ts(record[f]) < cutoff


def test_registry_is_a_plausible_province(province: Records) -> None:
    start = date(2026, 11, 20)
    stations = [f for f in province["facility"] if f["kind"] == "station"]
    assert len(stations) == 24
    assert {f["city"] for f in stations} == SPEC_CITIES
    for f in province["facility"]:
        kinds = [lic["kind"] for lic in f["licences"]]
        assert len(kinds) == len(set(kinds))
        for lic in f["licences"]:
            assert lic["status"] == "valid"
            assert date.fromisoformat(lic["valid_from"]) < start
            assert date.fromisoformat(lic["valid_until"]) > date(2026, 11, 22)
            if lic["kind"] == "business_licence":  # the check character is right
                code = lic["number"]
                assert social_credit_code_is_valid(code), code
    for f in stations:
        assert {lic["kind"] for lic in f["licences"]} == {
            "retail_approval", "hazardous_chemicals", "business_licence",
            "environmental_approval",
        }  # fmt: skip
        assert 2 <= len(f["tanks"]) <= 4
        assert all(20_000 <= t["capacity_l"] <= 50_000 for t in f["tanks"])
        tank_ids = {t["tank_id"] for t in f["tanks"]}
        assert {n["tank_id"] for n in f["nozzles"]} == tank_ids  # every tank has a nozzle
        assert len({n["nozzle_id"] for n in f["nozzles"]}) == len(f["nozzles"])


def social_credit_code_is_valid(code: str) -> bool:
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(chars.index(c) * w for c, w in zip(code[:17], weights, strict=True))
    return len(code) == 18 and chars[(31 - total % 31) % 31] == code[17]


def test_social_credit_code_generator_agrees_with_the_checker() -> None:
    import random

    rng = random.Random(3)
    assert all(social_credit_code_is_valid(social_credit_code(rng, c.code)) for c in CITIES)


def test_totalizer_is_continuous_and_flow_plausible_per_nozzle(province: Records) -> None:
    by_nozzle: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for sale in province["sale"]:
        by_nozzle[(sale["station_id"], sale["nozzle_id"])].append(sale)
    assert len(by_nozzle) >= 0.9 * len(nozzle_tank(province))
    for sales in by_nozzle.values():
        sales.sort(key=lambda s: s["started_at"])
        for prev, sale in zip([None, *sales], sales, strict=False):
            assert (
                abs(sale["totalizer_end_l"] - sale["totalizer_start_l"] - sale["volume_l"]) < 0.01
            )
            minutes = (ts(sale["ended_at"]) - ts(sale["started_at"])).total_seconds() / 60
            assert 20 - 0.01 <= sale["volume_l"] / minutes <= 50 + 1e-6
            if prev is not None:
                assert sale["totalizer_start_l"] == prev["totalizer_end_l"]
                assert ts(sale["started_at"]) >= ts(prev["ended_at"])


def test_amount_is_price_times_volume(province: Records) -> None:
    txn_ids = set()
    for sale in province["sale"]:
        assert abs(sale["amount_fen"] - sale["unit_price_fen"] * sale["volume_l"]) <= 1
        assert 600 <= sale["unit_price_fen"] <= 900
        txn_ids.add((sale["station_id"], sale["txn_id"]))
    assert len(txn_ids) == len(province["sale"])


def test_sales_follow_the_daily_profile(province: Records) -> None:
    per_local_hour = [0] * 24
    for sale in province["sale"]:
        per_local_hour[(ts(sale["started_at"]).hour + 8) % 24] += 1
    night = sum(per_local_hour[1:5])
    evening = sum(per_local_hour[17:21])
    assert evening > 4 * night


def overlap_fraction(start: float, end: float, a: float, b: float) -> float:
    """The fraction of a flow over [start, end] that passes within [a, b]."""
    return max(0.0, min(end, b) - max(start, a)) / (end - start)


def test_tank_mass_balance_at_20c(province: Records) -> None:
    """Between any two consecutive readings, the change in measured stock (litres at
    20 °C, with the gauge's temperature) equals deliveries − sales in that interval,
    within the gauge's noise; and so over the whole window."""
    readings: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in province["tank_reading"]:
        readings[(r["station_id"], r["tank_id"])].append(r)
    series = {}
    for key, rs in readings.items():
        rs.sort(key=lambda r: r["read_at"])
        times = [ts(r["read_at"]).timestamp() for r in rs]
        v20 = [to_20c(r["volume_l"], r["temperature_c"], r["product"]) for r in rs]
        series[key] = (times, v20, [r["temperature_c"] for r in rs])
    flows: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    tanks = tank_index(province)
    nozzles = nozzle_tank(province)
    for d in province["delivery"]:
        key = (d["station_id"], d["tank_id"])
        v = to_20c(d["volume_l"], d["temperature_c"], d["product"])
        flows[key].append((ts(d["started_at"]).timestamp(), ts(d["ended_at"]).timestamp(), v))
    for s in province["sale"]:
        key = (s["station_id"], nozzles[(s["station_id"], s["nozzle_id"])])
        times, _, temps = series[key]
        t0 = ts(s["started_at"]).timestamp()
        i = min(max(bisect_right(times, t0), 1), len(times) - 1)
        w = (t0 - times[i - 1]) / (times[i] - times[i - 1])
        temperature = temps[i - 1] + w * (temps[i] - temps[i - 1])  # the gauge's estimate
        v = to_20c(s["volume_l"], temperature, s["product"])
        flows[key].append((t0, ts(s["ended_at"]).timestamp(), -v))
    assert len(series) == len(tanks)
    checked = 0
    for key, (times, v20, _) in series.items():
        expected = [0.0] * (len(times) - 1)
        for start, end, v in flows[key]:
            first = max(bisect_right(times, start) - 1, 0)
            for i in range(first, min(bisect_left(times, end) + 1, len(times) - 1)):
                expected[i] += v * overlap_fraction(start, end, times[i], times[i + 1])
        for i, change in enumerate(expected):
            tolerance = 0.00065 * (v20[i] + v20[i + 1]) + 0.2
            assert abs(v20[i + 1] - v20[i] - change) <= tolerance, (key, i)
            checked += 1
        throughput = sum(abs(v) for _, _, v in flows[key])
        residual = v20[-1] - v20[0] - sum(expected)
        assert abs(residual) <= 0.00065 * (v20[0] + v20[-1]) + 0.003 * throughput
    assert checked > 3_000


def test_deliveries_match_their_dispatches(province: Records) -> None:
    dispatches = {d["dispatch_id"]: d for d in province["dispatch"]}
    tanks = tank_index(province)
    received = set()
    assert province["delivery"]
    for d in province["delivery"]:
        sent = dispatches[d["dispatch_id"]]
        assert sent["station_id"] == d["station_id"]
        assert sent["product"] == d["product"] == tanks[(d["station_id"], d["tank_id"])]["product"]
        assert sent["vehicle_plate"] == d["vehicle_plate"]
        assert sent["seal_ids"] == d["seal_ids"] and d["seals_intact"]
        assert abs(sent["density_kg_m3"] - d["density_kg_m3"]) < 2
        sent20 = to_20c(sent["volume_l"], sent["temperature_c"], sent["product"])
        got20 = to_20c(d["volume_l"], d["temperature_c"], d["product"])
        assert 0.0004 <= 1 - got20 / sent20 <= 0.0021  # a little transit loss
        unloading_min = (ts(d["ended_at"]) - ts(d["started_at"])).total_seconds() / 60
        assert 30 <= unloading_min <= 60
        assert ts(d["started_at"]) > ts(sent["dispatched_at"])
        received.add(d["dispatch_id"])
    assert received == set(dispatches)  # no dispatch goes astray


def test_dispatches_answer_low_tanks_with_plausible_loads(province: Records) -> None:
    tanks = tank_index(province)
    last_before: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for r in province["tank_reading"]:
        last_before[(r["station_id"], r["tank_id"])].append((r["read_at"], r["volume_l"]))
    deliveries = {d["dispatch_id"]: d for d in province["delivery"]}
    for sent in province["dispatch"]:
        low, high = (725, 745) if sent["product"].startswith("gasoline") else (830, 845)
        assert low <= sent["density_kg_m3"] <= high
        tank_id = deliveries[sent["dispatch_id"]]["tank_id"]
        key = (sent["station_id"], tank_id)
        before = [v for t, v in last_before[key] if t <= sent["dispatched_at"]]
        assert before[-1] < 0.37 * tanks[key]["capacity_l"]


def test_tanks_stay_within_capacity_and_gauge_geometry(province: Records) -> None:
    tanks = tank_index(province)
    for r in province["tank_reading"]:
        capacity = tanks[(r["station_id"], r["tank_id"])]["capacity_l"]
        geometry = TankGeometry(capacity)
        assert 0.02 * capacity < r["volume_l"] < 0.95 * capacity
        assert 0 < r["level_mm"] < geometry.diameter_mm
        assert 0 <= r["water_mm"] < 40
        assert -5 < r["temperature_c"] < 30
        liquid = geometry.volume_at(r["level_mm"])
        assert abs(liquid - r["volume_l"] - geometry.volume_at(r["water_mm"])) < 0.002 * capacity


def test_vapour_only_on_gasoline_nozzles_in_band_hourly(province: Records) -> None:
    assert all(1.0 <= v["al_ratio"] <= 1.2 for v in province["vapor"])
    assert all(abs(v["pressure_pa"]) <= CLEAN_PRESSURE_PA for v in province["vapor"])
    tanks = tank_index(province)
    gasoline = {
        key for key, tank in nozzle_tank(province).items()
        if tanks[(key[0], tank)]["product"].startswith("gasoline")
    }  # fmt: skip
    samples: dict[tuple[str, str], list[str]] = defaultdict(list)
    for v in province["vapor"]:
        samples[(v["station_id"], v["nozzle_id"])].append(v["measured_at"])
    assert set(samples) == gasoline
    assert {len(times) for times in samples.values()} == {48}  # every hour of the two days


def test_devices_are_online_and_report_without_gaps(province: Records) -> None:
    statuses = province["device_status"]
    assert all(s["status"] == "online" for s in statuses)
    assert {s["at"] for s in statuses} == {"2026-11-20T00:00:00.000Z"}
    assert {s["device_kind"] for s in statuses} == {"atg", "dispenser", "vapor_monitor", "gateway"}
    readings: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in province["tank_reading"]:
        readings[(r["station_id"], r["tank_id"])].append(ts(r["read_at"]).timestamp())
    assert set(readings) == set(tank_index(province))
    for times in readings.values():
        assert {b - a for a, b in zip(times, times[1:], strict=False)} == {900.0}


def beijing_day(value: str) -> date:
    return (ts(value) + timedelta(hours=8)).date()


def test_every_licence_is_valid_whenever_it_is_used(province: Records) -> None:
    """Clean data: no sale and no dispatch on a day a licence of its station (depot) is not
    valid, and nothing suspended or revoked."""
    licences = {f["facility_id"]: f["licences"] for f in province["facility"]}
    assert len(licences) == len(province["facility"])  # one registration each
    used = [(s["station_id"], s["started_at"]) for s in province["sale"]]
    used += [(d["depot_id"], d["dispatched_at"]) for d in province["dispatch"]]
    for facility_id, at in used:
        day = beijing_day(at)
        for lic in licences[facility_id]:
            assert lic["status"] == "valid"
            since, until = date.fromisoformat(lic["valid_from"]), lic["valid_until"]
            assert since <= day <= date.fromisoformat(until)


def test_meters_err_within_the_legal_limit(province: Records) -> None:
    """What each tank lost against what its dispensers recorded: within ±0.3 % of the
    sales (JJG 443) plus the gauge's error at both ends and a little evaporation."""
    nozzles = nozzle_tank(province)
    sold: dict[tuple[str, str], float] = defaultdict(float)
    for s in province["sale"]:
        sold[(s["station_id"], nozzles[(s["station_id"], s["nozzle_id"])])] += s["volume_l"]
    start = ts(province["tank_reading"][0]["read_at"]).timestamp()
    end = ts(province["tank_reading"][-1]["read_at"]).timestamp()
    errors = []
    for station_id, tank_id in tank_index(province):
        book = TankBook(province, station_id, tank_id)
        unexplained = book.unexplained(start, end)
        gauge = 0.001 * max(book.v20)
        assert abs(unexplained) <= 0.003 * sold[(station_id, tank_id)] + gauge + 3.0
        errors.append(unexplained / max(sold[(station_id, tank_id)], 1.0))
    assert max(errors) - min(errors) > 0.0005  # meters differ: the error is not all zero


def test_generate_with_truth_is_deterministic_and_clean_without_scenarios(
    province: Records,
) -> None:
    clean = generate_with_truth()
    assert clean.incidents == [] and clean.records == province
    asked = {"seed": 11, "depots": 2, "stations": 8, "days": 2.0}
    first = generate_with_truth(**asked, scenarios=RandomScenarios(per_kind=1))
    again = generate_with_truth(**asked, scenarios=RandomScenarios(per_kind=1))
    assert first == again
    assert len(first.incidents) >= 15
    other = generate_with_truth(**asked, scenarios=RandomScenarios(per_kind=1, seed=1))
    assert other.incidents != first.incidents


def test_fewer_sales_with_a_smaller_sales_scale() -> None:
    full = generate_province(depots=1, stations=3, days=1.0)
    quarter = generate_province(depots=1, stations=3, days=1.0, sales_scale=0.25)
    assert 0.18 < len(quarter["sale"]) / len(full["sale"]) < 0.32
    assert len(quarter["tank_reading"]) == len(full["tank_reading"])


def test_ground_truth_file_round_trips(tmp_path: Path) -> None:
    generated = generate_with_truth(
        depots=1, stations=6, days=2.0, scenarios=RandomScenarios(per_kind=1)
    )
    write_jsonl(generated.records, tmp_path)
    path = write_ground_truth(generated.incidents, tmp_path)
    assert path == tmp_path / "ground_truth.jsonl"
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(generated.incidents) > 0
    for line in lines:
        assert ISO_MS_Z.match(line["start"]) and ISO_MS_Z.match(line["end"])
        assert line["expected_rules"] or line["tolerated_rules"]
    assert read_ground_truth(tmp_path) == generated.incidents


def test_write_jsonl_round_trips(tmp_path: Path) -> None:
    records = generate_province(depots=1, stations=2, days=0.25)
    paths = write_jsonl(records, tmp_path / "out")
    assert set(paths) == set(RECORD_TYPES)
    for record_type, path in paths.items():
        assert path.name == f"{record_type}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == records[record_type]
