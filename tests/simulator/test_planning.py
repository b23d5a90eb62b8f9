"""Resolving scenarios against the province and planning them at random."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest

from simulator import DEFAULT_START, KINDS, Scenario, plan_incidents, province_for
from simulator.planning import resolve

PROVINCE = province_for(seed=3, depots=2, stations=30, days=30.0)
END = DEFAULT_START + timedelta(days=30)


def test_plan_every_kind_inside_the_window_deterministically() -> None:
    first = plan_incidents(random.Random(1), PROVINCE, None, 2, DEFAULT_START, END)
    assert first == plan_incidents(random.Random(1), PROVINCE, None, 2, DEFAULT_START, END)
    assert first != plan_incidents(random.Random(2), PROVINCE, None, 2, DEFAULT_START, END)
    counts = Counter(s.kind for s in first)
    assert counts == {k: 2 for k in KINDS}  # two depots: two depot licence lapses too
    for s in first:
        assert DEFAULT_START + timedelta(hours=4) <= s.start < END
        assert s.end is None or s.start < s.end <= END
        spec = KINDS[s.kind]
        for name, ranges in spec.params.items():
            assert min(lo for lo, _ in ranges) <= s.params[name] <= max(hi for _, hi in ranges)
    hosts = [s.station_id for s in first if s.station_id]
    hosts += [s.options["resold_to"] for s in first if "resold_to" in s.options]
    assert len(hosts) > len(PROVINCE.stations)
    hosts = [s.station_id for s in first if s.station_id][: len(PROVINCE.stations) - 2]
    assert len(set(hosts)) == len(hosts)  # one incident per station until each has one


def test_plan_leaves_room_for_the_incident_to_show() -> None:
    plan = plan_incidents(random.Random(5), PROVINCE, ["leak", "shortfall", "expired_licence"], 5,
                          DEFAULT_START, END)  # fmt: skip
    for s in plan:
        if s.kind == "leak":
            assert s.end is not None and s.end - s.start >= timedelta(days=5)
        else:  # a delivery must still come; a lapsed licence needs days to trade on
            assert END - s.start >= timedelta(days=3)


def test_a_diverted_load_is_resold_into_a_tank_of_its_product() -> None:
    plan = plan_incidents(random.Random(7), PROVINCE, ["diverted_load"], 6, DEFAULT_START, END)
    resold = [s for s in plan if s.params.get("resold")]
    assert resold
    for s in resold:
        seller = PROVINCE.station(str(s.station_id))
        buyer = PROVINCE.station(s.options["resold_to"])
        product = next(t.product for t in seller.tanks if t.tank_id == s.subject)
        assert buyer is not seller and product in {t.product for t in buyer.tanks}


def test_resolve_fills_in_and_checks() -> None:
    rng = random.Random(0)
    station = PROVINCE.stations[0]
    leak = resolve(rng, PROVINCE, Scenario("leak", DEFAULT_START, station_id=station.facility_id))
    assert leak.subject in {t.tank_id for t in station.tanks}
    assert leak.params == {"rate_l_h": 1.0} and leak.depot_id is None
    short = resolve(rng, PROVINCE, Scenario("shortfall", DEFAULT_START,
                                            station_id=station.facility_id))  # fmt: skip
    assert short.subject is None and short.depot_id == station.depot_id  # any tank's next load
    depot = resolve(rng, PROVINCE, Scenario("unlicensed_depot", DEFAULT_START))
    assert depot.depot_id in {d.facility_id for d in PROVINCE.depots}
    assert depot.subject == "hazardous_chemicals"
    with pytest.raises(ValueError, match="unknown scenario kind"):
        resolve(rng, PROVINCE, Scenario("arson", DEFAULT_START))
    with pytest.raises(ValueError, match="unknown station_id"):
        resolve(rng, PROVINCE, Scenario("leak", DEFAULT_START, station_id="ST-NOPE"))
    with pytest.raises(ValueError, match="is not one of"):
        resolve(rng, PROVINCE, Scenario("leak", DEFAULT_START, station_id=station.facility_id,
                                        subject="T9"))  # fmt: skip
    with pytest.raises(ValueError, match="end must be after start"):
        resolve(rng, PROVINCE, Scenario("leak", DEFAULT_START, end=DEFAULT_START))
