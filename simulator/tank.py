"""A station's underground tank: geometry, temperature, contents and its ATG readings.

The tank keeps its contents as *standard volume* (litres at 20 °C), which is what is
conserved; what a gauge or meter sees is the observed volume at the fuel's own
temperature, ``V_obs = V_20 · (1 + β·(T − 20))`` with a linear expansion coefficient β
per product family (a simplification of the GB/T 1885 / ASTM D1250 tables).

Noise and losses a wetstock analyst expects in clean data: the gauge's level, volume and
temperature errors (``LEVEL_NOISE_MM``, ``VOLUME_NOISE_REL``, ``TEMPERATURE_NOISE_C``), the
fuel's seasonal and lagged diurnal temperature swing with its thermal expansion, and a
small evaporation loss per tank (``EVAPORATION_L_H``). A leak, when injected, is a further
continuous loss (``leak_l_h``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from simulator.clock import day_of_year, local_hour
from simulator.province import TankSpec

#: Volumetric expansion coefficient, 1/°C.
EXPANSION_PER_C: dict[str, float] = {"gasoline": 0.00120, "diesel": 0.00083}
#: Length of every tank's cylinder, metres (the diameter follows from the capacity).
TANK_LENGTH_M = 7.0
#: ATG noise: level (mm), relative volume, temperature (°C): sd and hard bound.
LEVEL_NOISE_MM = (0.4, 1.0)
VOLUME_NOISE_REL = (0.0002, 0.0005)
TEMPERATURE_NOISE_C = (0.03, 0.1)
#: Evaporation from a tank, litres at 20 °C per hour, drawn uniformly per tank. Stage I/II
#: vapour recovery keeps it small: the excess air of A/L > 1 and the tank's breathing vent
#: a few hundred millilitres of gasoline a day (≈ 0.005–0.02 % of a tank's throughput),
#: diesel next to nothing. Well below the smallest leak an SIR test is asked to find
#: (0.2 gal/h ≈ 0.76 L/h).
EVAPORATION_L_H: dict[str, tuple[float, float]] = {
    "gasoline": (0.01, 0.04),
    "diesel": (0.0, 0.004),
}


def evaporation_rate(rng: random.Random, product: str) -> float:
    """A tank's evaporation loss, litres at 20 °C per hour."""
    family = "gasoline" if product.startswith("gasoline") else "diesel"
    return rng.uniform(*EVAPORATION_L_H[family])


def expansion_coefficient(product: str) -> float:
    """β of ``product``, 1/°C."""
    return EXPANSION_PER_C["gasoline" if product.startswith("gasoline") else "diesel"]


def to_20c(volume_l: float, temperature_c: float, product: str) -> float:
    """Observed litres at ``temperature_c`` → litres at 20 °C."""
    return volume_l / (1.0 + expansion_coefficient(product) * (temperature_c - 20.0))


def from_20c(volume20_l: float, temperature_c: float, product: str) -> float:
    """Litres at 20 °C → observed litres at ``temperature_c``."""
    return volume20_l * (1.0 + expansion_coefficient(product) * (temperature_c - 20.0))


def ground_temperature_c(t_ms: int) -> float:
    """Seasonal soil temperature at tank depth (~1.5 m) in Liaoning, °C (≈9 °C in late
    November, 3 °C in February, 18 °C in August)."""
    return 10.5 + 7.5 * math.cos(2 * math.pi * (day_of_year(t_ms) - 220) / 365.25)


def air_temperature_c(t_ms: int) -> float:
    """Air temperature in Liaoning, °C: seasonal mean (≈0 °C in late November) plus a
    ±5 °C diurnal swing peaking at 15:00 Beijing time."""
    seasonal = 8.5 + 16.0 * math.cos(2 * math.pi * (day_of_year(t_ms) - 200) / 365.25)
    return seasonal + 5.0 * math.sin(2 * math.pi * (local_hour(t_ms) - 9) / 24)


@dataclass(frozen=True)
class TankGeometry:
    """A horizontal cylinder of fixed length; all lengths in millimetres."""

    capacity_l: float
    length_mm: float = TANK_LENGTH_M * 1000
    radius_mm: float = field(init=False)

    def __post_init__(self) -> None:
        radius = math.sqrt(self.capacity_l * 1e6 / (math.pi * self.length_mm))
        object.__setattr__(self, "radius_mm", radius)

    @property
    def diameter_mm(self) -> float:
        return 2 * self.radius_mm

    def volume_at(self, level_mm: float) -> float:
        """Litres below a liquid level of ``level_mm`` (0 … diameter)."""
        r = self.radius_mm
        h = min(max(level_mm, 0.0), 2 * r)
        area = r * r * math.acos((r - h) / r) - (r - h) * math.sqrt(max(2 * r * h - h * h, 0.0))
        return area * self.length_mm / 1e6

    def level_for(self, volume_l: float) -> float:
        """Liquid level in mm holding ``volume_l`` litres (to ~0.0001 mm): Newton's method
        on the segment area, kept inside a bisection bracket where the slope vanishes."""
        r, length = self.radius_mm, self.length_mm
        lo, hi = 0.0, 2 * r
        target = min(max(volume_l, 0.0), self.capacity_l)
        h = target / self.capacity_l * hi
        for _ in range(40):
            error = self.volume_at(h) - target
            if error < 0:
                lo = h
            else:
                hi = h
            slope = 2 * math.sqrt(max(2 * r * h - h * h, 0.0)) * length / 1e6  # L per mm
            step = error / slope if slope > 0 else math.inf
            nxt = h - step
            if not lo < nxt < hi:
                nxt = (lo + hi) / 2
            if abs(nxt - h) < 1e-5:
                return nxt
            h = nxt
        return h


@dataclass
class Flow:
    """Fuel entering (+) or leaving (−) the tank linearly between two times, litres at 20 °C."""

    start_ms: int
    end_ms: int
    volume20_l: float

    def remaining(self, t_ms: int) -> float:
        """The part of the flow not yet through the tank at ``t_ms``, litres at 20 °C."""
        if t_ms <= self.start_ms:
            return self.volume20_l
        if t_ms >= self.end_ms:
            return 0.0
        return self.volume20_l * (self.end_ms - t_ms) / (self.end_ms - self.start_ms)


def _bounded_gauss(rng: random.Random, sd_and_bound: tuple[float, float]) -> float:
    sd, bound = sd_and_bound
    return max(-bound, min(bound, rng.gauss(0.0, sd)))


@dataclass
class TankState:
    """One tank while the simulation runs. ``content20_l`` already counts every flow
    that has been committed, including the parts still in progress."""

    station_id: str
    spec: TankSpec
    content20_l: float
    water_mm: float
    temperature_offset_c: float
    diurnal_amplitude_c: float
    geometry: TankGeometry
    flows: list[Flow] = field(default_factory=list)
    order_pending: bool = False
    evaporation_l_h: float = 0.0  # litres at 20 °C per hour
    leak_l_h: float = 0.0  # litres at 20 °C per hour; 0 unless a leak is injected
    leaked20_l: float = 0.0  # what the leak has taken so far, litres at 20 °C

    @classmethod
    def initial(cls, rng: random.Random, station_id: str, spec: TankSpec) -> TankState:
        """A tank 38–85 % full with a little water and its own thermal character."""
        diesel = not spec.product.startswith("gasoline")
        return cls(
            station_id=station_id,
            spec=spec,
            content20_l=spec.capacity_l * rng.uniform(0.38, 0.85),
            water_mm=rng.uniform(5.0, 25.0) if diesel else rng.uniform(0.0, 12.0),
            temperature_offset_c=rng.uniform(-1.0, 1.0),
            diurnal_amplitude_c=rng.uniform(0.3, 1.0),
            geometry=TankGeometry(spec.capacity_l),
        )

    def temperature_c(self, t_ms: int) -> float:
        """Fuel temperature, °C: soil temperature plus a small, lagged diurnal swing."""
        swing = math.sin(2 * math.pi * (local_hour(t_ms) - 10) / 24)
        return (
            ground_temperature_c(t_ms)
            + self.temperature_offset_c
            + self.diurnal_amplitude_c * swing
        )

    def observed_l(self, volume20_l: float, t_ms: int) -> float:
        """Litres at 20 °C → litres at the tank's temperature at ``t_ms``."""
        return from_20c(volume20_l, self.temperature_c(t_ms), self.spec.product)

    def commit(self, flow: Flow) -> None:
        """Book a sale (negative) or a delivery (positive) against the tank."""
        self.content20_l += flow.volume20_l
        self.flows.append(flow)

    def lose(self, start_ms: int, end_ms: int) -> None:
        """Evaporation and any leak between ``start_ms`` and ``end_ms``, as one linear flow."""
        hours = (end_ms - start_ms) / 3_600_000
        leaked = self.leak_l_h * hours
        lost = self.evaporation_l_h * hours + leaked
        if lost > 0:
            self.leaked20_l += leaked
            self.commit(Flow(start_ms, end_ms, -lost))

    def content20_at(self, t_ms: int) -> float:
        """Fuel physically in the tank at ``t_ms``, litres at 20 °C."""
        return self.content20_l - sum(f.remaining(t_ms) for f in self.flows)

    def available20_at(self, t_ms: int) -> float:
        """What may still be sold after ``t_ms``: the committed content less deliveries
        not yet in the tank, litres at 20 °C."""
        incoming = sum(f.remaining(t_ms) for f in self.flows if f.volume20_l > 0)
        return self.content20_l - incoming

    def reading(self, rng: random.Random, t_ms: int) -> tuple[dict[str, Any], float]:
        """The ATG reading at ``t_ms`` (times in epoch ms) and the true observed volume (L)."""
        self.flows = [f for f in self.flows if f.end_ms > t_ms]
        temperature = self.temperature_c(t_ms)
        observed = from_20c(self.content20_at(t_ms), temperature, self.spec.product)
        water_l = self.geometry.volume_at(self.water_mm)
        level = self.geometry.level_for(observed + water_l) + _bounded_gauss(rng, LEVEL_NOISE_MM)
        record = {
            "station_id": self.station_id,
            "tank_id": self.spec.tank_id,
            "product": self.spec.product,
            "read_at": t_ms,
            "level_mm": round(max(level, 0.0), 1),
            "volume_l": round(observed * (1.0 + _bounded_gauss(rng, VOLUME_NOISE_REL)), 1),
            "water_mm": round(max(self.water_mm + rng.gauss(0.0, 0.1), 0.0), 1),
            "temperature_c": round(temperature + _bounded_gauss(rng, TEMPERATURE_NOISE_C), 2),
        }
        return record, observed
