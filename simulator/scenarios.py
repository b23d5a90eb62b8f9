"""Injected wrongdoing: what can be injected, how to ask for it, and the ground truth.

A :class:`Scenario` asks for one incident of a ``kind`` (the catalogue ``KINDS``) at a
station or depot from a ``start`` time, explicitly or planned at random
(``simulator.planning.plan_incidents``). ``simulator.generate.generate_with_truth``
applies them and returns, besides the records, one :class:`Incident` per incident that
actually happened: where, when (UTC), what it touched (``subject``), the numbers
(``params``, units in the names) and the anomaly rules it must trip (``expected_rules``)
or may trip without that being a false alarm (``tolerated_rules``: side effects a
correct rule may see, e.g. an inventory imbalance on a leaking tank).
:func:`write_ground_truth` writes them as ``ground_truth.jsonl`` next to the data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.clock import iso_ms, to_ms

GROUND_TRUTH_FILE = "ground_truth.jsonl"
#: Licences a station needs to sell fuel; a depot needs its hazardous-chemicals permit.
REQUIRED_STATION_LICENCES = ("retail_approval", "hazardous_chemicals", "business_licence",
                             "environmental_approval")  # fmt: skip
#: The cheaper grade a product swap puts in a tank of the dearer one (以次充好).
CHEAPER_GRADE: dict[str, str] = {
    "gasoline_95": "gasoline_92",
    "gasoline_98": "gasoline_95",
    "diesel_m10": "diesel_0",
    "diesel_m20": "diesel_m10",
    "diesel_m35": "diesel_m20",
}
DAY_H = 24.0

#: A parameter's ranges for random planning: one range is picked, then a value in it.
Ranges = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class KindSpec:
    """One kind of injectable wrongdoing."""

    target: str  # tank, nozzle, gasoline_nozzle, dispenser, station, depot, delivery, device
    expected: tuple[str, ...]  # rules it trips (some are decided per incident, see injections)
    tolerated: tuple[str, ...]  # rules that may also fire on it without being false alarms
    params: Mapping[str, Ranges] = field(default_factory=dict)
    defaults: Mapping[str, float] = field(default_factory=dict)
    duration_h: tuple[float, float] | None = None  # None: an event, or until the window ends
    integers: frozenset[str] = frozenset()  # params that are counts or 0/1 flags


_SILENCE_SIDE_EFFECTS = (
    "totalizer_gap",
    "persistent_gain",  # a dispenser whose sales are hidden looks miscalibrated
    "device_silent",
    "inventory_imbalance",
    "slow_leak",
    "diverted_dispatch",
    "untraced_level_rise",
    "delivery_gauge_mismatch",
    "sales_while_gauge_down",
)

# fmt: off
KINDS: dict[str, KindSpec] = {
    # Wetstock
    "leak": KindSpec(
        "tank", ("slow_leak",), ("inventory_imbalance",),
        {"rate_l_h": ((0.2, 5.0),)}, {"rate_l_h": 1.0}, (5 * DAY_H, 20 * DAY_H),
    ),
    # An unexplained rise or a meter off its legal error also fails the tank's statistical
    # reconciliation (leak and meter terms absorb part of it): true findings about the
    # tank, tolerated, not false alarms.
    "off_book_delivery": KindSpec(
        "tank", ("untraced_level_rise",), ("inventory_imbalance", "slow_leak", "persistent_gain"),
        {"volume_l": ((2_000.0, 6_000.0),)}, {"volume_l": 4_000.0},
    ),
    "calibration_fraud": KindSpec(
        "dispenser", ("persistent_gain",), ("inventory_imbalance", "slow_leak"),
        {"gain_pct": ((0.5, 1.0),)}, {"gain_pct": 0.6}, (7 * DAY_H, 20 * DAY_H),
    ),
    "totalizer_tampering": KindSpec(
        "nozzle", ("totalizer_gap",), (),
        {"jump_l": ((-3_000.0, -100.0), (100.0, 3_000.0)), "jumps": ((1, 3),)},
        {"jump_l": -1_000.0, "jumps": 1}, (0.0, 3 * DAY_H), frozenset({"jumps"}),
    ),
    # Supply chain
    "diverted_load": KindSpec(
        "station", ("diverted_dispatch",), (),
        {"volume_l": ((5_000.0, 12_000.0),), "resold": ((0, 1),)},
        {"volume_l": 8_000.0}, None, frozenset({"resold"}),
    ),
    "shortfall": KindSpec(
        "delivery", ("delivery_mismatch",), (),
        {"short_pct": ((1.0, 4.0),), "seals_broken": ((0, 1),)},
        {"short_pct": 2.0, "seals_broken": 0}, None, frozenset({"seals_broken"}),
    ),
    "gauge_short_delivery": KindSpec(
        "delivery", ("delivery_gauge_mismatch",), ("inventory_imbalance",),
        {"short_pct": ((3.0, 10.0),)}, {"short_pct": 5.0},
    ),
    "adulteration": KindSpec(
        "delivery", ("delivery_mismatch",), (),
        {"density_delta_kg_m3": ((-12.0, -3.0), (3.0, 12.0))}, {"density_delta_kg_m3": 5.0},
    ),
    "product_swap": KindSpec("delivery", ("delivery_mismatch",), ()),
    "vehicle_swap": KindSpec("delivery", ("delivery_mismatch",), ()),
    "delivery_without_dispatch": KindSpec(
        "delivery", ("delivery_without_dispatch",), ("untraced_level_rise",),
        {"unknown_dispatch": ((0, 1),)}, {"unknown_dispatch": 0}, None,
        frozenset({"unknown_dispatch"}),
    ),
    "unlicensed_depot": KindSpec("depot", ("unlicensed_depot_dispatch",), ()),
    # Station conduct
    "expired_licence": KindSpec("station", ("unlicensed_sales",), ()),
    "suspended_licence": KindSpec("station", ("unlicensed_sales",), ()),
    "revoked_licence": KindSpec("station", ("unlicensed_sales",), ()),
    # Vapour recovery
    "al_drift": KindSpec(
        "gasoline_nozzle", ("vapor_al_out_of_band",), (),
        {"al_ratio": ((0.6, 0.9), (1.3, 1.6)), "ramp_h": ((6.0, 18.0),)},
        {"al_ratio": 0.8, "ramp_h": 12.0}, (7 * DAY_H, 12 * DAY_H),
    ),
    "pressure_fault": KindSpec(
        "station", ("vapor_pressure_out_of_range",), (),
        # beyond the online monitor's normal range, −1000…+600 Pa (FUELTRACE_VAPOR_PRESSURE_*):
        # a fault inside it is not a fault the monitor reports
        {"pressure_pa": ((-2_500.0, -1_100.0), (700.0, 1_500.0))}, {"pressure_pa": 900.0},
        (6.0, 3 * DAY_H),
    ),
    # Silence
    "device_outage": KindSpec("device", ("device_silent",), _SILENCE_SIDE_EFFECTS,
                              duration_h=(8.0, 36.0)),
    "deliberate_silence": KindSpec("device", ("device_silent",), _SILENCE_SIDE_EFFECTS,
                                   duration_h=(8.0, 36.0)),
}
# fmt: on
#: Kinds that act on the next delivery (or refill order) after ``start``.
DELIVERY_KINDS = frozenset(k for k, s in KINDS.items() if s.target == "delivery") | {
    "delivery_without_dispatch",
    "diverted_load",
    "off_book_delivery",
}
#: Kinds that involve the station's depot (its incidents name it too).
SUPPLY_KINDS = frozenset(
    {k for k, s in KINDS.items() if s.target == "delivery"} - {"delivery_without_dispatch"}
) | {"diverted_load"}
LICENCE_STATUS = {
    "expired_licence": "expired",
    "suspended_licence": "suspended",
    "revoked_licence": "revoked",
}


@dataclass(frozen=True)
class Scenario:
    """A request for one incident. ``subject`` names what it acts on: a tank, nozzle,
    dispenser or device id of the station, or a licence kind; left out, it is chosen
    (deterministically from the seed). ``end`` defaults to the kind's natural end (the
    end of the window for lasting kinds). ``params`` are numbers with units in their
    names (``rate_l_h``), ``options`` strings (``status``: expired/suspended/revoked for
    ``unlicensed_depot``, offline/fault for ``device_outage``; ``resold_to``: the station
    a diverted load is sold into)."""

    kind: str
    start: datetime
    station_id: str | None = None
    depot_id: str | None = None
    subject: str | None = None
    end: datetime | None = None
    params: Mapping[str, float] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Incident:
    """One injected incident as it happened: the ground truth for scoring."""

    incident_id: str
    kind: str
    expected_rules: tuple[str, ...]
    tolerated_rules: tuple[str, ...]
    station_id: str | None
    depot_id: str | None
    subject: str | None
    start: datetime  # UTC
    end: datetime  # UTC
    params: dict[str, float] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # related ids and string facts
    subject_aliases: tuple[str, ...] = ()  # other ids an anomaly may name as its subject

    @property
    def subjects(self) -> tuple[str, ...]:
        """Every id an anomaly about this incident may carry as its subject."""
        return ((self.subject,) if self.subject else ()) + self.subject_aliases

    def to_json(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "kind": self.kind,
            "expected_rules": list(self.expected_rules),
            "tolerated_rules": list(self.tolerated_rules),
            "station_id": self.station_id,
            "depot_id": self.depot_id,
            "subject": self.subject,
            "subject_aliases": list(self.subject_aliases),
            "start": iso_ms(to_ms(self.start)),
            "end": iso_ms(to_ms(self.end)),
            "params": dict(self.params),
            "refs": dict(self.refs),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Incident:
        return cls(
            incident_id=data["incident_id"],
            kind=data["kind"],
            expected_rules=tuple(data["expected_rules"]),
            tolerated_rules=tuple(data.get("tolerated_rules", ())),
            station_id=data.get("station_id"),
            depot_id=data.get("depot_id"),
            subject=data.get("subject"),
            start=parse_time(data["start"]),
            end=parse_time(data["end"]),
            params=dict(data.get("params", {})),
            refs=dict(data.get("refs", {})),
            subject_aliases=tuple(data.get("subject_aliases", ())),
        )


def parse_time(value: str | datetime) -> datetime:
    """An aware UTC datetime from an ISO-8601 string (``Z`` or an offset) or a datetime
    (naive = UTC)."""
    t = (
        value
        if isinstance(value, datetime)
        else datetime.fromisoformat(value.replace("Z", "+00:00"))
    )
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def write_ground_truth(incidents: Iterable[Incident], directory: str | Path) -> Path:
    """Write ``ground_truth.jsonl`` (one incident per line, times ISO-8601 ``Z``) into
    ``directory`` (created if missing); returns its path."""
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / GROUND_TRUTH_FILE
    with path.open("w", encoding="utf-8") as fh:
        for incident in incidents:
            fh.write(json.dumps(incident.to_json(), ensure_ascii=False) + "\n")
    return path


def read_ground_truth(path: str | Path) -> list[Incident]:
    """The incidents of a ``ground_truth.jsonl`` file (or of the one in a directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / GROUND_TRUTH_FILE
    with p.open(encoding="utf-8") as fh:
        return [Incident.from_json(json.loads(line)) for line in fh if line.strip()]
