"""The time-stepped simulation of a province whose physics add up.

Every reading interval (default 15 min) the depots load the orders a truck can take,
each station serves the customers who arrived since the last step, and every tank gauge
reads. A tank that falls below ``REORDER_AT`` of its capacity orders a refill from its
depot; the load arrives after the transit time and is unloaded in 30–60 min.

Conservation: each tank's content is kept in litres at 20 °C; sales leave and deliveries
enter linearly over their own start–end interval, so a reading at any moment sees
exactly what has physically gone through, converted to litres at the tank's
temperature, plus gauge noise. Records come out Avro-ready (datetime values).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from simulator.clock import BEIJING_OFFSET_MS, HOUR_MS, MINUTE_MS, local_hour, to_datetime
from simulator.depot import DepotState, Order, PendingDelivery
from simulator.province import Province, Station, facility_records
from simulator.sales import (
    FLOW_RANGE_LPM,
    MEAN_SALE_L,
    PRICE_FEN,
    NozzleState,
    amount_fen,
    arrivals,
    family,
    sale_volume,
)
from simulator.tank import Flow, TankState, to_20c

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
    next_arrival: int = 0
    txn_seq: int = 0
    delivery_seq: int = 0

    @classmethod
    def initial(
        cls, rng: random.Random, station: Station, start_ms: int, end_ms: int
    ) -> StationState:
        sid = station.facility_id
        tanks = {t.tank_id: TankState.initial(rng, sid, t) for t in station.tanks}
        nozzles: dict[str, list[NozzleState]] = {t.tank_id: [] for t in station.tanks}
        for n in station.nozzles:
            totalizer = round(rng.uniform(50_000.0, 3_000_000.0), 2)
            nozzles[n.tank_id].append(NozzleState(n, totalizer, start_ms))
        discount = rng.randint(0, 8) if station.operator in MAJOR_OPERATORS else rng.randint(5, 30)
        prices = {t.product: PRICE_FEN[t.product] - discount for t in station.tanks}
        per_day = station.daily_volume_l * sum(
            t.demand_share / MEAN_SALE_L[family(t.product)] for t in station.tanks
        )
        # customers stop arriving shortly before the end, so every sale ends inside it
        customers = arrivals(rng, per_day, start_ms, end_ms - 15 * MINUTE_MS)
        return cls(station, tanks, nozzles, prices, customers)

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
            candidates = self.nozzles[tank.spec.tank_id]
            free = [n for n in candidates if n.free_at_ms <= arrived]
            nozzle = rng.choice(free) if free else min(candidates, key=lambda n: n.free_at_ms)
            start = max(arrived, nozzle.free_at_ms)
            product = tank.spec.product
            price = self.prices[product]
            volume = sale_volume(rng, product, price)
            volume20 = to_20c(volume, tank.temperature_c(start), product)
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
        local_day = to_datetime(start + BEIJING_OFFSET_MS).strftime("%Y%m%d")
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
            "started_at": to_datetime(start),
            "ended_at": to_datetime(end),
            "invoice_id": invoice,
        }

    def receive(self, load: PendingDelivery) -> dict[str, Any]:
        """Book a load into its tank (over its unloading interval); the delivery record."""
        tank = load.tank
        product = tank.spec.product
        tank.commit(
            Flow(load.start_ms, load.end_ms, to_20c(load.volume_l, load.temperature_c, product))
        )
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
            "seals_intact": True,
            "volume_l": load.volume_l,
            "temperature_c": load.temperature_c,
            "density_kg_m3": load.density_kg_m3,
            "started_at": to_datetime(load.start_ms),
            "ended_at": to_datetime(load.end_ms),
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


def vapor_records(
    rng: random.Random, station: Station, start_ms: int, end_ms: int
) -> list[dict[str, Any]]:
    """Hourly vapour-recovery samples per nozzle: A/L in the GB 20952 band 1.0–1.2,
    ullage gauge pressure (Pa) swinging a little with the day, within ±250 Pa."""
    means = [rng.uniform(1.04, 1.16) for _ in station.nozzles]
    offsets = [rng.randint(0, 59_999) for _ in station.nozzles]
    base_pa = rng.uniform(-60.0, 40.0)
    out = []
    hour = start_ms + HOUR_MS
    while hour <= end_ms:
        swing = 60.0 * math.sin(2 * math.pi * (local_hour(hour) - 9) / 24)
        pressure = max(-250.0, min(250.0, base_pa + swing + rng.gauss(0.0, 30.0)))
        for nozzle, mean, offset in zip(station.nozzles, means, offsets, strict=True):
            out.append(
                {
                    "station_id": station.facility_id,
                    "nozzle_id": nozzle.nozzle_id,
                    "measured_at": to_datetime(min(hour + offset, end_ms)),
                    "al_ratio": round(min(max(rng.gauss(mean, 0.02), 1.0), 1.2), 3),
                    "pressure_pa": round(pressure + rng.gauss(0.0, 5.0), 1),
                }
            )
        hour += HOUR_MS
    return out


def device_records(station: Station, at_ms: int) -> list[dict[str, Any]]:
    """Every device of the station reported online at ``at_ms``."""
    return [
        {
            "station_id": station.facility_id,
            "device_id": device_id,
            "device_kind": kind,
            "status": "online",
            "at": to_datetime(at_ms),
        }
        for device_id, kind in station.devices()
    ]


def simulate(
    province: Province, rng: random.Random, start_ms: int, end_ms: int, interval_ms: int
) -> Records:
    """Run the province from ``start_ms`` to ``end_ms`` (ms) with a gauge reading every
    ``interval_ms``. Returns Avro-ready records by type, in generation order."""
    out: Records = {t: [] for t in RECORD_TYPES}
    out["facility"] = facility_records(province)
    stations = {s.facility_id: StationState.initial(rng, s, start_ms, end_ms)
                for s in province.stations}  # fmt: skip
    depots = {d.facility_id: DepotState.initial(d, start_ms) for d in province.depots}
    for s in province.stations:
        out["device_status"].extend(device_records(s, start_ms))
    for tick in range(start_ms, end_ms + 1, interval_ms):
        for depot in depots.values():
            for dispatch, load in depot.dispatch_ready(rng, tick, end_ms):
                out["dispatch"].append(dispatch)
                out["delivery"].append(stations[dispatch["station_id"]].receive(load))
        for st in stations.values():
            st.sell_until(rng, tick, end_ms, out)
            for tank in st.read_tanks(rng, tick, out):
                ready = tick + round(rng.uniform(20, 90) * MINUTE_MS)
                depots[st.station.depot_id].orders.append(Order(st.station, tank, ready))
    for s in province.stations:
        out["vapor"].extend(vapor_records(rng, s, start_ms, end_ms))
    return out
