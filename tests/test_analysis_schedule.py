"""When a running pipeline analyses (fueltrace.analyses.AnalysisSchedule): pure, no broker."""

from __future__ import annotations

from fueltrace.analyses import ANALYSIS_SHARE, AnalysisSchedule


def test_a_quiet_pipeline_analyses_every_interval() -> None:
    schedule = AnalysisSchedule(5.0)
    assert schedule.due(0.0)  # never ran: due at once
    schedule.ran(started=100.0, took_s=0.3)
    assert not schedule.due(104.9)
    assert schedule.due(105.0)


def test_a_long_run_pushes_the_next_so_analyses_take_at_most_their_share() -> None:
    schedule = AnalysisSchedule(5.0)
    schedule.ran(started=100.0, took_s=10.0)  # a flood: the run took twice the interval
    assert schedule.wait_s() == 10.0 / ANALYSIS_SHARE == 20.0
    assert not schedule.due(119.9)
    assert schedule.due(120.0)
    # over many such runs, the share of the time spent analysing stays at the bound
    busy = 0.0
    now = 0.0
    for _ in range(100):
        schedule.ran(started=now, took_s=10.0)
        busy += 10.0
        now += schedule.wait_s()
    assert busy / now == ANALYSIS_SHARE


def test_a_fast_run_after_a_long_one_restores_the_interval() -> None:
    schedule = AnalysisSchedule(5.0)
    schedule.ran(started=0.0, took_s=10.0)
    schedule.ran(started=20.0, took_s=0.2)
    assert schedule.due(25.0) and not schedule.due(24.9)


def test_interval_zero_analyses_after_every_batch_unless_runs_are_long() -> None:
    schedule = AnalysisSchedule(0.0)
    schedule.ran(started=10.0, took_s=0.0)
    assert schedule.due(10.0)
    schedule.ran(started=10.0, took_s=1.0)
    assert not schedule.due(11.9) and schedule.due(12.0)
