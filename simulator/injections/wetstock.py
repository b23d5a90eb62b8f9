"""Wrongdoing inside the station: a leaking tank, fuel taken in off the books, a dispenser
calibrated to record more than it gives, a pump totalizer moved between sales.

* ``leak``: from ``start`` to ``end`` the tank loses ``rate_l_h`` litres at 20 °C per hour,
  continuously (so the gauge sees it, the sales do not). Trips ``slow_leak``; also
  ``inventory_imbalance`` when it is ≥ ``IMBALANCE_LEAK_L_H`` for at least a day.
* ``off_book_delivery``: at the first step after ``start`` when the tank has room and no
  delivery is due, ``volume_l`` litres (at the fuel's temperature) are unloaded into it
  over 30–60 min with no delivery or dispatch record. Trips ``untraced_level_rise``.
* ``calibration_fraud``: from ``start`` to ``end`` the dispenser's meter records
  ``1 + gain_pct/100`` times what it dispenses (replacing its legal error), so its sales
  exceed what left the tank by that fraction. Trips ``persistent_gain``.
* ``totalizer_tampering``: ``jumps`` times between ``start`` and ``end`` (evenly spread)
  the nozzle's totalizer is moved by ``jump_l`` litres, so the next sale's
  ``totalizer_start_l`` differs from the previous sale's ``totalizer_end_l``. Trips
  ``totalizer_gap``.
"""

from __future__ import annotations

from typing import Any

from simulator.clock import HOUR_MS, MINUTE_MS
from simulator.depot import FILL_TO, loading_temperature_c
from simulator.injections.base import Injection, RecordIndex
from simulator.physics import World
from simulator.sales import NozzleState
from simulator.scenarios import Incident
from simulator.tank import Flow, to_20c

#: A leak at least this fast (L/h) for at least a day must also show in the daily book
#: vs measured reconciliation: ~100 L/day, above the daily noise of a busy tank (meter
#: error within ±0.3 % of ~5,000 L sold, gauge error ±0.05 % of the stock at both ends).
IMBALANCE_LEAK_L_H = 4.0


class Leak(Injection):
    began: int | None = None
    stopped: int | None = None

    def on_tick(self, world: World, t_ms: int) -> None:
        tank = self.tank_state(world)
        rate = self.param("rate_l_h")
        if self.began is None and self.start_ms <= t_ms < self.end_ms:
            tank.leak_l_h += rate
            self.began = t_ms
        elif self.began is not None and self.stopped is None and t_ms >= self.end_ms:
            tank.leak_l_h = max(tank.leak_l_h - rate, 0.0)
            if tank.leak_l_h < 1e-9:
                tank.leak_l_h = 0.0
            self.stopped = t_ms

    def incidents(self, index: RecordIndex) -> list[Incident]:
        if self.began is None:
            return []
        stopped = self.stopped if self.stopped is not None else self.window_end_ms
        rate, hours = self.param("rate_l_h"), (stopped - self.began) / HOUR_MS
        expected = ["slow_leak"]
        if rate >= IMBALANCE_LEAK_L_H and hours >= 24:
            expected.append("inventory_imbalance")
        return [
            self.incident(
                self.began,
                stopped,
                expected=expected,
                params={"rate_l_h": rate, "duration_h": hours, "lost_20_l": rate * hours},
            )
        ]


class OffBookDelivery(Injection):
    """Also the second half of a diverted load sold into another station."""

    unloaded: tuple[int, int, float, float] | None = None  # start, end, litres at 20 °C, °C
    too_late = False  # it could not be unloaded inside the window: it never happened
    temperature_c: float | None = None  # the load's temperature, when it is known
    refs: dict[str, str] | None = None

    def on_tick(self, world: World, t_ms: int) -> None:
        if self.unloaded is not None or self.too_late or t_ms < self.start_ms:
            return
        tank = self.tank_state(world)
        volume = self.param("volume_l")
        room = FILL_TO * tank.spec.capacity_l - tank.observed_l(tank.content20_l, t_ms)
        filling = any(f.volume20_l > 0 and f.end_ms > t_ms for f in tank.flows)
        if tank.order_pending or filling or room < volume:
            return  # wait until the tank has room and no truck is due
        begin = t_ms + round(self.rng.uniform(5, 40) * MINUTE_MS)
        end = begin + round(self.rng.uniform(30, 60) * MINUTE_MS)
        if end > self.window_end_ms:
            self.too_late = True
            return
        temperature = self.temperature_c
        if temperature is None:
            temperature = loading_temperature_c(self.rng, t_ms)
        volume20 = to_20c(volume, temperature, tank.spec.product)
        tank.commit(Flow(begin, end, volume20))
        self.unloaded = (begin, end, volume20, temperature)

    def incidents(self, index: RecordIndex) -> list[Incident]:
        if self.unloaded is None:
            return []
        begin, end, volume20, temperature = self.unloaded
        return [
            self.incident(
                begin,
                end,
                params={
                    "volume_l": self.param("volume_l"),
                    "volume_20_l": volume20,
                    "temperature_c": temperature,
                },
                refs=self.refs,
            )
        ]


class CalibrationFraud(Injection):
    began: int | None = None
    stopped: int | None = None
    legal_factor: float = 1.0

    def on_tick(self, world: World, t_ms: int) -> None:
        meters = self.station_state(world).meter_factor
        dispenser = str(self.scenario.subject)
        if self.began is None and self.start_ms <= t_ms < self.end_ms:
            self.legal_factor = meters[dispenser]
            meters[dispenser] = 1.0 + self.param("gain_pct") / 100
            self.began = t_ms
        elif self.began is not None and self.stopped is None and t_ms >= self.end_ms:
            meters[dispenser] = self.legal_factor
            self.stopped = t_ms

    def incidents(self, index: RecordIndex) -> list[Incident]:
        if self.began is None:
            return []
        stopped = self.stopped if self.stopped is not None else self.window_end_ms
        dispenser = str(self.scenario.subject)
        sold = [
            s
            for s in index.between("sale", self.station_id, self.began, stopped)
            if s["dispenser_id"] == dispenser
        ]
        recorded = sum(s["volume_l"] for s in sold)
        gain = self.param("gain_pct")
        nozzles = [n for n in self.station.nozzles if n.dispenser_id == dispenser]
        return [
            self.incident(
                self.began,
                stopped,
                expected=["persistent_gain"] if sold else [],
                aliases=tuple(n.nozzle_id for n in nozzles) + tuple(n.tank_id for n in nozzles),
                params={
                    "gain_pct": gain,
                    "legal_meter_error_pct": (self.legal_factor - 1) * 100,
                    "sales": len(sold),
                    "sales_l": recorded,
                    "excess_l": recorded * (1 - 1 / (1 + gain / 100)),
                },
            )
        ]


class TotalizerTampering(Injection):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        count = max(int(self.param("jumps")), 1)
        span = self.end_ms - self.start_ms
        self.pending = [
            self.start_ms + (span * i // (count - 1) if count > 1 else 0) for i in range(count)
        ]
        self.applied: list[int] = []

    def _nozzle(self, world: World) -> NozzleState:
        subject = self.scenario.subject
        return next(
            n
            for ns in self.station_state(world).nozzles.values()
            for n in ns
            if n.spec.nozzle_id == subject
        )

    def on_tick(self, world: World, t_ms: int) -> None:
        while self.pending and self.pending[0] <= t_ms:
            self.pending.pop(0)
            nozzle = self._nozzle(world)
            nozzle.totalizer_l = round(max(nozzle.totalizer_l + self.param("jump_l"), 0.0), 2)
            self.applied.append(t_ms)

    def incidents(self, index: RecordIndex) -> list[Incident]:
        if not self.applied:
            return []
        nozzle = str(self.scenario.subject)
        sales = [s for s in index.of("sale", self.station_id) if s["nozzle_id"] == nozzle]
        showing = {
            next((s["txn_id"] for s in sales if s["started_at"] >= t), None) for t in self.applied
        } - {None}
        dispenser = next(n.dispenser_id for n in self.station.nozzles if n.nozzle_id == nozzle)
        return [
            self.incident(
                self.applied[0],
                self.applied[-1],
                expected=["totalizer_gap"] if showing else [],
                aliases=(dispenser,),
                params={
                    "jump_l": self.param("jump_l"),
                    "jumps": len(self.applied),
                    "gaps_observed": len(showing),
                },
            )
        ]
