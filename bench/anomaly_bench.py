"""Detection benchmark: inject wrongdoing into a simulated province, run the whole
pipeline, and score the anomalies against the ground truth.

Not a test. Run from the repository root::

    .venv/bin/python bench/anomaly_bench.py                       # 200 stations × 30 days
    .venv/bin/python bench/anomaly_bench.py --stations 30 --days 10   # while developing

1. ``simulator.generate_with_truth`` simulates the province with ``--per-kind``
   incidents of every kind of wrongdoing the simulator can inject, planned at random
   (leaks of 0.2–5 L/h, off-book and short deliveries, diversions, adulteration,
   totalizer tampering, calibration fraud, licences, A/L drift, pressure faults,
   device outages and deliberate silence), with its noise model (gauge error,
   temperature, evaporation, meter error within ±0.3 %).
2. The records go through the real pipeline in event-time steps of ``--step-h`` hours:
   ``push`` (Avro containers, per station) to the embedded Tansu broker, ``ingest``
   until idle, then the analyses (lineage, then every anomaly rule) with the clock at
   the step's end. So each anomaly's ``first_seen_at`` is when a pipeline receiving
   data step by step would have raised it.
3. ``simulator.scoring.score`` matches the active anomalies at the end with the
   incidents and prints, per rule, precision, recall and the median time to detection
   (event time: the end of the first matching anomaly's window − the incident's start;
   and by the analysis clock). Target: precision and recall ≥ 0.95 per rule.
4. Speed, as ratios in the same run: the analyses' time against the ingest's time for
   the same step, the anomaly engine per station-day, and peak RSS.

Leak detection probabilities (0.38, 0.76, 1.5 L/h after 30 days) and the false-alarm
rate on clean tanks need hundreds of tank-months; ``bench/leak_bench.py`` measures
them by feeding the simulator's tanks straight to the rule.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for _k in [k for k in os.environ if k.startswith("FUELTRACE_")]:
    del os.environ[_k]

from fueltrace.analyses import run_analyses  # noqa: E402
from fueltrace.settings import Settings  # noqa: E402
from ingest.consumer import Ingest  # noqa: E402
from ingest.embedded_broker import EmbeddedBroker  # noqa: E402
from ingest.jsonl import convert_record  # noqa: E402
from ingest.push import push_records  # noqa: E402
from ingest.topics import ensure_topics  # noqa: E402
from schemas import default_registry  # noqa: E402
from simulator.generate import (  # noqa: E402
    TIME_FIELDS,
    RandomScenarios,
    generate_with_truth,
    iso_z,
)
from simulator.scenarios import write_ground_truth  # noqa: E402
from simulator.scoring import score  # noqa: E402
from warehouse.anomalies import AnomalyFilter, list_anomalies  # noqa: E402
from warehouse.connection import connect  # noqa: E402

TARGET = 0.95


def steps(records: dict[str, list[dict[str, Any]]], start: Any, days: float,
          step_h: float) -> list[tuple[Any, dict[str, list[dict[str, Any]]]]]:  # fmt: skip
    """The records cut into event-time steps (facility records go with the first)."""
    out = []
    edges = []
    t = start
    end = start + timedelta(days=days)
    while t < end:
        edges.append(t)
        t += timedelta(hours=step_h)
    edges.append(end + timedelta(days=365))  # the last step takes any stragglers
    for i, lo in enumerate(edges[:-1]):
        hi = edges[i + 1]
        lo_s, hi_s = iso_z(lo) if i else "", iso_z(hi)
        part = {}
        for record_type, items in records.items():
            if record_type == "facility":
                part[record_type] = items if i == 0 else []
                continue
            field = TIME_FIELDS[record_type][0]
            part[record_type] = [r for r in items if lo_s <= r[field] < hi_s]
        out.append((min(hi, end), part))
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="anomaly-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "bench.duckdb"
    for stale in (db, db.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    # The window ends at today's midnight (UTC): the ingest refuses timestamps from the future.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=math.ceil(args.days))
    t0 = time.perf_counter()
    generated = generate_with_truth(
        seed=args.seed, stations=args.stations, depots=args.depots, days=args.days, start=start,
        sales_scale=args.sales_scale, scenarios=RandomScenarios(per_kind=args.per_kind),
    )  # fmt: skip
    generate_s = time.perf_counter() - t0
    write_ground_truth(generated.incidents, workdir)
    total = sum(len(v) for v in generated.records.values())
    print(f"generated {args.stations} stations × {args.days:g} days: {total} records, "
          f"{len(generated.incidents)} incidents in {generate_s:.1f} s "
          f"(ground truth: {workdir}/ground_truth.jsonl)", flush=True)  # fmt: skip
    push_s = ingest_s = lineage_s = engine_s = 0.0
    step_rows = []
    with EmbeddedBroker(workdir / "broker") as broker:
        settings = Settings(db=db, state_dir=workdir, bootstrap=broker.bootstrap,
                            topic_prefix="bench", metrics_port=0)  # fmt: skip
        ensure_topics(settings, broker.bootstrap)
        ingest = Ingest(settings, broker.bootstrap, connect(db))
        try:
            for clock, part in steps(generated.records, start, args.days, args.step_h):
                t = time.perf_counter()
                n = 0
                for record_type, items in part.items():
                    if items:
                        schema = default_registry().current(record_type).schema
                        avro = [convert_record(r, schema) for r in items]
                        push_records(settings, broker.bootstrap, record_type, avro,
                                     batch=args.batch)  # fmt: skip
                        n += len(items)
                t_push = time.perf_counter() - t
                t = time.perf_counter()
                ingest.run(until_idle=True)
                t_ingest = time.perf_counter() - t
                t = time.perf_counter()
                result = run_analyses(ingest.con, settings, clock)
                t_lineage = time.perf_counter() - t - result.anomalies.duration_s
                step = {
                    "clock": iso_z(clock), "records": n, "push_s": round(t_push, 3),
                    "ingest_s": round(t_ingest, 3), "lineage_s": round(t_lineage, 3),
                    "anomalies_s": round(result.anomalies.duration_s, 3),
                    "stations": result.anomalies.stations, "raised": result.anomalies.raised,
                    "resolved": result.anomalies.resolved,
                }  # fmt: skip
                step_rows.append(step)
                push_s += t_push
                ingest_s += t_ingest
                lineage_s += t_lineage
                engine_s += result.anomalies.duration_s
                print(f"  step to {step['clock']}: {n:>8} records, push {t_push:6.1f} s, "
                      f"ingest {t_ingest:6.1f} s, lineage {t_lineage:6.1f} s, "
                      f"rules {step['anomalies_s']:6.1f} s, raised {step['raised']}, "
                      f"resolved {step['resolved']}", flush=True)  # fmt: skip
            found = list_anomalies(ingest.con, AnomalyFilter())
        finally:
            ingest.close()
    scored = score(found, generated.incidents)
    return {
        "args": vars(args), "records": total, "incidents": len(generated.incidents),
        "anomalies": len(found), "generate_s": generate_s, "push_s": push_s,
        "ingest_s": ingest_s, "lineage_s": lineage_s, "engine_s": engine_s,
        "steps": step_rows, "peak_rss_mb": peak_rss_mb(), "score": scored,
    }  # fmt: skip


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def report(out: dict[str, Any]) -> dict[str, Any]:
    scored = out["score"]
    print(f"\n{'rule':<28}{'inc':>5}{'TP':>5}{'FN':>5}{'anom':>6}{'FP':>5}"
          f"{'precision':>11}{'recall':>8}{'delay h':>9}{'seen h':>8}  target")  # fmt: skip
    rows = scored.rows()
    for r in rows:
        ok = all(v is None or v >= TARGET for v in (r["precision"], r["recall"]))
        mark = "" if r["rule"] == "*" else ("PASS" if ok else "MISS")
        print(f"{r['rule']:<28}{r['incidents']:>5}{r['true_positives']:>5}"
              f"{r['false_negatives']:>5}{r['anomalies']:>6}{r['false_positives']:>5}"
              f"{_fmt(r['precision']):>11}{_fmt(r['recall']):>8}"
              f"{_fmt(r['median_delay_h'], 1):>9}{_fmt(r['median_first_seen_delay_h'], 1):>8}"
              f"  {mark}")  # fmt: skip
    print("\nby kind of wrongdoing (detected = every expected rule found it):")
    for kind, k in sorted(scored.by_kind.items()):
        print(f"  {kind:<26}{k.incidents:>4} injected {k.detected:>4} detected "
              f"{k.partly_detected:>3} partly {k.undetectable:>3} left no signature")
    station_days = out["args"]["stations"] * out["args"]["days"]
    engine = [s["anomalies_s"] for s in out["steps"]]
    print(f"\nspeed: {out['records']} records; ingest {out['records'] / out['ingest_s']:.0f} "
          f"records/s; anomaly engine {out['engine_s']:.1f} s in all = "
          f"{out['engine_s'] / out['ingest_s']:.2f} × the ingest time (lineage "
          f"{out['lineage_s'] / out['ingest_s']:.2f} ×), "
          f"{1000 * out['engine_s'] / station_days:.1f} ms per station-day; per step "
          f"p50 {statistics.median(engine):.2f} s, max {max(engine):.2f} s; "
          f"peak RSS {out['peak_rss_mb']:.0f} MB")  # fmt: skip
    return {k: v for k, v in out.items() if k != "score"} | {"by_rule": rows, "by_kind": {
        k: vars(v) for k, v in scored.by_kind.items()}, "missed": scored.missed,
        "false_positive_ids": scored.false_positive_ids}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stations", type=int, default=200)
    p.add_argument("--depots", type=int, default=6)
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--per-kind", type=int, default=4, help="incidents per kind (4)")
    p.add_argument("--sales-scale", type=float, default=1.0,
                   help="× the usual customers (1.0 ≈ 270 sales a station-day)")  # fmt: skip
    p.add_argument("--step-h", type=float, default=24.0, help="event-time step (24 h)")
    p.add_argument("--batch", type=int, default=500, help="records per Kafka message (500)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--workdir", help="keep data, ground truth and warehouse here")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    out = report(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
