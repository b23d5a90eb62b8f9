"""Depots at work: product batches, the tanker fleet, and dispatches answering the
stations' replenishment orders.

A dispatch's volume is observed litres at the loading temperature; in transit the load
loses 0.05–0.2 % (evaporation, clingage) and drifts a little toward the air
temperature, so the station receives slightly fewer litres at 20 °C than left.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from simulator.clock import HOUR_MS, MINUTE_MS, beijing_date
from simulator.province import Depot, Station, Truck
from simulator.tank import TankState, air_temperature_c, from_20c, ground_temperature_c, to_20c

#: Stations fill to this fraction of nominal capacity (observed litres).
FILL_TO = 0.88
#: Dispatched volumes are multiples of this, litres; smaller orders are not worth a trip.
VOLUME_STEP_L = 500.0
MIN_LOAD_L = 3_000.0
#: Density at 20 °C of a batch, kg/m³, by product family.
DENSITY_RANGE: dict[str, tuple[float, float]] = {
    "gasoline": (725.0, 745.0),
    "diesel": (830.0, 845.0),
}
PRODUCT_CODES: dict[str, str] = {
    "gasoline_92": "92",
    "gasoline_95": "95",
    "gasoline_98": "98",
    "diesel_0": "D0",
    "diesel_m10": "D10",
    "diesel_m20": "D20",
    "diesel_m35": "D35",
}


@dataclass(frozen=True)
class Batch:
    """A depot's product batch (one quality certificate) and when the next one starts."""

    batch_id: str
    density_kg_m3: float
    until_ms: int


@dataclass(frozen=True)
class Order:
    """A station's request to refill one tank; the depot can load from ``ready_ms``."""

    station: Station
    tank: TankState
    ready_ms: int


@dataclass(frozen=True)
class PendingDelivery:
    """A load on its way: what the station will record when it unloads, and what
    physically enters the tank (``physical_scale`` × the declared volume)."""

    dispatch_id: str | None
    tank: TankState
    vehicle_plate: str
    seal_ids: tuple[str, ...]
    volume_l: float  # observed litres at temperature_c, as declared
    temperature_c: float
    density_kg_m3: float  # as measured at the station
    start_ms: int
    end_ms: int
    seals_intact: bool = True
    physical_scale: float = 1.0  # < 1: less reached the tank than was declared


def loading_temperature_c(rng: random.Random, t_ms: int) -> float:
    """Temperature of a load at the depot's gantry at ``t_ms``, °C (0.1 °C)."""
    return round(
        0.7 * ground_temperature_c(t_ms) + 0.3 * air_temperature_c(t_ms) + rng.gauss(0, 0.5), 1
    )


@dataclass
class DepotState:
    """One depot while the simulation runs."""

    depot: Depot
    truck_free_ms: list[int]  # per truck of depot.trucks, when it is back and free
    orders: list[Order] = field(default_factory=list)
    batches: dict[str, Batch] = field(default_factory=dict)
    batch_seq: int = 0
    dispatch_seq: int = 0
    seal_serial: int = 0

    @classmethod
    def initial(cls, depot: Depot, start_ms: int) -> DepotState:
        return cls(depot, [start_ms] * len(depot.trucks))

    def batch(self, rng: random.Random, product: str, t_ms: int) -> Batch:
        """The batch of ``product`` loading at ``t_ms``; a new one every 12–36 h."""
        current = self.batches.get(product)
        if current is None or current.until_ms <= t_ms:
            self.batch_seq += 1
            family = "gasoline" if product.startswith("gasoline") else "diesel"
            code = PRODUCT_CODES[product]
            current = Batch(
                batch_id=f"B{self.depot.number:02d}-{code}-{beijing_date(t_ms)}-{self.batch_seq:03d}",
                density_kg_m3=round(rng.uniform(*DENSITY_RANGE[family]), 1),
                until_ms=t_ms + round(rng.uniform(12, 36) * HOUR_MS),
            )
            self.batches[product] = current
        return current

    def dispatch_ready(
        self, rng: random.Random, until_ms: int, horizon_end_ms: int
    ) -> list[tuple[dict[str, Any], PendingDelivery]]:
        """Load every order a truck can take by ``until_ms``; drop orders whose unloading
        would not finish by ``horizon_end_ms`` (so every dispatch is received in the
        window). Returns dispatch records (times in epoch ms) with the deliveries they become."""
        out = []
        waiting = []
        for order in sorted(self.orders, key=lambda o: o.ready_ms):
            truck_i = min(range(len(self.truck_free_ms)), key=self.truck_free_ms.__getitem__)
            t = max(order.ready_ms, self.truck_free_ms[truck_i])
            if t > until_ms:
                waiting.append(order)
                continue
            loaded = self._load(rng, order, truck_i, t, horizon_end_ms)
            if loaded is not None:
                out.append(loaded)
        self.orders = waiting
        return out

    def _load(
        self, rng: random.Random, order: Order, truck_i: int, t_ms: int, horizon_end_ms: int
    ) -> tuple[dict[str, Any], PendingDelivery] | None:
        tank, truck = order.tank, self.depot.trucks[truck_i]
        transit_ms = round(order.station.transit_min * rng.uniform(0.9, 1.15) * MINUTE_MS)
        start_ms = t_ms + transit_ms + round(rng.uniform(5, 15) * MINUTE_MS)
        end_ms = start_ms + round(rng.uniform(30, 60) * MINUTE_MS)
        room = FILL_TO * tank.spec.capacity_l - tank.observed_l(tank.content20_l, t_ms)
        volume = min(math.floor(room / VOLUME_STEP_L) * VOLUME_STEP_L, truck.capacity_l)
        if volume < MIN_LOAD_L:
            tank.order_pending = False  # refilled meanwhile: nothing worth a trip
            return None
        if end_ms > horizon_end_ms:
            return None  # would arrive after the simulated window; the order lapses
        self.truck_free_ms[truck_i] = end_ms + transit_ms + 30 * MINUTE_MS
        return self.make_load(
            rng, order.station.facility_id, tank, truck, volume, t_ms, start_ms, end_ms
        )

    def make_load(
        self,
        rng: random.Random,
        station_id: str,
        tank: TankState,
        truck: Truck,
        volume: float,
        t_ms: int,
        start_ms: int,
        end_ms: int,
    ) -> tuple[dict[str, Any], PendingDelivery]:
        """The dispatch record of ``volume`` litres of ``tank``'s product loaded at ``t_ms``
        on ``truck`` for ``station_id``, and the delivery it becomes when unloaded into
        ``tank`` from ``start_ms`` to ``end_ms``."""
        product = tank.spec.product
        batch = self.batch(rng, product, t_ms)
        self.dispatch_seq += 1
        dispatch_id = f"WB{self.depot.number:02d}{beijing_date(t_ms)}{self.dispatch_seq:04d}"
        seals = []
        for _ in range(math.ceil(volume / truck.compartment_l)):
            self.seal_serial += 1
            seals.append(f"LNS{self.depot.number:02d}{self.seal_serial:07d}")
        loading_c = loading_temperature_c(rng, t_ms)
        arrival_c = loading_c + 0.15 * (air_temperature_c(start_ms) - loading_c)
        arrival_c = round(arrival_c + rng.gauss(0, 0.2), 1)
        received20 = to_20c(volume, loading_c, product) * (1 - rng.uniform(0.0005, 0.002))
        record = {
            "dispatch_id": dispatch_id,
            "depot_id": self.depot.facility_id,
            "batch_id": batch.batch_id,
            "product": product,
            "station_id": station_id,
            "vehicle_plate": truck.plate,
            "seal_ids": list(seals),
            "volume_l": volume,
            "temperature_c": loading_c,
            "density_kg_m3": batch.density_kg_m3,
            "dispatched_at": t_ms,
        }
        pending = PendingDelivery(
            dispatch_id=dispatch_id,
            tank=tank,
            vehicle_plate=truck.plate,
            seal_ids=tuple(seals),
            volume_l=round(from_20c(received20, arrival_c, product), 1),
            temperature_c=arrival_c,
            density_kg_m3=round(batch.density_kg_m3 + rng.gauss(0, 0.3), 1),
            start_ms=start_ms,
            end_ms=end_ms,
        )
        return record, pending
