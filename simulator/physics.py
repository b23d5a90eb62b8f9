"""The time-stepped simulation of a province whose physics add up.

Every reading interval (default 15 min) the depots load the orders a truck can take,
each station serves the customers who arrived since the last step, every tank gauge
reads, and each tank loses what evaporates (and, when injected, what leaks) over the
next interval. A tank that falls below ``REORDER_AT`` of its capacity orders a refill
from its depot; the load arrives after the transit time and is unloaded in 30–60 min.

Conservation: each tank's content is kept in litres at 20 °C; sales, deliveries and
losses leave and enter linearly over their own start–end interval, so a reading at any
moment sees exactly what has physically gone through, converted to litres at the tank's
temperature, plus gauge noise. A sale records what the dispenser's meter shows; what
leaves the tank is that divided by the dispenser's ``meter_factor``.

Injected wrongdoing (``simulator.injections``) hooks in at four points: a load leaving a
depot (``on_load``), a tank asking for a refill (``on_order``), the end of every step
(``on_tick``) and, after the run, the records themselves. Records come out with times
as epoch milliseconds (``int``) and licence dates as ``date``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.clock import MINUTE_MS, beijing_date
from simulator.depot import DepotState, Order, PendingDelivery
from simulator.monitors import device_records, vapor_records
from simulator.province import Province, Station, facility_records
from simulator.sales import (
    FLOW_RANGE_LPM,
    MEAN_SALE_L,
    PRICE_FEN,
    NozzleState,
    amount_fen,
    arrivals,
    family,
    meter_factor,
    sale_volume,
)
from simulator.tank import Flow, TankState, evaporation_rate, to_20c

if TYPE_CHECKING:
    from simulator.injections.base import Injection

RECORD_TYPES = (
    "facility", "dispatch", "delivery", "tank_reading", "sale", "vapor", "device_status",
)  # fmt: skip
#: A tank orders a refill when its (booked) content falls below this fraction of capacity.
REORDER_AT = 0.35
#: Pumps cannot draw the last of a tank (suction height), fraction of capacity.
HEEL = 0.03
#: A customer who would wait longer than this for a nozzle drives on.
MAX_WAIT_MS = 8 * MINUTE_MS
#: Share of sales with a tax invoice (发票).
INVOICE_SHARE = 0.25
MAJOR_OPERATORS = frozenset({"Sinopec", "PetroChina", "CNOOC"})

Records = dict[str, list[dict[str, Any]]]


@dataclass
class StationState:
    """One station while the simulation runs."""

    station: Station
    tanks: dict[str, TankState]
    nozzles: dict[str, list[NozzleState]]  # by tank_id
    prices: dict[str, int]  # fen per litre, by product
    arrivals: list[int]
    meter_factor: dict[str, float]  # recorded ÷ dispensed litres, by dispenser_id
    next_arrival: int = 0
    txn_seq: int = 0
    delivery_seq: int = 0

    @classmethod
    def initial(
        cls,
        rng: random.Random,
        noise: random.Random,
        station: Station,
        start_ms: int,
        end_ms: int,
        sales_scale: float = 1.0,
    ) -> StationState:
        """The station at ``start_ms``; ``noise`` draws the meter errors and evaporation
        rates (a stream of its own, so they leave the rest of the simulation as it was)."""
        sid = station.facility_id
        tanks = {t.tank_id: TankState.initial(rng, sid, t) for t in station.tanks}
        nozzles: dict[str, list[NozzleState]] = {t.tank_id: [] for t in station.tanks}
        for n in station.nozzles:
            totalizer = round(rng.uniform(50_000.0, 3_000_000.0), 2)
            nozzles[n.tank_id].append(NozzleState(n, totalizer, start_ms))
        discount = rng.randint(0, 8) if station.operator in MAJOR_OPERATORS else rng.randint(5, 30)
        prices = {t.product: PRICE_FEN[t.product] - discount for t in station.tanks}
        per_day = (
            station.daily_volume_l
            * sales_scale
            * sum(t.demand_share / MEAN_SALE_L[family(t.product)] for t in station.tanks)
        )
        # customers stop arriving shortly before the end, so every sale ends inside it
        customers = arrivals(rng, per_day, start_ms, end_ms - 15 * MINUTE_MS)
        meters = {d: meter_factor(noise) for d in station.dispenser_ids}
        for tank in tanks.values():
            tank.evaporation_l_h = evaporation_rate(noise, tank.spec.product)
        return cls(station, tanks, nozzles, prices, customers, meters)

    def _choose_tank(self, rng: random.Random) -> TankState:
        specs = self.station.tanks
        weights = [t.demand_share / MEAN_SALE_L[family(t.product)] for t in specs]
        return self.tanks[rng.choices(specs, weights)[0].tank_id]

    def sell_until(self, rng: random.Random, until_ms: int, end_ms: int, out: Records) -> None:
        """Serve every customer who arrived before ``until_ms``."""
        while (
            self.next_arrival < len(self.arrivals) and self.arrivals[self.next_arrival] < until_ms
        ):
            arrived = self.arrivals[self.next_arrival]
            self.next_arrival += 1
            tank = self._choose_tank(rng)
            candidates = [n for n in self.nozzles[tank.spec.tank_id] if n.in_service]
            if not candidates:
                continue  # every dispenser of that product is out of order: drives on
            free = [n for n in candidates if n.free_at_ms <= arrived]
            nozzle = rng.choice(free) if free else min(candidates, key=lambda n: n.free_at_ms)
            start = max(arrived, nozzle.free_at_ms)
            product = tank.spec.product
            price = self.prices[product]
            volume = sale_volume(rng, product, price)  # what the meter records
            dispensed = volume / self.meter_factor[nozzle.spec.dispenser_id]
            volume20 = to_20c(dispensed, tank.temperature_c(start), product)
            slowest_end = start + math.ceil(volume / FLOW_RANGE_LPM[0] * MINUTE_MS)
            if (
                start - arrived > MAX_WAIT_MS
                or slowest_end > end_ms
                or tank.available20_at(start) - volume20 < HEEL * tank.spec.capacity_l
            ):
                continue
            before, after, end = nozzle.pump(rng, volume, start)
            tank.commit(Flow(start, end, -volume20))
            out["sale"].append(
                self._sale_record(rng, nozzle, product, volume, before, after, start, end)
            )

    def _sale_record(
        self,
        rng: random.Random,
        nozzle: NozzleState,
        product: str,
        volume: float,
        before: float,
        after: float,
        start: int,
        end: int,
    ) -> dict[str, Any]:
        self.txn_seq += 1
        local_day = beijing_date(start)
        invoice = None
        if rng.random() < INVOICE_SHARE:
            invoice = (
                f"{local_day[2:4]}{self.station.city.code[:4]}"
                f"{self.station.number:04d}{self.txn_seq:010d}"
            )
        price = self.prices[product]
        return {
            "txn_id": f"{local_day}{self.txn_seq:06d}",
            "station_id": self.station.facility_id,
            "dispenser_id": nozzle.spec.dispenser_id,
            "nozzle_id": nozzle.spec.nozzle_id,
            "product": product,
            "volume_l": volume,
            "unit_price_fen": price,
            "amount_fen": amount_fen(price, volume),
            "totalizer_start_l": before,
            "totalizer_end_l": after,
            "started_at": start,
            "ended_at": end,
            "invoice_id": invoice,
        }

    def receive(self, load: PendingDelivery) -> dict[str, Any]:
        """Book a load into its tank (over its unloading interval); the delivery record."""
        tank = load.tank
        product = tank.spec.product
        volume20 = to_20c(load.volume_l * load.physical_scale, load.temperature_c, product)
        tank.commit(Flow(load.start_ms, load.end_ms, volume20))
        tank.order_pending = False
        self.delivery_seq += 1
        return {
            "delivery_id": f"{self.station.facility_id}-DL{self.delivery_seq:04d}",
            "station_id": self.station.facility_id,
            "tank_id": tank.spec.tank_id,
            "dispatch_id": load.dispatch_id,
            "product": product,
            "vehicle_plate": load.vehicle_plate,
            "seal_ids": list(load.seal_ids),
            "seals_intact": load.seals_intact,
            "volume_l": load.volume_l,
            "temperature_c": load.temperature_c,
            "density_kg_m3": load.density_kg_m3,
            "started_at": load.start_ms,
            "ended_at": load.end_ms,
        }

    def read_tanks(self, rng: random.Random, t_ms: int, out: Records) -> list[TankState]:
        """Every tank's ATG reading at ``t_ms``; returns the tanks that need a refill."""
        low = []
        for tank in self.tanks.values():
            record, _ = tank.reading(rng, t_ms)
            out["tank_reading"].append(record)
            booked = tank.observed_l(tank.content20_l, t_ms)
            if not tank.order_pending and booked < REORDER_AT * tank.spec.capacity_l:
                tank.order_pending = True
                low.append(tank)
        return low


@dataclass
class World:
    """Everything the simulation holds, as injections see it."""

    province: Province
    stations: dict[str, StationState]
    depots: dict[str, DepotState]
    out: Records
    start_ms: int
    end_ms: int
    interval_ms: int


def simulate(
    province: Province,
    rng: random.Random,
    start_ms: int,
    end_ms: int,
    interval_ms: int,
    *,
    seed: int | str = 0,
    sales_scale: float = 1.0,
    injections: Sequence[Injection] = (),
) -> Records:
    """Run the province from ``start_ms`` to ``end_ms`` (ms) with a gauge reading every
    ``interval_ms``, ``sales_scale`` × the stations' customers, and ``injections`` applied
    as it runs (their record-level effects are applied by the caller, see
    ``simulator.generate``). Returns records by type, in generation order."""
    out: Records = {t: [] for t in RECORD_TYPES}
    out["facility"] = facility_records(province)
    stations = {
        s.facility_id: StationState.initial(
            rng, random.Random(f"{seed}/noise/{s.facility_id}"), s, start_ms, end_ms, sales_scale
        )
        for s in province.stations
    }
    depots = {d.facility_id: DepotState.initial(d, start_ms) for d in province.depots}
    world = World(province, stations, depots, out, start_ms, end_ms, interval_ms)
    for s in province.stations:
        out["device_status"].extend(device_records(s, start_ms))
    for tick in range(start_ms, end_ms + 1, interval_ms):
        for depot in depots.values():
            for dispatch, load in depot.dispatch_ready(rng, tick, end_ms):
                for injection in injections:
                    dispatch, load = injection.on_load(world, dispatch, load)
                out["dispatch"].append(dispatch)
                out["delivery"].append(stations[dispatch["station_id"]].receive(load))
        for st in stations.values():
            st.sell_until(rng, tick, end_ms, out)
            for tank in st.read_tanks(rng, tick, out):
                if any(injection.on_order(world, st, tank, tick) for injection in injections):
                    continue
                ready = tick + round(rng.uniform(20, 90) * MINUTE_MS)
                depots[st.station.depot_id].orders.append(Order(st.station, tank, ready))
        for injection in injections:
            injection.on_tick(world, tick)
        for st in stations.values():
            for tank in st.tanks.values():
                tank.lose(tick, tick + interval_ms)
    for s in province.stations:
        out["vapor"].extend(vapor_records(rng, s, start_ms, end_ms))
    return out
