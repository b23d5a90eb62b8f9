"""Measuring generated records the way a wetstock analyst would: from the records alone.

``TankBook`` holds one tank's gauge readings (volume at 20 °C with the gauge's own
temperature) and every recorded flow (deliveries in, sales out, each spread linearly
over its interval, a sale at the gauge's temperature); ``unexplained`` is what the gauge
saw change that the records do not explain (negative: fuel lost, positive: fuel gained).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from datetime import datetime
from typing import Any

from simulator.tank import to_20c

Records = dict[str, list[dict[str, Any]]]


def ts(value: str) -> float:
    """Epoch seconds of an ISO-8601 ``Z`` timestamp."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def nozzle_tank(records: Records) -> dict[tuple[str, str], str]:
    return {
        (f["facility_id"], n["nozzle_id"]): n["tank_id"]
        for f in records["facility"]
        if f["kind"] == "station"
        for n in f["nozzles"]
    }


def station_facility(records: Records, station_id: str) -> dict[str, Any]:
    """The station's first (registration) facility record."""
    return next(f for f in records["facility"] if f["facility_id"] == station_id)


class TankBook:
    """One tank's readings and recorded flows, litres at 20 °C."""

    def __init__(self, records: Records, station_id: str, tank_id: str):
        rs = sorted(
            (r for r in records["tank_reading"]
             if r["station_id"] == station_id and r["tank_id"] == tank_id),
            key=lambda r: r["read_at"],
        )  # fmt: skip
        self.times = [ts(r["read_at"]) for r in rs]
        self.v20 = [to_20c(r["volume_l"], r["temperature_c"], r["product"]) for r in rs]
        self.temps = [r["temperature_c"] for r in rs]
        self.flows: list[tuple[float, float, float]] = []  # start, end, litres at 20 °C
        self.sales: list[tuple[float, float, float]] = []  # start, end, recorded litres
        for d in records["delivery"]:
            if d["station_id"] == station_id and d["tank_id"] == tank_id:
                v = to_20c(d["volume_l"], d["temperature_c"], d["product"])
                self.flows.append((ts(d["started_at"]), ts(d["ended_at"]), v))
        tanks = nozzle_tank(records)
        for s in records["sale"]:
            if s["station_id"] == station_id and tanks[(station_id, s["nozzle_id"])] == tank_id:
                t0, t1 = ts(s["started_at"]), ts(s["ended_at"])
                v = to_20c(s["volume_l"], self.temperature_at(t0), s["product"])
                self.flows.append((t0, t1, -v))
                self.sales.append((t0, t1, s["volume_l"]))

    def temperature_at(self, t: float) -> float:
        i = min(max(bisect_right(self.times, t), 1), len(self.times) - 1)
        w = (t - self.times[i - 1]) / (self.times[i] - self.times[i - 1])
        return self.temps[i - 1] + w * (self.temps[i] - self.temps[i - 1])

    def reading_index(self, t: float) -> int:
        """The last reading at or before ``t``."""
        return max(bisect_right(self.times, t) - 1, 0)

    def booked(self, t0: float, t1: float) -> float:
        """The change the records explain between ``t0`` and ``t1``, litres at 20 °C."""
        total = 0.0
        for start, end, v in self.flows:
            overlap = max(0.0, min(end, t1) - max(start, t0))
            if overlap > 0:
                total += v * overlap / (end - start)
        return total

    def unexplained(self, t0: float, t1: float) -> float:
        """Measured change − booked change between the readings at (or just before)
        ``t0`` and ``t1``, litres at 20 °C."""
        i, j = self.reading_index(t0), self.reading_index(t1)
        a, b = self.times[i], self.times[j]
        return self.v20[j] - self.v20[i] - self.booked(a, b)

    def sold(self, t0: float, t1: float) -> float:
        """Recorded sales (litres, as metered) between the readings at ``t0`` and ``t1``."""
        a, b = self.times[self.reading_index(t0)], self.times[self.reading_index(t1)]
        return sum(v for start, _, v in self.sales if a <= start < b)

    def has_reading_between(self, t0: float, t1: float) -> bool:
        return bisect_left(self.times, t0) < bisect_left(self.times, t1)


def sales_by_nozzle(records: Records, station_id: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in records["sale"]:
        if s["station_id"] == station_id:
            out[s["nozzle_id"]].append(s)
    for sales in out.values():
        sales.sort(key=lambda s: s["started_at"])
    return out


def totalizer_gaps(sales: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """(sale, gap in litres) for each sale whose totalizer start is not the previous end."""
    return [
        (s, round(s["totalizer_start_l"] - prev["totalizer_end_l"], 2))
        for prev, s in zip(sales, sales[1:], strict=False)
        if abs(s["totalizer_start_l"] - prev["totalizer_end_l"]) > 0.005
    ]
