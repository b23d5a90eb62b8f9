"""A deterministic simulator of a province's fuel stations and depots.

``generate_province`` registers depots and stations (tanks, nozzles, licences), runs a
time-stepped simulation whose volumes add up (sales draw tanks down, depots dispatch
sealed tanker loads that stations receive, tank gauges read with realistic noise) and
returns every record type of the SPEC as JSON-ready dicts; ``write_jsonl`` writes them
as ``<type>.jsonl`` files that ``fueltrace push`` accepts.

``generate_with_truth`` does the same with injected wrongdoing (``scenarios``: explicit
:class:`Scenario` objects or :class:`RandomScenarios`) and returns the ground truth,
one :class:`Incident` each, which ``write_ground_truth`` writes as ``ground_truth.jsonl``;
``simulator.scoring`` scores a pipeline's anomalies against it.
"""

from simulator.generate import (
    DEFAULT_START,
    Generated,
    RandomScenarios,
    generate_province,
    generate_with_truth,
    province_for,
    write_jsonl,
)
from simulator.physics import RECORD_TYPES
from simulator.planning import plan_incidents
from simulator.scenarios import (
    KINDS,
    Incident,
    Scenario,
    read_ground_truth,
    write_ground_truth,
)

__all__ = [
    "DEFAULT_START",
    "KINDS",
    "RECORD_TYPES",
    "Generated",
    "Incident",
    "RandomScenarios",
    "Scenario",
    "generate_province",
    "generate_with_truth",
    "plan_incidents",
    "province_for",
    "read_ground_truth",
    "write_ground_truth",
    "write_jsonl",
]
