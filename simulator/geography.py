"""The 14 prefecture-level cities of Liaoning and road distances between them.

Each city carries its administrative division code (GB/T 2260), its licence-plate
prefix and the one-character abbreviation used on licence numbers, plus an
approximate centre (degrees) and a weight for how many stations it gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Detour factor from great-circle distance to road distance (dimensionless).
ROAD_FACTOR = 1.3
#: Average tanker speed, km/h.
TANKER_SPEED_KMH = 55.0
#: Fixed time per trip for gates, weighbridge and city traffic, minutes.
TRIP_OVERHEAD_MIN = 20.0


@dataclass(frozen=True)
class City:
    """A prefecture-level city."""

    name: str  # English name, as in the SPEC
    code: str  # administrative division code, 6 digits
    plate: str  # licence-plate prefix, e.g. 辽A
    abbr: str  # abbreviation on licence numbers, e.g. 沈
    lat: float  # degrees north
    lon: float  # degrees east
    weight: float  # relative share of the province's stations


CITIES: tuple[City, ...] = (
    City("Shenyang", "210100", "辽A", "沈", 41.80, 123.43, 3.0),
    City("Dalian", "210200", "辽B", "大", 38.91, 121.61, 2.8),
    City("Anshan", "210300", "辽C", "鞍", 41.11, 122.99, 1.3),
    City("Fushun", "210400", "辽D", "抚", 41.88, 123.96, 0.9),
    City("Benxi", "210500", "辽E", "本", 41.29, 123.77, 0.6),
    City("Dandong", "210600", "辽F", "丹", 40.13, 124.39, 0.9),
    City("Jinzhou", "210700", "辽G", "锦", 41.10, 121.13, 1.1),
    City("Yingkou", "210800", "辽H", "营", 40.67, 122.24, 0.9),
    City("Fuxin", "210900", "辽J", "阜", 42.02, 121.67, 0.7),
    City("Liaoyang", "211000", "辽K", "辽", 41.27, 123.24, 0.7),
    City("Panjin", "211100", "辽L", "盘", 41.12, 122.07, 0.6),
    City("Tieling", "211200", "辽M", "铁", 42.29, 123.84, 0.9),
    City("Chaoyang", "211300", "辽N", "朝", 41.57, 120.45, 1.0),
    City("Huludao", "211400", "辽P", "葫", 40.71, 120.84, 0.9),
)

#: Cities that get a depot first, in order (the province's main oil depots).
DEPOT_CITY_ORDER: tuple[str, ...] = (
    "Shenyang", "Dalian", "Jinzhou", "Yingkou", "Tieling", "Dandong", "Anshan",
    "Fushun", "Chaoyang", "Fuxin", "Panjin", "Liaoyang", "Benxi", "Huludao",
)  # fmt: skip

#: Cities whose stations stock −20 diesel rather than −10 in winter (the colder north-east).
COLD_CITIES: frozenset[str] = frozenset({"Tieling", "Fushun", "Fuxin", "Benxi"})

_BY_NAME = {c.name: c for c in CITIES}


def city(name: str) -> City:
    """The city called ``name`` (English); KeyError when it is not one of the 14."""
    return _BY_NAME[name]


def road_km(a: City, b: City) -> float:
    """Approximate road distance between two city centres, km (5 km within a city)."""
    if a == b:
        return 5.0
    la1, lo1, la2, lo2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h)) * ROAD_FACTOR


def transit_minutes(a: City, b: City) -> float:
    """Typical tanker transit time between two cities, minutes."""
    return TRIP_OVERHEAD_MIN + road_km(a, b) / TANKER_SPEED_KMH * 60.0
