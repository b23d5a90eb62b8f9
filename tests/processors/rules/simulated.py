"""A simulated province through the warehouse, the lineage and one rule: what the rules'
clean-data and injected-incident tests share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processors import anomalies, traceability
from processors.rules.base import Rule
from simulator.generate import Generated
from simulator.scenarios import Incident
from tests.processors.scenario import load, settings
from warehouse.connection import connect

RECORD_TYPES = ("facility", "dispatch", "delivery", "tank_reading", "sale")


def findings_on_province(tmp: Path, records: dict[str, list[dict]], now: Any,
                         rule: Rule) -> list[tuple]:  # fmt: skip
    """(station_id, depot_id, subject) of every finding of ``rule`` on the records."""
    con = connect(tmp / "w.duckdb")
    load(con, tmp, **{t: records[t] for t in RECORD_TYPES})
    traceability.run(con, settings(tmp), now)
    anomalies.run(con, settings(tmp), now, (rule,))
    return con.execute("SELECT station_id, depot_id, subject FROM anomaly").fetchall()


def about(finding: tuple, incident: Incident) -> bool:
    """Whether a (station_id, depot_id, subject) finding names the incident's place and
    one of its subjects."""
    station_id, depot_id, subject = finding
    where = (station_id == incident.station_id if incident.station_id
             else depot_id == incident.depot_id)  # fmt: skip
    return where and subject in incident.subjects


@dataclass(frozen=True)
class RuleOnTruth:
    """One rule's findings on a generated province, against its ground truth."""

    expected: list[Incident]  # incidents that expect the rule
    found: list[tuple]  # (station_id, depot_id, subject) of each finding
    missed: list[str]  # ids of expected incidents no finding names
    unexplained: list[tuple]  # findings no incident expecting or tolerating the rule names


def rule_on_truth(tmp: Path, generated: Generated, now: Any, rule: Rule) -> RuleOnTruth:
    expected = [i for i in generated.incidents if rule.name in i.expected_rules]
    found = findings_on_province(tmp, generated.records, now, rule)
    explained = [i for i in generated.incidents
                 if rule.name in i.expected_rules + i.tolerated_rules]  # fmt: skip
    return RuleOnTruth(
        expected, found,
        missed=[i.incident_id for i in expected if not any(about(f, i) for f in found)],
        unexplained=[f for f in found if not any(about(f, i) for i in explained)],
    )  # fmt: skip
