"""Vapour-recovery pressure out of range: the tank ullage pressure beyond its limits for
hours on end.

The online monitor samples the vapour-recovery system's gauge pressure with every
``vapor`` record; it is one pressure per station (the tanks' ullage, connected through
the vapour lines), whichever nozzle's record carries it. Per station and clock hour,
the mean of its samples; a finding is a run of at least
``FUELTRACE_VAPOR_PRESSURE_MIN_HOURS`` consecutive hours whose mean is above
``FUELTRACE_VAPOR_PRESSURE_MAX_PA`` (+600 Pa: vapour pushed out of fittings and the vent —
a P/V valve stuck shut, a dead vapour processor, an A/L too high) or below
``FUELTRACE_VAPOR_PRESSURE_MIN_PA`` (−1000 Pa: a valve stuck under suction, a blocked vent,
a failed sensor): the normal range of the online-monitoring clause in the GB 20952-2020
drafts. An hour without samples, or one within limits, ends the run; so does a change of
side.

``medium``: an emissions or maintenance matter for the environment bureau, not fuel
unaccounted for. The episode starts at its first bad hour and keeps its id while it goes
on; ``window_end`` is its last bad sample. Hourly means are aggregated in SQL; an open
episode longer than the look-back is read from its start.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import UTC_US, Frames, Reader, Rule, Scope, findings, no_findings
from processors.rules.device_silent import beijing, open_episodes

NAME = "vapor_pressure_out_of_range"
_HOURS = f"""
    WITH {open_episodes(NAME)}
    SELECT v.station_id, time_bucket(INTERVAL 1 HOUR, v.measured_at) AS hour,
           count(*) AS samples, avg(v.pressure_pa) AS pressure_pa,
           min(v.pressure_pa) AS pressure_low_pa, max(v.pressure_pa) AS pressure_high_pa,
           max(v.measured_at) AS last_at
    FROM vapor v JOIN starts s ON s.station_id = v.station_id
    WHERE v.measured_at >= s.load_from
    GROUP BY ALL
"""


def load(reader: Reader) -> Frames:
    return {"hours": reader.sql(_HOURS).cast({"hour": UTC_US, "last_at": UTC_US})}


def episodes(hours: pl.DataFrame, low_pa: float, high_pa: float) -> pl.DataFrame:
    """Runs of consecutive clock hours with the mean pressure on one side beyond its
    limit, per station: side, first hour, last sample, hours and the extreme means."""
    side = (pl.when(pl.col("pressure_pa") > high_pa).then(pl.lit("above"))
            .when(pl.col("pressure_pa") < low_pa).then(pl.lit("below")))  # fmt: skip
    bad = hours.with_columns(side=side).filter(pl.col("side").is_not_null()).sort(
        "station_id", "hour")  # fmt: skip
    key = ["station_id", "side"]
    runs = bad.with_columns(
        new=((pl.col("hour") - pl.col("hour").shift(1).over("station_id")) != timedelta(hours=1))
        | (pl.col("side") != pl.col("side").shift(1).over("station_id")),
    ).with_columns(run=pl.col("new").fill_null(True).cast(pl.Int32).cum_sum().over(
        "station_id"))  # fmt: skip
    return runs.group_by(*key, "run", maintain_order=True).agg(
        first_hour=pl.col("hour").first(),
        hours=pl.len(),
        pressure_max_pa=pl.col("pressure_pa").max(),
        pressure_min_pa=pl.col("pressure_pa").min(),
        peak_sample_pa=pl.col("pressure_high_pa").max(),
        low_sample_pa=pl.col("pressure_low_pa").min(),
        samples=pl.col("samples").sum(),
        last_at=pl.col("last_at").last(),
    ).drop("run")


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    runs = episodes(frames["hours"], settings.vapor_pressure_min_pa,
                    settings.vapor_pressure_max_pa).filter(
        pl.col("hours") >= settings.vapor_pressure_min_hours)  # fmt: skip
    if runs.is_empty():
        return no_findings()
    above = pl.col("side") == "above"
    found = runs.with_columns(
        severity=pl.lit("medium"),
        window_start=pl.col("first_hour"),
        window_end=pl.col("last_at"),
        limit_pa=pl.when(above).then(pl.lit(settings.vapor_pressure_max_pa))
        .otherwise(pl.lit(settings.vapor_pressure_min_pa)),
        worst_hour_pa=pl.when(above).then(pl.col("pressure_max_pa"))
        .otherwise(pl.col("pressure_min_pa")),
        worst_sample_pa=pl.when(above).then(pl.col("peak_sample_pa"))
        .otherwise(pl.col("low_sample_pa")),
    )  # fmt: skip
    return findings(found, [
        "side", "limit_pa", pl.col("first_hour").alias("first_hour_at"),
        pl.col("last_at").alias("last_sample_at"), "hours", "worst_hour_pa",
        "worst_sample_pa", "samples",
        pl.lit(settings.vapor_pressure_min_hours).alias("min_hours"),
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    what = ("above" if e["side"] == "above" else "below")
    why = ("vapour escapes through fittings and the vent" if e["side"] == "above"
           else "deeper than the vent valve allows: valve, vent or sensor fault")  # fmt: skip
    return (f"Vapour-recovery system pressure {what} {e['limit_pa']:+.0f} Pa for "
            f"{e['hours']} consecutive hours from {beijing(e['first_hour_at'])} to "
            f"{beijing(e['last_sample_at'])} Beijing time (worst hourly mean "
            f"{e['worst_hour_pa']:+.0f} Pa, worst sample {e['worst_sample_pa']:+.0f} Pa, "
            f"{e['samples']} samples; findings from {e['min_hours']} h): {why}.")  # fmt: skip


RULE = Rule(
    name=NAME,
    title="Vapour-recovery pressure out of range",
    title_zh="油气回收系统压力超限",
    load=load,
    detect=detect,
    describe=describe,
    # Runs begun the day before the scope; longer open ones through `open_episodes`.
    lookback=timedelta(days=1),
)
