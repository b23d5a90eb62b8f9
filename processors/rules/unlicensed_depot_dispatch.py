"""Unlicensed depot dispatch: a depot sent fuel while it lacked a valid licence.

A depot stores and sells hazardous chemicals wholesale; each dispatch must leave under
every licence of ``FUELTRACE_DEPOT_LICENCE_KINDS`` (危险化学品经营许可证, 营业执照, the
environmental approval), valid on the dispatch's Beijing calendar date: issued by then
(``valid_from``), not expired (``valid_until``, inclusive) and neither suspended nor
revoked. Fuel from an unlicensed depot is untraced fuel in the SPEC's catalogue.

The licences are those of the depot's facility record in force when the dispatch left
(the latest ``facility_version`` whose ``updated_at`` is at or before ``dispatched_at``;
for a dispatch older than the depot's first record, that first record). So a licence
revoked today does not condemn last month's dispatches, and a renewal the depot
registered before the dispatch counts even if its record reached us late. A depot with
no facility record at all lacks every kind (``missing``).

Findings are *episodes*, one per depot and licence state: a maximal run of the depot's
dispatches made while it lacked a valid licence and its *licence state* — which kinds it
lacked, why, and the licence that shows it — stayed the same. A renewal ends an episode
(even one followed by the same lapse again); an expiry and then a revocation are two.
The finding is the depot's own: ``station_id`` and ``depot_id`` both name the depot (the
engine keys, scopes and places every finding by ``station_id``), ``subject`` the lacking
kinds (``+``-joined), the window runs from the first dispatch to the last. The engine's
id is made of the rule, the depot, the subject and the first dispatch's time, none of
which a later dispatch changes: each run updates the one finding of an ongoing episode.
The evidence lists the dispatches as data: how many, the litres at 20 °C, the first and
last, the stations that received them and the dispatch ids (the first
:data:`MAX_DISPATCH_IDS`; ``dispatch_ids_omitted`` counts the rest).

Severity: ``critical`` (trading hazardous chemicals unlicensed: Decree 591 art. 77),
except ``high`` when only the environmental approval is expired, not yet valid or missing
(paperwork the environment bureau follows up).

Scope and cost: the rule answers for the depots in the engine's scope (its ids that sent
a dispatch) — the engine must put a depot there when the depot's record changes *and*
when its dispatches load, or a lapse that begins by date is never seen. It reads each
such depot's whole history: ``load`` cannot know which kinds are required (only
``detect`` gets the settings), so neither how far back the episode holding a new
dispatch began. The licence timeline is small, and the dispatches arrive aggregated in
SQL per timeline cell (a few rows per licence change): a run costs one scan of the
scoped depots' dispatches, and its findings do not depend on ``since`` — an incremental
run returns what a full run does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import (
    EPOCH,
    UTC_US,
    Frames,
    Reader,
    Rule,
    Scope,
    findings,
    local_date,
    no_findings,
)
from processors.rules.device_silent import beijing, count
from processors.rules.unlicensed_sales import timeline

#: Licence kinds whose lapse alone is ``high``, not ``critical``.
MINOR_KINDS = ("environmental_approval",)
#: At most this many dispatch ids are listed in an episode's evidence, the earliest first
#: (``dispatches`` is always complete): the evidence is stored again in
#: ``anomaly_history`` at every update of an ongoing episode, so it must stay small
#: (about 5 KB of ids here).
MAX_DISPATCH_IDS = 200
#: Stations listed by id in the text (the evidence lists them all).
_TEXT_STATIONS = 5

#: The ids of the scope that are depots: they sent a dispatch.
_DEPOTS = """SELECT s.station_id AS depot_id, s.since FROM scope s
             WHERE s.station_id IN (SELECT depot_id FROM dispatch)"""
#: Each scoped depot's dispatches per timeline cell (a cell never changes the licence
#: state inside it, so each cell is wholly in or out of every episode).
_DISPATCH_SQL = """
    SELECT t.depot_id, c.cell_start, count(*) AS dispatches,
           sum(coalesce(t.volume_20_l, t.volume_l)) AS dispatched_20_l,
           min(t.dispatched_at) AS first_dispatch_at, max(t.dispatched_at) AS last_dispatch_at,
           first(t.dispatch_id ORDER BY t.dispatched_at DESC, t.dispatch_id DESC)
               AS last_dispatch_id,
           list(t.dispatch_id ORDER BY t.dispatched_at, t.dispatch_id)[1:$cap] AS dispatch_ids,
           list(DISTINCT t.station_id ORDER BY t.station_id) AS station_ids
    FROM dispatch t ASOF JOIN depot_cell c
      ON c.depot_id = t.depot_id AND t.dispatched_at >= c.cell_start
    WHERE t.depot_id IN (SELECT depot_id FROM depot_cell)
    GROUP BY ALL
"""


def load(reader: Reader) -> Frames:
    depots = reader.sql(_DEPOTS).select("depot_id")
    versions = reader.sql(f"""
        SELECT facility_id AS depot_id, updated_at FROM facility_version
        WHERE facility_id IN (SELECT depot_id FROM ({_DEPOTS}))
    """).cast({"updated_at": UTC_US})  # fmt: skip
    licences = reader.sql(f"""
        SELECT depot_id, updated_at, l.kind, l.number, l.valid_from, l.valid_until, l.status
        FROM (SELECT facility_id AS depot_id, updated_at, unnest(licences) AS l
              FROM facility_version WHERE facility_id IN (SELECT depot_id FROM ({_DEPOTS})))
    """).cast({"updated_at": UTC_US})  # fmt: skip
    dispatches = _cell_schema()
    if depots.height:
        cells = depot_timeline(depots, versions, licences)
        reader.con.register("depot_cell", cells.select("depot_id", "cell_start").unique())
        try:
            dispatches = reader.sql(_DISPATCH_SQL, {"cap": MAX_DISPATCH_IDS}).cast(
                {"cell_start": UTC_US, "first_dispatch_at": UTC_US, "last_dispatch_at": UTC_US})
        finally:
            reader.con.unregister("depot_cell")
    return {"depots": depots, "versions": versions, "licences": licences,
            "dispatches": dispatches}  # fmt: skip


def _cell_schema() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "depot_id": pl.String(), "cell_start": UTC_US, "dispatches": pl.Int64(),
        "dispatched_20_l": pl.Float64(), "first_dispatch_at": UTC_US,
        "last_dispatch_at": UTC_US, "last_dispatch_id": pl.String(),
        "dispatch_ids": pl.List(pl.String()), "station_ids": pl.List(pl.String()),
    })  # fmt: skip


def depot_timeline(depots: pl.DataFrame, versions: pl.DataFrame,
                   licences: pl.DataFrame) -> pl.DataFrame:  # fmt: skip
    """:func:`~processors.rules.unlicensed_sales.timeline` for depots: each depot's time
    cut into cells inside which no licence changes state, one row per cell and licence
    of the record in force (``version_at`` null: the depot has no record)."""
    as_station = {"depot_id": "station_id"}
    return timeline(depots.rename(as_station), versions.rename(as_station),
                    licences.rename(as_station)).rename({"station_id": "depot_id"})  # fmt: skip


def licence_states(cells: pl.DataFrame, kinds: tuple[str, ...] | list[str]) -> pl.DataFrame:
    """Per depot and cell: ``state``, a text key of what the depot lacks of ``kinds``
    there (null: it holds them all), with ``licence_problems`` (per lacking kind, the
    licence that shows why: its latest by ``valid_until``), ``subject`` (the lacking
    kinds) and ``all_minor``. A kind is held when any licence of it is valid."""
    day = local_date(pl.col("cell_start"))
    key = ["depot_id", "cell_start"]
    slots = cells.select(*key, "cell_end", "version_at").unique(key)
    per_kind = slots.join(pl.DataFrame({"kind": list(kinds)}), how="cross").join(
        cells.filter(pl.col("kind").is_not_null()).drop("cell_end", "version_at"),
        on=[*key, "kind"], how="left",
    ).with_columns(problem=pl.when(pl.col("number").is_null()).then(pl.lit("missing"))
                   .when(pl.col("status") != "valid").then(pl.col("status"))
                   .when(day < pl.col("valid_from")).then(pl.lit("not_yet_valid"))
                   .when(day > pl.col("valid_until")).then(pl.lit("expired")))  # fmt: skip
    lacking = (
        per_kind.filter(pl.col("problem").is_null().any().over(*key, "kind").not_())
        .sort(*key, "kind", "valid_until", "number",
              descending=[False, False, False, True, False], nulls_last=True)
        .group_by(*key, "kind", maintain_order=True).first()
        .with_columns(pl.col("valid_from", "valid_until").cast(pl.String))
    )  # fmt: skip
    text = [pl.col(c).fill_null("") for c in
            ("kind", "problem", "number", "valid_from", "valid_until", "status")]  # fmt: skip
    minor = pl.col("kind").is_in(MINOR_KINDS) & pl.col("problem").is_in(
        ["missing", "expired", "not_yet_valid"])  # fmt: skip
    per_cell = lacking.group_by(key, maintain_order=True).agg(
        state=pl.concat_str(text, separator="|").str.join(";"),
        subject=pl.col("kind").str.join("+"),
        licence_problems=pl.struct("kind", "problem", "number", "valid_from", "valid_until",
                                   "status"),
        all_minor=minor.all(),
    )  # fmt: skip
    return slots.join(per_cell, on=key, how="left").with_columns(
        registered=pl.col("version_at").is_not_null()
    ).drop("version_at").sort(key)


def episodes(states: pl.DataFrame) -> pl.DataFrame:
    """Maximal runs of consecutive cells of a depot in one (lacking) licence state: the
    cells with ``episode`` (a run number per depot) and the run's start,
    ``lacking_since_at`` (null: since the depot's first record, or it has none)."""
    changed = pl.col("state").ne_missing(pl.col("state").shift(1).over("depot_id"))
    runs = states.sort("depot_id", "cell_start").with_columns(
        episode=changed.cast(pl.Int32).cum_sum().over("depot_id")
    ).filter(pl.col("state").is_not_null())
    start = pl.col("cell_start").first().over("depot_id", "episode")
    return runs.with_columns(lacking_since_at=pl.when(start > EPOCH).then(start))


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    dispatches = frames["dispatches"]
    if dispatches.is_empty():
        return no_findings()
    cells = depot_timeline(frames["depots"], frames["versions"], frames["licences"])
    lapsed = episodes(licence_states(cells, settings.depot_licence_kinds))
    inside = lapsed.join(dispatches, on=["depot_id", "cell_start"]).sort(
        "depot_id", "cell_start")
    if inside.is_empty():
        return no_findings()
    state = ("state", "subject", "licence_problems", "all_minor", "registered",
             "lacking_since_at")  # fmt: skip
    found = inside.group_by("depot_id", "episode", maintain_order=True).agg(
        pl.col(*state).first(),
        dispatches=pl.col("dispatches").sum(),
        dispatched_20_l=pl.col("dispatched_20_l").sum(),
        first_dispatch_at=pl.col("first_dispatch_at").min(),
        last_dispatch_at=pl.col("last_dispatch_at").max(),
        last_dispatch_id=pl.col("last_dispatch_id").last(),
        dispatch_ids=pl.col("dispatch_ids").explode().head(MAX_DISPATCH_IDS),
        station_ids=pl.col("station_ids").explode().unique().sort(),
    ).with_columns(
        first_dispatch_id=pl.col("dispatch_ids").list.first(),
        dispatch_ids_omitted=pl.col("dispatches") - pl.col("dispatch_ids").list.len(),
        stations=pl.col("station_ids").list.len(),
        station_id=pl.col("depot_id"),
        severity=pl.when(pl.col("all_minor") & pl.col("registered")).then(pl.lit("high"))
        .otherwise(pl.lit("critical")),
        window_start=pl.col("first_dispatch_at"),
        window_end=pl.col("last_dispatch_at"),
    )  # fmt: skip
    return findings(found, [
        "depot_id", pl.col("registered").alias("depot_registered"), "licence_problems",
        "lacking_since_at", "dispatches", "dispatched_20_l",
        "first_dispatch_at", "first_dispatch_id", "last_dispatch_at", "last_dispatch_id",
        "stations", "station_ids", "dispatch_ids", "dispatch_ids_omitted",
    ])  # fmt: skip


_WHY = {"missing": "missing", "expired": "expired {valid_until}",
        "not_yet_valid": "not valid before {valid_from}"}  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    problems = []
    for p in e["licence_problems"]:
        why = _WHY.get(p["problem"], p["problem"]).format(**p)
        number = f" no. {p['number']}" if p["number"] else ""
        problems.append(f"{p['kind']}{number} {why}")
    depot = (f"Depot {e['depot_id']}" if e["depot_registered"]
             else f"Depot {e['depot_id']} (no facility record)")  # fmt: skip
    since = (f"lacking since {beijing(e['lacking_since_at'])}" if e["lacking_since_at"]
             else "lacking since its first record" if e["depot_registered"]
             else "no record of any licence")  # fmt: skip
    ids = e["station_ids"]
    stations = count(e["stations"], "station") + (
        f" ({', '.join(ids)})" if len(ids) <= _TEXT_STATIONS else "")
    listed = (f"; the first {len(e['dispatch_ids'])} dispatch ids are listed"
              if e["dispatch_ids_omitted"] else "")  # fmt: skip
    return (f"{depot} made {count(e['dispatches'], 'dispatch', 'dispatches')} "
            f"({e['dispatched_20_l']:,.0f} L at 20 °C) to {stations} from "
            f"{beijing(e['first_dispatch_at'])} to {beijing(e['last_dispatch_at'])} Beijing "
            f"time without a valid licence: {'; '.join(problems)} ({since}). First "
            f"dispatch {e['first_dispatch_id']}, last {e['last_dispatch_id']}{listed}.")


RULE = Rule(
    name="unlicensed_depot_dispatch",
    title="Dispatch from an unlicensed depot",
    title_zh="无有效许可油库发油",
    load=load,
    detect=detect,
    describe=describe,
    # The depot's whole history is read (aggregated), not a look-back.
    lookback=timedelta(0),
)
