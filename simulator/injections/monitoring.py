"""Vapour-recovery faults and silent devices.

* ``al_drift``: from ``start`` the nozzle's A/L moves to ``al_ratio`` over ``ramp_h`` hours
  (a failing vapour pump, a blocked or leaking return line) and stays there until
  ``end``. Trips ``vapor_al_out_of_band`` when the daily mean is out of 1.0–1.2 on at least
  ``AL_ALARM_DAYS`` consecutive Beijing days (``days_out_of_band``).
* ``pressure_fault``: from ``start`` to ``end`` the station's ullage pressure sits at
  ``pressure_pa`` (a P/V valve stuck shut, a dead vapour processor: +700…+1,500 Pa; a
  stuck-open one under suction: −1,100…−2,500 Pa). Trips ``vapor_pressure_out_of_range``.
* ``device_outage``: the device (``subject``: ``ATG1``, ``D<n>``, ``VM1`` or ``GW1``) reports
  ``offline`` (or option ``status`` = ``fault``) at ``start`` and ``online`` at ``end``;
  in between its records are missing: a broken dispenser sells nothing (customers use
  the others), a dead gauge, vapour monitor or gateway loses what it would have sent
  while the station keeps trading. ``deliberate_silence``: the same records go missing
  with no status at all, and a "silent" dispenser keeps dispensing (its sales are hidden,
  its totalizer keeps counting).

Rules: a device (ATG, vapour monitor) silent while the station sells trips
``device_silent`` (evidence: outage if it reported itself offline, suppression if not);
a dispenser's silence is not judged by that rule (an idle dispenser is silent too), so
for a dispenser it is only tolerated;
an ATG also ``sales_while_gauge_down``; a hidden dispenser's next sale
``totalizer_gap``; a silent gateway (the whole station) ``station_silent`` when it traded
meanwhile (its later totalizers show it).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from simulator.clock import BEIJING_OFFSET_MS, DAY_MS, HOUR_MS
from simulator.injections.base import Injection, RecordIndex, Suppression
from simulator.monitors import AL_BAND, device_record, vapor_nozzles
from simulator.physics import Records, World
from simulator.scenarios import Incident

#: A dispenser silent while its station made fewer sales than this is not expected to
#: be found: in clean data a dispenser goes up to ~7 h without a sale at night while the
#: others make up to ~25 (24 stations × 4 days, seed 7), so fewer is no evidence.
DISPENSER_SILENT_MIN_SALES = 40
#: Consecutive out-of-band days before the A/L alarm: GB 20952-2020 Annex E's online
#: monitoring (FUELTRACE_VAPOR_AL_DAYS' default).
AL_ALARM_DAYS = 5

#: What each kind of device sends.
DEVICE_RECORDS: dict[str, frozenset[str]] = {
    "atg": frozenset({"tank_reading"}),
    "dispenser": frozenset({"sale"}),
    "vapor_monitor": frozenset({"vapor"}),
    "gateway": frozenset({"sale", "tank_reading", "vapor", "delivery", "device_status"}),
}


def longest_run_of_days(days: list[int]) -> int:
    """The longest run of consecutive day numbers in ``days``."""
    best = run = 0
    previous = None
    for day in sorted(set(days)):
        run = run + 1 if previous is not None and day == previous + 1 else 1
        best, previous = max(best, run), day
    return best


class AlDrift(Injection):
    def amend(self, records: Records, index: RecordIndex) -> None:
        target, ramp_ms = self.param("al_ratio"), self.param("ramp_h") * HOUR_MS
        for r in index.between("vapor", self.station_id, self.start_ms, self.end_ms):
            if r["nozzle_id"] != self.scenario.subject:
                continue
            w = min(1.0, (r["measured_at"] - self.start_ms) / ramp_ms) if ramp_ms > 0 else 1.0
            drifted = (1 - w) * r["al_ratio"] + w * (target + self.rng.gauss(0.0, 0.02))
            r["al_ratio"] = round(max(drifted, 0.0), 3)

    def incidents(self, index: RecordIndex) -> list[Incident]:
        samples = [
            r for r in index.of("vapor", self.station_id) if r["nozzle_id"] == self.scenario.subject
        ]
        by_day: dict[int, list[float]] = defaultdict(list)
        for r in samples:
            by_day[(r["measured_at"] + BEIJING_OFFSET_MS) // DAY_MS].append(r["al_ratio"])
        low, high = AL_BAND
        out = [d for d, v in by_day.items() if not low <= sum(v) / len(v) <= high]
        run = longest_run_of_days(out)
        dispenser = next(
            n.dispenser_id for n in self.station.nozzles if n.nozzle_id == self.scenario.subject
        )
        return [
            self.incident(
                self.start_ms,
                self.end_ms,
                expected=None if run >= AL_ALARM_DAYS else [],
                aliases=(dispenser,),
                params={
                    "al_ratio": self.param("al_ratio"),
                    "ramp_h": self.param("ramp_h"),
                    "days_out_of_band": run,
                },
            )
        ]


class PressureFault(Injection):
    def amend(self, records: Records, index: RecordIndex) -> None:
        by_hour: dict[int, float] = {}
        for r in index.between("vapor", self.station_id, self.start_ms, self.end_ms):
            hour = r["measured_at"] // HOUR_MS
            if hour not in by_hour:
                by_hour[hour] = self.param("pressure_pa") + self.rng.gauss(0.0, 25.0)
            r["pressure_pa"] = round(by_hour[hour] + self.rng.gauss(0.0, 5.0), 1)

    def incidents(self, index: RecordIndex) -> list[Incident]:
        samples = index.between("vapor", self.station_id, self.start_ms, self.end_ms)
        return [
            self.incident(
                self.start_ms,
                self.end_ms,
                expected=None if samples else [],
                params={
                    "pressure_pa": self.param("pressure_pa"),
                    "samples": len(samples),
                    "duration_h": (self.end_ms - self.start_ms) / HOUR_MS,
                },
            )
        ]


class DeviceIncident(Injection):
    """``device_outage`` and ``deliberate_silence``."""

    began: int | None = None  # a broken dispenser: the steps it stopped and restarted at
    ended: int | None = None

    @property
    def device_id(self) -> str:
        return str(self.scenario.subject)

    @property
    def device_kind(self) -> str:
        return dict(self.station.devices())[self.device_id]

    @property
    def outage(self) -> bool:
        return self.scenario.kind == "device_outage"

    @property
    def broken_dispenser(self) -> bool:
        return self.outage and self.device_kind == "dispenser"

    def window(self) -> tuple[int, int]:
        if self.broken_dispenser:
            began = self.began if self.began is not None else self.start_ms
            return began, self.ended if self.ended is not None else self.window_end_ms
        return self.start_ms, self.end_ms

    def on_tick(self, world: World, t_ms: int) -> None:
        if not self.broken_dispenser:
            return
        nozzles = [
            n
            for ns in self.station_state(world).nozzles.values()
            for n in ns
            if n.spec.dispenser_id == self.device_id
        ]
        if self.began is None and self.start_ms <= t_ms < self.end_ms:
            self.began = t_ms
        elif self.began is not None and self.ended is None and t_ms >= self.end_ms:
            self.ended = t_ms
        else:
            return
        for n in nozzles:
            n.in_service = self.ended is not None

    def suppressions(self) -> list[Suppression]:
        if self.broken_dispenser:
            return []  # it sells nothing: there is nothing to lose
        kind = self.device_kind
        start, end = self.window()
        return [
            Suppression(
                self,
                self.station_id,
                start,
                end,
                DEVICE_RECORDS[kind],
                dispenser_id=self.device_id if kind == "dispenser" else None,
                keep_device=self.device_id,
            )
        ]

    def amend(self, records: Records, index: RecordIndex) -> None:
        if not self.outage or (self.broken_dispenser and self.began is None):
            return
        start, end = self.window()
        status = self.scenario.options.get("status", "offline")
        sid, device, kind = self.station_id, self.device_id, self.device_kind
        records["device_status"].append(device_record(sid, device, kind, status, start))
        if end < self.window_end_ms:
            records["device_status"].append(device_record(sid, device, kind, "online", end))

    def incidents(self, index: RecordIndex) -> list[Incident]:
        if self.broken_dispenser and self.began is None:
            return []
        start, end = self.window()
        kind, hidden = self.device_kind, self.hidden["sale"]
        during = len(index.between("sale", self.station_id, start, end))
        selling = during >= (DISPENSER_SILENT_MIN_SALES if kind == "dispenser" else 1)
        expected: list[str] = []
        if kind == "gateway":
            expected = ["station_silent"] if hidden else []
        elif kind == "dispenser":
            if selling and self._gap_follows(index, hidden, end):
                expected = ["totalizer_gap"]
        elif selling:
            expected = ["device_silent"]
            if kind == "atg":
                expected.append("sales_while_gauge_down")
        station = self.station
        aliases: tuple[str, ...] = ()
        if kind == "atg":
            aliases = tuple(t.tank_id for t in station.tanks)
        elif kind == "dispenser":
            aliases = tuple(
                n.nozzle_id for n in station.nozzles if n.dispenser_id == self.device_id
            )
        elif kind == "vapor_monitor":  # a station has one: rules may name it by its kind
            aliases = ("vapor_monitor", *(n.nozzle_id for n in vapor_nozzles(station)))
        refs = {
            "device_id": self.device_id,
            "device_kind": kind,
            "evidence": "outage" if self.outage else "suppression",
        }
        if self.outage:
            refs["status"] = self.scenario.options.get("status", "offline")
        return [
            self.incident(
                start,
                end,
                expected=expected,
                aliases=aliases,
                refs=refs,
                params={
                    "duration_h": (end - start) / HOUR_MS,
                    "sales_during": during,
                    "hidden_sales": len(hidden),
                    "hidden_volume_l": sum(s["volume_l"] for s in hidden),
                    "suppressed_records": sum(len(v) for v in self.hidden.values()),
                },
            )
        ]

    def _gap_follows(self, index: RecordIndex, hidden: list[dict[str, Any]], end: int) -> bool:
        """A hidden sale's nozzle sells again, visibly, after the silence."""
        nozzles = {s["nozzle_id"] for s in hidden}
        return any(
            s["nozzle_id"] in nozzles
            for s in index.between("sale", self.station_id, end, self.window_end_ms + 1)
        )
