"""Score a pipeline's anomalies against the ground truth of the injected incidents.

**Matching.** An anomaly matches an incident when all of these hold:

* its ``rule`` is one the incident expects or tolerates (``expected_rules``,
  ``tolerated_rules``);
* the place: an incident at a station matches an anomaly at that station (or one that
  names no station but the incident's depot); a depot incident (``station_id`` None)
  matches an anomaly naming that depot;
* the time: the anomaly's window ``[window_start, window_end]`` overlaps the incident's
  ``[start − slack, end + slack]``; ``slack`` (default ``DEFAULT_SLACK``, 6 h) absorbs rules
  that place a finding on the step, reading or sale next to the event (a totalizer gap
  is seen at the next sale, a delivery mismatch from dispatch to unloading);
* the subject, when both name one and the rule is expected: the anomaly's ``subject``
  is one of the incident's ``subjects`` (its subject and aliases: a dispenser's nozzles
  and tanks, a delivery's dispatch and tank, an ATG's tanks, …). A tolerated side effect
  may show on another subject of the station (a hidden dispenser's sales unbalance the
  tanks it draws from, and the gauge's view of a delivery meanwhile).

**Counting**, per rule:

* an incident that expects the rule is a *true positive* if at least one anomaly of the
  rule matches it, else a *false negative*; recall = TP / (TP + FN);
* an anomaly of the rule that matches no incident expecting or tolerating it is a *false
  positive*; precision = 1 − FP / anomalies (an anomaly on a tolerated side effect, e.g.
  an imbalance on a leaking tank, is a true finding, not a false alarm);
* detection delay (event time) = end of the window of the earliest-ending matching
  anomaly − incident start, at least 0: how much data past the start of the wrongdoing
  the rule needed. The analysis-clock delay (``first_seen_at`` − incident start) is given
  too when the anomalies carry ``first_seen_at``; it also counts ingest latency and the
  analysis interval, and is only meaningful for a replay in real time.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulator.scenarios import Incident, parse_time

DEFAULT_SLACK = timedelta(hours=6)


@dataclass(frozen=True)
class Anomaly:
    """The fields of a pipeline anomaly that scoring uses."""

    anomaly_id: str
    rule: str
    station_id: str | None
    depot_id: str | None
    subject: str | None
    window_start: datetime
    window_end: datetime
    first_seen_at: datetime | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Anomaly:
        seen = row.get("first_seen_at")
        return cls(
            anomaly_id=str(row["anomaly_id"]),
            rule=str(row["rule"]),
            station_id=row.get("station_id"),
            depot_id=row.get("depot_id"),
            subject=row.get("subject"),
            window_start=parse_time(row["window_start"]),
            window_end=parse_time(row["window_end"]),
            first_seen_at=parse_time(seen) if seen is not None else None,
        )


@dataclass(frozen=True)
class RuleScore:
    rule: str
    incidents: int  # incidents that expect the rule
    true_positives: int
    false_negatives: int
    anomalies: int  # anomalies of the rule
    false_positives: int
    tolerated_anomalies: int  # true findings on incidents that only tolerate the rule
    precision: float | None  # None: no anomaly of the rule
    recall: float | None  # None: no incident expects the rule
    median_delay_h: float | None  # event time, over the true positives
    median_first_seen_delay_h: float | None  # analysis clock, when first_seen_at is given


@dataclass(frozen=True)
class KindScore:
    kind: str
    incidents: int
    detected: int  # every expected rule found it
    partly_detected: int  # some but not every expected rule found it
    undetectable: int  # it expects no rule (the signature never showed, e.g. no sale after)


@dataclass(frozen=True)
class Detection:
    incident_id: str
    rule: str
    anomaly_id: str  # the earliest-ending matching anomaly
    delay_h: float
    first_seen_delay_h: float | None


@dataclass(frozen=True)
class Score:
    by_rule: dict[str, RuleScore]
    by_kind: dict[str, KindScore]
    total: RuleScore  # every rule together (rule = "*")
    detections: list[Detection] = field(default_factory=list)
    missed: list[tuple[str, str]] = field(default_factory=list)  # (incident_id, rule)
    false_positive_ids: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per rule, then the total: for a table or JSON."""
        return [vars(s) for s in (*sorted(self.by_rule.values(), key=lambda s: s.rule), self.total)]


def matches(incident: Incident, anomaly: Anomaly, slack: timedelta = DEFAULT_SLACK) -> bool:
    """Whether ``anomaly`` is a finding about ``incident`` (see the module docstring)."""
    if anomaly.rule not in incident.expected_rules and anomaly.rule not in incident.tolerated_rules:
        return False
    if incident.station_id is not None:
        place = anomaly.station_id == incident.station_id or (
            anomaly.station_id is None
            and incident.depot_id is not None
            and anomaly.depot_id == incident.depot_id
        )
    else:
        place = incident.depot_id is not None and anomaly.depot_id == incident.depot_id
    if not place:
        return False
    if anomaly.window_end < incident.start - slack or anomaly.window_start > incident.end + slack:
        return False
    if anomaly.rule not in incident.expected_rules:
        return True  # a side effect may show on another subject of the station
    return not (anomaly.subject and incident.subjects and anomaly.subject not in incident.subjects)


def _anomalies(anomalies: Any) -> list[Anomaly]:
    if hasattr(anomalies, "iter_rows"):  # a Polars frame
        anomalies = anomalies.iter_rows(named=True)
    return [a if isinstance(a, Anomaly) else Anomaly.of(a) for a in anomalies]


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def score(anomalies: Any, incidents: Iterable[Incident], slack: timedelta = DEFAULT_SLACK) -> Score:
    """Score ``anomalies`` (a Polars frame, or dicts / :class:`Anomaly` objects, with
    ``anomaly_id, rule, station_id, depot_id, subject, window_start, window_end`` and
    optionally ``first_seen_at``; times as datetimes or ISO-8601 strings) against
    ``incidents``."""
    found = _anomalies(anomalies)
    truth = list(incidents)
    by_place: dict[str, list[Incident]] = defaultdict(list)
    for inc in truth:
        if inc.station_id is not None:
            by_place[inc.station_id].append(inc)
        if inc.depot_id is not None:
            by_place[f"depot:{inc.depot_id}"].append(inc)
    matched: dict[str, list[Anomaly]] = defaultdict(list)  # incident_id → anomalies
    false_positives: list[Anomaly] = []
    tolerated: dict[str, int] = defaultdict(int)
    for a in found:
        candidates = by_place.get(a.station_id or "", []) + by_place.get(f"depot:{a.depot_id}", [])
        unique = {id(inc): inc for inc in candidates}.values()
        hits = [inc for inc in unique if matches(inc, a, slack)]
        for inc in hits:
            matched[inc.incident_id].append(a)
        if not hits:
            false_positives.append(a)
        elif not any(a.rule in inc.expected_rules for inc in hits):
            tolerated[a.rule] += 1
    rules = sorted({r for inc in truth for r in inc.expected_rules} | {a.rule for a in found})
    detections, missed = [], []
    for inc in truth:
        for rule in inc.expected_rules:
            found_by = [a for a in matched[inc.incident_id] if a.rule == rule]
            if not found_by:
                missed.append((inc.incident_id, rule))
                continue
            first = min(found_by, key=lambda a: (a.window_end, a.anomaly_id))
            seen = [a.first_seen_at for a in found_by if a.first_seen_at is not None]
            detections.append(
                Detection(
                    inc.incident_id,
                    rule,
                    first.anomaly_id,
                    max(_hours(first.window_end - inc.start), 0.0),
                    _hours(min(seen) - inc.start) if seen else None,
                )
            )
    by_rule = {
        rule: _rule_score(rule, truth, found, detections, missed, false_positives, tolerated)
        for rule in rules
    }
    return Score(
        by_rule=by_rule,
        by_kind=_kind_scores(truth, detections),
        total=_rule_score("*", truth, found, detections, missed, false_positives, tolerated),
        detections=detections,
        missed=missed,
        false_positive_ids=[a.anomaly_id for a in false_positives],
    )


def _rule_score(
    rule: str,
    truth: list[Incident],
    found: list[Anomaly],
    detections: list[Detection],
    missed: list[tuple[str, str]],
    false_positives: list[Anomaly],
    tolerated: Mapping[str, int],
) -> RuleScore:
    def mine(r: str) -> bool:
        return rule == "*" or r == rule

    tp = [d for d in detections if mine(d.rule)]
    fn = sum(1 for _, r in missed if mine(r))
    fp = sum(1 for a in false_positives if mine(a.rule))
    anomalies = sum(1 for a in found if mine(a.rule))
    seen = [d.first_seen_delay_h for d in tp if d.first_seen_delay_h is not None]
    return RuleScore(
        rule=rule,
        incidents=len(tp) + fn,
        true_positives=len(tp),
        false_negatives=fn,
        anomalies=anomalies,
        false_positives=fp,
        tolerated_anomalies=sum(n for r, n in tolerated.items() if mine(r)),
        precision=1 - fp / anomalies if anomalies else None,
        recall=len(tp) / (len(tp) + fn) if tp or fn else None,
        median_delay_h=_median([d.delay_h for d in tp]),
        median_first_seen_delay_h=_median(seen),
    )


def _kind_scores(truth: list[Incident], detections: list[Detection]) -> dict[str, KindScore]:
    found: dict[str, set[str]] = defaultdict(set)
    for d in detections:
        found[d.incident_id].add(d.rule)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for inc in truth:
        c = counts[inc.kind]
        c[0] += 1
        hit = found[inc.incident_id]
        if not inc.expected_rules:
            c[3] += 1
        elif hit >= set(inc.expected_rules):
            c[1] += 1
        elif hit:
            c[2] += 1
    return {k: KindScore(k, *c) for k, c in sorted(counts.items())}
