"""Where scenarios happen: resolving a scenario's targets against the province, and
planning incidents at random.

:func:`resolve` fills in what a :class:`~simulator.scenarios.Scenario` left out (station,
subject, parameters) and checks the rest against the registry. :func:`plan_incidents`
draws ``count_per_kind`` scenarios of each kind: stations from a shuffled pool (one
incident per station until every station has one), start times after a lead (so rules
have a baseline) and early enough that the incident can show, parameters from the
kind's ranges (``KINDS``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from simulator.clock import HOUR_MS, to_datetime, to_ms
from simulator.province import Province, Station
from simulator.scenarios import (
    CHEAPER_GRADE,
    DELIVERY_KINDS,
    KINDS,
    LICENCE_STATUS,
    REQUIRED_STATION_LICENCES,
    SUPPLY_KINDS,
    KindSpec,
    Scenario,
    parse_time,
)


def _station(province: Province, station_id: str | None, kind: str) -> Station:
    for s in province.stations:
        if s.facility_id == station_id:
            return s
    raise ValueError(f"scenario {kind}: unknown station_id {station_id!r}")


def _subjects(kind: str, station: Station) -> list[str]:
    """What a scenario of ``kind`` may act on at ``station``."""
    target = KINDS[kind].target
    if target == "tank":
        return [t.tank_id for t in station.tanks]
    if target == "delivery":
        if kind == "product_swap":
            return [t.tank_id for t in station.tanks if t.product in CHEAPER_GRADE]
        return [t.tank_id for t in station.tanks]
    if target == "nozzle":
        return [n.nozzle_id for n in station.nozzles]
    if target == "gasoline_nozzle":
        products = {t.tank_id: t.product for t in station.tanks}
        return [n.nozzle_id for n in station.nozzles if products[n.tank_id].startswith("gasoline")]
    if target == "dispenser":
        return list(station.dispenser_ids)
    if target == "device":
        return [d for d, _ in station.devices()]
    if kind in LICENCE_STATUS:
        return list(REQUIRED_STATION_LICENCES)
    if kind == "diverted_load":
        return [t.tank_id for t in station.tanks]
    return []


def resolve(rng: random.Random, province: Province, scenario: Scenario) -> Scenario:
    """``scenario`` with its station (or depot), subject and parameters filled in and
    checked against the province; ValueError names what is wrong."""
    spec = KINDS.get(scenario.kind)
    if spec is None:
        raise ValueError(f"unknown scenario kind {scenario.kind!r}; known: {sorted(KINDS)}")
    if scenario.end is not None and parse_time(scenario.end) <= parse_time(scenario.start):
        raise ValueError(f"scenario {scenario.kind}: end must be after start")
    params = {**spec.defaults, **scenario.params}
    if spec.target == "depot":
        depot = scenario.depot_id or rng.choice(province.depots).facility_id
        if depot not in {d.facility_id for d in province.depots}:
            raise ValueError(f"scenario {scenario.kind}: unknown depot_id {depot!r}")
        licence = scenario.subject or "hazardous_chemicals"
        return replace(scenario, depot_id=depot, subject=licence, params=params)
    station_id = scenario.station_id or rng.choice(province.stations).facility_id
    station = _station(province, station_id, scenario.kind)
    choices = _subjects(scenario.kind, station)
    subject = scenario.subject
    if subject is None and choices and spec.target != "delivery":
        subject = rng.choice(choices)
    if scenario.kind == "product_swap" and not choices:
        raise ValueError(f"product_swap: station {station_id} has no tank of a dearer grade")
    if subject is not None and subject not in choices:
        raise ValueError(
            f"scenario {scenario.kind}: {subject!r} is not one of {choices} at {station_id}"
        )
    depot_id = station.depot_id if scenario.kind in SUPPLY_KINDS else None
    return replace(
        scenario, station_id=station_id, depot_id=depot_id, subject=subject, params=params
    )


# -- random planning -------------------------------------------------------------------


def _draw(rng: random.Random, spec: KindSpec) -> dict[str, float]:
    values = {}
    for name, ranges in spec.params.items():
        lo, hi = rng.choice(ranges)
        values[name] = (
            float(rng.randint(int(lo), int(hi)))
            if name in spec.integers
            else round(rng.uniform(lo, hi), 3)
        )
    return values


def _window(rng: random.Random, kind: str, start_ms: int, end_ms: int) -> tuple[int, int | None]:
    """A start (and end, for kinds that last a while) inside ``start_ms``–``end_ms``: after
    a lead (so rules have a baseline) and early enough that the incident can show (a
    delivery must still come, a dispatch must become overdue)."""
    span = end_ms - start_ms
    lead = min(24 * HOUR_MS, span // 6)
    tail = 0
    if kind in DELIVERY_KINDS:
        tail = min(3 * 24 * HOUR_MS, span * 2 // 5)
    elif KINDS[kind].target in ("depot", "station") and KINDS[kind].duration_h is None:
        tail = span // 3  # a licence lapse: leave time to trade without one
    duration_h = KINDS[kind].duration_h
    if duration_h is None:
        latest = end_ms - tail - HOUR_MS
        return rng.randint(start_ms + lead, max(start_ms + lead, latest)), None
    duration = round(rng.uniform(*duration_h) * HOUR_MS)
    duration = max(min(duration, span - lead - HOUR_MS), min(HOUR_MS, span // 4))
    latest = end_ms - duration
    begin = rng.randint(start_ms + lead, max(start_ms + lead, latest))
    return begin, min(begin + duration, end_ms)


def plan_incidents(
    rng: random.Random,
    province: Province,
    kinds: Sequence[str] | None = None,
    count_per_kind: int = 1,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Scenario]:
    """``count_per_kind`` scenarios of each of ``kinds`` (default: every kind) between
    ``start`` and ``end``, at stations (or depots) chosen by ``rng``: each station hosts
    one incident until every station has one; each depot at most one licence incident.
    Parameters are drawn from the kind's ranges. Deterministic for a given ``rng`` state."""
    if start is None or end is None:
        raise ValueError("plan_incidents needs the window: start and end")
    start_ms, end_ms = to_ms(start), to_ms(end)
    chosen = list(kinds) if kinds is not None else list(KINDS)
    for kind in chosen:
        if kind not in KINDS:
            raise ValueError(f"unknown scenario kind {kind!r}; known: {sorted(KINDS)}")
    pool: list[Station] = []
    depots = list(province.depots)
    rng.shuffle(depots)
    scenarios = []
    for kind in chosen:
        for _ in range(count_per_kind):
            begin, finish = _window(rng, kind, start_ms, end_ms)
            at, until = to_datetime(begin), to_datetime(finish) if finish else None
            params = _draw(rng, KINDS[kind])
            if KINDS[kind].target == "depot":
                if not depots:
                    continue  # every depot has one already
                depot = depots.pop()
                scenarios.append(
                    Scenario(kind, at, depot_id=depot.facility_id, end=until, params=params)
                )
                continue
            station = _next_station(rng, province, pool, kind)
            options: dict[str, str] = {}
            if kind == "device_outage":
                options["status"] = rng.choice(("offline", "offline", "fault"))
            scenario = resolve(
                rng,
                province,
                Scenario(
                    kind,
                    at,
                    station_id=station.facility_id,
                    end=until,
                    params=params,
                    options=options,
                ),
            )
            if kind == "diverted_load" and params.get("resold"):
                product = next(t.product for t in station.tanks if t.tank_id == scenario.subject)
                buyer = _buyer(rng, province, pool, station, product)
                if buyer is None:
                    scenario = replace(scenario, params={**scenario.params, "resold": 0.0})
                else:
                    scenario = replace(scenario, options={"resold_to": buyer.facility_id})
            scenarios.append(scenario)
    return scenarios


def _next_station(
    rng: random.Random, province: Province, pool: list[Station], kind: str
) -> Station:
    """The next station of a shuffled pool (refilled when empty) that can host ``kind``."""
    skipped: list[Station] = []
    for _ in range(2 * len(province.stations) + 1):
        if not pool:
            pool.extend(province.stations)
            rng.shuffle(pool)
        station = pool.pop()
        if kind != "product_swap" or _subjects(kind, station):
            pool[:0] = skipped  # the ones that could not host it stay in the pool, last
            return station
        skipped.append(station)
    raise ValueError(f"no station of the province can host {kind}")


def _buyer(
    rng: random.Random, province: Province, pool: list[Station], seller: Station, product: str
) -> Station | None:
    """A station other than ``seller`` with a ``product`` tank, from the pool if it can."""
    for station in reversed(pool):
        if station is not seller and any(t.product == product for t in station.tanks):
            pool.remove(station)
            return station
    others = [
        s
        for s in province.stations
        if s is not seller and any(t.product == product for t in s.tanks)
    ]
    return rng.choice(others) if others else None
