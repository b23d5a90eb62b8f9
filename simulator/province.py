"""The registry of a simulated province: depots with their tanker fleets, stations with
their tanks, dispensers, nozzles and licences, and the ``facility`` records for them.

Units: capacities and volumes in litres, flow rates in L/min, times in milliseconds
since the Unix epoch (UTC).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from simulator.clock import DAY_MS, to_datetime, to_ms
from simulator.geography import (
    CITIES,
    COLD_CITIES,
    DEPOT_CITY_ORDER,
    City,
    city,
    transit_minutes,
)
from simulator.licences import (
    DEPOT_LICENCE_KINDS,
    STATION_LICENCE_KINDS,
    Licence,
    issue_licences,
)

STATION_OPERATORS: tuple[tuple[str, float], ...] = (
    ("Sinopec", 0.42),
    ("PetroChina", 0.36),
    ("CNOOC", 0.04),
    ("Liaoning Huaxin Petroleum", 0.08),
    ("Shenhai Energy", 0.05),
    ("Dongfang Oil Co.", 0.05),
)
DEPOT_OPERATORS: tuple[str, ...] = ("PetroChina", "Sinopec")
#: Nominal tank capacities by product family, litres.
_CAPACITIES: dict[str, tuple[int, ...]] = {
    "gasoline_92": (30_000, 40_000, 50_000),
    "gasoline_95": (20_000, 25_000, 30_000),
    "gasoline_98": (20_000,),
    "diesel": (25_000, 30_000, 40_000, 50_000),
}
#: Relative demand per product (before the per-station diesel factor).
_BASE_DEMAND: dict[str, float] = {"gasoline_92": 1.0, "gasoline_95": 0.5, "gasoline_98": 0.07}
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class TankSpec:
    """A station tank: nominal capacity in litres and its share of the station's sales."""

    tank_id: str
    product: str
    capacity_l: float
    demand_share: float  # fraction of the station's sold volume drawn from this tank


@dataclass(frozen=True)
class NozzleSpec:
    """A dispenser nozzle, the tank it draws from and its nominal flow rate (L/min)."""

    nozzle_id: str
    dispenser_id: str
    tank_id: str
    flow_lpm: float


@dataclass(frozen=True)
class Truck:
    """A depot's tanker: licence plate and compartments (count × litres each)."""

    plate: str
    compartments: int
    compartment_l: float

    @property
    def capacity_l(self) -> float:
        return self.compartments * self.compartment_l


@dataclass(frozen=True)
class Depot:
    """An oil depot (油库) with its tanker fleet."""

    facility_id: str
    number: int  # 1-based index, used in waybill and seal numbers
    name: str
    city: City
    operator: str
    updated_at_ms: int
    licences: tuple[Licence, ...]
    trucks: tuple[Truck, ...]


@dataclass(frozen=True)
class Station:
    """A retail station, the depot that supplies it and its typical daily sales (L/day)."""

    facility_id: str
    number: int  # 1-based index, used in invoice numbers
    name: str
    city: City
    operator: str
    updated_at_ms: int
    licences: tuple[Licence, ...]
    tanks: tuple[TankSpec, ...]
    nozzles: tuple[NozzleSpec, ...]
    depot_id: str
    transit_min: float  # typical tanker transit time from the depot, minutes
    daily_volume_l: float

    @property
    def dispenser_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n.dispenser_id for n in self.nozzles))

    def devices(self) -> list[tuple[str, str]]:
        """(device_id, device_kind) of every reporting device at the station."""
        fixed = [("ATG1", "atg"), ("VM1", "vapor_monitor"), ("GW1", "gateway")]
        return fixed[:1] + [(d, "dispenser") for d in self.dispenser_ids] + fixed[1:]


@dataclass(frozen=True)
class Province:
    """Every registered facility of the simulated province."""

    depots: tuple[Depot, ...]
    stations: tuple[Station, ...]

    def depot(self, depot_id: str) -> Depot:
        return next(d for d in self.depots if d.facility_id == depot_id)

    def station(self, station_id: str) -> Station:
        return next(s for s in self.stations if s.facility_id == station_id)


def _updated_at(rng: random.Random, start_ms: int, licences: tuple[Licence, ...]) -> int:
    """When the current registration was filed: a past working day (09:00–17:00 Beijing
    time) after the newest licence was issued and at least a day before ``start_ms``."""
    newest = max(lic.valid_from for lic in licences)
    first_day = max(to_ms(datetime.combine(newest, time(), UTC)), start_ms - 400 * DAY_MS)
    last_day = start_ms - start_ms % DAY_MS - DAY_MS
    day = first_day - first_day % DAY_MS
    day += rng.randint(0, max((last_day - day) // DAY_MS, 0)) * DAY_MS
    return day + rng.randint(1 * 3600, 9 * 3600) * 1000


def _station_cities(rng: random.Random, count: int) -> list[City]:
    """Every city first (when there are enough stations), the rest weighted by size."""
    chosen = list(CITIES[:count]) if count < len(CITIES) else list(CITIES)
    weights = [c.weight for c in CITIES]
    chosen += rng.choices(CITIES, weights=weights, k=count - len(chosen))
    return sorted(chosen, key=CITIES.index)


def _tank_products(rng: random.Random, c: City) -> list[str]:
    if c.name in COLD_CITIES:
        diesel = rng.choices(["diesel_m20", "diesel_m10", "diesel_m35"], [0.6, 0.3, 0.1])[0]
    else:
        diesel = rng.choices(["diesel_m10", "diesel_0", "diesel_m20"], [0.5, 0.4, 0.1])[0]
    layout = rng.choices(
        [
            ["gasoline_92", diesel],
            ["gasoline_92", "gasoline_95", diesel],
            ["gasoline_92", "gasoline_95", "gasoline_98", diesel],
            ["gasoline_92", "gasoline_92", "gasoline_95", diesel],
        ],
        weights=[0.2, 0.5, 0.2, 0.1],
    )[0]
    return list(layout)


def _tanks(rng: random.Random, c: City) -> tuple[TankSpec, ...]:
    products = _tank_products(rng, c)
    diesel_factor = rng.uniform(0.4, 1.0)
    demand = [_BASE_DEMAND.get(p, diesel_factor) / products.count(p) for p in products]
    total = sum(demand)
    return tuple(
        TankSpec(
            tank_id=f"T{i}",
            product=p,
            capacity_l=float(rng.choice(_CAPACITIES.get(p, _CAPACITIES["diesel"]))),
            demand_share=d / total,
        )
        for i, (p, d) in enumerate(zip(products, demand, strict=True), start=1)
    )


def _nozzles(rng: random.Random, tanks: tuple[TankSpec, ...]) -> tuple[NozzleSpec, ...]:
    """2–4 dispensers, each with one nozzle per tank it serves; every tank is served."""
    n_disp = rng.randint(2, 3) + (1 if len(tanks) == 4 and rng.random() < 0.4 else 0)
    served: list[list[TankSpec]] = []
    for _ in range(n_disp):
        k = min(len(tanks), rng.randint(2, 4))
        served.append(sorted(rng.sample(tanks, k), key=tanks.index))
    for tank in tanks:
        if not any(tank in s for s in served):
            rng.choice(served).append(tank)
    nozzles: list[NozzleSpec] = []
    for d, tank_list in enumerate(served, start=1):
        for tank in tank_list:
            lo, hi = (30.0, 42.0) if tank.product.startswith("gasoline") else (36.0, 48.0)
            nozzles.append(
                NozzleSpec(f"N{len(nozzles) + 1:02d}", f"D{d}", tank.tank_id, rng.uniform(lo, hi))
            )
    return tuple(nozzles)


def _fleet(rng: random.Random, c: City, size: int) -> tuple[Truck, ...]:
    plates: list[str] = []
    while len(plates) < size:
        plate = f"{c.plate}{rng.choice(_PLATE_LETTERS)}{rng.randint(1000, 9999)}"
        if plate not in plates:
            plates.append(plate)
    return tuple(Truck(p, rng.choice((4, 5)), rng.choice((7_000.0, 8_000.0))) for p in plates)


def _nearest(depots: list[Depot], c: City) -> Depot:
    """The depot with the shortest tanker transit to ``c``."""
    return min(depots, key=lambda d: transit_minutes(d.city, c))


def build_province(
    rng: random.Random, *, depots: int, stations: int, start_ms: int, end_ms: int
) -> Province:
    """Register ``depots`` depots and ``stations`` stations whose licences are all valid
    over the window ``start_ms``–``end_ms``."""
    if depots < 1 or stations < 1:
        raise ValueError("a province needs at least one depot and one station")
    licence_window: tuple[date, date] = (
        to_datetime(start_ms).date(),
        to_datetime(end_ms).date(),
    )
    depot_list = []
    for i in range(1, depots + 1):
        c = city(DEPOT_CITY_ORDER[(i - 1) % len(DEPOT_CITY_ORDER)])
        operator = DEPOT_OPERATORS[(i - 1) % len(DEPOT_OPERATORS)]
        licences = issue_licences(rng, DEPOT_LICENCE_KINDS, c, licence_window)
        depot_list.append(
            Depot(
                facility_id=f"DP-{c.code}-{i:02d}",
                number=i,
                name=f"{operator} {c.name} Oil Depot No.{i}",
                city=c,
                operator=operator,
                updated_at_ms=_updated_at(rng, start_ms, licences),
                licences=licences,
                trucks=_fleet(rng, c, max(4, 2 + stations // depots)),
            )
        )
    station_list = []
    names, weights = zip(*STATION_OPERATORS, strict=True)
    for i, c in enumerate(_station_cities(rng, stations), start=1):
        operator = rng.choices(names, weights)[0]
        depot = _nearest(depot_list, c)
        tanks = _tanks(rng, c)
        licences = issue_licences(rng, STATION_LICENCE_KINDS, c, licence_window)
        station_list.append(
            Station(
                facility_id=f"ST-{c.code}-{i:04d}",
                number=i,
                name=f"{operator} {c.name} No.{i} Station",
                city=c,
                operator=operator,
                updated_at_ms=_updated_at(rng, start_ms, licences),
                licences=licences,
                tanks=tanks,
                nozzles=_nozzles(rng, tanks),
                depot_id=depot.facility_id,
                transit_min=transit_minutes(depot.city, c),
                daily_volume_l=rng.uniform(7_000.0, 14_000.0),
            )
        )
    return Province(tuple(depot_list), tuple(station_list))


def _licence_records(licences: tuple[Licence, ...]) -> list[dict[str, Any]]:
    return [
        {
            "kind": lic.kind,
            "number": lic.number,
            "valid_from": lic.valid_from,
            "valid_until": lic.valid_until,
            "status": lic.status,
        }
        for lic in licences
    ]


def depot_record(d: Depot) -> dict[str, Any]:
    """The ``facility`` record of a depot (``updated_at`` in epoch ms, dates as ``date``)."""
    return {
        "facility_id": d.facility_id,
        "kind": "depot",
        "name": d.name,
        "city": d.city.name,
        "operator": d.operator,
        "updated_at": d.updated_at_ms,
        "tanks": [],
        "nozzles": [],
        "licences": _licence_records(d.licences),
    }


def station_record(s: Station) -> dict[str, Any]:
    """The ``facility`` record of a station (``updated_at`` in epoch ms, dates as ``date``)."""
    return {
        "facility_id": s.facility_id,
        "kind": "station",
        "name": s.name,
        "city": s.city.name,
        "operator": s.operator,
        "updated_at": s.updated_at_ms,
        "tanks": [
            {"tank_id": t.tank_id, "product": t.product, "capacity_l": t.capacity_l}
            for t in s.tanks
        ],
        "nozzles": [
            {"nozzle_id": n.nozzle_id, "dispenser_id": n.dispenser_id, "tank_id": n.tank_id}
            for n in s.nozzles
        ],
        "licences": _licence_records(s.licences),
    }


def facility_records(province: Province) -> list[dict[str, Any]]:
    """One ``facility`` record per depot and station."""
    return [depot_record(d) for d in province.depots] + [
        station_record(s) for s in province.stations
    ]
