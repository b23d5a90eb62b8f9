"""Traceability benchmark: lineage build, trace latency and late data over a province.

Not a test. Run from the repository root::

    .venv/bin/python bench/trace_bench.py          # 300 stations × 60 days: ~4–6 min here
    .venv/bin/python bench/trace_bench.py --days 365 --reading-min 60 --load-rows 250000 \
        --workdir /tmp/trace-year --json /tmp/trace-year.json   # the year: ~15 min
    .venv/bin/python bench/trace_bench.py --stations 20 --days 5    # while developing

The year needs ~12 GB of RAM with hourly readings (the full lineage build holds every
reading and sale in Polars); with readings every 15 min it would not fit in 24 GB.
Bigger loads for the year because each ``load_batch`` call costs time proportional to
the rows already in the target table (see docs/benchmarks-trace.md). ``--workdir``
keeps the loaded warehouse, so a second run of the same size skips the build.

No Kafka. A child process generates the province with a vectorised Polars generator
of this script (below) and loads it the way the ingest does — typed frames with the
columns of ``ingest.frames.frame_schema`` plus ``src_*``, ``processors.normalize``,
then ``warehouse.load.load_batch`` per time window of about ``--load-rows`` rows. It
holds back one delivery (with its dispatch) in the middle of the period and the whole
last day. This process then measures, against that warehouse:

1. the initial full lineage build: ``processors.traceability.run`` (the lineage job;
   not the anomaly rules that ``fueltrace.analyses.run_analyses`` runs after it)
   (seconds, records/s over the sales + readings + deliveries it read, peak RSS);
2. trace latency: ``warehouse.trace.trace_sale`` on ≥ 200 random sales,
   ``trace_batch`` on ≥ 50 random batches, ``recall_report`` on a few; p50/p95/p99,
   target p95 ≤ 100 ms (PASS/MISS);
3. late data: the held-back delivery and its dispatch loaded, then the lineage job
   (recomputes that tank from that point); then the held-back day of every station
   loaded and analysed incrementally (target: minutes, not hours);
4. baselines measured in the same run: a full scan of ``sale_std``, a naive trace
   that replays the sale's tank from its first reading in Python
   (``processors.lineage.replay_tank`` over the tank's whole history), and
   ``trace_batch`` as it was before migration 005 (the batch's segments joined with the
   sales of ``sale_std`` they cover) on the same batches, its tanks compared with the
   product's;
5. after the late data: every segment's stored sales (``segment_sales``) checked
   against ``sale_std`` (an ASOF join); a difference is reported as a PROBLEM.

The generated data is physically consistent: per station 4 tanks (92, 95, 98, diesel)
and 2 dispensers × 4 nozzles (each nozzle draws from one tank); sales with totalizer
continuity per nozzle, amount = round(price × volume), observed litres at the tank's
temperature; a delivery (with its depot dispatch, batch id per depot × product × day,
density and seals matching) whenever a tank has sold half its capacity since the last
one; gauge readings every ``--reading-min`` minutes = opening stock + deliveries
(linearly during unloading) − sales, at 20 °C converted to observed litres, ±0.05 %.

Scale: a real busy station makes ~600 sales a day; 300 stations × a year of that is
~65 M sales, too much for a 2-core machine in reasonable time. The default is
``--sales-per-day 100``; tank capacities are scaled by sales-per-day / 600 so that
deliveries — and so lineage segments and batches — keep the full-scale rate (about
1.3 per station-day). Only the number of sales (sale, sale_std rows) is lower.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Settings are the defaults of fueltrace.settings.Settings plus db and state_dir: drop
# FUELTRACE_* from the environment before anything reads it.
_IGNORED_ENV = sorted(k for k in os.environ if k.startswith("FUELTRACE_"))
for _k in _IGNORED_ENV:
    del os.environ[_k]

import duckdb  # noqa: E402
import polars as pl  # noqa: E402

from bench import common  # noqa: E402
from bench.segment_reference import BATCH_TANKS_BY_JOIN  # noqa: E402
from fueltrace.settings import Settings  # noqa: E402
from ingest.frames import SOURCE_COLUMNS, frame_schema, to_frame  # noqa: E402
from ingest.jsonl import convert_record  # noqa: E402
from processors import traceability  # noqa: E402
from processors.lineage import (  # noqa: E402
    DEFAULT_DENSITY,
    replay_tank,
    standardise_readings,
    standardise_sales,
)
from processors.normalize import normalize  # noqa: E402
from processors.standard_volume import vcf20_expr  # noqa: E402
from schemas import default_registry  # noqa: E402
from warehouse import trace  # noqa: E402
from warehouse.connection import connect  # noqa: E402
from warehouse.load import DEAD_LETTER_SCHEMA, Batch, load_batch  # noqa: E402

MiB = 1024 * 1024
TARGET_TRACE_P95_S = 0.100
START = datetime(2025, 1, 1, tzinfo=UTC)  # every generated instant is in the past
START_MS = int(START.timestamp() * 1000)
MINUTE_MS = 60_000
DAY_MS = 86_400_000
FULL_SCALE_SALES_PER_DAY = 600
LOAD_ORDER = ("facility", "dispatch", "delivery", "tank_reading", "sale")


@dataclass(frozen=True)
class TankKind:
    tank_id: str
    product: str
    code: str  # in batch ids
    capacity_l: float  # full scale (600 sales/day)
    count_share: float  # share of the station's sales (by count)
    price_fen: int
    min_l: float  # sale volume: uniform min … max litres (observed)
    max_l: float


TANKS = (
    TankKind("T1", "gasoline_92", "G92", 40_000, 0.50, 780, 10, 60),
    TankKind("T2", "gasoline_95", "G95", 30_000, 0.25, 830, 10, 60),
    TankKind("T3", "gasoline_98", "G98", 20_000, 0.05, 910, 10, 60),
    TankKind("T4", "diesel_0", "D0", 40_000, 0.20, 760, 20, 100),
)
DISPENSERS = 2
DEPOTS = 3
CITIES = ("Shenyang", "Dalian", "Anshan", "Fushun", "Benxi", "Dandong", "Jinzhou",
          "Yingkou", "Fuxin", "Liaoyang", "Panjin", "Tieling", "Chaoyang", "Huludao")  # fmt: skip
REFILL_AT = 0.5  # a delivery of half the capacity once the tank sold that much
OPENING = 0.85  # opening stock, share of capacity


# -- generator helpers -------------------------------------------------------------


def _u(expr: pl.Expr, seed: int) -> pl.Expr:
    """A deterministic uniform [0, 1) per value of ``expr`` (integers)."""
    return (expr.hash(seed) // 2048).cast(pl.Float64) / float(2**53)


def _by_tank(tank: pl.Expr, values: list[Any], dtype: pl.DataType) -> pl.Expr:
    return tank.replace_strict(dict(enumerate(values)), return_dtype=dtype)


def _station(s: pl.Expr) -> pl.Expr:
    return pl.format("ST-{}", s.cast(pl.String).str.zfill(4))


def _ts(ms: pl.Expr) -> pl.Expr:
    return ms.cast(pl.Int64).cast(pl.Datetime("ms", "UTC"))


def _days(t_ms: pl.Expr) -> pl.Expr:
    return (t_ms - START_MS).cast(pl.Float64) / DAY_MS


def _tank_temp(t_ms: pl.Expr, s: pl.Expr) -> pl.Expr:
    """Underground tank: damped seasonal swing, small daily one, per-station offset."""
    days = _days(t_ms)
    return (11.0 + 7.0 * (2 * math.pi * (days - 215) / 365.25).cos()
            + 0.4 * (2 * math.pi * days).sin() + ((s % 7) - 3).cast(pl.Float64) * 0.4)  # fmt: skip


def _air_temp(t_ms: pl.Expr) -> pl.Expr:
    """Liaoning air: −7.5 °C in January to +24.5 °C in July, ±4 °C over the day."""
    days = _days(t_ms)
    return (8.5 + 16.0 * (2 * math.pi * (days - 200) / 365.25).cos()
            + 4.0 * (2 * math.pi * (days - 0.1)).sin())  # fmt: skip


def _expected_schema(record_type: str) -> dict[str, pl.DataType]:
    return {**frame_schema(record_type), **SOURCE_COLUMNS}


def _typed(record_type: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` as ``to_frame`` would build it (columns, order, types)."""
    schema = _expected_schema(record_type)
    out = frame.select(list(schema)).cast(schema)  # type: ignore[arg-type]
    assert out.schema == to_frame(record_type, []).schema, record_type
    return out


class Province:
    """The whole period's sales, deliveries (with dispatches) and readings, int-coded."""

    def __init__(self, stations: int, days: int, sales_per_day: int, reading_min: int,
                 seed: int) -> None:  # fmt: skip
        self.stations = stations
        self.days = days  # including the held-back last day
        self.sales_per_day = sales_per_day
        self.reading_min = reading_min
        self.seed = seed
        self.scale = min(1.0, sales_per_day / FULL_SCALE_SALES_PER_DAY)
        self.capacity = [round(t.capacity_l * self.scale / 100) * 100.0 for t in TANKS]
        self.end_ms = START_MS + days * DAY_MS
        self.offset = 0  # src_offset of the next record

    # ---- generation ----

    def generate(self) -> None:
        self._sales()
        self._deliveries()
        self._readings()

    def _sales(self) -> None:
        s_n, d_n, n = self.stations, self.days, self.sales_per_day
        seed = self.seed
        r = pl.col("r")
        tank_expr = (pl.when(pl.col("_u2") < 0.50).then(0).when(pl.col("_u2") < 0.75).then(1)
                     .when(pl.col("_u2") < 0.80).then(2).otherwise(3).cast(pl.Int8))  # fmt: skip
        f = (
            pl.DataFrame({"r": pl.int_range(s_n * d_n * n, dtype=pl.Int64, eager=True)})
            .with_columns(
                s=(r // (d_n * n)).cast(pl.Int32),
                at=(START_MS + (r // n) % d_n * DAY_MS
                    + (_u(r, seed + 1) * (DAY_MS - 1)).cast(pl.Int64)),  # fmt: skip
                _u2=_u(r, seed + 2),
                disp=(_u(r, seed + 3) * DISPENSERS).cast(pl.Int8),
                _u4=_u(r, seed + 4),
                invoiced=_u(r, seed + 5) < 0.25,
            )
            .with_columns(tank=tank_expr)
            .drop("_u2")
        )
        lo = _by_tank(pl.col("tank"), [t.min_l for t in TANKS], pl.Float64())
        hi = _by_tank(pl.col("tank"), [t.max_l for t in TANKS], pl.Float64())
        product = _by_tank(pl.col("tank"), [t.product for t in TANKS], pl.String())
        density = _by_tank(pl.col("tank"), [DEFAULT_DENSITY[t.product] for t in TANKS],
                           pl.Float64())  # fmt: skip
        f = f.with_columns(volume_l=(lo + (hi - lo) * pl.col("_u4")).round(2)).drop("_u4")
        # the litres at 20 °C that left the tank (the gauge's truth)
        f = f.with_columns(
            v20=pl.col("volume_l") * vcf20_expr(product, density, _tank_temp(pl.col("at"),
                                                                             pl.col("s")))
        )  # fmt: skip
        # totalizer continuity per nozzle
        f = f.sort("s", "tank", "disp", "at").with_columns(
            totalizer_end_l=(100_000.0 + pl.col("volume_l").cum_sum()
                             .over("s", "tank", "disp")).round(2)  # fmt: skip
        )
        f = f.with_columns(
            totalizer_start_l=(pl.col("totalizer_end_l") - pl.col("volume_l")).round(2)
        )
        # cumulative litres at 20 °C sold per tank: drives the deliveries and the gauge
        f = f.sort("s", "tank", "at").with_columns(
            cum_v20=pl.col("v20").cum_sum().over("s", "tank")
        )
        self.sales = f

    def _deliveries(self) -> None:
        seed = self.seed
        refill = _by_tank(pl.col("tank"), [c * REFILL_AT for c in self.capacity], pl.Float64())
        k = (pl.col("cum_v20") / refill).floor().cast(pl.Int32)
        trig = (
            self.sales.select("s", "tank", "at", k=k)
            .filter(pl.col("k") > pl.col("k").shift(1).over("s", "tank").fill_null(0))
        )
        key = (pl.col("s").cast(pl.Int64) * 4 + pl.col("tank")) * 1_000_000 + pl.col("k")
        product = _by_tank(pl.col("tank"), [t.product for t in TANKS], pl.String())
        code = _by_tank(pl.col("tank"), [t.code for t in TANKS], pl.String())
        default = _by_tank(pl.col("tank"), [DEFAULT_DENSITY[t.product] for t in TANKS],
                           pl.Float64())  # fmt: skip
        d = trig.with_columns(
            started=pl.col("at") + (30 + _u(key, seed + 11) * 90).cast(pl.Int64) * MINUTE_MS,
        ).with_columns(
            ended=pl.col("started") + ((30 + _u(key, seed + 12) * 20) * MINUTE_MS).cast(pl.Int64),
            dispatched=pl.col("started")
            - ((60 + _u(key, seed + 13) * 120) * MINUTE_MS).cast(pl.Int64),
            depot=(pl.col("s") % DEPOTS).cast(pl.Int32),
            product=product,
            code=code,
            refill=refill,
            _default=default,
            _u14=_u(key, seed + 14),
            _u15=_u(key, seed + 15),
            _u16=_u(key, seed + 16),
            _u17=_u(key, seed + 17),
            _u18=_u(key, seed + 18),
        ).filter(pl.col("ended") < self.end_ms - 60 * MINUTE_MS)
        d = d.sort("started", "s", "tank").with_row_index("gi")
        day = (pl.col("dispatched") - START_MS) // DAY_MS
        batch_key = (pl.col("depot").cast(pl.Int64) * 4 + pl.col("tank")) * 100_000 + day + 10_000
        d = d.with_columns(
            batch_id=pl.format("B{}-{}-{}", pl.col("depot") + 1, pl.col("code"),
                               _ts(pl.col("dispatched")).dt.strftime("%Y%m%d")),
            batch_density=(pl.col("_default") + (_u(batch_key, seed + 19) - 0.5) * 8).round(1),
        )  # fmt: skip
        d = d.with_columns(
            density=(pl.col("batch_density") + (pl.col("_u14") - 0.5) * 0.8).round(1),
            temperature=(_air_temp(pl.col("started")) + (pl.col("_u15") - 0.5) * 2).round(1),
            d_temperature=(_air_temp(pl.col("dispatched")) + (pl.col("_u16") - 0.5) * 2).round(1),
        )
        vcf_in = vcf20_expr(pl.col("product"), pl.col("density"), pl.col("temperature"))
        vcf_out = vcf20_expr(pl.col("product"), pl.col("batch_density"), pl.col("d_temperature"))
        d = d.with_columns(volume_l=(pl.col("refill") / vcf_in).round(0))
        d = d.with_columns(v20=pl.col("volume_l") * vcf_in)  # what normalize will compute
        transit_loss = pl.col("_u17") * 0.002  # ≤ 0.2 %, inside the 0.5 % tolerance
        d = d.with_columns(d_volume_l=(pl.col("v20") / (1 - transit_loss) / vcf_out).round(0))
        d = d.sort("s", "tank", "started").with_columns(
            cum_before=pl.col("v20").cum_sum().over("s", "tank") - pl.col("v20")
        )
        self.deliveries = d.sort("started", "s", "tank")

    def _readings(self) -> None:
        s_n, j_n = self.stations, self.days * 1440 // self.reading_min
        rr = pl.col("rr")
        g = pl.DataFrame(
            {"rr": pl.int_range(s_n * len(TANKS) * j_n, dtype=pl.Int64, eager=True)}
        ).select(
            t=START_MS + rr // (s_n * len(TANKS)) * (self.reading_min * MINUTE_MS),
            s=(rr // len(TANKS) % s_n).cast(pl.Int32),
            tank=(rr % len(TANKS)).cast(pl.Int8),
            rr=rr,
        )  # sorted by t
        sold = self.sales.select("s", "tank", "at", "cum_v20").sort("at")
        g = g.join_asof(sold, left_on="t", right_on="at", by=["s", "tank"], strategy="backward",
                        check_sortedness=False).drop("at")  # fmt: skip
        came = self.deliveries.select("s", "tank", "started", "ended", "v20", "cum_before")
        g = g.join_asof(came, left_on="t", right_on="started", by=["s", "tank"],
                        strategy="backward", check_sortedness=False)  # fmt: skip
        progress = ((pl.col("t") - pl.col("started")).cast(pl.Float64)
                    / (pl.col("ended") - pl.col("started")).cast(pl.Float64)).clip(0.0, 1.0)
        capacity = _by_tank(pl.col("tank"), self.capacity, pl.Float64())
        delivered = (pl.col("cum_before") + pl.col("v20") * progress).fill_null(0.0)
        content = (OPENING * capacity + delivered - pl.col("cum_v20").fill_null(0.0)
                   + (_u(rr, self.seed + 21) - 0.5) * 0.001 * capacity)  # fmt: skip
        product = _by_tank(pl.col("tank"), [t.product for t in TANKS], pl.String())
        density = _by_tank(pl.col("tank"), [DEFAULT_DENSITY[t.product] for t in TANKS],
                           pl.Float64())  # fmt: skip
        g = g.select("t", "s", "tank", "rr", content20=content,
                     temperature_c=_tank_temp(pl.col("t"), pl.col("s")).round(2))  # fmt: skip
        g = g.with_columns(
            volume_l=(pl.col("content20") / vcf20_expr(product, density, pl.col("temperature_c")))
            .round(1)
        ).with_columns(level_mm=(pl.col("volume_l") / capacity * 2600).round(1))
        self.min_content_share = float(
            g.select((pl.col("content20") / capacity).min()).item()
        )
        self.readings = g.drop("content20")
        self.sales = self.sales.sort("at")

    # ---- frames as the ingest would load them ----

    def _source(self, frame: pl.DataFrame) -> pl.DataFrame:
        out = frame.with_columns(
            src_partition=pl.lit(0, pl.Int32),
            src_offset=pl.int_range(pl.len(), dtype=pl.Int64) + self.offset,
            src_index=pl.lit(0, pl.Int32),
        )
        self.offset += frame.height
        return out

    def facility_frame(self) -> pl.DataFrame:
        schema = default_registry().current("facility").schema
        updated = (START - timedelta(days=10)).isoformat().replace("+00:00", "Z")
        rows = []
        for s in range(self.stations):
            rows.append({
                "facility_id": f"ST-{s:04d}", "kind": "station", "name": f"Station {s}",
                "city": CITIES[s % len(CITIES)], "operator": "Sinopec" if s % 2 else "PetroChina",
                "updated_at": updated,
                "tanks": [{"tank_id": t.tank_id, "product": t.product, "capacity_l": c}
                          for t, c in zip(TANKS, self.capacity, strict=True)],
                "nozzles": [{"nozzle_id": f"N{d * len(TANKS) + i + 1:02d}",
                             "dispenser_id": f"D{d + 1}", "tank_id": t.tank_id}
                            for d in range(DISPENSERS) for i, t in enumerate(TANKS)],
                "licences": [],
            })  # fmt: skip
        for p in range(DEPOTS):
            rows.append({"facility_id": f"DP-{p + 1}", "kind": "depot", "name": f"Depot {p + 1}",
                         "city": CITIES[p], "operator": "PetroChina", "updated_at": updated,
                         "tanks": [], "nozzles": [], "licences": []})  # fmt: skip
        converted = [{**convert_record(r, schema), "src_partition": 0, "src_offset": 0,
                      "src_index": 0} for r in rows]  # fmt: skip
        return self._source(to_frame("facility", converted).drop(list(SOURCE_COLUMNS)))

    def sale_frame(self, f: pl.DataFrame) -> pl.DataFrame:
        price = _by_tank(pl.col("tank"), [t.price_fen for t in TANKS], pl.Int64())
        duration = (pl.col("volume_l") * 1500 + 10_000).cast(pl.Int64)  # ≤ 40 L/min
        out = f.select(
            txn_id=pl.format("T{}", pl.col("r").cast(pl.String).str.zfill(10)),
            station_id=_station(pl.col("s")),
            dispenser_id=pl.format("D{}", pl.col("disp") + 1),
            nozzle_id=pl.format("N{}", (pl.col("disp").cast(pl.Int32) * len(TANKS)
                                        + pl.col("tank") + 1).cast(pl.String).str.zfill(2)),
            product=_by_tank(pl.col("tank"), [t.product for t in TANKS], pl.String()),
            volume_l="volume_l",
            unit_price_fen=price,
            amount_fen=(price * pl.col("volume_l")).round(0).cast(pl.Int64),
            totalizer_start_l="totalizer_start_l",
            totalizer_end_l="totalizer_end_l",
            started_at=_ts(pl.col("at") - duration),
            ended_at=_ts(pl.col("at")),
            invoice_id=pl.when(pl.col("invoiced")).then(pl.format("INV{}", pl.col("r"))),
        )  # fmt: skip
        return _typed("sale", self._source(out))

    def reading_frame(self, g: pl.DataFrame) -> pl.DataFrame:
        out = g.select(
            station_id=_station(pl.col("s")),
            tank_id=_by_tank(pl.col("tank"), [t.tank_id for t in TANKS], pl.String()),
            product=_by_tank(pl.col("tank"), [t.product for t in TANKS], pl.String()),
            read_at=_ts(pl.col("t")),
            level_mm="level_mm",
            volume_l="volume_l",
            water_mm=pl.lit(5.0),
            temperature_c="temperature_c",
        )
        return _typed("tank_reading", self._source(out))

    def delivery_frames(self, d: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        dispatch_id = pl.format("WB{}", pl.col("gi").cast(pl.String).str.zfill(9))
        plate = pl.format("辽{}{}", _by_tank(pl.col("depot"), ["A", "B", "C"], pl.String()),
                          (10_000 + pl.col("_u18") * 89_999).cast(pl.Int64))  # fmt: skip
        seals = pl.concat_list(pl.format("S{}-1", pl.col("gi")), pl.format("S{}-2", pl.col("gi")))
        dispatch = d.select(
            dispatch_id=dispatch_id,
            depot_id=pl.format("DP-{}", pl.col("depot") + 1),
            batch_id="batch_id",
            product="product",
            station_id=_station(pl.col("s")),
            vehicle_plate=plate,
            seal_ids=seals,
            volume_l="d_volume_l",
            temperature_c="d_temperature",
            density_kg_m3="batch_density",
            dispatched_at=_ts(pl.col("dispatched")),
        )
        delivery = d.select(
            delivery_id=pl.format("DL{}", pl.col("gi").cast(pl.String).str.zfill(9)),
            station_id=_station(pl.col("s")),
            tank_id=_by_tank(pl.col("tank"), [t.tank_id for t in TANKS], pl.String()),
            dispatch_id=dispatch_id,
            product="product",
            vehicle_plate=plate,
            seal_ids=seals,
            seals_intact=pl.lit(True),
            volume_l="volume_l",
            temperature_c="temperature",
            density_kg_m3="density",
            started_at=_ts(pl.col("started")),
            ended_at=_ts(pl.col("ended")),
        )
        return (_typed("dispatch", self._source(dispatch)),
                _typed("delivery", self._source(delivery)))  # fmt: skip

    def window(self, t0: int, t1: int, skip_gi: int | None = None) -> dict[str, pl.DataFrame]:
        """Every record of ``[t0, t1)`` (sales by ended_at, deliveries and their dispatches
        by started_at), typed and normalised, in load order."""

        def between(frame: pl.DataFrame, column: str) -> pl.DataFrame:
            col = frame[column]
            lo, hi = col.search_sorted(t0, side="left"), col.search_sorted(t1, side="left")
            return frame.slice(lo, hi - lo)

        d = between(self.deliveries, "started")
        if skip_gi is not None:
            d = d.filter(pl.col("gi") != skip_gi)
        dispatch, delivery = self.delivery_frames(d)
        frames = {
            "dispatch": dispatch,
            "delivery": delivery,
            "tank_reading": self.reading_frame(between(self.readings, "t")),
            "sale": self.sale_frame(between(self.sales, "at")),
        }
        return {t: normalize(t, f) for t, f in frames.items() if not f.is_empty()}


# -- loading -------------------------------------------------------------------------


def load(con: duckdb.DuckDBPyConnection, db: Path, frames: dict[str, pl.DataFrame]) -> int:
    """One ``load_batch`` (one transaction, one load_id) of ``frames``; rows loaded."""
    ordered = {t: frames[t] for t in LOAD_ORDER if t in frames}
    records = sum(f.height for f in ordered.values())
    result = load_batch(con, db, Batch(ordered, pl.DataFrame(schema=DEAD_LETTER_SCHEMA), {},
                                       messages=records, records=records))  # fmt: skip
    loaded = sum(result.loaded.values())
    if loaded != records:
        raise RuntimeError(f"loaded {loaded} of {records} rows ({dict(result.loaded)}; "
                           f"duplicates {dict(result.duplicates)})")  # fmt: skip
    return loaded


def load_in_slices(con: duckdb.DuckDBPyConnection, db: Path, frames: dict[str, pl.DataFrame],
                   rows: int) -> int:  # fmt: skip
    """``frames`` in loads of at most ``rows`` rows each (by time: rows are sorted)."""
    total = sum(f.height for f in frames.values())
    parts = max(1, math.ceil(total / rows))
    loaded = 0
    for i in range(parts):
        piece = {}
        for t, f in frames.items():
            lo, hi = f.height * i // parts, f.height * (i + 1) // parts
            if hi > lo:
                piece[t] = f.slice(lo, hi - lo)
        loaded += load(con, db, piece)
    return loaded


def build(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Generate the province and load all of it but the held-back data (child process)."""
    t0 = time.perf_counter()
    gen = Province(args.stations, args.days + 1, args.sales_per_day, args.reading_min, args.seed)
    gen.generate()
    generated = time.perf_counter() - t0
    print(f"  generated {gen.sales.height:,} sales, {gen.readings.height:,} readings, "
          f"{gen.deliveries.height:,} deliveries in {generated:.1f} s; lowest tank content "
          f"{gen.min_content_share:.1%} of capacity", flush=True)  # fmt: skip
    if gen.min_content_share <= 0:
        raise RuntimeError("a tank ran dry: the generator is inconsistent")

    # the late delivery: station in the middle, tank T1, nearest the middle of the period
    mid = START_MS + args.days * DAY_MS // 2
    late = (gen.deliveries.filter((pl.col("s") == args.stations // 2) & (pl.col("tank") == 0))
            .with_columns(gap=(pl.col("started") - mid).abs()).sort("gap").head(1))  # fmt: skip
    late_gi = int(late["gi"][0])
    late_dir = workdir / "late"
    day_dir = workdir / "day"
    for directory in (late_dir, day_dir):
        directory.mkdir(exist_ok=True)

    db = workdir / "loaded.duckdb"
    db.unlink(missing_ok=True)
    con = connect(db)
    t1 = time.perf_counter()
    loads = 0
    rows = load(con, db, {"facility": gen.facility_frame()})
    loads += 1
    rows_per_min = args.stations * (args.sales_per_day / 1440 + len(TANKS) / args.reading_min)
    step = max(1, int(args.load_rows / rows_per_min / args.reading_min)) * args.reading_min
    end = START_MS + args.days * DAY_MS
    t = START_MS
    last_print = time.monotonic()
    while t < end:
        t_next = min(end, t + step * MINUTE_MS)
        rows += load(con, db, gen.window(t, t_next, skip_gi=late_gi))
        loads += 1
        t = t_next
        if time.monotonic() - last_print > 30:
            last_print = time.monotonic()
            done = (t - START_MS) / (end - START_MS)
            print(f"  loading: {done:.0%}, {rows:,} rows, {time.perf_counter() - t1:.0f} s",
                  flush=True)  # fmt: skip
    loaded_s = time.perf_counter() - t1
    con.execute("CHECKPOINT")
    con.close()

    late_row = gen.deliveries.filter(pl.col("gi") == late_gi)
    dispatch, delivery = gen.delivery_frames(late_row)
    normalize("dispatch", dispatch).write_parquet(late_dir / "dispatch.parquet")
    normalize("delivery", delivery).write_parquet(late_dir / "delivery.parquet")
    for record_type, f in gen.window(end, end + DAY_MS).items():
        f.write_parquet(day_dir / f"{record_type}.parquet")
    info = {
        "generate_s": round(generated, 2),
        "load_s": round(loaded_s, 2),
        "loads": loads,
        "load_window_min": step,
        "rows_loaded": rows,
        "load_rows_per_s": round(rows / loaded_s, 1),
        "min_tank_content_share": round(gen.min_content_share, 4),
        "capacity_l": dict(zip([t.tank_id for t in TANKS], gen.capacity, strict=True)),
        "late_delivery": {
            "delivery_id": delivery["delivery_id"][0], "station_id": delivery["station_id"][0],
            "tank_id": delivery["tank_id"][0], "batch_id": dispatch["batch_id"][0],
            "started_at": delivery["started_at"][0].isoformat(),
        },  # fmt: skip
        "build_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "db_mib": round(db.stat().st_size / MiB, 1),
    }
    (workdir / "build.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"  loaded {rows:,} rows in {loads} loads ({step} min windows) in {loaded_s:.1f} s "
          f"({rows / loaded_s:,.0f} rows/s); warehouse {info['db_mib']:,.0f} MiB", flush=True)
    return info


# -- measuring -----------------------------------------------------------------------


def _vmrss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler(threading.Thread):
    """This process's VmRSS every 20 ms; the peak since the last :meth:`reset`. Also
    the highest 1-minute load average seen (other work on the machine skews timings)."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self._stop_event = threading.Event()
        self.peak = 0
        self.load_max = os.getloadavg()[0]
        self._ticks = 0

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            self.peak = max(self.peak, _vmrss())
            self._ticks += 1
            if self._ticks % 250 == 0:  # every 5 s
                self.load_max = max(self.load_max, os.getloadavg()[0])

    def reset(self) -> int:
        self.peak = rss = _vmrss()
        return rss

    def stop(self) -> None:
        self._stop_event.set()


def percentiles(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def pct(q: float) -> float:  # nearest rank
        return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]

    return {"n": len(ordered), "p50": statistics.median(ordered), "p95": pct(0.95),
            "p99": pct(0.99), "max": ordered[-1], "mean": statistics.fmean(ordered)}  # fmt: skip


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    records: int | None = None
    rss_start: int = 0
    rss_peak: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 4),
            "records": self.records,
            "records_per_s": round(self.records / self.seconds, 1)
            if self.records and self.seconds
            else None,
            "rss_start_mib": round(self.rss_start / MiB, 1),
            "rss_peak_mib": round(self.rss_peak / MiB, 1),
            **self.extra,
        }


def naive_trace(con: duckdb.DuckDBPyConnection, settings: Settings, station_id: str,
                txn_id: str) -> list[tuple[str, float]]:  # fmt: skip
    """The sale's batches by replaying its tank from the first reading, in Python."""
    (tank_id, sale_at), = con.execute(
        "SELECT n.tank_id, s.ended_at FROM sale s JOIN nozzle n ON n.station_id = s.station_id "
        "AND n.nozzle_id = s.nozzle_id WHERE s.station_id = $s AND s.txn_id = $t",
        {"s": station_id, "t": txn_id},
    ).fetchall()  # fmt: skip
    p = {"s": station_id, "k": tank_id}
    readings = con.sql("SELECT station_id, tank_id, product, read_at, volume_l, temperature_c "
                       "FROM tank_reading WHERE station_id = $s AND tank_id = $k",
                       params=p).pl()  # fmt: skip
    sales = con.sql(
        "SELECT s.station_id, n.tank_id, s.txn_id, s.product, s.ended_at AS \"at\", s.volume_l "
        "FROM sale s JOIN nozzle n ON n.station_id = s.station_id AND n.nozzle_id = s.nozzle_id "
        "WHERE s.station_id = $s AND n.tank_id = $k", params=p).pl()  # fmt: skip
    deliveries = con.sql(
        "SELECT d.station_id, d.tank_id, d.started_at, d.ended_at, "
        "coalesce(d.volume_20_l, d.volume_l) AS litres_20, d.density_kg_m3, "
        "coalesce(p.batch_id, 'UNTRACED:' || d.delivery_id) AS batch_id "
        "FROM delivery d LEFT JOIN dispatch p ON p.dispatch_id = d.dispatch_id "
        "WHERE d.station_id = $s AND d.tank_id = $k", params=p).pl()  # fmt: skip
    r_std = standardise_readings(readings, deliveries)
    s_std = standardise_sales(sales, readings, deliveries)
    lineage = replay_tank(station_id, tank_id, None, r_std, deliveries, s_std)
    volume = s_std.filter(pl.col("txn_id") == txn_id)["volume_20_l"][0]
    at = sale_at.astimezone(UTC)
    return [(row["batch_id"], row["share"] * volume) for row in lineage.segments
            if row["valid_from"] <= at and (row["valid_to"] is None or at < row["valid_to"])]


# Every segment row's stored sales (segment_sales) against sale_std: each sale matched to
# the segment covering it by an ASOF join. Segment rows without their segment_sales row,
# and rows that differ.
SEGMENT_SALES_MISMATCHES = """
    WITH segs AS (
        SELECT DISTINCT station_id, tank_id, valid_from, valid_to FROM tank_segment
    ), covered AS (
        SELECT seg.station_id, seg.tank_id, seg.valid_from, sum(s.volume_20_l) AS sold,
               count(*) AS n, min(s."at") AS first_at, max(s."at") AS last_at
        FROM sale_std s ASOF JOIN segs seg
          ON seg.station_id = s.station_id AND seg.tank_id = s.tank_id
         AND s."at" >= seg.valid_from
        WHERE seg.valid_to IS NULL OR s."at" < seg.valid_to
        GROUP BY ALL
    ), want AS (
        SELECT t.station_id, t.tank_id, t.valid_from, t.batch_id,
               t.share * coalesce(j.sold, 0) AS sold, coalesce(j.n, 0) AS n, j.first_at,
               j.last_at, CASE WHEN t.valid_to IS NULL
                               THEN t.litres_20 - t.share * coalesce(j.sold, 0) END AS in_tank
        FROM tank_segment t LEFT JOIN covered j USING (station_id, tank_id, valid_from)
    )
    SELECT count(*) FILTER (WHERE c.station_id IS NULL),
           count(*) FILTER (WHERE c.station_id IS NOT NULL AND (
               abs(c.sold_20_l - w.sold) > 1e-6 * greatest(1, abs(w.sold))
               OR c.sales <> w.n
               OR c.first_sale_at IS DISTINCT FROM w.first_at
               OR c.last_sale_at IS DISTINCT FROM w.last_at
               OR (c.in_tank_20_l IS NULL) <> (w.in_tank IS NULL)
               OR abs(c.in_tank_20_l - w.in_tank) > 1e-6 * greatest(1, abs(w.in_tank)))),
           count(*),
           (SELECT count(*) FROM segment_sales)
    FROM want w LEFT JOIN segment_sales c USING (station_id, tank_id, valid_from, batch_id)
"""


def _same_tanks(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal trace_batch tanks; litres to 1e-6 L plus rounding (a sum of products there,
    a product of sums here)."""
    if len(a) != len(b) or any(list(x) != list(y) for x, y in zip(a, b, strict=True)):
        return False
    for x, y in zip(a, b, strict=True):
        for k, v in y.items():
            if isinstance(v, float):
                if abs(x[k] - v) > 2e-6 + 1e-9 * abs(v):
                    return False
            elif x[k] != v:
                return False
    return True


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, db: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.db = db
        self.settings = Settings(db=db, state_dir=workdir / "state")
        self.sampler = RssSampler()
        self.phases: dict[str, Phase] = {}
        self.rng = random.Random(args.seed)
        self.problems: list[str] = []
        self.now = START + timedelta(days=args.days, hours=1)

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        gc.collect()
        p = Phase(name)
        p.rss_start = self.sampler.reset()
        t0 = time.perf_counter()
        try:
            yield p
        finally:
            if not p.seconds:
                p.seconds = time.perf_counter() - t0
            p.rss_peak = max(self.sampler.peak, _vmrss())
            self.phases[name] = p
            print(f"  {name}: {p.seconds:.3f} s", flush=True)

    def count(self, sql: str) -> int:
        return int(self.con.execute(sql).fetchall()[0][0])

    def analyse(self, p: Phase, now: datetime) -> None:
        t0 = time.perf_counter()
        result = traceability.run(self.con, self.settings, now)  # lineage only, not rules
        p.seconds = time.perf_counter() - t0
        p.extra.update(tanks=result.tanks, segments_written=result.segments,
                       sales_standardised=result.sales,
                       deliveries_checked=result.deliveries)  # fmt: skip

    def timed(self, fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def run(self) -> dict[str, Any]:
        load_start, wall_start = os.getloadavg()[0], time.perf_counter()
        self.sampler.start()
        self.con = connect(self.db)
        build_info = json.loads((self.workdir / "build.json").read_text(encoding="utf-8"))
        tables = ("sale", "tank_reading", "delivery", "dispatch", "station", "tank")
        counts = {t: self.count(f"SELECT count(*) FROM {t}") for t in tables}
        print(f"warehouse: {counts}", flush=True)
        # warm-up: Polars / DuckDB first use, not what a running ingest pays per run
        self.con.execute("SELECT count(*) FROM nozzle").fetchall()

        # 1. initial full lineage build
        with self.phase("full lineage build") as p:
            self.analyse(p, self.now)
        p.records = counts["sale"] + counts["tank_reading"] + counts["delivery"]
        sanity = self.sanity()
        p.extra["sanity"] = sanity
        p.extra["tables"] = {t: self.count(f"SELECT count(*) FROM {t}") for t in
                             ("tank_segment", "segment_sales", "batch_variance", "sale_std",
                              "reading_std",
                              "delivery_batch", "delivery_check")}  # fmt: skip
        if p.extra["tanks"] != counts["tank"]:
            self.problems.append(f"full build recomputed {p.extra['tanks']} tanks of "
                                 f"{counts['tank']}")  # fmt: skip

        # 2. trace latency
        self.traces()

        # 3. baselines
        self.baselines()

        # 4. late data
        self.late_delivery(build_info["late_delivery"])
        self.province_day()
        self.check_segment_sales()

        self.sampler.stop()
        self.con.close()
        self.cpu = {"load_1min_start": load_start, "load_1min_end": os.getloadavg()[0],
                    "load_1min_max": self.sampler.load_max,
                    "process_cpu_s": time.process_time(),
                    "wall_s": time.perf_counter() - wall_start}  # fmt: skip
        return self.report(counts, build_info)

    def sanity(self) -> dict[str, Any]:
        """Figures that show the generated data is consistent (book vs gauge, checks)."""
        received = self.count("SELECT sum(litres_20) FROM delivery_batch")
        variance = self.con.execute(
            "SELECT sum(litres_20), sum(abs(litres_20)) FROM batch_variance "
            "WHERE batch_id NOT LIKE 'OPENING:%'").fetchall()[0]  # fmt: skip
        checks = dict(self.con.execute(
            "SELECT status, count(*) FROM delivery_check GROUP BY ALL").fetchall())  # fmt: skip
        gauge = dict(self.con.execute("SELECT gauge_status, count(*) FROM delivery_check "
                                      "GROUP BY ALL").fetchall())  # fmt: skip
        width = self.con.execute(
            "SELECT avg(n), max(n) FROM (SELECT count(*) AS n FROM tank_segment "
            "GROUP BY station_id, tank_id, valid_from)").fetchall()[0]  # fmt: skip
        return {
            "received_20_l": received,
            "net_variance_pct_of_received": round(100 * (variance[0] or 0) / received, 4)
            if received else None,
            "abs_variance_pct_of_received": round(100 * (variance[1] or 0) / received, 4)
            if received else None,
            "delivery_check_status": checks,
            "gauge_status": gauge,
            "batches_per_segment_avg": round(width[0] or 0, 2),
            "batches_per_segment_max": width[1],
        }

    def traces(self) -> None:
        a = self.args
        sales = self.con.execute(
            f"SELECT station_id, txn_id FROM sale USING SAMPLE reservoir({a.trace_sales + 5} ROWS) "
            f"REPEATABLE ({a.seed})").fetchall()  # fmt: skip
        self.rng.shuffle(sales)
        batches = sorted(r[0] for r in self.con.execute(
            "SELECT DISTINCT batch_id FROM dispatch").fetchall())  # fmt: skip
        picked = self.rng.sample(batches, min(len(batches), a.trace_batches + 2 + a.recalls))
        warm_sales, sales = sales[:5], sales[5:]
        warm_batches, recall_batches, picked = (picked[:2], picked[2:2 + a.recalls],
                                                picked[2 + a.recalls:])  # fmt: skip
        self.sample_sales = sales

        first = self.timed(lambda: trace.trace_sale(self.con, *warm_sales[0]))
        for s in warm_sales[1:]:
            trace.trace_sale(self.con, *s)
        with self.phase("trace_sale") as p:
            lat, empty = [], 0
            for station_id, txn_id in sales:
                t0 = time.perf_counter()
                result = trace.trace_sale(self.con, station_id, txn_id)
                lat.append(time.perf_counter() - t0)
                empty += not result["batches"]
            p.extra.update(latency_s=percentiles(lat), first_call_s=first, no_lineage=empty)
        if empty:
            self.problems.append(f"trace_sale: {empty} of {len(sales)} sales without lineage")

        first = self.timed(lambda: trace.trace_batch(self.con, warm_batches[0]))
        for b in warm_batches[1:]:
            trace.trace_batch(self.con, b)
        with self.phase("trace_batch") as p:
            lat, tanks = [], []
            for b in picked:
                t0 = time.perf_counter()
                result = trace.trace_batch(self.con, b)
                lat.append(time.perf_counter() - t0)
                tanks.append(len(result["tanks"]))
            p.extra.update(latency_s=percentiles(lat), first_call_s=first,
                           tanks_per_batch_avg=round(statistics.fmean(tanks), 1))  # fmt: skip

        # the same batches, trace_batch as it was before migration 005 (join with sale_std)
        real_batch_tanks = trace._batch_tanks
        trace._batch_tanks = lambda con, b: trace._rows(con, BATCH_TANKS_BY_JOIN, {"b": b})
        try:
            trace.trace_batch(self.con, warm_batches[0])
            with self.phase("baseline: trace_batch by join") as p:
                lat, same = [], 0
                for b in picked:
                    t0 = time.perf_counter()
                    result = trace.trace_batch(self.con, b)
                    lat.append(time.perf_counter() - t0)
                    same += _same_tanks(real_batch_tanks(self.con, b), result["tanks"])
                p.extra.update(latency_s=percentiles(lat), same_result=same)
                p.seconds = statistics.median(lat)
        finally:
            trace._batch_tanks = real_batch_tanks
        if same != len(picked):
            self.problems.append(f"trace_batch: {len(picked) - same} of {len(picked)} batches "
                                 "differ from the join over sale_std")  # fmt: skip

        with self.phase("recall_report") as p:
            lat, sold = [], []
            for b in recall_batches:
                t0 = time.perf_counter()
                result = trace.recall_report(self.con, b)
                lat.append(time.perf_counter() - t0)
                sold.append(len(result["sales"]))
            p.extra.update(latency_s=percentiles(lat), sales_per_report=sold)

    def baselines(self) -> None:
        def median_of(sql: str, n: int = 5) -> float:
            self.con.execute(sql).fetchall()  # warm
            return statistics.median(self.timed(lambda: self.con.execute(sql).fetchall())
                                     for _ in range(n))  # fmt: skip

        with self.phase("baseline: scan sale_std") as p:
            p.extra["count_star_s"] = median_of("SELECT count(*) FROM sale_std")
            p.extra["sum_volume_s"] = median_of("SELECT sum(volume_20_l) FROM sale_std")
            station_id, txn_id = self.sample_sales[0]
            p.extra["point_lookup_sale_std_s"] = median_of(
                f"SELECT * FROM sale_std WHERE station_id = '{station_id}' "
                f"AND txn_id = '{txn_id}'")  # fmt: skip
            p.seconds = p.extra["sum_volume_s"]
            p.records = self.count("SELECT count(*) FROM sale_std")

        with self.phase("baseline: naive replay trace") as p:
            lat, agree = [], 0
            for station_id, txn_id in self.sample_sales[: self.args.naive]:
                t0 = time.perf_counter()
                naive = naive_trace(self.con, self.settings, station_id, txn_id)
                lat.append(time.perf_counter() - t0)
                stored = trace.trace_sale(self.con, station_id, txn_id)["batches"]
                agree += sorted(b for b, _ in naive) == sorted(b["batch_id"] for b in stored)
            p.extra.update(latency_s=percentiles(lat), same_batches_as_trace=agree)
            p.seconds = statistics.median(lat)

    def late_delivery(self, late: dict[str, Any]) -> None:
        frames = {t: pl.read_parquet(self.workdir / "late" / f"{t}.parquet")
                  for t in ("dispatch", "delivery")}  # fmt: skip
        with_batch = (f"SELECT count(*) FROM tank_segment WHERE batch_id = '{late['batch_id']}' "
                      f"AND station_id = '{late['station_id']}'")  # fmt: skip
        before = self.count(with_batch)
        with self.phase("late delivery: load") as p:
            p.records = load(self.con, self.db, frames)
        replayed = self.con.execute(
            "SELECT count(*) FROM sale s JOIN nozzle n USING (station_id, nozzle_id) "
            "WHERE s.station_id = $s AND n.tank_id = $k AND s.ended_at >= $t",
            {"s": late["station_id"], "k": late["tank_id"],
             "t": datetime.fromisoformat(late["started_at"])}).fetchall()[0][0]  # fmt: skip
        with self.phase("late delivery: analyse") as p:
            self.analyse(p, self.now)
        after = self.count(with_batch)
        p.records = replayed
        p.extra.update(late, sales_after_it_in_tank=replayed, segments_with_its_batch=after)
        if p.extra["tanks"] != 1 or after <= before:
            self.problems.append(f"late delivery: {p.extra['tanks']} tanks recomputed, "
                                 f"segments with its batch {before} → {after}")  # fmt: skip

    def province_day(self) -> None:
        day = self.workdir / "day"
        frames = {t: pl.read_parquet(day / f"{t}.parquet")
                  for t in LOAD_ORDER if (day / f"{t}.parquet").exists()}  # fmt: skip
        with self.phase("province-day: load") as p:
            p.records = load_in_slices(self.con, self.db, frames, self.args.load_rows)
            p.extra["loads"] = max(1, math.ceil(p.records / self.args.load_rows))
        with self.phase("province-day: analyse") as p:
            self.analyse(p, self.now + timedelta(days=1))
        p.records = sum(f.height for t, f in frames.items() if t != "dispatch")

    def check_segment_sales(self) -> None:
        """After the incremental runs: every segment's stored sales as sale_std has them."""
        with self.phase("check: segment_sales = sale_std") as p:
            missing, wrong, segments, stored = self.con.execute(
                SEGMENT_SALES_MISMATCHES).fetchall()[0]  # fmt: skip
            p.records = segments
            p.extra.update(segment_rows=segments, without_row=missing, differing=wrong,
                           segment_sales_rows=stored)  # fmt: skip
        if missing or wrong or stored != segments:
            self.problems.append(f"segment_sales: {missing} segment rows without theirs, {wrong} "
                                 f"differing from sale_std, {stored} rows for {segments} "
                                 "segment rows")  # fmt: skip

    # -- report --

    def report(self, counts: dict[str, int], build_info: dict[str, Any]) -> dict[str, Any]:
        a, ph = self.args, self.phases
        print()
        print(f"Traceability benchmark — {a.stations} stations × {a.days} days "
              f"(+1 held-back day), {a.sales_per_day} sales/station-day (full scale ≈ "
              f"{FULL_SCALE_SALES_PER_DAY}; tank capacities ×{min(1, a.sales_per_day / 600):.3f}"
              f" so deliveries keep the full-scale rate), readings every "
              f"{a.reading_min} min")  # fmt: skip
        print(f"warehouse: {counts['sale']:,} sales, {counts['tank_reading']:,} readings, "
              f"{counts['delivery']:,} deliveries, {counts['dispatch']:,} dispatches, "
              f"{counts['tank']:,} tanks; {build_info['db_mib']:,.0f} MiB before analyses; "
              f"built in {build_info['generate_s']:.0f} s generate + {build_info['load_s']:.0f} s "
              f"load ({build_info['loads']} load_batch calls, "
              f"{build_info['load_rows_per_s']:,.0f} rows/s)")  # fmt: skip
        print()
        head = (f"{'phase':<30} {'seconds':>9} {'records':>12} {'rec/s':>11} "
                f"{'RSS start':>9} {'peak':>7}  notes")  # fmt: skip
        print(head)
        print("-" * len(head))
        for name in ("full lineage build", "late delivery: load", "late delivery: analyse",
                     "province-day: load", "province-day: analyse"):  # fmt: skip
            p = ph[name]
            rate = f"{p.records / p.seconds:>11,.0f}" if p.records and p.seconds else f"{'':>11}"
            note = ""
            if name == "late delivery: analyse":
                note = "records: the tank's sales after the delivery; "
            if "tanks" in p.extra:
                note += (f"tanks {p.extra['tanks']:,}, segments {p.extra['segments_written']:,}, "
                        f"sales std {p.extra['sales_standardised']:,}")  # fmt: skip
            print(f"{name:<30} {p.seconds:>9.2f} {p.records or 0:>12,} {rate} "
                  f"{p.rss_start / MiB:>8.0f}M {p.rss_peak / MiB:>6.0f}M  {note}")  # fmt: skip
        print()
        head = (f"{'latency (ms)':<30} {'n':>5} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9} "
                f"{'first':>9}")  # fmt: skip
        print(head)
        print("-" * len(head))
        for name in ("trace_sale", "trace_batch", "baseline: trace_batch by join",
                     "recall_report", "baseline: naive replay trace"):  # fmt: skip
            lat = ph[name].extra["latency_s"]
            first = ph[name].extra.get("first_call_s")
            print(f"{name:<30} {lat['n']:>5} {lat['p50'] * 1e3:>9.1f} {lat['p95'] * 1e3:>9.1f} "
                  f"{lat['p99'] * 1e3:>9.1f} {lat['max'] * 1e3:>9.1f} "
                  f"{'' if first is None else f'{first * 1e3:.1f}':>9}")  # fmt: skip
        scan = ph["baseline: scan sale_std"].extra
        print(f"{'scan sale_std: count(*)':<30} {'':>5} {scan['count_star_s'] * 1e3:>9.1f}")
        print(f"{'scan sale_std: sum(volume_20_l)':<30} {'':>5} {scan['sum_volume_s'] * 1e3:>9.1f}")
        print(f"{'point lookup in sale_std':<30} {'':>5} "
              f"{scan['point_lookup_sale_std_s'] * 1e3:>9.1f}")  # fmt: skip
        print("(first: the first call of the run, not in the percentiles; 5 sales and 2 batches "
              "are traced once before measuring)")  # fmt: skip
        print()
        ts, tb = ph["trace_sale"].extra["latency_s"], ph["trace_batch"].extra["latency_s"]
        naive = ph["baseline: naive replay trace"].extra["latency_s"]
        ratios = {
            "trace_sale_p50_over_scan_sum": ts["p50"] / scan["sum_volume_s"],
            "trace_sale_p50_over_point_lookup": ts["p50"] / scan["point_lookup_sale_std_s"],
            "naive_p50_over_trace_sale_p50": naive["p50"] / ts["p50"],
            "trace_batch_p50_over_scan_sum": tb["p50"] / scan["sum_volume_s"],
        }
        print(f"ratios: trace_sale p50 = {ratios['trace_sale_p50_over_scan_sum']:.2f}× a full "
              f"scan of sale_std (sum) = {ratios['trace_sale_p50_over_point_lookup']:.2f}× a "
              f"point lookup in sale_std; the naive replay takes "
              f"{ratios['naive_p50_over_trace_sale_p50']:.1f}× trace_sale; trace_batch p50 = "
              f"{ratios['trace_batch_p50_over_scan_sum']:.2f}× the scan")  # fmt: skip
        sanity = ph["full lineage build"].extra["sanity"]
        print(f"consistency: |variance| {sanity['abs_variance_pct_of_received']} % of received "
              f"(net {sanity['net_variance_pct_of_received']} %), delivery checks "
              f"{sanity['delivery_check_status']}, gauge {sanity['gauge_status']}, "
              f"batches per segment avg {sanity['batches_per_segment_avg']} max "
              f"{sanity['batches_per_segment_max']}; naive replay found the same batches as "
              f"trace_sale for {ph['baseline: naive replay trace'].extra['same_batches_as_trace']}"
              f"/{naive['n']} sales")  # fmt: skip
        by_join = ph["baseline: trace_batch by join"].extra
        check = ph["check: segment_sales = sale_std"].extra
        print(f"trace_batch: the same tanks as the join over sale_std (before migration 005) for "
              f"{by_join['same_result']}/{by_join['latency_s']['n']} batches, "
              f"{by_join['latency_s']['p95'] / tb['p95']:.1f}× faster at p95; segment_sales "
              f"after the late data: {check['segment_rows']:,} segment rows, "
              f"{check['without_row']} without theirs, {check['differing']} differing from "
              f"sale_std (checked in "
              f"{ph['check: segment_sales = sale_std'].seconds:.1f} s)")  # fmt: skip
        late = ph["late delivery: analyse"].extra
        print(f"late delivery {late['delivery_id']} ({late['station_id']}/{late['tank_id']}, "
              f"{late['started_at'][:16]}): {late['tanks']} tank recomputed, "
              f"{late['sales_after_it_in_tank']:,} of its sales after it, segments with batch "
              f"{late['batch_id']}: {late['segments_with_its_batch']}")  # fmt: skip
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"peak RSS (ru_maxrss) of this process: {peak / MiB:,.0f} MiB; of the build "
              f"process: {build_info['build_peak_rss_mib']:,.0f} MiB")  # fmt: skip
        targets = []
        for name, lat in (("trace_sale", ts), ("trace_batch", tb)):
            ok = lat["p95"] <= TARGET_TRACE_P95_S
            targets.append({"target": f"{name} p95 <= 100 ms", "p95_s": lat["p95"], "pass": ok})
            print(f"TARGET {name} p95 ≤ {TARGET_TRACE_P95_S * 1e3:.0f} ms: "
                  f"{lat['p95'] * 1e3:.1f} ms {'PASS' if ok else 'MISS'}")  # fmt: skip
        day = ph["province-day: analyse"].seconds
        ok = day <= 600
        targets.append({"target": "province-day analysed in minutes (<= 10 min)",
                        "seconds": day, "pass": ok})  # fmt: skip
        print(f"TARGET province-day analysed incrementally in minutes (≤ 10 min): {day:.1f} s "
              f"{'PASS' if ok else 'MISS'}")  # fmt: skip
        c = self.cpu
        print(f"machine load (1-min load average; {os.cpu_count()} CPUs): start "
              f"{c['load_1min_start']:.2f}, max {c['load_1min_max']:.2f}, end "
              f"{c['load_1min_end']:.2f}; this process used {c['process_cpu_s']:.0f} s CPU in "
              f"{c['wall_s']:.0f} s")  # fmt: skip
        if c["load_1min_max"] > (os.cpu_count() or 1) + 0.5:
            print("WARNING: other work ran on the machine during the measurements; the "
                  "timings are inflated")  # fmt: skip
        for problem in self.problems:
            print(f"PROBLEM: {problem}")
        return {
            "machine_load": c,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "args": vars(a),
            "environment": environment(),
            "ignored_env": _IGNORED_ENV,
            "scale_note": f"{a.sales_per_day} sales/station-day (full scale ≈ "
            f"{FULL_SCALE_SALES_PER_DAY}); tank capacities scaled by "
            f"{min(1, a.sales_per_day / 600):.4f} so deliveries keep the full-scale rate",
            "counts": counts,
            "build": build_info,
            "phases": {name: p.as_json() for name, p in ph.items()},
            "ratios": ratios,
            "targets": targets,
            "peak_rss_mib": round(peak / MiB, 1),
            "problems": self.problems,
        }


def explain(db: Path, args: argparse.Namespace) -> None:
    """EXPLAIN ANALYZE of the queries behind trace_sale and trace_batch, one sample each."""
    con = connect(db)
    (station_id, txn_id), = con.execute(
        f"SELECT station_id, txn_id FROM sale USING SAMPLE reservoir(1 ROWS) "
        f"REPEATABLE ({args.seed})").fetchall()  # fmt: skip
    (batch_id,), = con.execute(
        f"SELECT batch_id FROM dispatch USING SAMPLE reservoir(1 ROWS) "
        f"REPEATABLE ({args.seed})").fetchall()  # fmt: skip
    captured: list[tuple[str, object]] = []
    real_execute = duckdb.DuckDBPyConnection.execute

    class Spy:
        """Records each statement trace.* runs, then runs it."""

        def __init__(self, inner: duckdb.DuckDBPyConnection) -> None:
            self.inner = inner

        def execute(self, sql: str, params: object = None) -> Any:
            captured.append((sql, params))
            return real_execute(self.inner, sql, params)

    trace.trace_sale(Spy(con), station_id, txn_id)  # type: ignore[arg-type]
    trace.trace_batch(Spy(con), batch_id)  # type: ignore[arg-type]
    for sql, params in captured:
        t0 = time.perf_counter()
        con.execute(sql, params).fetchall()
        took = time.perf_counter() - t0
        plan = con.execute("EXPLAIN ANALYZE " + sql, params).fetchall()
        print(f"\n===== {took * 1e3:.1f} ms: {' '.join(sql.split())[:160]}")
        print(plan[0][1])
    con.close()


def environment() -> dict[str, Any]:
    return common.environment(("polars", "duckdb", "pyarrow"))


def _same_build(workdir: Path, args: argparse.Namespace) -> bool:
    marker = workdir / "params.json"
    return (workdir / "build.json").exists() and (workdir / "loaded.duckdb").exists() and (
        marker.exists() and json.loads(marker.read_text(encoding="utf-8")) == _build_params(args)
    )


def _build_params(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("stations", "days", "sales_per_day", "reading_min",
                                          "seed", "load_rows")}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--stations", type=int, default=300, help="stations (300)")
    parser.add_argument("--days", type=int, default=60,
                        help="days loaded before the analyses (60; 365 for the year run), "
                        "plus one held-back day")  # fmt: skip
    parser.add_argument("--sales-per-day", type=int, default=100,
                        help="sales per station-day (100; full scale ≈ 600)")  # fmt: skip
    parser.add_argument("--reading-min", type=int, default=15,
                        help="minutes between tank gauge readings (15)")  # fmt: skip
    parser.add_argument("--load-rows", type=int, default=50_000,
                        help="rows per load_batch call (50000)")  # fmt: skip
    parser.add_argument("--trace-sales", type=int, default=300, help="trace_sale calls (300)")
    parser.add_argument("--trace-batches", type=int, default=60, help="trace_batch calls (60)")
    parser.add_argument("--recalls", type=int, default=5, help="recall_report calls (5)")
    parser.add_argument("--naive", type=int, default=3, help="naive replay traces (3)")
    parser.add_argument("--seed", type=int, default=7, help="generator and sampling seed (7)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--explain", action="store_true",
                        help="also print EXPLAIN ANALYZE of the trace queries (after the run)")
    parser.add_argument("--workdir", metavar="DIR",
                        help="keep the generated warehouse here and reuse it when the same "
                        "size is asked again (default: a temporary directory, "
                        "removed)")  # fmt: skip
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.build_only:  # the child process
        build(args, Path(args.workdir))
        return 0

    if _IGNORED_ENV:
        print(f"ignoring {', '.join(_IGNORED_ENV)} (the benchmark uses the defaults)")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fueltrace-trace-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        if args.workdir and _same_build(workdir, args):
            print(f"reusing the warehouse built in {workdir}")
        else:
            print(f"building the warehouse in {workdir} (child process) …", flush=True)
            child = [sys.executable, str(Path(__file__).resolve()), "--build-only",
                     "--workdir", str(workdir)]  # fmt: skip
            for k, v in _build_params(args).items():
                child += [f"--{k.replace('_', '-')}", str(v)]
            subprocess.run(child, check=True)
            (workdir / "params.json").write_text(json.dumps(_build_params(args)) + "\n",
                                                 encoding="utf-8")  # fmt: skip
        db = workdir / "bench.duckdb"
        if args.workdir:
            shutil.copyfile(workdir / "loaded.duckdb", db)
        else:
            (workdir / "loaded.duckdb").rename(db)
        bench = Bench(args, workdir, db)
        result = bench.run()
        if args.explain:
            explain(db, args)
        total = time.perf_counter() - t0
        result["total_wall_s"] = round(total, 1)
        print(f"total wall time (build + measurements): {total:.0f} s")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            (workdir / "bench.duckdb").unlink(missing_ok=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n",
                                   encoding="utf-8")  # fmt: skip
        print(f"figures written to {args.json}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
