"""Trading without a valid licence.

* ``expired_licence``: the station's licence ``subject`` (a kind: ``retail_approval``,
  ``hazardous_chemicals``, ``business_licence``) is registered with ``valid_until`` the day
  before ``start``'s Beijing date, status still ``valid``; the station keeps selling.
* ``suspended_licence`` / ``revoked_licence``: at ``start`` the station files a new
  ``facility`` record (``updated_at`` = ``start``) with that licence's status changed; it
  keeps selling. All three trip ``unlicensed_sales`` (when a sale follows).
* ``unlicensed_depot``: the same for a depot's ``hazardous_chemicals`` permit (option
  ``status``: expired — the default —, suspended or revoked); the depot keeps
  dispatching. Trips ``unlicensed_depot_dispatch`` (when a dispatch follows).

Licence dates are Beijing calendar days, ``valid_until`` inclusive: a licence valid until
D is expired from D+1 00:00 Beijing time (16:00 UTC on D).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from simulator.clock import BEIJING_OFFSET_MS, DAY_MS, to_datetime
from simulator.injections.base import Injection, RecordIndex
from simulator.licences import VALIDITY_YEARS, Licence, add_years
from simulator.physics import Records
from simulator.province import Depot, Province, Station, depot_record, station_record
from simulator.scenarios import LICENCE_STATUS, Incident


class LicenceLapse(Injection):
    effective_ms: int = 0
    update: dict[str, Any] | None = None  # the facility record filed when the status changes
    licence: Licence | None = None

    @property
    def status(self) -> str:
        return LICENCE_STATUS.get(self.scenario.kind) or self.scenario.options.get(
            "status", "expired"
        )

    @property
    def for_depot(self) -> bool:
        return self.scenario.kind == "unlicensed_depot"

    def prepare(self, province: Province) -> Province:
        facility: Station | Depot
        if self.for_depot:
            facility = province.depot(str(self.scenario.depot_id))
        else:
            facility = province.station(self.station_id)
        kind = str(self.scenario.subject)
        old = next((lic for lic in facility.licences if lic.kind == kind), None)
        if old is None:
            raise ValueError(f"{self.scenario.kind}: {facility.facility_id} holds no {kind}")
        if self.status == "expired":
            expires = to_datetime(self.start_ms + BEIJING_OFFSET_MS).date()
            until = expires - timedelta(days=1)
            since = old.valid_from
            if since > until:
                since = add_years(until, -VALIDITY_YEARS[kind]) + timedelta(days=1)
            self.licence = replace(old, valid_from=since, valid_until=until)
            self.effective_ms = (self.start_ms + BEIJING_OFFSET_MS) // DAY_MS * DAY_MS
            self.effective_ms -= BEIJING_OFFSET_MS
        else:
            self.licence = replace(old, status=self.status)
            self.effective_ms = self.start_ms
        licences = tuple(self.licence if lic is old else lic for lic in facility.licences)
        if self.status != "expired":  # registered as valid; the change is filed at start
            changed = replace(facility, licences=licences, updated_at_ms=self.start_ms)
            self.update = (
                depot_record(changed) if isinstance(changed, Depot) else station_record(changed)
            )
            return province
        if isinstance(facility, Depot):
            depots = tuple(
                replace(d, licences=licences) if d is facility else d for d in province.depots
            )
            self.province = replace(province, depots=depots)
            return self.province
        stations = tuple(
            replace(s, licences=licences) if s is facility else s for s in province.stations
        )
        self.province = replace(province, stations=stations)
        return self.province

    def amend(self, records: Records, index: RecordIndex) -> None:
        if self.update is not None:
            records["facility"].append(self.update)

    def incidents(self, index: RecordIndex) -> list[Incident]:
        if self.licence is None:
            return []
        since = max(self.effective_ms, self.window_start_ms)
        refs = {
            "licence_kind": self.licence.kind,
            "licence_number": self.licence.number,
            "status": self.status,
            "valid_until": self.licence.valid_until.isoformat(),
        }
        days = (self.window_end_ms - since) / DAY_MS
        if self.for_depot:
            depot_id = self.scenario.depot_id
            sent = [
                d
                for d in index.where("dispatch", "depot_id", depot_id)
                if d["dispatched_at"] >= since
            ]
            return [
                self.incident(
                    since,
                    self.window_end_ms,
                    expected=None if sent else [],
                    aliases=tuple(d["dispatch_id"] for d in sent),
                    params={"dispatches_after": len(sent), "days": days},
                    refs=refs,
                )
            ]
        sold = index.between("sale", self.station_id, since, self.window_end_ms + 1)
        return [
            self.incident(
                since,
                self.window_end_ms,
                expected=None if sold else [],
                params={"sales_after": len(sold), "days": days},
                refs=refs,
            )
        ]
