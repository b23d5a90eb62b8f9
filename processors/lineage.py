"""Tank lineage: which depot batches a tank holds, between every two events.

A tank is a mixing vessel. Its state is a *book total* (litres at 20 °C) and the
*shares* of each batch in it:

* a **delivery** (at its ``ended_at``) adds its batch: shares are re-weighted;
* a **sale** (at its ``ended_at``) takes the current mix in proportion: the total
  falls, the shares stay — so the shares hold for a whole segment between two
  deliveries and tracing a sale is one lookup of the segment covering it. Each
  segment also records the sales it covers (Σ litres at 20 °C, how many, the first
  and the last), so tracing a batch forward needs no sale: a batch sold its share of
  that, and is in the tank now with the open segment's litres less its share of its
  sales;
* a **true-up** (at each delivery's ``started_at``) sets the book total to what the
  gauge measured at the last reading before the unloading (plus the sales since
  that reading); the difference is a gain or loss, allocated to the batches in
  proportion. A negative book total at a delivery is trued up to zero the same way.

Per batch this conserves, exactly: received + Σ variance = sold + in tank, i.e.
received = sold + in tank + losses. Shares below :data:`MIN_SHARE` are written off
as variance too, so a tank's segment stays a handful of batches. The stock a tank
held before fueltrace knew it is the pseudo-batch ``OPENING:<station>:<tank>``: its
first reading, or, when deliveries came before that reading, what the reading found
beyond them. A delivery without a dispatch brings ``UNTRACED:<delivery_id>``.

Everything here is pure: frames in, rows out (``processors.traceability`` runs it).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from processors.standard_volume import vcf20_expr

MIN_SHARE = 1e-7

#: Density at 20 °C assumed for a tank before any delivery says otherwise (kg/m³):
#: mid-range of GB 17930 (gasoline 720–775) and GB 19147 (diesel 810–850).
DEFAULT_DENSITY = {
    "gasoline_92": 737.0, "gasoline_95": 741.0, "gasoline_98": 745.0, "diesel_0": 835.0,
    "diesel_m10": 830.0, "diesel_m20": 825.0, "diesel_m35": 815.0,
}  # fmt: skip


def opening_batch(station_id: str, tank_id: str) -> str:
    return f"OPENING:{station_id}:{tank_id}"


def untraced_batch(delivery_id: str) -> str:
    return f"UNTRACED:{delivery_id}"


def _default_density(product: pl.Expr) -> pl.Expr:
    return product.cast(pl.String).replace_strict(DEFAULT_DENSITY, default=None,
                                                  return_dtype=pl.Float64)  # fmt: skip


def _delivery_density(frame: pl.DataFrame, at: str, deliveries: pl.DataFrame) -> pl.DataFrame:
    """Add ``density_kg_m3``: the density of the last delivery into the tank by ``at``."""
    last = (
        deliveries.select("station_id", "tank_id", pl.col("ended_at").alias("_at"),
                          pl.col("density_kg_m3").alias("_density"))  # fmt: skip
        .sort("_at")
    )
    joined = frame.sort(at).join_asof(
        last, left_on=at, right_on="_at", by=["station_id", "tank_id"], strategy="backward",
        check_sortedness=False,  # sorted by time; polars cannot verify that within groups
    )
    return joined.with_columns(
        density_kg_m3=pl.coalesce("_density", _default_density(pl.col("product")))
    ).drop("_at", "_density")


def standardise_readings(readings: pl.DataFrame, deliveries: pl.DataFrame) -> pl.DataFrame:
    """Tank readings with ``density_kg_m3`` and ``volume_20_l``.

    ``readings``: station_id, tank_id, product, read_at, volume_l, temperature_c.
    ``deliveries``: station_id, tank_id, ended_at, density_kg_m3.
    """
    out = _delivery_density(readings, "read_at", deliveries)
    vcf = vcf20_expr(pl.col("product"), pl.col("density_kg_m3"), pl.col("temperature_c"))
    return out.with_columns(volume_20_l=pl.col("volume_l") * vcf)


def standardise_sales(
    sales: pl.DataFrame, readings: pl.DataFrame, deliveries: pl.DataFrame
) -> pl.DataFrame:
    """Sales with ``temperature_c`` (the tank gauge's at that moment: the last reading
    before, else the first after), ``density_kg_m3`` and ``volume_20_l``.

    ``sales``: station_id, tank_id, txn_id, product, at, volume_l.
    """
    temps = readings.select("station_id", "tank_id", pl.col("read_at").alias("_t"),
                            pl.col("temperature_c")).sort("_t")  # fmt: skip
    out = sales.sort("at")
    before = out.join_asof(temps, left_on="at", right_on="_t", by=["station_id", "tank_id"],
                           strategy="backward", check_sortedness=False).drop("_t")  # fmt: skip
    after = out.join_asof(
        temps, left_on="at", right_on="_t", by=["station_id", "tank_id"], strategy="forward",
        check_sortedness=False,
    ).select(pl.col("temperature_c").alias("_after"))
    out = pl.concat([before, after], how="horizontal").with_columns(
        temperature_c=pl.coalesce("temperature_c", "_after")
    ).drop("_after")
    out = _delivery_density(out, "at", deliveries)
    vcf = vcf20_expr(pl.col("product"), pl.col("density_kg_m3"), pl.col("temperature_c"))
    # no temperature at all (no gauge): the observed volume is the best there is
    return out.with_columns(volume_20_l=pl.col("volume_l") * vcf.fill_null(1.0))


@dataclass
class TankState:
    """The book of one tank at ``at``: total litres at 20 °C and batch shares."""

    at: datetime
    total: float
    shares: dict[str, float]
    densities: dict[str, float]


@dataclass
class TankLineage:
    segments: list[dict[str, Any]] = field(default_factory=list)  # a row per batch
    variances: list[dict[str, Any]] = field(default_factory=list)
    # a row per segment: the sales it covers (Σ volume_20_l, count, first and last)
    segment_sales: list[dict[str, Any]] = field(default_factory=list)


class _Replay:
    def __init__(self, station_id: str, tank_id: str, state: TankState) -> None:
        self.station_id = station_id
        self.tank_id = tank_id
        self.state = state
        self.out = TankLineage()
        self.open: list[dict[str, Any]] = []  # rows of the current segment
        # every sale replayed, in order: its instant and the litres sold up to it; the
        # open segment's sales are those from index ``mark`` on
        self.sold_at: list[datetime] = []
        self.sold_cum: list[float] = [0.0]
        self.mark = 0

    def sell(self, at: datetime, litres: float) -> None:
        """A sale takes ``litres`` of the current mix: the total falls, the shares stay."""
        self.state.total -= litres
        self.sold_at.append(at)
        self.sold_cum.append(self.sold_cum[-1] + litres)

    def _settle(self) -> None:
        """Record the open segment's sales (a batch's part of them: its share)."""
        first, end = self.mark, len(self.sold_at)
        if self.open:
            self.out.segment_sales.append(
                {"station_id": self.station_id, "tank_id": self.tank_id,
                 "valid_from": self.open[0]["valid_from"],
                 "sold_20_l": self.sold_cum[end] - self.sold_cum[first], "sales": end - first,
                 "first_sale_at": self.sold_at[first] if end > first else None,
                 "last_sale_at": self.sold_at[-1] if end > first else None})  # fmt: skip
        self.mark = end

    def segment(self, at: datetime) -> None:
        """Close the open segment at ``at`` and open one with the current book. Two
        events at one instant (two deliveries ending together) leave one segment."""
        if self.open and self.open[0]["valid_from"] == at:
            # No sale can be in it: sales at an instant follow its other events. Were
            # there one, its figures would carry on to the segment replacing this one,
            # which is the one covering the sale's instant.
            del self.out.segments[-len(self.open) :]
            self.open = []
        else:
            self._settle()
            for row in self.open:
                row["valid_to"] = at
        s = self.state
        self.open = [
            {"station_id": self.station_id, "tank_id": self.tank_id, "valid_from": at,
             "valid_to": None, "batch_id": b, "share": share, "litres_20": share * s.total,
             "density_kg_m3": s.densities.get(b, 0.0)}
            for b, share in sorted(s.shares.items())
        ]  # fmt: skip
        self.out.segments.extend(self.open)

    def finish(self) -> TankLineage:
        """The lineage, with the sales of the segment still open settled too."""
        self._settle()
        return self.out

    def variance(self, at: datetime, litres: float) -> None:
        """Book total changes by ``litres`` (gain > 0, loss < 0) across the batches."""
        if litres == 0:
            return
        for b, share in self.state.shares.items():
            self._variance_row(at, b, share * litres)
        self.state.total += litres

    def _variance_row(self, at: datetime, batch: str, litres: float) -> None:
        self.out.variances.append({"station_id": self.station_id, "tank_id": self.tank_id,
                                   "at": at, "batch_id": batch, "litres_20": litres})  # fmt: skip

    def deliver(self, at: datetime, batch: str, litres: float, density: float) -> None:
        s = self.state
        if s.total < 0:
            self.variance(at, -s.total)  # a negative book cannot be mixed with
        new_total = s.total + litres
        if new_total <= 0:
            return
        shares = {b: share * s.total / new_total for b, share in s.shares.items()}
        shares[batch] = shares.get(batch, 0.0) + litres / new_total
        written_off = {b: v for b, v in shares.items() if v < MIN_SHARE}
        if written_off:
            for b, v in written_off.items():
                self._variance_row(at, b, -v * new_total)
                del shares[b]
            kept = sum(shares.values())
            shares = {b: v / kept for b, v in shares.items()}
            new_total *= kept
        s.shares, s.total = shares, new_total
        s.densities[batch] = density
        self.segment(at)


def replay_tank(
    station_id: str,
    tank_id: str,
    start: TankState | None,
    readings: pl.DataFrame,
    deliveries: pl.DataFrame,
    sales: pl.DataFrame,
) -> TankLineage:
    """Rebuild one tank's segments and variances from ``start`` (or its first reading).

    ``readings``: read_at, volume_20_l, density_kg_m3 (sorted or not).
    ``deliveries``: started_at, ended_at, batch_id, litres_20, density_kg_m3.
    ``sales``: at, volume_20_l.
    Events at ``start.at`` itself are already in ``start`` except sales, which follow.
    """
    readings = readings.sort("read_at")
    read_at: list[datetime] = readings["read_at"].to_list()
    read_v: list[float] = readings["volume_20_l"].to_list()
    opening: tuple[datetime, float, float] | None = None  # the first reading, if it comes late
    if start is None:
        opening_name = opening_batch(station_id, tank_id)
        early = deliveries.filter(pl.col("ended_at") <= read_at[0]) if read_at else deliveries
        if early.is_empty():
            if not read_at:
                return TankLineage()
            first = readings.row(0, named=True)
            start = TankState(first["read_at"], first["volume_20_l"], {opening_name: 1.0},
                              {opening_name: first["density_kg_m3"]})  # fmt: skip
        else:
            # Deliveries before the tank's first reading: start with an empty book just
            # before them; what the first reading finds beyond the book is the opening stock.
            first_start: datetime = min(early["started_at"].to_list())
            begin_at = min([first_start, *read_at[:1]])
            start = TankState(begin_at - timedelta(milliseconds=1), 0.0, {}, {})
            if read_at:
                first = readings.row(0, named=True)
                opening = (first["read_at"], first["volume_20_l"], first["density_kg_m3"])
    replay = _Replay(station_id, tank_id, start)
    replay.segment(start.at)  # re-emitted on a restart: the job deleted it with the rest
    begin = start.at

    events: list[tuple[datetime, int, float, Any]] = []
    for d in deliveries.iter_rows(named=True):
        if d["started_at"] > begin:
            events.append((d["started_at"], 0, 0.0, None))  # true-up
        if d["ended_at"] > begin:
            events.append((d["ended_at"], 1, d["litres_20"], d))
    for at, v in zip(sales["at"].to_list(), sales["volume_20_l"].to_list(), strict=True):
        if at >= begin:
            events.append((at, 2, v, None))
    if opening is not None:
        events.append((opening[0], 0, opening[1], "opening"))
    events.sort(key=lambda e: (e[0], e[1]))

    sold_at, sold_cum = replay.sold_at, replay.sold_cum
    last_trued = begin
    for at, kind, litres, delivery in events:
        if kind == 2:
            replay.sell(at, litres)
        elif delivery == "opening":
            assert opening is not None
            found = litres - replay.state.total  # measured − book: the stock nobody declared
            if found > 0:
                replay.deliver(at, opening_batch(station_id, tank_id), found, opening[2])
            elif found < 0:  # the gauge found less than was delivered: a loss, as a true-up
                replay.variance(at, found)
                replay.segment(at)
            last_trued = at
        elif kind == 0:
            i = bisect.bisect_right(read_at, at) - 1
            if i >= 0 and read_at[i] > last_trued:
                since = sold_cum[-1] - sold_cum[bisect.bisect_right(sold_at, read_at[i])]
                replay.variance(at, read_v[i] - since - replay.state.total)
                last_trued = read_at[i]
                replay.segment(at)
        else:
            replay.deliver(at, delivery["batch_id"], litres, delivery["density_kg_m3"])
            # a reading taken while this delivery was unloading saw half of it: the next
            # true-up must use a reading from after it ended
            last_trued = max(last_trued, at)
    return replay.finish()


def state_from_segment(rows: pl.DataFrame) -> TankState:
    """The book at the start of a stored segment (its rows: one per batch)."""
    total = float(rows["litres_20"].sum())
    return TankState(
        at=rows["valid_from"][0],
        total=total,
        shares=dict(zip(rows["batch_id"].to_list(), rows["share"].to_list(), strict=True)),
        densities=dict(zip(rows["batch_id"].to_list(), rows["density_kg_m3"].to_list(),
                           strict=True)),  # fmt: skip
    )
