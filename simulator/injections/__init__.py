"""Injected wrongdoing, one class per scenario kind (see each module's docstring for what
a kind does physically and which rules it trips):

* ``wetstock``: ``leak``, ``off_book_delivery``, ``calibration_fraud``,
  ``totalizer_tampering``;
* ``supply``: ``diverted_load``, ``shortfall``, ``gauge_short_delivery``, ``adulteration``,
  ``product_swap``, ``vehicle_swap``, ``delivery_without_dispatch``;
* ``conduct``: ``expired_licence``, ``suspended_licence``, ``revoked_licence``,
  ``unlicensed_depot``;
* ``monitoring``: ``al_drift``, ``pressure_fault``, ``device_outage``,
  ``deliberate_silence``.

:func:`make_injections` turns scenarios into injections (and the registry they need);
after the run :func:`finish` applies their record-level effects and returns the ground
truth.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Sequence

from simulator.injections.base import Injection, RecordIndex, Suppression
from simulator.injections.conduct import LicenceLapse
from simulator.injections.monitoring import AlDrift, DeviceIncident, PressureFault
from simulator.injections.supply import (
    Adulteration,
    DeliveryWithoutDispatch,
    DivertedLoad,
    GaugeShortDelivery,
    ProductSwap,
    Shortfall,
    VehicleSwap,
)
from simulator.injections.wetstock import (
    CalibrationFraud,
    Leak,
    OffBookDelivery,
    TotalizerTampering,
)
from simulator.physics import Records
from simulator.planning import resolve
from simulator.province import Province
from simulator.scenarios import Incident, Scenario

log = logging.getLogger(__name__)

INJECTIONS: dict[str, type[Injection]] = {
    "leak": Leak,
    "off_book_delivery": OffBookDelivery,
    "calibration_fraud": CalibrationFraud,
    "totalizer_tampering": TotalizerTampering,
    "diverted_load": DivertedLoad,
    "shortfall": Shortfall,
    "gauge_short_delivery": GaugeShortDelivery,
    "adulteration": Adulteration,
    "product_swap": ProductSwap,
    "vehicle_swap": VehicleSwap,
    "delivery_without_dispatch": DeliveryWithoutDispatch,
    "unlicensed_depot": LicenceLapse,
    "expired_licence": LicenceLapse,
    "suspended_licence": LicenceLapse,
    "revoked_licence": LicenceLapse,
    "al_drift": AlDrift,
    "pressure_fault": PressureFault,
    "device_outage": DeviceIncident,
    "deliberate_silence": DeviceIncident,
}


def make_injections(
    scenarios: Sequence[Scenario], province: Province, *, seed: int | str, window: tuple[int, int]
) -> tuple[Province, list[Injection]]:
    """The injections of ``scenarios`` (resolved against ``province``; incident ids
    ``INC-0001``… in order) and the registry as they need it. ``window`` is the simulated
    (start, end) in epoch ms."""
    rng = random.Random(f"{seed}/scenarios")
    injections = []
    for i, scenario in enumerate(scenarios, start=1):
        resolved = resolve(rng, province, scenario)
        incident_id = f"INC-{i:04d}"
        stream = random.Random(f"{seed}/{incident_id}")
        injections.append(
            INJECTIONS[resolved.kind](resolved, incident_id, province, window, stream)
        )
    for injection in injections:
        province = injection.prepare(province)
    return province, injections


def suppress(records: Records, suppressions: Sequence[Suppression]) -> None:
    """Drop the records ``suppressions`` cover, handing each to its owner's ``hidden``."""
    by_station: dict[str, list[Suppression]] = defaultdict(list)
    for s in suppressions:
        by_station[s.station_id].append(s)
    for record_type in sorted({t for s in suppressions for t in s.types}):
        kept = []
        for record in records[record_type]:
            hit = None
            for s in by_station.get(record["station_id"], ()):
                if record_type in s.types and s.covers(record_type, record):
                    hit = s
                    break
            if hit is None:
                kept.append(record)
            else:
                hit.owner.hidden[record_type].append(record)
        records[record_type] = kept


def finish(records: Records, injections: Sequence[Injection]) -> list[Incident]:
    """Apply the injections' changes to ``records`` (in place): amendments, then
    suppression. Returns the incidents that happened; a scenario that never took effect
    (no delivery came after its start, say) is logged and left out."""
    if not injections:
        return []
    index = RecordIndex(records)
    for injection in injections:
        injection.amend(records, index)
    suppress(records, [s for injection in injections for s in injection.suppressions()])
    index = RecordIndex(records)
    incidents = []
    for injection in injections:
        found = injection.incidents(index)
        if not found:
            log.info(
                "scenario did not happen in the window: incident=%s kind=%s station=%s",
                injection.incident_id,
                injection.scenario.kind,
                injection.scenario.station_id or injection.scenario.depot_id,
            )
        incidents.extend(found)
    return incidents


__all__ = ["INJECTIONS", "Injection", "finish", "make_injections", "suppress"]
