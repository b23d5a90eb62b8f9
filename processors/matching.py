"""Each delivery checked against the depot dispatch it claims, and the dispatches nobody claims.

Pure Polars, no I/O: :func:`check_deliveries` takes the warehouse tables ``dispatch`` and
``delivery`` as frames (the Avro fields of ``schemas/dispatch.avsc`` / ``delivery.avsc``, plus
``volume_20_l``, the standard volume computed on ingest by ``processors.normalize``) and
returns the rows of ``delivery_check`` (without the gauge columns, which
``processors.gauge_rise`` adds) and of ``open_dispatch``.

Units: volumes in litres at 20 °C (GB/T 1885), densities in kg/m³ at 20 °C, times UTC.

Tolerances, all from :class:`fueltrace.settings.Settings`:

- ``transit_loss_tolerance_pct`` (%, of the dispatched volume at 20 °C): the largest allowed
  shortfall ``dispatched − received``;
- ``transit_gain_tolerance_pct`` (%, of the dispatched volume at 20 °C): the largest allowed
  surplus ``received − dispatched``;
- ``density_tolerance_kg_m3`` (kg/m³): the largest allowed ``|received − dispatched|`` density;
- ``delivery_overdue_h`` (hours): an unclaimed dispatch older than this is ``overdue``.

A volume at 20 °C is null when the record's temperature or density is outside the range of
API MPMS 11.1; the columns then carry the observed ``volume_l`` instead (``received_20_l`` and
``open_dispatch.volume_20_l`` are NOT NULL, and ``delivery_batch`` falls back the same way),
and the pair is reported as a ``volume`` mismatch, since it cannot be verified at 20 °C.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from fueltrace.settings import Settings
from processors.timestamps import UTC_US, utc

__all__ = [
    "CHECK_SCHEMA",
    "MISMATCH_KINDS",
    "OPEN_DISPATCH_SCHEMA",
    "check_deliveries",
    "normalize_plate",
]

#: Mismatch kinds in the order they are listed in ``delivery_check.mismatches``.
MISMATCH_KINDS: tuple[str, ...] = (
    "station",
    "product",
    "vehicle",
    "seals",
    "seals_broken",
    "volume",
    "density",
    "duplicate_claim",
)

#: Columns of the first result (``delivery_check`` without its gauge columns).
CHECK_SCHEMA: dict[str, pl.DataType] = {
    "delivery_id": pl.String(),
    "dispatch_id": pl.String(),
    "station_id": pl.String(),
    "status": pl.String(),
    "mismatches": pl.List(pl.String()),
    "dispatched_20_l": pl.Float64(),
    "received_20_l": pl.Float64(),
    "difference_20_l": pl.Float64(),
    "difference_pct": pl.Float64(),
    "density_dispatched": pl.Float64(),
    "density_received": pl.Float64(),
}

#: Columns of the second result (``open_dispatch``).
OPEN_DISPATCH_SCHEMA: dict[str, pl.DataType] = {
    "dispatch_id": pl.String(),
    "depot_id": pl.String(),
    "station_id": pl.String(),
    "batch_id": pl.String(),
    "dispatched_at": pl.Datetime("us", "UTC"),
    "volume_20_l": pl.Float64(),
    "overdue": pl.Boolean(),
}

# Separators people put in plates: whitespace (incl. U+3000), ASCII and typographic hyphens and
# dashes, full stops and middle dots (· ・ • ‧ ∙). NFKC first folds full-width forms to ASCII.
_PLATE_SEPARATORS = r"[\s\-\u2010-\u2015\u2212\uFF0D.\u00B7\u30FB\uFF65\u2022\u2027\u2219]"


def _utc_now(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def normalize_plate(plate: pl.Expr) -> pl.Expr:
    """A licence plate compared loosely: NFKC, upper case, without spaces, hyphens and dots.

    So ``辽A·12345``, ``辽a 12345`` and ``辽A-12345`` are all ``辽A12345``.
    """
    return (
        plate.cast(pl.String)
        .str.normalize("NFKC")
        .str.to_uppercase()
        .str.replace_all(_PLATE_SEPARATORS, "")
    )


def _standard_volume(frame: pl.DataFrame) -> pl.Expr:
    """``volume_20_l``, falling back to the observed ``volume_l`` where it is null."""
    if "volume_l" in frame.columns:
        return pl.coalesce(pl.col("volume_20_l"), pl.col("volume_l")).cast(pl.Float64)
    return pl.col("volume_20_l").cast(pl.Float64)


def _flag(condition: pl.Expr, kind: str) -> pl.Expr:
    return pl.when(condition).then(pl.lit(kind, pl.String))


def check_deliveries(
    dispatch: pl.DataFrame, delivery: pl.DataFrame, settings: Settings, now: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Check every delivery against its dispatch; list the dispatches no delivery claims.

    Returns ``(checks, open_dispatches)``:

    ``checks``, one row per delivery in input order, columns :data:`CHECK_SCHEMA`. ``status``
    is ``no_dispatch`` (``dispatch_id`` null or blank), ``unknown_dispatch`` (no dispatch with
    that id), else ``matched`` (no mismatches) or ``mismatch``. ``mismatches`` lists, in the
    order of :data:`MISMATCH_KINDS`: ``station``, ``product``, ``vehicle`` (plates differ after
    :func:`normalize_plate`), ``seals`` (the sets of seal ids differ), ``seals_broken``
    (``seals_intact`` false; listed even without a dispatch, it needs none), ``volume``
    (``received − dispatched`` at 20 °C, litres, below −``transit_loss_tolerance_pct`` % or
    above +``transit_gain_tolerance_pct`` % of the dispatched volume), ``density`` (|density
    difference| above ``density_tolerance_kg_m3``), and ``duplicate_claim`` on every delivery
    but the earliest (by ``started_at``, then ``delivery_id``) claiming the same dispatch id.
    ``difference_20_l`` = received − dispatched (L), ``difference_pct`` = 100 × difference /
    dispatched (null when nothing was dispatched).

    ``open_dispatches``: dispatches no delivery references (whatever its station), columns
    :data:`OPEN_DISPATCH_SCHEMA`; ``overdue`` when ``now − dispatched_at`` exceeds
    ``delivery_overdue_h`` hours. A naive ``now`` is taken as UTC.
    """
    loss = settings.transit_loss_tolerance_pct / 100.0
    gain = settings.transit_gain_tolerance_pct / 100.0

    # One dispatch per id, so the join cannot multiply deliveries.
    disp = dispatch.unique("dispatch_id", keep="first", maintain_order=True).select(
        pl.col("dispatch_id").cast(pl.String).alias("_claim"),
        pl.lit(True).alias("_has_dispatch"),
        pl.col("station_id").cast(pl.String).alias("_d_station"),
        pl.col("product").cast(pl.String).alias("_d_product"),
        normalize_plate(pl.col("vehicle_plate")).alias("_d_plate"),
        pl.col("seal_ids").cast(pl.List(pl.String)).alias("_d_seals"),
        _standard_volume(dispatch).alias("dispatched_20_l"),
        pl.col("volume_20_l").is_null().alias("_d_uncorrected"),
        pl.col("density_kg_m3").cast(pl.Float64).alias("density_dispatched"),
    )
    claim = pl.col("dispatch_id").cast(pl.String)
    deliv = delivery.with_row_index("_row").with_columns(
        _claim=pl.when(claim.str.strip_chars() != "").then(claim),
        _started=utc(delivery, "started_at"),
        _plate=normalize_plate(pl.col("vehicle_plate")),
        _seals=pl.col("seal_ids").cast(pl.List(pl.String)),
        received_20_l=_standard_volume(delivery),
        density_received=pl.col("density_kg_m3").cast(pl.Float64),
    )
    joined = deliv.join(disp, on="_claim", how="left", nulls_equal=False)

    has = pl.col("_has_dispatch").fill_null(False)
    received, dispatched = pl.col("received_20_l"), pl.col("dispatched_20_l")
    difference = received - dispatched
    uncorrected = pl.col("volume_20_l").is_null() | pl.col("_d_uncorrected")
    seals_differ = (
        pl.col("_seals")
        .fill_null([])
        .list.set_symmetric_difference(pl.col("_d_seals").fill_null([]))
        .list.len()
        > 0
    )
    # Later claims on one dispatch id: every one but the first by (started_at, delivery_id).
    claim_rank = pl.int_range(pl.len()).over(
        "_claim", order_by=[pl.col("_started"), pl.col("delivery_id")], nulls_last=True
    )
    flags = [
        _flag(has & (pl.col("station_id").cast(pl.String) != pl.col("_d_station")), "station"),
        _flag(has & (pl.col("product").cast(pl.String) != pl.col("_d_product")), "product"),
        _flag(has & (pl.col("_plate") != pl.col("_d_plate")), "vehicle"),
        _flag(has & seals_differ, "seals"),
        _flag(pl.col("seals_intact").not_(), "seals_broken"),
        _flag(
            has
            & (uncorrected | (difference < -loss * dispatched) | (difference > gain * dispatched)),
            "volume",
        ),
        _flag(
            has
            & (
                (pl.col("density_received") - pl.col("density_dispatched")).abs()
                > settings.density_tolerance_kg_m3
            ),
            "density",
        ),
        _flag(pl.col("_claim").is_not_null() & (claim_rank > 0), "duplicate_claim"),
    ]
    mismatches = pl.concat_list(flags).list.drop_nulls()
    status = (
        pl.when(pl.col("_claim").is_null())
        .then(pl.lit("no_dispatch"))
        .when(~has)
        .then(pl.lit("unknown_dispatch"))
        .when(pl.col("mismatches").list.len() == 0)
        .then(pl.lit("matched"))
        .otherwise(pl.lit("mismatch"))
    )
    checks = (
        joined.with_columns(
            mismatches=mismatches,
            difference_20_l=difference,
            difference_pct=pl.when(dispatched != 0).then(100.0 * difference / dispatched),
        )
        .with_columns(status=status)
        .sort("_row")
        .select(
            pl.col("delivery_id").cast(pl.String),
            pl.col("_claim").alias("dispatch_id"),
            pl.col("station_id").cast(pl.String),
            *[pl.col(name) for name in list(CHECK_SCHEMA)[3:]],
        )
        .cast(CHECK_SCHEMA)  # type: ignore[arg-type]
    )

    claimed = deliv.select(pl.col("_claim").alias("dispatch_id")).drop_nulls().unique()
    overdue_after = timedelta(hours=settings.delivery_overdue_h)
    dispatched_at = utc(dispatch, "dispatched_at")
    open_dispatches = (
        dispatch.unique("dispatch_id", keep="first", maintain_order=True)
        .with_columns(pl.col("dispatch_id").cast(pl.String))
        .join(claimed, on="dispatch_id", how="anti")
        .select(
            "dispatch_id",
            pl.col("depot_id").cast(pl.String),
            pl.col("station_id").cast(pl.String),
            pl.col("batch_id").cast(pl.String),
            dispatched_at.alias("dispatched_at"),
            _standard_volume(dispatch).alias("volume_20_l"),
            overdue=(pl.lit(_utc_now(now), UTC_US) - dispatched_at) > overdue_after,
        )
        .cast(OPEN_DISPATCH_SCHEMA)  # type: ignore[arg-type]
    )
    return checks, open_dispatches
