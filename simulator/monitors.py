"""The station's monitoring devices: online vapour-recovery samples and device status.

Vapour recovery (GB 20952) concerns gasoline only, so only gasoline nozzles have an A/L
sensor. Clean samples keep A/L inside the 1.0–1.2 band and the ullage pressure within
``CLEAN_PRESSURE_PA``; the injected faults (``simulator.injections.monitoring``) go well
beyond both. Times are epoch milliseconds.
"""

from __future__ import annotations

import math
import random
from typing import Any

from simulator.clock import HOUR_MS, local_hour
from simulator.province import NozzleSpec, Station

#: GB 20952 band of the air-to-liquid ratio of a vapour-recovery nozzle.
AL_BAND = (1.0, 1.2)
#: Clean ullage gauge pressure stays within ± this, Pa (the P/V valve opens at about
#: +750 / −2000 Pa; the vapour processor holds the tank near atmospheric pressure).
CLEAN_PRESSURE_PA = 200.0


def vapor_nozzles(station: Station) -> list[NozzleSpec]:
    """The nozzles with a vapour-recovery sensor: those drawing gasoline."""
    products = {t.tank_id: t.product for t in station.tanks}
    return [n for n in station.nozzles if products[n.tank_id].startswith("gasoline")]


def vapor_records(
    rng: random.Random, station: Station, start_ms: int, end_ms: int
) -> list[dict[str, Any]]:
    """Hourly vapour-recovery samples per gasoline nozzle: A/L in the GB 20952 band
    1.0–1.2, ullage gauge pressure (Pa) swinging a little with the day."""
    nozzles = vapor_nozzles(station)
    means = [rng.uniform(1.04, 1.16) for _ in nozzles]
    offsets = [rng.randint(0, 59_999) for _ in nozzles]
    base_pa = rng.uniform(-60.0, 40.0)
    bound = CLEAN_PRESSURE_PA - 20.0  # room for the per-sample noise
    low, high = AL_BAND
    out = []
    hour = start_ms + HOUR_MS
    while hour <= end_ms:
        swing = 60.0 * math.sin(2 * math.pi * (local_hour(hour) - 9) / 24)
        pressure = max(-bound, min(bound, base_pa + swing + rng.gauss(0.0, 30.0)))
        for nozzle, mean, offset in zip(nozzles, means, offsets, strict=True):
            out.append(
                {
                    "station_id": station.facility_id,
                    "nozzle_id": nozzle.nozzle_id,
                    "measured_at": min(hour + offset, end_ms),
                    "al_ratio": round(min(max(rng.gauss(mean, 0.02), low), high), 3),
                    "pressure_pa": round(pressure + max(-15.0, min(15.0, rng.gauss(0.0, 5.0))), 1),
                }
            )
        hour += HOUR_MS
    return out


def device_records(station: Station, at_ms: int, status: str = "online") -> list[dict[str, Any]]:
    """Every device of the station reported ``status`` at ``at_ms``."""
    return [
        device_record(station.facility_id, device_id, kind, status, at_ms)
        for device_id, kind in station.devices()
    ]


def device_record(
    station_id: str, device_id: str, kind: str, status: str, at_ms: int
) -> dict[str, Any]:
    """One ``device_status`` record."""
    return {
        "station_id": station_id,
        "device_id": device_id,
        "device_kind": kind,
        "status": status,
        "at": at_ms,
    }
