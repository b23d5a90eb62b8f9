"""A deterministic simulator of a province's fuel stations and depots.

``generate_province`` registers depots and stations (tanks, nozzles, licences), runs a
time-stepped simulation whose volumes add up (sales draw tanks down, depots dispatch
sealed tanker loads that stations receive, tank gauges read with realistic noise) and
returns every record type of the SPEC as JSON-ready dicts; ``write_jsonl`` writes them
as ``<type>.jsonl`` files that ``fueltrace push`` accepts.
"""

from simulator.generate import DEFAULT_START, generate_province, write_jsonl
from simulator.physics import RECORD_TYPES

__all__ = ["DEFAULT_START", "RECORD_TYPES", "generate_province", "write_jsonl"]
