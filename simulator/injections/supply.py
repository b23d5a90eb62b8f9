"""Wrongdoing between depot and tank.

* ``diverted_load``: after ``start`` the station's depot loads ``volume_l`` litres for the
  station (a real dispatch record, sealed, on a truck of its fleet) that never arrive:
  no delivery is recorded. Trips ``diverted_dispatch``. With ``resold`` (and ``resold_to``)
  the load is unloaded off the books into the buyer's tank of that product on arrival
  (or once it has room): a linked ``off_book_delivery`` incident at the buyer
  (``untraced_level_rise``), id ``<incident>-resale``.
* Tampering with the first load to the station (its tank ``subject`` if given) dispatched
  after ``start``; each trips ``delivery_mismatch`` unless said otherwise:
  ``shortfall``: ``short_pct`` % of the load is taken in transit and the station declares
  what arrived (its receipt is short of the dispatch at 20 °C; ``seals_broken`` = 1 also
  reports the seals broken); ``gauge_short_delivery``: the station declares the full load
  but ``short_pct`` % never goes into the tank (kept on the truck), so the tank gauge rises
  less than declared (``delivery_gauge_mismatch``); ``adulteration``: the load arrives
  mixed, its density ``density_delta_kg_m3`` off the batch's; ``product_swap``: the depot
  loads the cheaper grade (``CHEAPER_GRADE``) and the station declares the tank's grade;
  ``vehicle_swap``: the load arrives on another truck with other seals.
* ``delivery_without_dispatch``: the first refill the tank orders after ``start`` comes from
  an unregistered supplier: a delivery record with no dispatch (``unknown_dispatch`` = 1:
  citing a waybill no depot issued), an unknown plate and no seals. Trips
  ``delivery_without_dispatch``.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

from simulator.clock import MINUTE_MS, beijing_date, to_datetime
from simulator.depot import (
    DENSITY_RANGE,
    FILL_TO,
    MIN_LOAD_L,
    VOLUME_STEP_L,
    PendingDelivery,
    loading_temperature_c,
)
from simulator.geography import City, transit_minutes
from simulator.injections.base import Injection, RecordIndex
from simulator.injections.wetstock import OffBookDelivery
from simulator.physics import StationState, World
from simulator.sales import family
from simulator.scenarios import CHEAPER_GRADE, Incident, Scenario
from simulator.tank import TankState, to_20c

_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
#: A tanker of an unregistered supplier carries at most this much, litres.
UNREGISTERED_TRUCK_L = 20_000.0


def random_plate(rng: random.Random, city: City) -> str:
    """A licence plate of ``city`` (not one of any depot's fleet: those never use 0xxx)."""
    return f"{city.plate}{rng.choice(_PLATE_LETTERS)}0{rng.randint(100, 999)}"


class DivertedLoad(Injection):
    dispatch: dict[str, Any] | None = None
    would_arrive: tuple[int, int] = (0, 0)
    resale: OffBookDelivery | None = None

    def on_tick(self, world: World, t_ms: int) -> None:
        if self.resale is not None:
            self.resale.on_tick(world, t_ms)
        if self.dispatch is not None or t_ms < self.start_ms:
            return
        depot = world.depots[str(self.scenario.depot_id)]
        truck_i = min(range(len(depot.truck_free_ms)), key=depot.truck_free_ms.__getitem__)
        if depot.truck_free_ms[truck_i] > t_ms:
            return  # every truck is out: load when one is back
        truck = depot.depot.trucks[truck_i]
        volume = min(
            max(round(self.param("volume_l") / VOLUME_STEP_L), 1) * VOLUME_STEP_L, truck.capacity_l
        )
        transit = round(self.station.transit_min * self.rng.uniform(0.9, 1.15) * MINUTE_MS)
        begin = t_ms + transit + round(self.rng.uniform(5, 15) * MINUTE_MS)
        end = begin + round(self.rng.uniform(30, 60) * MINUTE_MS)
        tank = self.tank_state(world)
        record, load = depot.make_load(
            self.rng, self.station_id, tank, truck, volume, t_ms, begin, end
        )
        world.out["dispatch"].append(record)
        depot.truck_free_ms[truck_i] = end + transit + 30 * MINUTE_MS
        self.dispatch, self.would_arrive = record, (begin, end)
        buyer_id = self.scenario.options.get("resold_to")
        if buyer_id and self.scenario.params.get("resold", 1):
            self._resell(world, buyer_id, record, load, t_ms)

    def _resell(
        self, world: World, buyer_id: str, record: dict[str, Any], load: PendingDelivery, t_ms: int
    ) -> None:
        buyer = self.province.station(buyer_id)
        product = record["product"]
        tanks = [t for t in buyer.tanks if t.product == product]
        if not tanks:
            raise ValueError(f"diverted_load: {buyer_id} has no {product} tank to resell into")
        tank = max(tanks, key=lambda t: t.capacity_l)
        depot = self.province.depot(str(self.scenario.depot_id))
        arrival = t_ms + round((transit_minutes(depot.city, buyer.city) + 10) * MINUTE_MS)
        scenario = Scenario(
            "off_book_delivery",
            to_datetime(arrival),
            station_id=buyer_id,
            subject=tank.tank_id,
            params={"volume_l": load.volume_l},
        )
        self.resale = OffBookDelivery(
            scenario,
            f"{self.incident_id}-resale",
            self.province,
            (self.window_start_ms, self.window_end_ms),
            self.rng,
        )
        self.resale.temperature_c = load.temperature_c
        self.resale.refs = {
            "caused_by": self.incident_id,
            "dispatch_id": record["dispatch_id"],
            "batch_id": record["batch_id"],
        }

    def incidents(self, index: RecordIndex) -> list[Incident]:
        if self.dispatch is None:
            return []
        d = self.dispatch
        refs = {
            "dispatch_id": d["dispatch_id"],
            "batch_id": d["batch_id"],
            "vehicle_plate": d["vehicle_plate"],
        }
        resale = self.resale.incidents(index) if self.resale is not None else []
        if resale:
            refs["resold_to"] = str(resale[0].station_id)
            refs["resale_incident_id"] = resale[0].incident_id
        volume20 = to_20c(d["volume_l"], d["temperature_c"], d["product"])
        own = self.incident(
            d["dispatched_at"],
            self.would_arrive[1],
            subject=d["dispatch_id"],
            aliases=(str(self.scenario.subject),),
            params={"volume_l": d["volume_l"], "volume_20_l": volume20},
            refs=refs,
        )
        return [own, *resale]


class DeliveryTamper(Injection):
    """The first load to the station (tank) dispatched after ``start``, changed by
    ``tamper``; in transit (the incident starts at dispatch) unless ``AT_UNLOADING``."""

    AT_UNLOADING = False
    dispatch: dict[str, Any] | None = None
    values: dict[str, float]
    facts: dict[str, str]

    def on_load(
        self, world: World, dispatch: dict[str, Any], load: PendingDelivery
    ) -> tuple[dict[str, Any], PendingDelivery]:
        if (
            self.dispatch is not None
            or dispatch["station_id"] != self.station_id
            or dispatch["dispatched_at"] < self.start_ms
            or (self.scenario.subject and load.tank.spec.tank_id != self.scenario.subject)
            or not self.accepts(load)
        ):
            return dispatch, load
        self.values, self.facts = {}, {}
        dispatch, load = self.tamper(world, dispatch, load)
        self.dispatch = dispatch
        return dispatch, load

    def accepts(self, load: PendingDelivery) -> bool:
        """Whether this load can be tampered with this way."""
        return True

    def tamper(
        self, world: World, dispatch: dict[str, Any], load: PendingDelivery
    ) -> tuple[dict[str, Any], PendingDelivery]:
        raise NotImplementedError

    def incidents(self, index: RecordIndex) -> list[Incident]:
        if self.dispatch is None:
            return []
        found = index.where("delivery", "dispatch_id", self.dispatch["dispatch_id"])
        if not found:  # the delivery record never reached the platform
            return [
                self.incident(
                    self.dispatch["dispatched_at"],
                    self.window_end_ms,
                    expected=[],
                    subject=self.dispatch["dispatch_id"],
                )
            ]
        delivery = found[0]
        start = delivery["started_at"] if self.AT_UNLOADING else self.dispatch["dispatched_at"]
        return [
            self.incident(
                start,
                delivery["ended_at"],
                subject=delivery["delivery_id"],
                aliases=(self.dispatch["dispatch_id"], delivery["tank_id"]),
                params=self.values,
                refs={
                    "dispatch_id": self.dispatch["dispatch_id"],
                    "delivery_id": delivery["delivery_id"],
                    "tank_id": delivery["tank_id"],
                    **self.facts,
                },
            )
        ]


class Shortfall(DeliveryTamper):
    def tamper(
        self, world: World, dispatch: dict[str, Any], load: PendingDelivery
    ) -> tuple[dict[str, Any], PendingDelivery]:
        short = self.param("short_pct") / 100
        volume = round(load.volume_l * (1 - short), 1)
        broken = bool(self.scenario.params.get("seals_broken"))
        self.values = {
            "short_pct": short * 100,
            "short_l": load.volume_l - volume,
            "seals_broken": float(broken),
        }
        return dispatch, replace(load, volume_l=volume, seals_intact=not broken)


class GaugeShortDelivery(DeliveryTamper):
    AT_UNLOADING = True

    def tamper(
        self, world: World, dispatch: dict[str, Any], load: PendingDelivery
    ) -> tuple[dict[str, Any], PendingDelivery]:
        short = self.param("short_pct") / 100
        self.values = {
            "short_pct": short * 100,
            "declared_l": load.volume_l,
            "short_l": load.volume_l * short,
        }
        return dispatch, replace(load, physical_scale=1 - short)


class Adulteration(DeliveryTamper):
    def tamper(
        self, world: World, dispatch: dict[str, Any], load: PendingDelivery
    ) -> tuple[dict[str, Any], PendingDelivery]:
        density = round(dispatch["density_kg_m3"] + self.param("density_delta_kg_m3"), 1)
        self.values = {
            "density_delta_kg_m3": density - dispatch["density_kg_m3"],
            "dispatch_density_kg_m3": dispatch["density_kg_m3"],
            "delivery_density_kg_m3": density,
        }
        return dispatch, replace(load, density_kg_m3=density)


class ProductSwap(DeliveryTamper):
    def accepts(self, load: PendingDelivery) -> bool:
        return load.tank.spec.product in CHEAPER_GRADE

    def tamper(
        self, world: World, dispatch: dict[str, Any], load: PendingDelivery
    ) -> tuple[dict[str, Any], PendingDelivery]:
        declared = load.tank.spec.product
        cheaper = CHEAPER_GRADE.get(declared)
        if cheaper is None:
            raise ValueError(f"product_swap: {declared} has no cheaper grade to swap in")
        depot = world.depots[dispatch["depot_id"]]
        batch = depot.batch(self.rng, cheaper, dispatch["dispatched_at"])
        self.facts = {"dispatched_product": cheaper, "declared_product": declared}
        dispatch = {
            **dispatch,
            "product": cheaper,
            "batch_id": batch.batch_id,
            "density_kg_m3": batch.density_kg_m3,
        }
        density = round(batch.density_kg_m3 + self.rng.gauss(0, 0.3), 1)
        return dispatch, replace(load, density_kg_m3=density)


class VehicleSwap(DeliveryTamper):
    def tamper(
        self, world: World, dispatch: dict[str, Any], load: PendingDelivery
    ) -> tuple[dict[str, Any], PendingDelivery]:
        plate = random_plate(self.rng, self.station.city)
        seals = tuple(f"LNX{self.rng.randint(0, 9_999_999):07d}" for _ in load.seal_ids)
        self.facts = {"dispatch_plate": dispatch["vehicle_plate"], "delivery_plate": plate}
        return dispatch, replace(load, vehicle_plate=plate, seal_ids=seals)


class DeliveryWithoutDispatch(Injection):
    delivery: dict[str, Any] | None = None

    def on_order(self, world: World, station: StationState, tank: TankState, t_ms: int) -> bool:
        if (
            self.delivery is not None
            or t_ms < self.start_ms
            or station.station.facility_id != self.station_id
            or (self.scenario.subject and tank.spec.tank_id != self.scenario.subject)
        ):
            return False
        begin = t_ms + round(self.rng.uniform(60, 240) * MINUTE_MS)
        end = begin + round(self.rng.uniform(30, 60) * MINUTE_MS)
        room = FILL_TO * tank.spec.capacity_l - tank.observed_l(tank.content20_l, t_ms)
        volume = min(math.floor(room / VOLUME_STEP_L) * VOLUME_STEP_L, UNREGISTERED_TRUCK_L)
        if end > self.window_end_ms or volume < MIN_LOAD_L:
            return False
        dispatch_id = None
        if self.scenario.params.get("unknown_dispatch"):  # a waybill no depot issued
            dispatch_id = f"WB99{beijing_date(t_ms)}{self.rng.randint(1, 9999):04d}"
        load = PendingDelivery(
            dispatch_id=dispatch_id,
            tank=tank,
            vehicle_plate=random_plate(self.rng, station.station.city),
            seal_ids=(),
            volume_l=volume,
            temperature_c=loading_temperature_c(self.rng, begin),
            density_kg_m3=round(self.rng.uniform(*DENSITY_RANGE[family(tank.spec.product)]), 1),
            start_ms=begin,
            end_ms=end,
        )
        self.delivery = station.receive(load)
        world.out["delivery"].append(self.delivery)
        return True

    def incidents(self, index: RecordIndex) -> list[Incident]:
        if self.delivery is None:
            return []
        d = self.delivery
        visible = index.where("delivery", "delivery_id", d["delivery_id"])
        refs = {
            "delivery_id": d["delivery_id"],
            "vehicle_plate": d["vehicle_plate"],
            "tank_id": d["tank_id"],
        }
        if d["dispatch_id"]:
            refs["dispatch_id"] = d["dispatch_id"]
        return [
            self.incident(
                d["started_at"],
                d["ended_at"],
                subject=d["delivery_id"],
                expected=None if visible else [],
                aliases=(d["tank_id"],),
                params={
                    "volume_l": d["volume_l"],
                    "unknown_dispatch": float(d["dispatch_id"] is not None),
                },
                refs=refs,
            )
        ]
