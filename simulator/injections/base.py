"""What an injection is, and the tools injections share.

An :class:`Injection` applies one resolved :class:`~simulator.scenarios.Scenario` to a run.
It may change the registry before the run (``prepare``), act while the simulation runs
(``on_load``, ``on_order``, ``on_tick``), change or add records after it (``amend``), hide
records (``suppressions``), and finally report what actually happened as ground-truth
:class:`~simulator.scenarios.Incident` objects (``incidents``). Every injection draws from
its own random stream, so an incident is the same whatever else is injected.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from simulator.clock import to_datetime, to_ms
from simulator.depot import PendingDelivery
from simulator.physics import Records, StationState, World
from simulator.province import Province, Station
from simulator.scenarios import KINDS, Incident, Scenario
from simulator.tank import TankState

#: The event time of each record type (what places it in a window).
TIME_FIELD: dict[str, str] = {
    "facility": "updated_at",
    "dispatch": "dispatched_at",
    "delivery": "started_at",
    "tank_reading": "read_at",
    "sale": "started_at",
    "vapor": "measured_at",
    "device_status": "at",
}


class RecordIndex:
    """Records by (type, station) in time order, and by any field on demand. Holds the
    very dicts of ``records``, so a change through the index changes the records."""

    def __init__(self, records: Records):
        self.records = records
        self._by_station: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._times: dict[tuple[str, str], list[int]] = {}
        self._by_field: dict[tuple[str, str], dict[Any, list[dict[str, Any]]]] = {}

    def of(self, record_type: str, station_id: str) -> list[dict[str, Any]]:
        """The station's records of ``record_type``, in event-time order."""
        if record_type not in self._by_station:
            groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in self.records[record_type]:
                groups[r["station_id"]].append(r)
            key = TIME_FIELD[record_type]
            for group in groups.values():
                group.sort(key=lambda r: r[key])
            self._by_station[record_type] = dict(groups)
        return self._by_station[record_type].get(station_id, [])

    def between(
        self, record_type: str, station_id: str, start_ms: int, end_ms: int
    ) -> list[dict[str, Any]]:
        """The station's records of ``record_type`` with start_ms ≤ event time < end_ms."""
        rows = self.of(record_type, station_id)
        times = self._times.get((record_type, station_id))
        if times is None:
            key = TIME_FIELD[record_type]
            times = self._times[(record_type, station_id)] = [r[key] for r in rows]
        return rows[bisect_left(times, start_ms) : bisect_left(times, end_ms)]

    def where(self, record_type: str, field_name: str, value: Any) -> list[dict[str, Any]]:
        """Records of ``record_type`` whose ``field_name`` equals ``value``."""
        key = (record_type, field_name)
        if key not in self._by_field:
            groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
            for r in self.records[record_type]:
                groups[r[field_name]].append(r)
            self._by_field[key] = dict(groups)
        return self._by_field[key].get(value, [])


@dataclass(frozen=True)
class Suppression:
    """Records of a station that never reach the platform: those of ``types`` whose event
    time is in [start_ms, end_ms); for sales only ``dispenser_id``'s if set; never the
    status records of ``keep_device`` (the outage announcing itself)."""

    owner: Injection
    station_id: str
    start_ms: int
    end_ms: int
    types: frozenset[str]
    dispenser_id: str | None = None
    keep_device: str | None = None

    def covers(self, record_type: str, record: dict[str, Any]) -> bool:
        if not self.start_ms <= record[TIME_FIELD[record_type]] < self.end_ms:
            return False
        if record_type == "sale" and self.dispenser_id is not None:
            return bool(record["dispenser_id"] == self.dispenser_id)
        return not (record_type == "device_status" and record["device_id"] == self.keep_device)


class Injection:
    """One scenario applied to a run. Subclasses override the hooks they need."""

    def __init__(
        self,
        scenario: Scenario,
        incident_id: str,
        province: Province,
        window: tuple[int, int],
        rng: random.Random,
    ):
        self.scenario = scenario
        self.spec = KINDS[scenario.kind]
        self.incident_id = incident_id
        self.province = province
        self.window_start_ms, self.window_end_ms = window
        self.start_ms = max(to_ms(scenario.start), self.window_start_ms)
        end = to_ms(scenario.end) if scenario.end is not None else self.window_end_ms
        self.end_ms = min(end, self.window_end_ms)
        self.rng = rng
        self.hidden: dict[str, list[dict[str, Any]]] = defaultdict(list)  # suppressed records

    # -- what it acts on -------------------------------------------------------------

    @property
    def station_id(self) -> str:
        if self.scenario.station_id is None:
            raise ValueError(f"{self.scenario.kind} needs a station")
        return self.scenario.station_id

    @property
    def station(self) -> Station:
        return self.province.station(self.station_id)

    def param(self, name: str) -> float:
        return float(self.scenario.params[name])

    def tank_state(self, world: World) -> TankState:
        return world.stations[self.station_id].tanks[str(self.scenario.subject)]

    def station_state(self, world: World) -> StationState:
        return world.stations[self.station_id]

    # -- hooks -------------------------------------------------------------------------

    def prepare(self, province: Province) -> Province:
        """The registry as this incident needs it (before the run)."""
        return province

    def on_load(
        self, world: World, dispatch: dict[str, Any], load: PendingDelivery
    ) -> tuple[dict[str, Any], PendingDelivery]:
        """A load leaving a depot: the dispatch record and what the station will receive."""
        return dispatch, load

    def on_order(self, world: World, station: StationState, tank: TankState, t_ms: int) -> bool:
        """A tank asks for a refill at ``t_ms``; True when this injection answers it."""
        return False

    def on_tick(self, world: World, t_ms: int) -> None:
        """The end of the simulation step at ``t_ms``."""

    def amend(self, records: Records, index: RecordIndex) -> None:
        """Change or add records after the run (before suppression)."""

    def suppressions(self) -> list[Suppression]:
        """Records that never reach the platform."""
        return []

    def incidents(self, index: RecordIndex) -> list[Incident]:
        """What happened, over the records as delivered (after suppression)."""
        return []

    # -- the ground truth --------------------------------------------------------------

    def incident(
        self,
        start_ms: int,
        end_ms: int,
        *,
        expected: list[str] | None = None,
        subject: str | None = None,
        aliases: tuple[str, ...] = (),
        params: dict[str, float] | None = None,
        refs: dict[str, str] | None = None,
    ) -> Incident:
        """An incident of this injection. ``expected`` defaults to the kind's rules; the
        kind's rules not expected become tolerated (they may fire, the signature is there
        only in part)."""
        spec = self.spec
        rules = list(spec.expected if expected is None else expected)
        tolerated = [r for r in (*spec.expected, *spec.tolerated) if r not in rules]
        return Incident(
            incident_id=self.incident_id,
            kind=self.scenario.kind,
            expected_rules=tuple(dict.fromkeys(rules)),
            tolerated_rules=tuple(dict.fromkeys(tolerated)),
            station_id=self.scenario.station_id,
            depot_id=self.scenario.depot_id,
            subject=subject if subject is not None else self.scenario.subject,
            start=to_datetime(start_ms),
            end=to_datetime(max(end_ms, start_ms)),
            params={k: round(v, 4) for k, v in (params or {}).items()},
            refs=dict(refs or {}),
            subject_aliases=tuple(a for a in dict.fromkeys(aliases) if a),
        )
