"""Customers at the pump: when they come (a daily profile), what they buy (litres), what
they pay (fen) and how the nozzle's totalizer and clock record it.

Sale volumes are observed litres at the fuel's temperature, to 0.01 L, as the dispenser's
meter records them; the totalizer of each nozzle runs on continuously from one sale to the
next. Each dispenser's meter has its own constant error (``meter_factor``): recorded litres
= dispensed litres × factor, within the ±0.3 % a class-0.3 dispenser may show (JJG 443).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulator.clock import DAY_MS, SECOND_MS, local_hour
from simulator.province import NozzleSpec

#: Guide retail prices in Liaoning, late 2026, fen per litre.
PRICE_FEN: dict[str, int] = {
    "gasoline_92": 735,
    "gasoline_95": 782,
    "gasoline_98": 862,
    "diesel_0": 702,
    "diesel_m10": 745,
    "diesel_m20": 775,
    "diesel_m35": 820,
}
#: Relative customer arrival rate per hour of the day, Beijing time (mean 1.0).
_PROFILE = (
    0.25, 0.18, 0.15, 0.15, 0.20, 0.40, 0.90, 1.60, 1.70, 1.30, 1.10, 1.10,
    1.20, 1.10, 1.00, 1.10, 1.30, 1.70, 1.80, 1.50, 1.10, 0.80, 0.55, 0.35,
)  # fmt: skip
HOURLY_PROFILE: tuple[float, ...] = tuple(w * 24 / sum(_PROFILE) for w in _PROFILE)
#: Typical litres per sale, used to turn a station's daily volume into customers.
MEAN_SALE_L: dict[str, float] = {"gasoline": 30.0, "diesel": 85.0}
#: Flow rate bounds of any nozzle, L/min.
FLOW_RANGE_LPM = (20.0, 50.0)
#: Preset amounts customers ask for ("200 yuan of 92"), fen.
PRESET_AMOUNTS_FEN = (10_000, 15_000, 20_000, 20_000, 30_000)
#: A dispenser's meter error (recorded ÷ dispensed − 1): normal with this standard deviation,
#: cut at the maximum permissible error of JJG 443 (±0.3 %). Verified meters sit close to 0.
METER_ERROR_SD = 0.001
METER_ERROR_MAX = 0.003


def family(product: str) -> str:
    """``gasoline`` or ``diesel``."""
    return "gasoline" if product.startswith("gasoline") else "diesel"


def arrivals(rng: random.Random, sales_per_day: float, start_ms: int, end_ms: int) -> list[int]:
    """Customer arrival times (ms) between ``start_ms`` and ``end_ms``: a Poisson process
    whose rate follows ``HOURLY_PROFILE`` (drawn by thinning)."""
    peak = sales_per_day * max(HOURLY_PROFILE) / DAY_MS  # customers per ms
    out: list[int] = []
    t = float(start_ms)
    while True:
        t += rng.expovariate(peak)
        if t >= end_ms:
            return out
        rate = sales_per_day * HOURLY_PROFILE[int(local_hour(int(t)))] / DAY_MS
        if rng.random() * peak < rate:
            out.append(int(t))


def sale_volume(rng: random.Random, product: str, price_fen: int) -> float:
    """Litres one customer buys, to 0.01 L: cars fill up or ask for a round amount of
    money; diesel also sells to trucks taking 20–400 L."""
    if family(product) == "gasoline":
        if rng.random() < 0.35:
            amount = rng.choice(PRESET_AMOUNTS_FEN)
            return math.floor(amount * 100 / price_fen) / 100
        litres = min(max(rng.lognormvariate(math.log(30.0), 0.45), 3.0), 75.0)
    elif rng.random() < 0.45:
        litres = rng.uniform(20.0, 60.0)
    else:
        litres = min(max(rng.lognormvariate(math.log(110.0), 0.5), 20.0), 400.0)
    return round(litres, 2)


def meter_factor(rng: random.Random) -> float:
    """Recorded ÷ dispensed litres of one dispenser's meter, within the legal ±0.3 %."""
    return 1.0 + max(-METER_ERROR_MAX, min(METER_ERROR_MAX, rng.gauss(0.0, METER_ERROR_SD)))


def amount_fen(price_fen: int, volume_l: float) -> int:
    """``round(price × volume)`` in fen, half up, computed exactly on centilitres."""
    return (price_fen * round(volume_l * 100) + 50) // 100


@dataclass
class NozzleState:
    """A nozzle while the simulation runs: its totalizer (L), when it is next free and
    whether its dispenser works."""

    spec: NozzleSpec
    totalizer_l: float
    free_at_ms: int
    in_service: bool = True

    def pump(self, rng: random.Random, volume_l: float, start_ms: int) -> tuple[float, float, int]:
        """Dispense ``volume_l`` from ``start_ms``: returns (totalizer before, totalizer
        after, end ms) and keeps the nozzle busy until the customer has driven off."""
        lo, hi = FLOW_RANGE_LPM
        flow = min(max(self.spec.flow_lpm * rng.uniform(0.92, 1.05), lo), hi)
        end_ms = start_ms + max(math.ceil(volume_l / flow * 60_000), SECOND_MS)
        before = self.totalizer_l
        self.totalizer_l = round(before + volume_l, 2)
        self.free_at_ms = end_ms + round(rng.uniform(20, 90) * SECOND_MS)
        return before, self.totalizer_l, end_ms
