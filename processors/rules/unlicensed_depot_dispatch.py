"""Unlicensed depot dispatch: a depot sent fuel without a valid licence on the day.

A depot stores and sells hazardous chemicals wholesale; each dispatch must leave under
every licence of ``FUELTRACE_DEPOT_LICENCE_KINDS`` (危险化学品经营许可证, 营业执照, the
environmental approval), valid on the dispatch's Beijing calendar date: issued by then
(``valid_from``), not expired (``valid_until``, inclusive) and neither suspended nor
revoked. Fuel from an unlicensed depot is untraced fuel in the SPEC's catalogue.

The licences are those of the depot's facility record in force when the dispatch left
(the latest ``facility_version`` whose ``updated_at`` is at or before ``dispatched_at``;
for a dispatch older than the depot's first record, that first record). So a licence
revoked today does not condemn last month's dispatches, and a renewal the depot
registered before the dispatch counts even if its record reached us late. A dispatch
from a depot with no facility record at all is reported with every kind missing.

One finding per dispatch, at the destination station (``depot_id`` names the depot),
``subject`` the dispatch id. Severity: ``critical`` (trading hazardous chemicals
unlicensed: Decree 591 art. 77), except ``high`` when only the environmental approval
is expired, not yet valid or missing (paperwork the environment bureau follows up).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import (
    Frames,
    Reader,
    Rule,
    Scope,
    findings,
    local_date,
    no_findings,
)

#: Licence kinds whose lapse alone is ``high``, not ``critical``.
MINOR_KINDS = ("environmental_approval",)

_DEPOTS = """SELECT DISTINCT t.depot_id FROM dispatch t JOIN scope s
             ON s.station_id = t.station_id WHERE t.dispatched_at >= s.load_from"""


def load(reader: Reader) -> Frames:
    dispatches = reader.records("dispatch", "dispatched_at", columns="""
        t.dispatch_id, t.depot_id, t.station_id, t.batch_id, t.product, t.vehicle_plate,
        coalesce(t.volume_20_l, t.volume_l) AS volume_20_l, t.dispatched_at""")  # fmt: skip
    versions = reader.sql(f"""
        SELECT facility_id AS depot_id, updated_at FROM facility_version
        WHERE facility_id IN ({_DEPOTS})
    """)  # fmt: skip
    licences = reader.sql(f"""
        SELECT depot_id, updated_at, l.kind, l.number, l.valid_from, l.valid_until, l.status
        FROM (SELECT facility_id AS depot_id, updated_at, unnest(licences) AS l
              FROM facility_version WHERE facility_id IN ({_DEPOTS}))
    """)  # fmt: skip
    return {"dispatches": dispatches, "versions": versions, "licences": licences}


def _record_in_force(dispatches: pl.DataFrame, versions: pl.DataFrame) -> pl.DataFrame:
    """Each dispatch with ``updated_at`` of the depot's record in force (else its first)."""
    versions = versions.unique().sort("updated_at")
    left = dispatches.sort("dispatched_at")
    asof = {"left_on": "dispatched_at", "right_on": "updated_at", "by": "depot_id",
            "check_sortedness": False}  # fmt: skip
    before = left.join_asof(versions, strategy="backward", **asof)  # type: ignore[arg-type]
    first = versions.group_by("depot_id").agg(first_updated_at=pl.col("updated_at").min())
    return before.join(first, on="depot_id", how="left").with_columns(
        updated_at=pl.coalesce("updated_at", "first_updated_at")
    ).drop("first_updated_at")


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    dispatches = frames["dispatches"]
    if dispatches.is_empty():
        return no_findings()
    day = pl.col("dispatch_date")
    per_kind = (
        _record_in_force(dispatches, frames["versions"])
        .with_columns(dispatch_date=local_date(pl.col("dispatched_at")),
                      registered=pl.col("updated_at").is_not_null())
        .join(pl.DataFrame({"kind": list(settings.depot_licence_kinds)}), how="cross")
        .join(frames["licences"], on=["depot_id", "updated_at", "kind"], how="left")
        .with_columns(problem=pl.when(pl.col("number").is_null()).then(pl.lit("missing"))
                      .when(pl.col("status") != "valid").then(pl.col("status"))
                      .when(day < pl.col("valid_from")).then(pl.lit("not_yet_valid"))
                      .when(day > pl.col("valid_until")).then(pl.lit("expired")))
    )  # fmt: skip
    # A kind is held when any licence of it is valid; else its latest licence says why not.
    lacking = (
        per_kind.filter(pl.col("problem").is_null().any().over("dispatch_id", "kind").not_())
        .sort("valid_until", descending=True, nulls_last=True)
        .group_by("dispatch_id", "kind", maintain_order=True).first()
        .sort("dispatch_id", "kind")
    )  # fmt: skip
    if lacking.is_empty():
        return no_findings()
    minor = pl.col("kind").is_in(MINOR_KINDS) & pl.col("problem").is_in(
        ["missing", "expired", "not_yet_valid"])  # fmt: skip
    found = lacking.group_by("dispatch_id", maintain_order=True).agg(
        pl.exclude("kind", "problem", "number", "valid_from", "valid_until", "status").first(),
        licence_problems=pl.struct(
            "kind", "problem", "number", pl.col("valid_from").cast(pl.String),
            pl.col("valid_until").cast(pl.String), "status"),
        all_minor=minor.all(),
    ).with_columns(
        severity=pl.when(pl.col("all_minor") & pl.col("registered")).then(pl.lit("high"))
        .otherwise(pl.lit("critical")),
        subject=pl.col("dispatch_id"),
        window_start=pl.col("dispatched_at"),
        window_end=pl.col("dispatched_at"),
    )  # fmt: skip
    return findings(found, [
        "dispatch_id", "depot_id", "batch_id", "product", "vehicle_plate", "volume_20_l",
        "dispatched_at", "dispatch_date", pl.col("registered").alias("depot_registered"),
        pl.col("updated_at").alias("depot_record_updated_at"), "licence_problems",
    ])  # fmt: skip


_WHY = {"missing": "missing", "expired": "expired {valid_until}",
        "not_yet_valid": "not valid before {valid_from}"}  # fmt: skip


def describe(e: dict[str, Any]) -> str:
    problems = []
    for p in e["licence_problems"]:
        why = _WHY.get(p["problem"], p["problem"]).format(**p)
        number = f" no. {p['number']}" if p["number"] else ""
        problems.append(f"{p['kind']}{number} {why}")
    depot = (f"depot {e['depot_id']}" if e["depot_registered"]
             else f"depot {e['depot_id']} (no facility record)")  # fmt: skip
    return (f"Dispatch {e['dispatch_id']} ({e['volume_20_l']:.0f} L at 20 °C {e['product']}, "
            f"batch {e['batch_id']}, tanker {e['vehicle_plate']}) left {depot} on "
            f"{e['dispatch_date']} without a valid licence: " + "; ".join(problems) + ".")


RULE = Rule(
    name="unlicensed_depot_dispatch",
    title="Dispatch from an unlicensed depot",
    title_zh="无有效许可油库发油",
    load=load,
    detect=detect,
    describe=describe,
    lookback=timedelta(0),
)
