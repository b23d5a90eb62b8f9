"""Scoring anomalies against the ground truth, on hand-made incidents and anomalies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from simulator import RandomScenarios, generate_with_truth, read_ground_truth, write_ground_truth
from simulator.scenarios import Incident
from simulator.scoring import Anomaly, matches, score

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def incident_factory(incident_id: str, kind: str, expected: tuple[str, ...], **kw: Any) -> Incident:
    fields: dict[str, Any] = {
        "tolerated_rules": (), "station_id": None, "depot_id": None, "subject": None,
        "start": at(0), "end": at(1),
    }  # fmt: skip
    fields.update(kw)
    return Incident(incident_id=incident_id, kind=kind, expected_rules=expected, **fields)


def anomaly(anomaly_id: str, rule: str, start: float, end: float, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "anomaly_id": anomaly_id, "rule": rule, "station_id": None, "depot_id": None,
        "subject": None, "window_start": at(start), "window_end": at(end),
        "first_seen_at": None,
    }  # fmt: skip
    row.update(kw)
    return row


LEAK = incident_factory(
    "INC-1", "leak", ("slow_leak",), tolerated_rules=("inventory_imbalance",),
    station_id="S1", subject="T1", start=at(24), end=at(120),
)  # fmt: skip
TAMPER = incident_factory(
    "INC-2", "totalizer_tampering", ("totalizer_gap",), station_id="S2", subject="N01",
    subject_aliases=("D1",), start=at(10), end=at(10),
)  # fmt: skip
DEPOT = incident_factory(
    "INC-3", "unlicensed_depot", ("unlicensed_depot_dispatch",), depot_id="DP1",
    subject="hazardous_chemicals", subject_aliases=("WB1", "WB2"), start=at(0), end=at(200),
)  # fmt: skip
DIVERTED = incident_factory(
    "INC-4", "diverted_load", ("diverted_dispatch",), station_id="S3", depot_id="DP1",
    subject="WB9", start=at(30), end=at(36),
)  # fmt: skip
NIGHT = incident_factory(
    "INC-5", "device_outage", (), tolerated_rules=("device_silent",), station_id="S4",
    subject="VM1", start=at(2), end=at(4),
)  # fmt: skip
TRUTH = [LEAK, TAMPER, DEPOT, DIVERTED, NIGHT]

ANOMALIES = [
    anomaly("A1", "slow_leak", 48, 96, station_id="S1", subject="T1", first_seen_at=at(100)),
    anomaly("A2", "slow_leak", 24, 72, station_id="S1", subject="T1", first_seen_at=at(80)),
    anomaly("A3", "inventory_imbalance", 40, 64, station_id="S1", subject="T1"),  # tolerated
    anomaly("A4", "slow_leak", 48, 96, station_id="S1", subject="T2"),  # another tank
    anomaly("A5", "slow_leak", 48, 96, station_id="S9", subject="T1"),  # another station
    anomaly("A6", "totalizer_gap", 9, 12, station_id="S2", subject="N01"),
    anomaly("A7", "totalizer_gap", 9.5, 11, station_id="S2", subject="D1"),  # by alias
    anomaly("A8", "unlicensed_depot_dispatch", 50, 50, station_id="S7", depot_id="DP1",
            subject="WB2"),
    anomaly("A9", "unlicensed_depot_dispatch", 50, 50, station_id="S7", depot_id="DP2"),
    anomaly("A10", "device_silent", 2, 4, station_id="S4", subject="VM1"),  # tolerated
    anomaly("A11", "station_silent", 0, 30, station_id="S5"),  # nothing there
]  # fmt: skip


def test_counts_per_rule() -> None:
    result = score(ANOMALIES, TRUTH)
    leak = result.by_rule["slow_leak"]
    assert (leak.incidents, leak.true_positives, leak.false_negatives) == (1, 1, 0)
    assert (leak.anomalies, leak.false_positives) == (4, 2)
    assert leak.precision == pytest.approx(0.5) and leak.recall == 1.0
    imbalance = result.by_rule["inventory_imbalance"]
    assert (imbalance.incidents, imbalance.false_positives) == (0, 0)
    assert imbalance.tolerated_anomalies == 1
    assert imbalance.recall is None and imbalance.precision == 1.0
    gap = result.by_rule["totalizer_gap"]
    assert (gap.true_positives, gap.anomalies, gap.false_positives) == (1, 2, 0)
    depot = result.by_rule["unlicensed_depot_dispatch"]
    assert (depot.true_positives, depot.false_positives) == (1, 1)
    diverted = result.by_rule["diverted_dispatch"]
    assert (diverted.incidents, diverted.false_negatives, diverted.anomalies) == (1, 1, 0)
    assert diverted.recall == 0.0 and diverted.precision is None
    assert result.by_rule["device_silent"].false_positives == 0
    assert result.by_rule["station_silent"].false_positives == 1
    assert sorted(result.false_positive_ids) == ["A11", "A4", "A5", "A9"]
    assert result.missed == [("INC-4", "diverted_dispatch")]
    total = result.total
    assert (total.incidents, total.true_positives, total.anomalies, total.false_positives) == (
        4, 3, 11, 4,
    )  # fmt: skip


def test_detection_delay_is_event_time_to_the_first_window_end() -> None:
    result = score(ANOMALIES, TRUTH)
    delays = {(d.incident_id, d.rule): d for d in result.detections}
    leak = delays[("INC-1", "slow_leak")]
    assert leak.anomaly_id == "A2" and leak.delay_h == 48.0  # window ends at 72 h, start 24 h
    assert leak.first_seen_delay_h == 56.0  # the earliest first_seen_at: 80 h
    assert delays[("INC-2", "totalizer_gap")].delay_h == 1.0  # A7 ends at 11 h
    assert delays[("INC-3", "unlicensed_depot_dispatch")].first_seen_delay_h is None
    assert result.by_rule["slow_leak"].median_delay_h == 48.0
    assert result.by_rule["totalizer_gap"].median_delay_h == 1.0
    early = anomaly("E", "totalizer_gap", 5, 8, station_id="S2", subject="N01")
    assert score([early], [TAMPER]).detections[0].delay_h == 0.0  # never negative


def test_by_kind() -> None:
    result = score(ANOMALIES, TRUTH)
    assert result.by_kind["leak"].detected == 1
    assert result.by_kind["diverted_load"].detected == 0
    assert result.by_kind["device_outage"].undetectable == 1
    both = incident_factory("INC-6", "device_outage", ("device_silent", "sales_while_gauge_down"),
                            station_id="S6", start=at(0), end=at(5))  # fmt: skip
    partly = score([anomaly("B", "device_silent", 1, 2, station_id="S6")], [both])
    assert partly.by_kind["device_outage"].partly_detected == 1


def test_slack_place_and_subject_rules() -> None:
    slack = timedelta(hours=6)
    before = Anomaly.of(anomaly("X", "diverted_dispatch", 20, 25, station_id="S3"))
    assert matches(DIVERTED, before, slack)  # ends 5 h before the start
    assert not matches(DIVERTED, before, timedelta(hours=4))
    late = Anomaly.of(anomaly("Y", "diverted_dispatch", 43, 50, station_id="S3"))
    assert not matches(DIVERTED, late, slack)  # starts 7 h after the end
    by_depot = Anomaly.of(anomaly("Z", "diverted_dispatch", 30, 31, depot_id="DP1"))
    assert matches(DIVERTED, by_depot, slack)  # names the depot only
    elsewhere = Anomaly.of(anomaly("W", "diverted_dispatch", 30, 31, station_id="S8",
                                   depot_id="DP1"))  # fmt: skip
    assert not matches(DIVERTED, elsewhere, slack)  # the same depot, another station
    unnamed = Anomaly.of(anomaly("V", "diverted_dispatch", 30, 31, station_id="S3"))
    assert matches(DIVERTED, unnamed, slack)  # no subject: any
    other = Anomaly.of(anomaly("U", "diverted_dispatch", 30, 31, station_id="S3", subject="WB8"))
    assert not matches(DIVERTED, other, slack)
    wrong_rule = Anomaly.of(anomaly("R", "delivery_mismatch", 30, 31, station_id="S3"))
    assert not matches(DIVERTED, wrong_rule, slack)


def test_polars_frames_and_iso_strings_score_the_same() -> None:
    frame = pl.DataFrame(ANOMALIES)
    assert score(frame, TRUTH) == score(ANOMALIES, TRUTH)
    as_text = [
        {**a, "window_start": a["window_start"].isoformat().replace("+00:00", "Z"),
         "window_end": a["window_end"].isoformat()}
        for a in ANOMALIES
    ]  # fmt: skip
    assert score(as_text, TRUTH) == score(ANOMALIES, TRUTH)
    rows = score(ANOMALIES, TRUTH).rows()
    assert rows[-1]["rule"] == "*" and {r["rule"] for r in rows[:-1]} >= {"slow_leak"}


def test_a_perfect_detector_scores_one(tmp_path: Path) -> None:
    generated = generate_with_truth(
        depots=2, stations=8, days=3.0, scenarios=RandomScenarios(per_kind=1)
    )
    write_ground_truth(generated.incidents, tmp_path)
    truth = read_ground_truth(tmp_path)
    perfect = [
        anomaly(f"{i.incident_id}:{rule}", rule, 0, 0, station_id=i.station_id,
                depot_id=i.depot_id, subject=i.subject, window_start=i.start, window_end=i.end)
        for i in truth
        for rule in i.expected_rules
    ]  # fmt: skip
    result = score(perfect, truth)
    assert result.total.recall == 1.0 and result.total.precision == 1.0
    assert result.total.true_positives == len(perfect) > 15
    spans = {i.incident_id: (i.end - i.start).total_seconds() / 3600 for i in truth}
    assert all(d.delay_h == pytest.approx(spans[d.incident_id]) for d in result.detections)


def test_a_tolerated_side_effect_may_name_another_subject_an_expected_finding_may_not() -> None:
    hidden = incident_factory(
        "INC-9", "deliberate_silence", ("totalizer_gap",), station_id="S9", subject="D1",
        subject_aliases=("N01",), tolerated_rules=("inventory_imbalance",), start=at(0),
        end=at(10),
    )  # fmt: skip
    imbalance = Anomaly.of(anomaly("A1", "inventory_imbalance", 0, 24, station_id="S9",
                                   subject="T2"))  # fmt: skip
    gap_elsewhere = Anomaly.of(anomaly("A2", "totalizer_gap", 9, 10, station_id="S9",
                                       subject="N07"))  # fmt: skip
    assert matches(hidden, imbalance)
    assert not matches(hidden, gap_elsewhere)
