"""What an anomaly rule is, what it reads and what it returns.

A rule is two functions and a text:

* ``load(reader)`` reads the warehouse frames it needs for the stations in scope
  (I/O only, through :class:`Reader`, so every rule reads the same way);
* ``detect(frames, settings, scope)`` is a pure function from those frames to
  *findings*: one row per anomaly, with the columns of :data:`FINDING_SCHEMA`;
* ``describe(evidence)`` renders the text a person reads from the evidence.

The evidence is data: a struct of numbers with their units in the field names
(``book_20_l``, ``tolerance_20_l``, ``rate_l_h``, ``gap_l``), plus the ids an
inspector needs to look things up (``txn_id``, ``dispatch_id``). The engine
(:mod:`processors.anomalies`) gives each finding its deterministic id, city and
summary, and keeps the history.

Scope and incrementality: the engine passes the stations touched by new data, each
with ``since``, the start of the earliest Asia/Shanghai day the new data touches. A
rule must return every finding of those stations whose ``window_end`` is at or after
``since`` (it may return more; the rest are ignored). The engine resolves stored
findings in scope that the rule no longer returns. A rule reads its inputs from
``since − lookback`` so that what it needs before ``since`` (an opening stock, the
previous sale on a nozzle, thirty days of variance) is there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from fueltrace.settings import Settings

#: The calendar of daily reconciliation and of "a day": Liaoning's.
LOCAL_TZ = "Asia/Shanghai"
LOCAL = ZoneInfo(LOCAL_TZ)
SEVERITIES = ("critical", "high", "medium", "low")
#: The earliest instant: ``since`` of a station whose whole history must be re-checked.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UTC_US = pl.Datetime("us", "UTC")

#: The columns every rule's ``detect`` returns (``evidence`` is a struct of any fields).
FINDING_SCHEMA: dict[str, pl.DataType] = {
    "station_id": pl.String(),
    "depot_id": pl.String(),      # null unless a depot is involved
    "subject": pl.String(),       # tank_id, nozzle_id, dispatch_id, … (null: the station)
    "severity": pl.String(),      # one of SEVERITIES
    "window_start": UTC_US,
    "window_end": UTC_US,
}  # fmt: skip

Frames = dict[str, pl.DataFrame]


@dataclass(frozen=True)
class Scope:
    """What to look at: stations (``station_id``, ``since``) and the analysis clock."""

    stations: pl.DataFrame
    now: datetime

    @property
    def earliest(self) -> datetime:
        value = self.stations["since"].min() if self.stations.height else None
        return value if isinstance(value, datetime) else self.now


class Reader:
    """Reads warehouse rows for the stations of a scope, from ``since − lookback`` on.

    The scope is visible to SQL as the view ``scope(station_id, since, load_from)``.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, scope: Scope, lookback: timedelta):
        self.con = con
        self.scope = scope
        self.lookback = lookback

    def records(self, table: str, time_column: str, columns: str = "t.*",
                lookback: timedelta | None = None) -> pl.DataFrame:  # fmt: skip
        """Rows of ``table`` at scoped stations whose ``time_column`` ≥ since − lookback."""
        back = self.lookback if lookback is None else lookback
        return self.sql(f"""
            SELECT {columns} FROM {table} t JOIN scope s ON s.station_id = t.station_id
            WHERE t."{time_column}" >= s.since - $back
        """, {"back": back})  # fmt: skip

    def sql(self, sql: str, params: object = None) -> pl.DataFrame:
        """Any query; ``scope`` is registered for it."""
        scope = self.scope.stations.with_columns(load_from=pl.col("since") - self.lookback)
        self.con.register("scope", scope)
        try:
            return self.con.sql(sql, params=params).pl()
        finally:  # in a transaction the query's error aborted, this fails too: keep that error
            with contextlib.suppress(duckdb.Error):
                self.con.unregister("scope")

    def table(self, name: str) -> pl.DataFrame:
        """A whole (small, dimension) table: station, tank, nozzle, licence, depot."""
        return self.con.sql(f"SELECT * FROM {name}").pl()


@dataclass(frozen=True)
class Rule:
    """One rule of the anomaly catalogue."""

    name: str
    title: str  # English label
    title_zh: str  # Chinese label (the regulator's web page shows both)
    load: Callable[[Reader], Frames]
    detect: Callable[[Frames, Settings, Scope], pl.DataFrame]
    describe: Callable[[dict[str, Any]], str]
    lookback: timedelta = timedelta(days=1)
    #: Findings depend on elapsed time as well as on data (an overdue dispatch, a silent
    #: station): the engine also evaluates every station since its previous run's clock.
    clock_driven: bool = False


def findings(frame: pl.DataFrame, evidence: list[str | pl.Expr]) -> pl.DataFrame:
    """``frame`` reduced to the finding columns plus ``evidence`` (a struct of the given
    columns or expressions). Missing finding columns are added as nulls."""
    cols = [
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in FINDING_SCHEMA.items()
    ]
    return frame.select(*cols, pl.struct(*evidence).alias("evidence"))


def no_findings() -> pl.DataFrame:
    """An empty result with the finding columns (and an empty evidence struct)."""
    return pl.DataFrame(schema=FINDING_SCHEMA).with_columns(
        evidence=pl.struct(pl.lit(0).alias("none"))
    ).head(0)  # fmt: skip


def local_day_start(at: pl.Expr) -> pl.Expr:
    """The UTC instant at which ``at``'s Asia/Shanghai calendar day starts."""
    return at.dt.convert_time_zone(LOCAL_TZ).dt.truncate("1d").dt.convert_time_zone("UTC")


def local_date(at: pl.Expr) -> pl.Expr:
    """``at``'s Asia/Shanghai calendar date."""
    return at.dt.convert_time_zone(LOCAL_TZ).dt.date()
