"""Wetstock benchmark: SIR leak detection and persistent-gain figures on simulated tanks.

Not a test. Run from the repository root::

    .venv/bin/python bench/leak_bench.py                   # 120 stations: ~8 min here
    .venv/bin/python bench/leak_bench.py --stations 20     # while developing (~1.5 min)

Measures, over every tank of ``--stations`` simulated stations (``simulator``: meter
errors within ±0.3 % per dispenser, evaporation, gauge noise, temperature swings):

1. false alarms on clean tanks — a province simulated ``2 × 30 + 1`` days without
   injected wrongdoing: the SIR test of each tank on two disjoint 30-day windows (one
   test each: independent tank-months), and the share of tank-months with *any* failing
   daily test over the second month (what a monthly finding would show); the same for
   the persistent-gain test per dispenser;
2. probability of detection after 30 days at ``--rates`` (0.38, 0.76, 1.5 L/h) — one
   province per rate, simulated 31 days with the simulator's own ``leak`` scenario in
   every tank from the first instant (``simulator.scenarios``), each tank's test on the
   30 days to the last complete day;
3. probability of detecting calibration fraud of ``--gain-pct`` (0.5 %, the smallest the
   simulator injects) — the simulator's ``calibration_fraud`` on every dispenser.

Each rate is given with its 95 % Wilson interval. The Kafka pipeline and the warehouse
are skipped (hundreds of tank-months would take hours through them): the records go
through the same standardisation the traceability job applies
(``processors.lineage.standardise_readings`` / ``standardise_sales``,
``processors.normalize``) into an in-memory DuckDB holding the tables the rules read,
and each rule's own ``load`` runs against it — so ``detect`` sees frames shaped exactly
as in production (``tests/processors/rules/test_slow_leak.py`` checks that equivalence
through the real warehouse).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fueltrace.settings import Settings  # noqa: E402
from processors import wetstock  # noqa: E402
from processors.lineage import standardise_readings, standardise_sales  # noqa: E402
from processors.normalize import with_standard_volume  # noqa: E402
from processors.rules import persistent_gain, slow_leak  # noqa: E402
from processors.rules.base import EPOCH, UTC_US, Frames, Reader, Rule, Scope  # noqa: E402
from simulator.generate import DEFAULT_START, generate_with_truth, province_for  # noqa: E402
from simulator.scenarios import Scenario  # noqa: E402

WINDOW = slow_leak.WINDOW_DAYS


def _times(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(c).str.to_datetime(time_unit="us", time_zone="UTC").cast(UTC_US) for c in columns
    )


def warehouse_tables(records: dict[str, list[dict[str, Any]]]) -> dict[str, pl.DataFrame]:
    """The tables the wetstock rules read (``reading_std``, ``sale_std``, ``tank_reading``,
    ``sale``, ``delivery``, ``nozzle``), as the ingest and the traceability job fill them
    from JSON-ready simulator records."""
    nozzles = pl.DataFrame([
        {"station_id": f["facility_id"], **n} for f in records["facility"]
        if f["kind"] == "station" for n in f["nozzles"]
    ]).select("station_id", "nozzle_id", "dispenser_id", "tank_id")  # fmt: skip
    delivery = _times(pl.DataFrame(records["delivery"]).drop("seal_ids"),
                      "started_at", "ended_at")  # fmt: skip
    delivery = with_standard_volume(delivery)
    readings = _times(pl.DataFrame(records["tank_reading"]), "read_at").select(
        "station_id", "tank_id", "product", "read_at", "volume_l", "temperature_c"
    )
    sale = _times(pl.DataFrame(records["sale"]), "started_at", "ended_at").select(
        "station_id", "txn_id", "dispenser_id", "nozzle_id", "product", "volume_l",
        "started_at", "ended_at",
    )  # fmt: skip
    sales = sale.join(nozzles.select("station_id", "nozzle_id", "tank_id"),
                      on=["station_id", "nozzle_id"]).select(
        "station_id", "tank_id", "txn_id", "product", pl.col("ended_at").alias("at"), "volume_l"
    )  # fmt: skip
    deliveries = delivery.select("station_id", "tank_id", "ended_at", "density_kg_m3")
    reading_std = standardise_readings(readings, deliveries)
    sale_std = standardise_sales(sales, readings, deliveries)
    return {
        "reading_std": reading_std.select("station_id", "tank_id", "read_at", "density_kg_m3",
                                          "volume_20_l"),
        "sale_std": sale_std.select("station_id", "txn_id", "tank_id", "at", "temperature_c",
                                    "density_kg_m3", "volume_l", "volume_20_l"),
        "tank_reading": readings.select("station_id", "tank_id", "read_at", "temperature_c"),
        "sale": sale, "delivery": delivery, "nozzle": nozzles,
    }  # fmt: skip


def rule_frames(tables: dict[str, pl.DataFrame], rule: Rule, now: datetime) -> tuple[Frames, Scope]:
    """``rule.load`` over an in-memory DuckDB holding ``tables``, every station in scope
    for its whole history."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, frame in tables.items():
        con.register(name, frame)
    stations = tables["nozzle"].select("station_id").unique().sort("station_id")
    scope = Scope(stations.with_columns(since=pl.lit(EPOCH, UTC_US)), now)
    try:
        return rule.load(Reader(con, scope, rule.lookback)), scope
    finally:
        con.close()


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate_line(label: str, hits: int, n: int) -> str:
    lo, hi = wilson(hits, n)
    return (f"{label:<46} {hits:>4}/{n:<4} = {100 * hits / max(n, 1):6.2f} %   "
            f"(95 % CI {100 * lo:.2f}–{100 * hi:.2f} %)")  # fmt: skip


def simulate(args: argparse.Namespace, days: int, scenarios: list[Scenario]
             ) -> tuple[dict[str, pl.DataFrame], datetime, float]:  # fmt: skip
    started = time.perf_counter()
    generated = generate_with_truth(seed=args.seed, stations=args.stations, depots=args.depots,
                                    days=days, scenarios=scenarios)  # fmt: skip
    tables = warehouse_tables(generated.records)
    return tables, DEFAULT_START + timedelta(days=days), time.perf_counter() - started


def leak_scenarios(args: argparse.Namespace, days: int, rate: float) -> list[Scenario]:
    """The simulator's ``leak`` in every tank, for the whole run."""
    province = province_for(seed=args.seed, stations=args.stations, depots=args.depots, days=days)
    end = DEFAULT_START + timedelta(days=days)
    return [Scenario("leak", DEFAULT_START, station_id=s.facility_id, subject=t.tank_id, end=end,
                     params={"rate_l_h": rate})
            for s in province.stations for t in s.tanks]  # fmt: skip


def gain_scenarios(args: argparse.Namespace, days: int) -> list[Scenario]:
    """The simulator's ``calibration_fraud`` on every dispenser, for the whole run."""
    province = province_for(seed=args.seed, stations=args.stations, depots=args.depots, days=days)
    end = DEFAULT_START + timedelta(days=days)
    return [Scenario("calibration_fraud", DEFAULT_START, station_id=s.facility_id, subject=d,
                     end=end, params={"gain_pct": args.gain_pct})
            for s in province.stations for d in s.dispenser_ids]  # fmt: skip


def last_tests(results: pl.DataFrame, keys: list[str], offset: int = 0) -> pl.DataFrame:
    """Per key, the test ``offset`` days before its last end day."""
    return results.filter(pl.col("end_day") == pl.col("end_day").max().over(keys) - offset)


def run(args: argparse.Namespace) -> None:
    settings = Settings()
    tank, dispenser = wetstock.TANK, ["station_id", "dispenser_id"]
    print(f"wetstock bench: {args.stations} stations, seed {args.seed}; SIR threshold "
          f"{settings.slow_leak_threshold_l_h} L/h, detection rate "
          f"{settings.slow_leak_detection_rate_l_h} L/h, false alarms "
          f"{settings.slow_leak_false_alarm_pct} %; gain threshold "
          f"{settings.persistent_gain_threshold_pct} %")  # fmt: skip

    clean_days = 2 * WINDOW + 1
    tables, now, took = simulate(args, clean_days, [])
    frames, scope = rule_frames(tables, slow_leak.RULE, now)
    started = time.perf_counter()
    sir = slow_leak.evaluate(frames, settings, scope)
    gain = persistent_gain.evaluate(frames, settings, scope)
    print(f"\nclean province, {clean_days} days: simulated and standardised in {took:.0f} s; "
          f"{sir['end_day'].n_unique()} daily tests per tank in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    # Two disjoint 30-day windows per tank: the last test, and the one 30 days before it.
    months = pl.concat([last_tests(sir, tank, 0), last_tests(sir, tank, WINDOW)])
    fails = months.filter(pl.col("result") == "fail").height
    print(rate_line("SIR false alarms, one test per tank-month", fails, months.height))
    unsure = months.filter(pl.col("result") == "inconclusive").height
    print(rate_line("  inconclusive", unsure, months.height))
    second = sir.filter(pl.col("end_day") > pl.col("end_day").max().over(tank) - WINDOW)
    any_fail = second.group_by(tank).agg((pl.col("result") == "fail").any().alias("f"))
    print(rate_line("SIR tank-months with any failing daily test", int(any_fail["f"].sum()),
                    any_fail.height))  # fmt: skip
    rates = months.select(
        (pl.col("leak_rate_l_h") / pl.col("standard_error_l_h")).alias("t"),
        "leak_rate_l_h", "standard_error_l_h",
    )  # fmt: skip
    q = rates.select(pl.col(c).quantile(p).alias(f"{c}_{p}") for c in rates.columns
                     for p in (0.5, 0.99))  # fmt: skip
    print(f"  clean tanks: leak estimate median {q['leak_rate_l_h_0.5'][0]:.3f} L/h "
          f"(99th pct {q['leak_rate_l_h_0.99'][0]:.3f}), standard error median "
          f"{q['standard_error_l_h_0.5'][0]:.3f} (99th pct {q['standard_error_l_h_0.99'][0]:.3f})")
    gain_months = pl.concat([last_tests(gain, dispenser, 0), last_tests(gain, dispenser, WINDOW)])
    print(rate_line("gain false alarms, one test per dispenser-month",
                    gain_months.filter(pl.col("result") == "fail").height, gain_months.height))
    se_median = float(gain_months["standard_error_pct"].median())  # type: ignore[arg-type]
    largest = float(gain_months["gain_pct"].abs().max())  # type: ignore[arg-type]
    print(f"  clean dispensers: gain standard error median {se_median:.3f} %, largest |gain| "
          f"{largest:.3f} % (legal meters: within ±0.3 %)")

    print(f"\nleaks (simulator scenario in every tank, {WINDOW + 1} days):")
    for rate in args.rates:
        tables, now, took = simulate(args, WINDOW + 1, leak_scenarios(args, WINDOW + 1, rate))
        frames, scope = rule_frames(tables, slow_leak.RULE, now)
        tested = last_tests(slow_leak.evaluate(frames, settings, scope), tank)
        hits = tested.filter(pl.col("result") == "fail").height
        median = float(tested["leak_rate_l_h"].median())  # type: ignore[arg-type]
        print(rate_line(f"Pd at {rate:.2f} L/h after 30 days", hits, tested.height)
              + f"  median estimate {median:.3f} L/h ({took:.0f} s)")

    if args.gain_pct > 0:
        tables, now, took = simulate(args, WINDOW + 1, gain_scenarios(args, WINDOW + 1))
        frames, scope = rule_frames(tables, persistent_gain.RULE, now)
        tested = last_tests(persistent_gain.evaluate(frames, settings, scope), dispenser)
        hits = tested.filter(pl.col("result") == "fail").height
        print(f"\ncalibration fraud (simulator scenario on every dispenser, {WINDOW + 1} days):")
        median = float(tested["gain_pct"].median())  # type: ignore[arg-type]
        print(rate_line(f"Pd at +{args.gain_pct:.2f} % after 30 days", hits, tested.height)
              + f"  median estimate {median:.3f} % ({took:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=120)
    parser.add_argument("--depots", type=int, default=6)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")],
                        default=[0.38, 0.76, 1.5], help="leak rates, L/h (comma-separated)")
    parser.add_argument("--gain-pct", type=float, default=0.5,
                        help="calibration fraud to inject, %% (0: skip)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
