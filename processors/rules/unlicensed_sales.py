"""Unlicensed sales: a station sold fuel while a licence it needs was not in force.

A station needs every licence of ``FUELTRACE_LICENCE_REQUIRED_KINDS`` (成品油零售经营批准证书,
危险化学品经营许可证, 营业执照, the environmental approval) in force on the instant it sells:
listed in the station's facility record in force then, with status ``valid``, issued
(``valid_from``) and not expired (``valid_until``, inclusive; Beijing calendar).

Which record is in force: the latest ``facility_version`` whose ``updated_at`` is at or
before the sale (before the station's first record: that first record). So a suspension
takes effect at the ``updated_at`` of the version that says so, a renewal registered
after the lapse does not hide it, and a renewal registered before a sale counts even
when its record reached us late.

Findings are *episodes*, one per station and licence kind: a maximal stretch of time in
which the kind is not in force and the station sold. The stretch starts where the lapse
starts — local midnight after ``valid_until``, the ``updated_at`` of the record that
suspended, revoked or dropped the licence — so the finding keeps its id while the lapse
goes on; a kind missing or not yet valid since before the station's first record starts
at the first sale. ``window_end`` is the last sale in the lapse. Severity ``critical``
(trading without a licence), except ``high`` for an environmental approval that is only
expired, missing or not yet valid (paperwork the environment bureau follows up).

Cost: the licence timeline is small (versions × licences per station); sales are read
only inside lapses and arrive aggregated per station, timeline cell and local day.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors.rules.base import (
    EPOCH,
    LOCAL_TZ,
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

#: The SPEC's station licence kinds: ``load`` reads the sales of a lapse of any of them
#: (``FUELTRACE_LICENCE_REQUIRED_KINDS`` chooses among them in ``detect``).
STATION_LICENCE_KINDS = (
    "retail_approval", "hazardous_chemicals", "business_licence", "environmental_approval",
)  # fmt: skip
#: Licence kinds whose lapse alone is ``high``, not ``critical`` (unless revoked/suspended).
MINOR_KINDS = ("environmental_approval",)
#: Why a kind is not in force, most serious first.
PROBLEMS = ("revoked", "suspended", "expired", "not_yet_valid", "missing")
_EPOCH = pl.lit(EPOCH, UTC_US)


def load(reader: Reader) -> Frames:
    versions = reader.sql("""
        SELECT f.facility_id AS station_id, f.updated_at FROM facility_version f
        JOIN scope s ON s.station_id = f.facility_id
    """).cast({"updated_at": UTC_US})  # fmt: skip
    licences = reader.sql("""
        SELECT station_id, updated_at, l.kind, l.number, l.valid_from, l.valid_until, l.status
        FROM (SELECT f.facility_id AS station_id, f.updated_at, unnest(f.licences) AS l
              FROM facility_version f JOIN scope s ON s.station_id = f.facility_id)
    """).cast({"updated_at": UTC_US})  # fmt: skip
    stations = reader.scope.stations.select("station_id", pl.col("since").cast(UTC_US))
    cells = timeline(stations.select("station_id"), versions, licences)
    # Every lapse of any licence kind there is, that may hold a sale on or after `since`.
    spans = (lapses(cells, STATION_LICENCE_KINDS).join(stations, on="station_id")
             .filter(pl.col("end_at").is_null() | (pl.col("end_at") > pl.col("since")))
             .select("station_id", pl.coalesce("start_at", _EPOCH).alias("start_at"),
                     "end_at"))  # fmt: skip
    sales = _bucket_schema()
    if spans.height:
        reader.con.register("lapse_span", spans)
        reader.con.register("cell", cells.select("station_id", "cell_start").unique())
        try:
            sales = reader.sql(_SALES_SQL, {"from": spans["start_at"].min()}).cast(
                {c: UTC_US for c in ("cell_start", "first_sale_at", "last_sale_at")})
        finally:
            reader.con.unregister("lapse_span")
            reader.con.unregister("cell")
    return {"versions": versions, "licences": licences, "sales": sales,
            "stations": stations.select("station_id")}  # fmt: skip


#: Sales inside any lapse, per station, timeline cell and local day (a cell never changes
#: the licence state inside it, so each bucket is wholly in or out of every lapse).
_SALES_SQL = """
    WITH inside AS (
        SELECT DISTINCT x.station_id, x.txn_id, x.started_at, x.volume_l
        FROM sale x JOIN lapse_span l ON l.station_id = x.station_id
         AND x.started_at >= l.start_at AND (l.end_at IS NULL OR x.started_at < l.end_at)
        WHERE x.started_at >= $from
    )
    SELECT i.station_id, c.cell_start,
           (i.started_at AT TIME ZONE 'Asia/Shanghai')::DATE AS day,
           count(*) AS sales, sum(i.volume_l) AS sales_l,
           min(i.started_at) AS first_sale_at, max(i.started_at) AS last_sale_at,
           arg_min(i.txn_id, i.started_at) AS first_txn_id,
           arg_max(i.txn_id, i.started_at) AS last_txn_id
    FROM inside i ASOF JOIN cell c ON c.station_id = i.station_id
     AND i.started_at >= c.cell_start
    GROUP BY ALL
"""


def _bucket_schema() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "station_id": pl.String(), "cell_start": UTC_US, "day": pl.Date(),
        "sales": pl.Int64(), "sales_l": pl.Float64(), "first_sale_at": UTC_US,
        "last_sale_at": UTC_US, "first_txn_id": pl.String(), "last_txn_id": pl.String(),
    })  # fmt: skip


def _midnight(day: pl.Expr) -> pl.Expr:
    """The UTC instant at which the Beijing calendar ``day`` begins."""
    return day.cast(pl.Datetime("us")).dt.replace_time_zone(LOCAL_TZ).dt.convert_time_zone(
        "UTC")


def timeline(stations: pl.DataFrame, versions: pl.DataFrame,
             licences: pl.DataFrame) -> pl.DataFrame:  # fmt: skip
    """Each station's time cut into *cells* inside which no licence changes state: cut at
    every record's ``updated_at`` (but the first's: before it, the first is in force) and
    at the local midnights where a listed licence starts or ends. One row per cell and
    licence of the record in force (``kind`` null: that record lists none), with
    ``cell_start``, ``cell_end`` (null: open) and ``version_at``, the record's
    ``updated_at`` (null: the station has no record)."""
    versions = versions.unique().sort("station_id", "updated_at")
    first = versions.group_by("station_id").agg(first_at=pl.col("updated_at").min())
    cuts = pl.concat([
        versions.join(first, on="station_id").filter(pl.col("updated_at") > pl.col("first_at"))
        .select("station_id", cell_start=pl.col("updated_at")),
        licences.select("station_id", cell_start=_midnight(pl.col("valid_from"))),
        licences.select("station_id",
                        cell_start=_midnight(pl.col("valid_until") + timedelta(days=1))),
    ]).filter(pl.col("cell_start") > EPOCH)
    cuts = pl.concat([stations.select("station_id", cell_start=_EPOCH), cuts]).unique().sort(
        "station_id", "cell_start")  # fmt: skip
    cells = cuts.with_columns(cell_end=pl.col("cell_start").shift(-1).over("station_id"))
    in_force = cells.join_asof(
        versions.rename({"updated_at": "version_at"}), left_on="cell_start",
        right_on="version_at", by="station_id", strategy="backward", check_sortedness=False,
    ).join(first, on="station_id", how="left").with_columns(
        version_at=pl.coalesce("version_at", "first_at")).drop("first_at")  # fmt: skip
    return in_force.join(licences.rename({"updated_at": "version_at"}),
                         on=["station_id", "version_at"], how="left")  # fmt: skip


def lapses(cells: pl.DataFrame, kinds: tuple[str, ...] | list[str]) -> pl.DataFrame:
    """Maximal stretches of consecutive cells in which a licence ``kind`` is not in force,
    per station: ``start_at`` (null: since before the first record), ``end_at`` (null:
    ongoing), and why at its start (``problem`` with the licence that shows it)."""
    day = local_date(pl.col("cell_start"))
    cell_columns = ["station_id", "cell_start", "cell_end", "version_at"]
    per_kind = cells.select(cell_columns).unique(["station_id", "cell_start"]).join(
        pl.DataFrame({"kind": list(kinds)}), how="cross",
    ).join(cells.filter(pl.col("kind").is_not_null()).drop("cell_end", "version_at"),
           on=["station_id", "cell_start", "kind"], how="left",
    ).with_columns(problem=pl.when(pl.col("number").is_null()).then(pl.lit("missing"))
                   .when(pl.col("status") != "valid").then(pl.col("status"))
                   .when(day < pl.col("valid_from")).then(pl.lit("not_yet_valid"))
                   .when(day > pl.col("valid_until")).then(pl.lit("expired")))  # fmt: skip
    # -1: in force; else the rank of why not (an unknown status ranks last, still lapsed).
    rank = pl.when(pl.col("problem").is_null()).then(-1).otherwise(
        pl.col("problem").replace_strict(PROBLEMS, list(range(len(PROBLEMS))),
                                         default=len(PROBLEMS), return_dtype=pl.Int32))
    state = (
        per_kind.with_columns(rank=rank)
        .sort("station_id", "kind", "cell_start", "rank", "valid_until",
              descending=[False, False, False, False, True], nulls_last=True)
        .group_by("station_id", "kind", "cell_start", maintain_order=True).first()
        .with_columns(lapsed=pl.col("rank") >= 0)
    )  # fmt: skip
    key = ["station_id", "kind"]
    runs = state.with_columns(
        run=(pl.col("lapsed") != pl.col("lapsed").shift(1).over(key)).fill_null(True)
        .cast(pl.Int32).cum_sum().over(key),
    ).filter(pl.col("lapsed"))  # fmt: skip
    return runs.group_by(*key, "run", maintain_order=True).agg(
        start_at=pl.col("cell_start").first(),
        end_at=pl.col("cell_end").last(),
        problem=pl.col("problem").first(),
        number=pl.col("number").first(),
        status=pl.col("status").first(),
        valid_from=pl.col("valid_from").first(),
        valid_until=pl.col("valid_until").first(),
        version_at=pl.col("version_at").first(),
    ).with_columns(
        start_at=pl.when(pl.col("start_at") > EPOCH).then(pl.col("start_at")),
        registered=pl.col("version_at").is_not_null(),
    ).drop("run", "version_at")  # fmt: skip


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    sales = frames["sales"]
    if sales.is_empty():
        return no_findings()
    cells = timeline(frames["stations"], frames["versions"], frames["licences"])
    spans = lapses(cells, settings.licence_required_kinds)
    inside = spans.with_row_index("lapse").join(sales, on="station_id").filter(
        (pl.col("cell_start") >= pl.coalesce("start_at", _EPOCH))
        & (pl.col("end_at").is_null() | (pl.col("cell_start") < pl.col("end_at")))
    )  # fmt: skip
    if inside.is_empty():
        return no_findings()
    per_lapse = inside.sort("first_sale_at").group_by("lapse", maintain_order=True).agg(
        pl.exclude("cell_start", "day", "sales", "sales_l", "first_sale_at", "last_sale_at",
                   "first_txn_id", "last_txn_id").first(),
        sales=pl.col("sales").sum(), sales_l=pl.col("sales_l").sum(),
        sale_days=pl.col("day").n_unique(),
        first_sale_at=pl.col("first_sale_at").min(), last_sale_at=pl.col("last_sale_at").max(),
        first_txn_id=pl.col("first_txn_id").first(), last_txn_id=pl.col("last_txn_id").last(),
    )  # fmt: skip
    minor = pl.col("kind").is_in(MINOR_KINDS) & pl.col("problem").is_in(
        ["expired", "missing", "not_yet_valid"])  # fmt: skip
    found = per_lapse.with_columns(
        subject=pl.col("kind"),
        severity=pl.when(minor).then(pl.lit("high")).otherwise(pl.lit("critical")),
        window_start=pl.coalesce("start_at", "first_sale_at"),
        window_end=pl.col("last_sale_at"),
    )
    return findings(found, [
        pl.col("kind").alias("licence_kind"), pl.col("number").alias("licence_number"),
        "problem", pl.col("status").alias("licence_status"),
        pl.col("valid_from").alias("valid_from"), pl.col("valid_until").alias("valid_until"),
        pl.col("start_at").alias("lapse_start_at"), pl.col("end_at").alias("lapse_end_at"),
        "sales", "sales_l", "sale_days", "first_sale_at", "last_sale_at", "first_txn_id",
        "last_txn_id", pl.col("registered").alias("station_registered"),
    ])  # fmt: skip


_WHY = {
    "missing": "not in the station's record",
    "expired": "expired (valid until {valid_until})",
    "not_yet_valid": "not yet valid (from {valid_from})",
    "suspended": "suspended",
    "revoked": "revoked",
}
_KIND_TEXT = {
    "retail_approval": "retail approval (成品油零售经营批准证书)",
    "hazardous_chemicals": "hazardous-chemicals permit (危险化学品经营许可证)",
    "business_licence": "business licence (营业执照)",
    "environmental_approval": "environmental approval",
}


def describe(e: dict[str, Any]) -> str:
    kind = _KIND_TEXT.get(e["licence_kind"], e["licence_kind"])
    number = f" no. {e['licence_number']}" if e["licence_number"] else ""
    why = _WHY.get(e["problem"], e["problem"]).format(**e)
    if e["lapse_start_at"]:
        until = f" to {beijing(e['lapse_end_at'])}" if e["lapse_end_at"] else ""
        spell = f"not in force from {beijing(e['lapse_start_at'])}{until} Beijing time"
    else:
        until = f" before {beijing(e['lapse_end_at'])}" if e["lapse_end_at"] else ""
        spell = f"never in force on record{until}"
    station = "" if e["station_registered"] else " (the station has no facility record)"
    return (f"Sold {e['sales_l']:.1f} L in {count(e['sales'], 'sale')} on "
            f"{count(e['sale_days'], 'day')} while its {kind}{number} was {why}{station}: "
            f"{spell}; first sale {e['first_txn_id']} at {beijing(e['first_sale_at'])}, last "
            f"{e['last_txn_id']} at {beijing(e['last_sale_at'])} (Beijing).")  # fmt: skip


RULE = Rule(
    name="unlicensed_sales",
    title="Selling without a licence in force",
    title_zh="证照失效期间销售",
    load=load,
    detect=detect,
    describe=describe,
    # The lapse, not a look-back, decides which sales are read.
    lookback=timedelta(0),
)
