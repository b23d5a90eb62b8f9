"""Vapour-recovery A/L out of band: a nozzle's air-to-liquid ratio outside the GB 20952
band on consecutive days.

Stage II vapour recovery draws back, for every litre dispensed, a volume of vapour and
air; GB 20952-2020 (ch. 5, emission limits) wants the ratio (A/L) between
``FUELTRACE_VAPOR_AL_MIN`` and ``FUELTRACE_VAPOR_AL_MAX`` (1.0–1.2). Below, vapour escapes
at the filler neck; above, air is pumped into the tank, which pressurises it and vents
vapour.

Per gasoline nozzle (a nozzle the registry maps to a diesel tank is not judged: GB 20952
covers gasoline) and Beijing day, the daily mean of the online monitor's A/L samples.
A finding is a run of at least ``FUELTRACE_VAPOR_AL_DAYS`` consecutive calendar days whose
daily mean is out of band (a day without samples ends the run: the monitor's silence is
``device_silent``'s finding). ``medium`` (the online monitor of GB 20952-2020 Annex E
alarms after 5 consecutive days); ``high`` from ``FUELTRACE_VAPOR_AL_HIGH_DAYS`` days (the
alarm left unrepaired as long again). The episode starts at the local midnight
of its first bad day, so it keeps its id while it goes on; ``window_end`` is the last
sample of its last bad day. Daily means are aggregated in SQL; an open episode longer
than the look-back is read from its start.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import (
    LOCAL_TZ,
    UTC_US,
    Frames,
    Reader,
    Rule,
    Scope,
    findings,
    no_findings,
)
from processors.rules.device_silent import open_episodes

NAME = "vapor_al_out_of_band"
_DAYS = f"""
    WITH {open_episodes(NAME)}
    SELECT v.station_id, v.nozzle_id,
           (v.measured_at AT TIME ZONE 'Asia/Shanghai')::DATE AS day,
           count(*) AS samples, avg(v.al_ratio) AS al_ratio,
           min(v.al_ratio) AS al_ratio_low, max(v.al_ratio) AS al_ratio_high,
           max(v.measured_at) AS last_at
    FROM vapor v JOIN starts s ON s.station_id = v.station_id
    LEFT JOIN nozzle n ON n.station_id = v.station_id AND n.nozzle_id = v.nozzle_id
    LEFT JOIN tank k ON k.station_id = n.station_id AND k.tank_id = n.tank_id
    WHERE v.measured_at >= s.load_from AND coalesce(k.product LIKE 'gasoline%', true)
    GROUP BY ALL
"""


def load(reader: Reader) -> Frames:
    return {"days": reader.sql(_DAYS).cast({"last_at": UTC_US})}


def episodes(days: pl.DataFrame, low: float, high: float) -> pl.DataFrame:
    """Runs of consecutive calendar days with the daily mean outside [low, high], per
    station and nozzle, with their first and last day, length and daily-mean range."""
    key = ["station_id", "nozzle_id"]
    bad = days.filter((pl.col("al_ratio") < low) | (pl.col("al_ratio") > high)).sort(
        *key, "day")  # fmt: skip
    # Consecutive days keep (day − position) constant; a gap or a good day changes it.
    runs = bad.with_columns(
        run=pl.col("day") - pl.duration(days=pl.int_range(pl.len()).over(key)),
    )
    return runs.group_by(*key, "run", maintain_order=True).agg(
        first_day=pl.col("day").first(),
        last_day=pl.col("day").last(),
        days=pl.len(),
        al_ratio_min=pl.col("al_ratio").min(),
        al_ratio_max=pl.col("al_ratio").max(),
        last_day_al_ratio=pl.col("al_ratio").last(),
        samples=pl.col("samples").sum(),
        last_at=pl.col("last_at").last(),
    ).drop("run")


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    runs = episodes(frames["days"], settings.vapor_al_min, settings.vapor_al_max).filter(
        pl.col("days") >= settings.vapor_al_days)  # fmt: skip
    if runs.is_empty():
        return no_findings()
    found = runs.with_columns(
        subject=pl.col("nozzle_id"),
        severity=pl.when(pl.col("days") >= settings.vapor_al_high_days).then(pl.lit("high"))
        .otherwise(pl.lit("medium")),
        window_start=pl.col("first_day").cast(pl.Datetime("us")).dt.replace_time_zone(
            LOCAL_TZ).dt.convert_time_zone("UTC"),
        window_end=pl.col("last_at"),
    )  # fmt: skip
    return findings(found, [
        "nozzle_id", "first_day", "last_day", "days", "al_ratio_min", "al_ratio_max",
        "last_day_al_ratio", "samples", pl.lit(settings.vapor_al_min).alias("band_min"),
        pl.lit(settings.vapor_al_max).alias("band_max"),
        pl.lit(settings.vapor_al_days).alias("min_days"),
    ])  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    if e["al_ratio_max"] < e["band_min"]:
        side = "below"
    elif e["al_ratio_min"] > e["band_max"]:
        side = "above"
    else:
        side = "outside"
    return (f"Nozzle {e['nozzle_id']}: daily mean vapour-recovery A/L {side} the GB 20952 "
            f"band {e['band_min']:.2f}–{e['band_max']:.2f} on {e['days']} consecutive days "
            f"({e['first_day']} to {e['last_day']}, Beijing), daily means "
            f"{e['al_ratio_min']:.3f}–{e['al_ratio_max']:.3f}, last {e['last_day_al_ratio']:.3f} "
            f"({e['samples']} samples); findings from {e['min_days']} days.")  # fmt: skip


RULE = Rule(
    name=NAME,
    title="Vapour-recovery A/L out of band",
    title_zh="油气回收气液比超标",
    load=load,
    detect=detect,
    describe=describe,
    # The days before the scope that complete a run of FUELTRACE_VAPOR_AL_DAYS (≤ 8);
    # a run already reported is read from its start (`open_episodes`).
    lookback=timedelta(days=7),
)
