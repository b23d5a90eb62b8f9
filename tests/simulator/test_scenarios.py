"""Each injected kind leaves the physical signature it claims, measured from the records
alone (not from the anomaly rules), and its ground truth says so."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from simulator import KINDS, Generated, Incident
from simulator.injections import INJECTIONS
from simulator.monitors import AL_BAND, CLEAN_PRESSURE_PA
from simulator.tank import to_20c
from tests.simulator.measure import (
    TankBook,
    nozzle_tank,
    sales_by_nozzle,
    totalizer_gaps,
    ts,
)

HOUR = 3600.0
Records = dict[str, list[dict[str, Any]]]


def incident(g: Generated, kind: str, nth: int = 0) -> Incident:
    return [i for i in g.incidents if i.kind == kind][nth]


def t(i: Incident, which: str = "start") -> float:
    value: datetime = getattr(i, which)
    return value.timestamp()


def in_window(records: list[dict[str, Any]], station: str, field: str, a: float, b: float) -> list:
    return [r for r in records if r["station_id"] == station and a <= ts(r[field]) < b]


def test_every_kind_has_an_injection_and_rules() -> None:
    assert set(INJECTIONS) == set(KINDS)
    assert all(spec.expected for spec in KINDS.values())


def test_every_incident_happened_with_its_rules(injected: Generated) -> None:
    kinds = {i.kind for i in injected.incidents}
    assert kinds == set(KINDS)
    for i in injected.incidents:
        # A broken dispenser (it reported itself offline and sold nothing) is honest:
        # no rule judges an idle dispenser, so nothing is expected of one.
        honest = i.kind == "device_outage" and i.refs.get("device_kind") == "dispenser"
        assert bool(i.expected_rules) != honest, i
        assert not set(i.expected_rules) & set(i.tolerated_rules)
        assert i.start <= i.end
    ids = [i.incident_id for i in injected.incidents]
    assert len(ids) == len(set(ids))


# -- wetstock ---------------------------------------------------------------------------


def test_leak_takes_fuel_the_records_do_not_explain(injected: Generated) -> None:
    """A 2 L/h leak for 24 h: the gauge falls ~48 L more than sales and deliveries explain,
    once the day before (no leak) has told the tank's own meter bias."""
    leak = incident(injected, "leak")
    assert leak.params["rate_l_h"] == 2.0 and leak.params["lost_20_l"] == 48.0
    book = TankBook(injected.records, str(leak.station_id), str(leak.subject))
    t0, t1 = t(leak), t(leak, "end")
    before = (book.unexplained(t0 - 24 * HOUR, t0), book.sold(t0 - 24 * HOUR, t0))
    during = (book.unexplained(t0, t1), book.sold(t0, t1))
    bias = before[0] / before[1]  # meter error and evaporation, per litre sold
    lost = -(during[0] - bias * during[1])
    assert lost == pytest.approx(48.0, abs=12.0)
    assert abs(before[0]) < 0.004 * before[1] + 15  # no leak the day before


def test_off_book_delivery_raises_the_level_without_a_record(injected: Generated) -> None:
    off = incident(injected, "off_book_delivery")
    book = TankBook(injected.records, str(off.station_id), str(off.subject))
    gained = book.unexplained(t(off) - 900, t(off, "end") + 900)
    assert gained == pytest.approx(off.params["volume_20_l"], abs=25.0)
    into_tank = [d for d in injected.records["delivery"]
                 if d["station_id"] == off.station_id and d["tank_id"] == off.subject]  # fmt: skip
    assert not [d for d in into_tank if t(off) - HOUR < ts(d["started_at"]) < t(off, "end")]


def test_calibration_fraud_sells_more_than_leaves_the_tank(injected: Generated) -> None:
    """Every dispenser on the tank records 2 % more than it gives: the tank loses ~1.96 %
    less than its sales say (honest meters stay within ±0.3 %: see the clean station)."""
    frauds = [i for i in injected.incidents if i.kind == "calibration_fraud"]
    station = str(frauds[0].station_id)
    tank = "T2"
    assert all(tank in i.subject_aliases for i in frauds)
    start, end = t(frauds[0]), t(frauds[0], "end")
    book = TankBook(injected.records, station, tank)
    gain = book.unexplained(start, end) / book.sold(start, end)
    assert gain == pytest.approx(0.02 / 1.02, abs=0.002)
    on_fraud = {i.subject for i in frauds}
    sold = sum(s["volume_l"] for s in injected.records["sale"]
               if s["station_id"] == station and s["dispenser_id"] in on_fraud)  # fmt: skip
    excess = sum(i.params["excess_l"] for i in frauds)
    assert excess == pytest.approx(sold * 0.02 / 1.02, rel=1e-4)


def test_totalizer_tampering_breaks_the_chain(injected: Generated) -> None:
    tamper = incident(injected, "totalizer_tampering")
    by_nozzle = sales_by_nozzle(injected.records, str(tamper.station_id))
    gaps = totalizer_gaps(by_nozzle[str(tamper.subject)])
    assert [gap for _, gap in gaps] == [-500.0] * int(tamper.params["gaps_observed"])
    assert tamper.params["gaps_observed"] == 2
    assert all(t(tamper) <= ts(s["started_at"]) for s, _ in gaps)
    others = [n for n in by_nozzle if n != tamper.subject]
    assert others and all(totalizer_gaps(by_nozzle[n]) == [] for n in others)


# -- supply chain -----------------------------------------------------------------------


def test_diverted_load_is_dispatched_never_received_and_sold_elsewhere(
    injected: Generated,
) -> None:
    diverted = incident(injected, "diverted_load")
    dispatch_id = diverted.refs["dispatch_id"]
    dispatch = next(d for d in injected.records["dispatch"] if d["dispatch_id"] == dispatch_id)
    assert dispatch["station_id"] == diverted.station_id
    assert dispatch["depot_id"] == diverted.depot_id
    assert not [d for d in injected.records["delivery"] if d["dispatch_id"] == dispatch_id]
    resale_id = diverted.refs["resale_incident_id"]
    resale = next(i for i in injected.incidents if i.incident_id == resale_id)
    assert resale.kind == "off_book_delivery" and resale.refs["caused_by"] == diverted.incident_id
    assert resale.station_id != diverted.station_id
    book = TankBook(injected.records, str(resale.station_id), str(resale.subject))
    gained = book.unexplained(t(resale) - 900, t(resale, "end") + 900)
    loaded20 = to_20c(dispatch["volume_l"], dispatch["temperature_c"], dispatch["product"])
    assert gained == pytest.approx(loaded20, rel=0.005)


def _pair(g: Generated, i: Incident) -> tuple[dict[str, Any], dict[str, Any]]:
    delivery = next(d for d in g.records["delivery"] if d["delivery_id"] == i.subject)
    dispatch = next(d for d in g.records["dispatch"] if d["dispatch_id"] == delivery["dispatch_id"])
    return dispatch, delivery


def _std(record: dict[str, Any]) -> float:
    return to_20c(record["volume_l"], record["temperature_c"], record["product"])


def test_shortfall_declares_less_than_was_dispatched(injected: Generated) -> None:
    short = incident(injected, "shortfall")
    dispatch, delivery = _pair(injected, short)
    loss = 1 - _std(delivery) / _std(dispatch)
    assert 0.02 + 0.0004 <= loss <= 0.02 + 0.0025  # the theft plus the usual transit loss
    assert delivery["seals_intact"] is False
    book = TankBook(injected.records, delivery["station_id"], delivery["tank_id"])
    unloading = (ts(delivery["started_at"]) - 900, ts(delivery["ended_at"]) + 900)
    assert abs(book.unexplained(*unloading)) < 25  # what was declared is what went in


def test_adulteration_changes_the_density(injected: Generated) -> None:
    dispatch, delivery = _pair(injected, incident(injected, "adulteration"))
    assert delivery["density_kg_m3"] - dispatch["density_kg_m3"] == pytest.approx(6.0, abs=0.11)


def test_product_swap_dispatches_the_cheaper_grade(injected: Generated) -> None:
    swap = incident(injected, "product_swap")
    dispatch, delivery = _pair(injected, swap)
    assert dispatch["product"] == swap.refs["dispatched_product"] != delivery["product"]
    assert delivery["product"] == swap.refs["declared_product"]
    assert abs(dispatch["density_kg_m3"] - delivery["density_kg_m3"]) < 2


def test_vehicle_swap_changes_plate_and_seals(injected: Generated) -> None:
    dispatch, delivery = _pair(injected, incident(injected, "vehicle_swap"))
    assert dispatch["vehicle_plate"] != delivery["vehicle_plate"]
    assert not set(dispatch["seal_ids"]) & set(delivery["seal_ids"])
    assert len(dispatch["seal_ids"]) == len(delivery["seal_ids"])


def test_gauge_short_delivery_rises_less_than_declared(injected: Generated) -> None:
    short = incident(injected, "gauge_short_delivery")
    dispatch, delivery = _pair(injected, short)
    assert 0 < 1 - _std(delivery) / _std(dispatch) < 0.005  # the paperwork agrees
    book = TankBook(injected.records, delivery["station_id"], delivery["tank_id"])
    missing = -book.unexplained(ts(delivery["started_at"]) - 900, ts(delivery["ended_at"]) + 900)
    assert missing / _std(delivery) == pytest.approx(0.06, abs=0.003)


def test_delivery_without_dispatch_comes_from_nowhere(injected: Generated) -> None:
    lone = incident(injected, "delivery_without_dispatch")
    delivery = next(d for d in injected.records["delivery"] if d["delivery_id"] == lone.subject)
    assert delivery["dispatch_id"] == lone.refs["dispatch_id"]
    assert delivery["dispatch_id"] not in {d["dispatch_id"] for d in injected.records["dispatch"]}
    assert delivery["seal_ids"] == []
    book = TankBook(injected.records, delivery["station_id"], delivery["tank_id"])
    assert abs(book.unexplained(t(lone) - 900, t(lone, "end") + 900)) < 25  # declared = in tank


def test_every_other_delivery_matches_its_dispatch(injected: Generated) -> None:
    tampered = {i.subject for i in injected.incidents if KINDS[i.kind].target == "delivery"}
    dispatches = {d["dispatch_id"]: d for d in injected.records["dispatch"]}
    for delivery in injected.records["delivery"]:
        if delivery["delivery_id"] in tampered:
            continue
        dispatch = dispatches[delivery["dispatch_id"]]
        assert dispatch["product"] == delivery["product"]
        assert dispatch["vehicle_plate"] == delivery["vehicle_plate"]
        assert dispatch["seal_ids"] == delivery["seal_ids"] and delivery["seals_intact"]
        assert abs(dispatch["density_kg_m3"] - delivery["density_kg_m3"]) < 2
        assert 0.0004 <= 1 - _std(delivery) / _std(dispatch) <= 0.0021


# -- licences ---------------------------------------------------------------------------


def beijing_date(value: str) -> date:
    return (datetime.fromisoformat(value.replace("Z", "+00:00")) + timedelta(hours=8)).date()


def test_expired_licence_while_still_selling(injected: Generated) -> None:
    lapse = incident(injected, "expired_licence")
    record = next(f for f in injected.records["facility"] if f["facility_id"] == lapse.station_id)
    licence = next(lic for lic in record["licences"] if lic["kind"] == lapse.subject)
    until = date.fromisoformat(licence["valid_until"])
    assert licence["status"] == "valid" and until.isoformat() == lapse.refs["valid_until"]
    sales = [s for s in injected.records["sale"] if s["station_id"] == lapse.station_id]
    after = [s for s in sales if beijing_date(s["started_at"]) > until]
    assert len(after) == lapse.params["sales_after"] > 100
    assert min(ts(s["started_at"]) for s in after) >= t(lapse)


def test_suspended_licence_is_filed_at_start(injected: Generated) -> None:
    lapse = incident(injected, "suspended_licence")
    versions = [f for f in injected.records["facility"] if f["facility_id"] == lapse.station_id]
    versions.sort(key=lambda f: f["updated_at"])
    assert len(versions) == 2
    assert ts(versions[1]["updated_at"]) == t(lapse)
    statuses = [{lic["kind"]: lic["status"] for lic in f["licences"]} for f in versions]
    assert statuses[0][str(lapse.subject)] == "valid"
    assert statuses[1][str(lapse.subject)] == "suspended"
    sales = [s for s in injected.records["sale"] if s["station_id"] == lapse.station_id]
    after = [s for s in sales if ts(s["started_at"]) >= t(lapse)]
    assert len(after) == lapse.params["sales_after"] > 100


def test_unlicensed_depot_keeps_dispatching(injected: Generated) -> None:
    lapse = incident(injected, "unlicensed_depot")
    assert lapse.station_id is None and lapse.depot_id
    versions = [f for f in injected.records["facility"] if f["facility_id"] == lapse.depot_id]
    assert any(lic["status"] == "suspended" for f in versions for lic in f["licences"])
    sent = [d for d in injected.records["dispatch"]
            if d["depot_id"] == lapse.depot_id and ts(d["dispatched_at"]) >= t(lapse)]  # fmt: skip
    assert sent and {d["dispatch_id"] for d in sent} == set(lapse.subject_aliases)


# -- vapour recovery --------------------------------------------------------------------


def test_al_drift_leaves_the_band_for_days(injected: Generated) -> None:
    drift = incident(injected, "al_drift")
    daily: dict[tuple[str, date], list[float]] = defaultdict(list)
    for v in injected.records["vapor"]:
        if v["station_id"] == drift.station_id:
            daily[(v["nozzle_id"], beijing_date(v["measured_at"]))].append(v["al_ratio"])
    low, high = AL_BAND
    means = {key: sum(values) / len(values) for key, values in daily.items()}
    out = sorted(day for (nozzle, day), m in means.items() if nozzle == drift.subject
                 and not low <= m <= high)  # fmt: skip
    assert len(out) >= 2 and (out[1] - out[0]).days == 1
    assert drift.params["days_out_of_band"] >= 2
    assert all(low <= m <= high for (n, _), m in means.items() if n != drift.subject)


def test_pressure_fault_is_out_of_range_only_in_its_window(injected: Generated) -> None:
    fault = incident(injected, "pressure_fault")
    samples = [v for v in injected.records["vapor"] if v["station_id"] == fault.station_id]
    a, b = t(fault), t(fault, "end")
    inside = [v["pressure_pa"] for v in samples if a <= ts(v["measured_at"]) < b]
    outside = [v["pressure_pa"] for v in samples if not a <= ts(v["measured_at"]) < b]
    assert len(inside) == fault.params["samples"] > 0 and min(inside) > 700
    assert outside and max(abs(p) for p in outside) <= CLEAN_PRESSURE_PA


# -- silence ----------------------------------------------------------------------------


def statuses(g: Generated, station: str) -> list[tuple[str, str, str]]:
    return sorted((s["at"], s["device_id"], s["status"])
                  for s in g.records["device_status"] if s["station_id"] == station)  # fmt: skip


def device_incident(g: Generated, kind: str, device: str) -> Incident:
    return next(i for i in g.incidents if i.kind == kind and i.subject == device)


def test_gauge_outage_reports_itself_and_its_readings_go_missing(injected: Generated) -> None:
    out = device_incident(injected, "device_outage", "ATG1")
    station, a, b = str(out.station_id), t(out), t(out, "end")
    assert in_window(injected.records["tank_reading"], station, "read_at", a, b) == []
    assert in_window(injected.records["tank_reading"], station, "read_at", b, b + HOUR)
    assert len(in_window(injected.records["sale"], station, "started_at", a, b)) > 20
    changes = [s for s in statuses(injected, station) if s[1] == "ATG1"]
    assert [s[2] for s in changes] == ["online", "fault", "online"]
    assert ts(changes[1][0]) == a and ts(changes[2][0]) == b
    assert out.refs["evidence"] == "outage"


def test_silenced_dispenser_hides_sales_its_totalizer_still_counts(injected: Generated) -> None:
    quiet = device_incident(injected, "deliberate_silence", "D1")
    station, a, b = str(quiet.station_id), t(quiet), t(quiet, "end")
    sales = in_window(injected.records["sale"], station, "started_at", a, b)
    assert sales and all(s["dispenser_id"] != "D1" for s in sales)  # the others still sell
    assert {s[2] for s in statuses(injected, station)} == {"online"}  # no status said a word
    by_nozzle = sales_by_nozzle(injected.records, station)
    gaps = [gap for n in quiet.subject_aliases for _, gap in totalizer_gaps(by_nozzle[n])]
    assert sum(gaps) == pytest.approx(quiet.params["hidden_volume_l"], abs=0.05)
    assert "totalizer_gap" in quiet.expected_rules and quiet.refs["evidence"] == "suppression"


def test_broken_dispenser_sells_nothing_and_loses_nothing(injected: Generated) -> None:
    broken = device_incident(injected, "device_outage", "D2")
    station, a, b = str(broken.station_id), t(broken), t(broken, "end")
    sales = in_window(injected.records["sale"], station, "started_at", a, b)
    assert sales and all(s["dispenser_id"] != "D2" for s in sales)
    by_nozzle = sales_by_nozzle(injected.records, station)
    assert all(totalizer_gaps(by_nozzle[n]) == [] for n in broken.subject_aliases)
    changes = [s[2] for s in statuses(injected, station) if s[1] == "D2"]
    assert changes == ["online", "offline", "online"]


@pytest.mark.parametrize("kind", ["deliberate_silence", "device_outage"])
def test_silent_gateway_hides_the_whole_station(injected: Generated, kind: str) -> None:
    quiet = device_incident(injected, kind, "GW1")
    station, a, b = str(quiet.station_id), t(quiet), t(quiet, "end")
    for record_type in ("sale", "tank_reading", "vapor", "delivery"):
        field = {"sale": "started_at", "tank_reading": "read_at", "vapor": "measured_at",
                 "delivery": "started_at"}[record_type]  # fmt: skip
        assert in_window(injected.records[record_type], station, field, a, b) == []
    expected = ["online"] + (["offline", "online"] if kind == "device_outage" else [])
    assert [s[2] for s in statuses(injected, station) if s[1] == "GW1"] == expected
    by_nozzle = sales_by_nozzle(injected.records, station)
    gaps = [gap for sales in by_nozzle.values() for _, gap in totalizer_gaps(sales)]
    assert sum(gaps) == pytest.approx(quiet.params["hidden_volume_l"], abs=0.05)  # it traded
    assert quiet.expected_rules == ("station_silent",)


def test_vapour_monitor_outage(injected: Generated) -> None:
    out = device_incident(injected, "device_outage", "VM1")
    station, a, b = str(out.station_id), t(out), t(out, "end")
    assert in_window(injected.records["vapor"], station, "measured_at", a, b) == []
    assert in_window(injected.records["vapor"], station, "measured_at", b, b + 2 * HOUR)
    assert out.expected_rules == ("device_silent",)


def test_a_station_without_incidents_is_clean(injected: Generated, clean_station: str) -> None:
    assert clean_station not in {i.station_id for i in injected.incidents}
    for sales in sales_by_nozzle(injected.records, clean_station).values():
        assert totalizer_gaps(sales) == []
    tanks = {tank for (sid, _), tank in nozzle_tank(injected.records).items()
             if sid == clean_station}  # fmt: skip
    start = min(ts(r["read_at"]) for r in injected.records["tank_reading"])
    for tank in tanks:
        book = TankBook(injected.records, clean_station, tank)
        unexplained = book.unexplained(start, start + 72 * HOUR)
        assert abs(unexplained) < 0.0035 * book.sold(start, start + 72 * HOUR) + 20
