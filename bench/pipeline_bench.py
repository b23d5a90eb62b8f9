"""Pipeline benchmark: the hardening issue's performance figures, one run, one broker.

Not a test. Run from the repository root::

    .venv/bin/python bench/pipeline_bench.py                     # quick: ~6 min
    .venv/bin/python bench/pipeline_bench.py --json bench/results/pipeline-quick.json
    .venv/bin/python bench/pipeline_bench.py --backfill-records 9000000 \\
        --backlogs 1000000,3000000,10000000                      # the full sizes

One embedded Tansu (memory storage) serves every phase, each on its own topic prefix:

1. throughput — ``bench/ingest_bench.py``'s phases, imported, not copied: raw
   kafka-python consumption of single-record messages (the ceiling), ingest of the same
   topic (A), ingest of 500-record containers (B), and the naive per-record baseline;
2. latency — ``fueltrace serve`` as a subprocess (its defaults, but for the broker, the
   warehouse file, the port and the topic prefix). A producer thread sends single-record
   sales at a steady ``--rate`` (1,000/s); every ``--sample-every``-th (100th) one's send time is
   kept by its txn id, and a regulator client polls ``GET /api/v1/trace/sales/{station}
   /{txn}`` (404 until the row is in the warehouse) for the oldest pending one:
   queryable − sent, p50/p95/p99 over ``--latency-s`` seconds after a 5 s warm-up;
3. anomaly latency — under the same load, every ``--event-every-s`` a sale whose
   totalizer starts 100 L after its nozzle's previous sale ended (``totalizer_gap``
   fires on that one record; each event has its own station, seeded with one clean sale
   before the window); the client polls ``GET /api/v1/anomalies?rule=totalizer_gap``
   every 200 ms: flagged − sent. Bounded below by ``FUELTRACE_ANALYSIS_INTERVAL_S``
   (5 s by default; ``--analysis-interval-s`` overrides it for serve);
4. backfill — ``simulator.generate_province`` for one day with a tank reading a minute
   (≈4,850 records a station-day), stations chosen to give ``--backfill-records``,
   pushed as the gateway does (Avro containers of 500 records of one station); then a
   fresh process (this script, ``--drain-child``) ingests ``--until-idle`` from cold
   and runs the analyses after it, each timed;
5. backlog RSS — for each size of ``--backlogs``, that many sales pushed as containers,
   drained by a fresh ``--drain-child`` process whose VmRSS is sampled every 100 ms.

Every figure is printed with its target, PASS/MISS and the load average at the time;
``--json FILE`` writes them all. Throughput targets are ratios to the raw rate measured
in the same run; nothing here is a timed assertion in a test.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "bench"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import ingest_bench  # noqa: E402  (drops FUELTRACE_* from the environment on import)
from ingest_bench import Bench, MiB, _vmrss, percentiles, sales  # noqa: E402

from fueltrace.settings import Settings  # noqa: E402
from ingest.codec import encode_single  # noqa: E402
from ingest.consumer import Ingest  # noqa: E402
from ingest.embedded_broker import EmbeddedBroker  # noqa: E402
from ingest.kafka_client import producer as make_producer  # noqa: E402
from ingest.topics import ensure_topics, record_topic  # noqa: E402

TARGET_QUERYABLE_P95_S = 2.0
TARGET_ANOMALY_P95_S = 10.0
TARGET_BACKFILL_S = 300.0
TARGET_BACKFILL_RECORDS = 9_000_000
TARGET_RSS_MIB = 1024.0
#: "flat": peak RSS grows by at most this much per extra million records of backlog,
#: between the two largest backlogs measured.
FLAT_MIB_PER_M = 10.0
CEILING_SAME_GC = "(ref) raw consume A, the ingest's GC settings"
RECORDS_PER_STATION_DAY = 4_850  # generate_province, reading_interval_min=1 (measured)
GAP_L = 100.0


def load_now() -> dict[str, Any]:
    """The 1-minute load average and whether the other known loads were running."""

    def running(pattern: str) -> bool:
        return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0

    return {"loadavg_1m": round(os.getloadavg()[0], 2),
            "anomaly_bench_running": running("anomaly_bench"),
            "ci_running": running(".ci/run"),
            "other_bench_running": running("bench/(leak|trace|ingest)_bench")}  # fmt: skip


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RssWatch(threading.Thread):
    """VmRSS of one process every ``interval`` s, as (monotonic time, bytes)."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True, name=f"rss-{pid}")
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss = _vmrss(self.pid)
            if rss:
                self.samples.append((time.time(), rss))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peak(self, start: float = 0.0, end: float = math.inf) -> int:
        return max((r for t, r in self.samples if start <= t <= end), default=0)


# -- the drain child: a fresh process that ingests until idle (and analyses) ------------


def drain_child(spec: dict[str, Any]) -> int:
    """``--drain-child``: ingest ``--until-idle`` from cold, optionally the analyses after;
    print one JSON line of wall-clock stamps and counts."""
    from fueltrace.analyses import run_analyses
    from warehouse.connection import connect

    out: dict[str, Any] = {"t_start": time.time()}
    settings = Settings(**spec["settings"])
    ingest = Ingest(settings, settings.bootstrap or "",
                    connect(settings.db, memory_limit=settings.db_memory_limit))  # fmt: skip
    try:
        summary = ingest.run(until_idle=True)
        out["t_ingested"] = time.time()
        out.update(records=summary.records, messages=summary.messages,
                   batches=summary.batches, loaded=dict(summary.loaded),
                   dead_letters=dict(summary.dead_letters))  # fmt: skip
        if spec.get("analyses_clock"):
            result = run_analyses(
                ingest.con, settings, datetime.fromisoformat(spec["analyses_clock"])
            )
            out["t_analysed"] = time.time()
            out.update(raised=result.anomalies.raised, stations=result.anomalies.stations,
                       rules_s=round(result.anomalies.duration_s, 3))  # fmt: skip
        out["duckdb_memory_limit"] = ingest.con.execute(
            "SELECT current_setting('memory_limit')").fetchall()[0][0]  # fmt: skip
        # what DuckDB holds in memory at the end (indexes, buffers): for the RSS figure
        out["duckdb_memory_mib"] = {
            tag: round(b / MiB, 1) for tag, b in ingest.con.execute(
                "SELECT tag, memory_usage_bytes FROM duckdb_memory() "
                "WHERE memory_usage_bytes > 0").fetchall()}  # fmt: skip
    finally:
        ingest.close()
        ingest.con.close()
    print("DRAIN " + json.dumps(out), flush=True)
    return 0


class Pipeline:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.figures: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {}
        self.broker: EmbeddedBroker | None = None

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap

    def settings(self, prefix: str, **extra: Any) -> Settings:
        if self.args.db_memory_limit:
            extra.setdefault("db_memory_limit", self.args.db_memory_limit)
        return Settings(bootstrap=self.bootstrap, db=self.workdir / f"{prefix}.duckdb",
                        state_dir=self.workdir / "state", topic_prefix=prefix,
                        group_id=f"{prefix}-ingest", metrics_port=0, **extra)  # fmt: skip

    def figure(self, name: str, value: str, target: str, ok: bool | None,
               **data: Any) -> None:  # fmt: skip
        row = {"figure": name, "value": value, "target": target,
               "verdict": "—" if ok is None else verdict(ok), **load_now(), **data}  # fmt: skip
        self.figures.append(row)
        print(f"FIGURE {name}: {value}  (target {target}) {row['verdict']}  "
              f"[load {row['loadavg_1m']}]", flush=True)  # fmt: skip

    # -- 1. throughput: ingest_bench's phases -----------------------------------------

    def throughput(self) -> None:
        a = self.args
        ns = argparse.Namespace(
            records=a.ingest_records, stations=200, batch_size=500, naive_sample=5_000,
            batch_max_records=None, profile=None,
        )  # fmt: skip
        bench = Bench(ns, self.workdir)
        bench.sampler.start()
        assert self.broker is not None and self.broker.process is not None
        bench.sampler.broker_pid = self.broker.process.pid
        try:
            single = bench.settings(self.bootstrap, "tp-single")
            batch = bench.settings(self.bootstrap, "tp-batch")
            for s in (single, batch):
                ensure_topics(s, self.bootstrap)
            push_a = bench.push(single, self.bootstrap, 1)
            bench.push(batch, self.bootstrap, 500)
            bench.warm_up()
            bench.ceiling(single, self.bootstrap, push_a.messages)
            bench.ceiling(single, self.bootstrap, push_a.messages,
                          name=ingest_bench.CEILING_NO_CRC, check_crcs=False)  # fmt: skip
            bench.ingest("ingest A: single objects", single, self.bootstrap)
            bench.ingest("ingest B: containers", batch, self.bootstrap)
            # the ingest tuned this process's garbage collector (ingest.consumer.tune_gc):
            # raw consumption again, under the same settings, for a like-for-like ratio
            bench.ceiling(single, self.bootstrap, push_a.messages, name=CEILING_SAME_GC)
            bench.naive()
        finally:
            bench.sampler.stop()
        report = bench.report()
        self.results["throughput"] = report
        ceiling = report["ceiling_records_per_s"]["steady"]
        ph = report["phases"]
        a_rate = ph["ingest A: single objects"]["records_per_s_steady"] or 0
        b_rate = ph["ingest B: containers"]["records_per_s_steady"] or 0
        naive = ph["naive: decode + INSERT/row"]["records_per_s_steady"] or 0
        self.figure("ingest A (single-record msgs) / raw consume", f"{a_rate / ceiling:.2f}× "
                    f"({a_rate:,.0f} vs {ceiling:,.0f} rec/s)", "≥ 0.8×",
                    a_rate / ceiling >= ingest_bench.TARGET_FULL)  # fmt: skip
        same_gc = ph[CEILING_SAME_GC]["records_per_s_steady"] or 0
        if same_gc:
            self.figure("(ref) ingest A / raw consume with the ingest's GC settings",
                        f"{a_rate / same_gc:.2f}× ({a_rate:,.0f} vs {same_gc:,.0f} rec/s)",
                        "reference", None)  # fmt: skip
        self.figure("ingest B (500-record containers) / raw single-msg rate",
                    f"{b_rate / ceiling:.2f}× ({b_rate:,.0f} rec/s)", "≥ 3×",
                    b_rate / ceiling >= ingest_bench.TARGET_BATCH)  # fmt: skip
        self.figure("naive per-record decode + INSERT", f"{naive:,.0f} rec/s "
                    f"({naive / ceiling:.3f}× raw)", "reference", None)  # fmt: skip

    # -- 2./3. latency under `fueltrace serve` ------------------------------------------

    def start_serve(self, prefix: str) -> tuple[subprocess.Popen[bytes], str, str]:
        from warehouse.access import create_token
        from warehouse.connection import connect

        settings = self.settings(prefix)
        ensure_topics(settings, self.bootstrap)
        con = connect(settings.db)  # migrate, and a regulator token, before serve holds it
        try:
            token, _ = create_token(con, role="provincial_regulator", scope=None,
                                    label="pipeline bench", created_by="bench",
                                    now=datetime.now(UTC))  # fmt: skip
        finally:
            con.close()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUELTRACE_")}
        env.update(FUELTRACE_BOOTSTRAP=self.bootstrap, FUELTRACE_DB=str(settings.db),
                   FUELTRACE_STATE_DIR=str(settings.state_dir), FUELTRACE_TOPIC_PREFIX=prefix,
                   FUELTRACE_GROUP_ID=settings.group_id,
                   FUELTRACE_DB_MEMORY_LIMIT=settings.db_memory_limit,
                   FUELTRACE_LOG_LEVEL="INFO")  # fmt: skip  (serve.log: analysis durations)
        if self.args.analysis_interval_s is not None:
            env["FUELTRACE_ANALYSIS_INTERVAL_S"] = str(self.args.analysis_interval_s)
        log = open(self.workdir / "serve.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "fueltrace", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return proc, f"http://127.0.0.1:{port}", token

    def latency(self) -> None:
        import httpx

        a = self.args
        prefix = "lat"
        proc, base, token = self.start_serve(prefix)
        settings = self.settings(prefix)
        topic = record_topic(settings, "sale")
        from schemas import default_registry

        version = default_registry().current("sale")
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                            timeout=30)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"serve not ready; see {self.workdir / 'serve.log'}")
                time.sleep(0.2)
            kafka = make_producer(settings, self.bootstrap)
            events = max(1, math.ceil(a.latency_s / a.event_every_s))
            now_ms = int(time.time() * 1000)
            for k in range(events):  # one clean sale per event station, before the window
                kafka.send(
                    topic,
                    key=event_station(k).encode(),
                    value=encode_single(version, event_sale(k, now_ms, gap=False)),
                )
            kafka.flush()

            sent_at: dict[str, float] = {}  # sampled txn → send time
            pending: collections.deque[tuple[str, str]] = collections.deque()
            queryable: list[float] = []
            request_s: list[float] = []  # one trace request: the measurement's resolution
            events_sent: dict[str, float] = {}  # event station → send time
            flagged: list[float] = []
            stop = threading.Event()
            warmup_s, rate = 5.0, a.rate
            t_begin = time.time()
            window = (t_begin + warmup_s, t_begin + warmup_s + a.latency_s)
            lock = threading.Lock()

            def produce() -> None:
                gen = sales(10**9, 200)
                n, next_event = 0, window[0]
                k = 0
                t0 = time.time()
                while not stop.is_set():
                    now = time.time()
                    if now >= window[1]:
                        break
                    due = int((now - t0) * rate)
                    while n < due:
                        record = next(gen)
                        kafka.send(
                            topic,
                            key=record["station_id"].encode(),
                            value=encode_single(version, record),
                        )
                        t = time.time()
                        if n % a.sample_every == 0 and window[0] <= t <= window[1]:
                            with lock:
                                sent_at[record["txn_id"]] = t
                                pending.append((record["station_id"], record["txn_id"]))
                        n += 1
                    if now >= next_event and k < events:
                        record = event_sale(k, int(now * 1000), gap=True)
                        kafka.send(
                            topic,
                            key=record["station_id"].encode(),
                            value=encode_single(version, record),
                        )
                        with lock:
                            events_sent[record["station_id"]] = time.time()
                        k += 1
                        next_event += a.event_every_s
                    time.sleep(0.005)
                kafka.flush()
                produced.append(n)

            def watch_queryable() -> None:
                while not stop.is_set():
                    with lock:
                        head = pending[0] if pending else None
                    if head is None:
                        if not producer_thread.is_alive():
                            return
                        time.sleep(0.01)
                        continue
                    t_req = time.time()
                    r = http.get(f"/api/v1/trace/sales/{head[0]}/{head[1]}")
                    t = time.time()
                    request_s.append(t - t_req)
                    if r.status_code == 200:
                        with lock:
                            pending.popleft()
                            queryable.append(t - sent_at[head[1]])
                    elif r.status_code == 404:
                        time.sleep(0.02)
                    else:
                        raise RuntimeError(f"trace sale: HTTP {r.status_code} {r.text[:200]}")

            def watch_anomalies() -> None:
                seen: set[str] = set()
                while not stop.is_set():
                    r = http.get("/api/v1/anomalies", params={"rule": "totalizer_gap",
                                                             "limit": 1000})  # fmt: skip
                    t = time.time()
                    r.raise_for_status()
                    with lock:
                        for item in r.json()["items"]:
                            s = item["station_id"]
                            if s in events_sent and s not in seen:
                                seen.add(s)
                                flagged.append(t - events_sent[s])
                        done = not producer_thread.is_alive() and len(seen) == len(events_sent)
                    if done:
                        return
                    time.sleep(0.2)

            produced: list[int] = []
            producer_thread = threading.Thread(target=produce, name="steady-producer")
            q_thread = threading.Thread(target=watch_queryable, name="watch-queryable")
            a_thread = threading.Thread(target=watch_anomalies, name="watch-anomalies")
            rss = RssWatch(proc.pid)
            rss.start()
            for t in (producer_thread, q_thread, a_thread):
                t.start()
            producer_thread.join()
            tail = max(120.0, 4 * (a.analysis_interval_s or 30.0))
            q_thread.join(timeout=60)
            a_thread.join(timeout=tail)
            stop.set()
            q_thread.join()
            a_thread.join()
            kafka.close()
            rss.stop()
            elapsed = window[1] - t_begin
            lost_q, lost_a = len(pending), len(events_sent) - len(flagged)
        finally:
            http.close()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        q, f = percentiles(queryable), percentiles(flagged)
        self.results["latency"] = {
            "rate_per_s": rate, "achieved_rate_per_s": round(produced[0] / elapsed, 1)
            if produced else None, "window_s": a.latency_s, "sample_every": a.sample_every,
            "queryable_s": q, "not_queryable_in_time": lost_q,
            "trace_request_s": percentiles(request_s), "anomaly_s": f,
            "events": len(events_sent), "events_not_flagged": lost_a,
            "analysis_interval_s": a.analysis_interval_s or "default (30)",
            "serve_peak_rss_mib": round(rss.peak() / MiB, 1),
        }  # fmt: skip
        self.figure("produce → queryable (trace API) at 1,000 rec/s",
                    f"p50 {q['p50']:.3f} s, p95 {q['p95']:.3f} s, p99 {q['p99']:.3f} s "
                    f"(n={q['n']}, missing {lost_q}; one trace request p50 "
                    f"{percentiles(request_s)['p50'] * 1000:.0f} ms)", "p95 ≤ 2 s",
                    q["n"] > 0 and lost_q == 0 and q["p95"] <= TARGET_QUERYABLE_P95_S)  # fmt: skip
        self.figure("produce → anomaly flagged (totalizer_gap via API)",
                    f"p50 {f['p50']:.2f} s, p95 {f['p95']:.2f} s, max {f['max']:.2f} s "
                    f"(n={f['n']}, not flagged {lost_a}; analysis interval "
                    f"{a.analysis_interval_s or 'default 5'} s)", "p95 ≤ 10 s",
                    f["n"] > 0 and lost_a == 0 and f["p95"] <= TARGET_ANOMALY_P95_S)  # fmt: skip

    # -- 4./5. drains in a fresh process -----------------------------------------------

    def drain(self, name: str, settings: Settings, analyses_clock: datetime | None = None
              ) -> dict[str, Any]:  # fmt: skip
        spec = {"settings": {"bootstrap": settings.bootstrap, "db": str(settings.db),
                             "state_dir": str(settings.state_dir),
                             "topic_prefix": settings.topic_prefix,
                             "group_id": settings.group_id, "metrics_port": 0,
                             "db_memory_limit": settings.db_memory_limit},
                "analyses_clock": analyses_clock and analyses_clock.isoformat()}  # fmt: skip
        cmd = [sys.executable, str(Path(__file__).resolve()), "--drain-child", json.dumps(spec)]
        if self.args.py_spy:
            out = Path(self.args.py_spy) / f"{name}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            cmd = [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--format",
                "raw",
                "--nonblocking",
                "--rate",
                "100",
                "--threads",
                "--subprocesses",
                "-o",
                str(out),
                "--",
                *cmd,
            ]
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        pid = proc.pid
        if self.args.py_spy:  # py-spy's child is the python process
            time.sleep(0.5)
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            pid = int(kids[0]) if kids else pid
        rss = RssWatch(pid)
        rss.start()
        stdout, _ = proc.communicate()
        t_end = time.time()
        rss.stop()
        line = next((x for x in stdout.splitlines() if x.startswith("DRAIN ")), None)
        if proc.returncode or line is None:
            raise RuntimeError(f"{name}: drain child failed (exit {proc.returncode})")
        out_ = json.loads(line[6:])
        out_["process_s"] = round(t_end - t0, 3)
        out_["ingest_s"] = round(out_["t_ingested"] - t0, 3)  # from spawning: a cold start
        out_["peak_rss_ingest_mib"] = round(rss.peak(end=out_["t_ingested"]) / MiB, 1)
        if "t_analysed" in out_:
            out_["analyses_s"] = round(out_["t_analysed"] - out_["t_ingested"], 3)
            out_["peak_rss_analyses_mib"] = round(rss.peak(start=out_["t_ingested"]) / MiB, 1)
        out_["rss_samples"] = len(rss.samples)
        return out_

    def backfill(self) -> None:
        from ingest.jsonl import convert_record
        from ingest.push import push_records
        from schemas import default_registry
        from simulator import generate_province

        target = self.args.backfill_records
        stations = max(1, round(target / RECORDS_PER_STATION_DAY))
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
            days=1
        )  # yesterday: the ingest refuses the future
        t = time.perf_counter()
        records = generate_province(seed=7, depots=max(1, stations // 40), stations=stations,
                                    days=1, start=day, reading_interval_min=1)  # fmt: skip
        gen_s = time.perf_counter() - t
        total = sum(len(v) for v in records.values())
        print(f"backfill: generated {stations} stations × 1 day = {total:,} records in "
              f"{gen_s:.1f} s", flush=True)  # fmt: skip
        settings = self.settings("backfill")
        ensure_topics(settings, self.bootstrap)
        t = time.perf_counter()
        chunk = 500_000  # converted and sent a slice at a time: the generated dicts dominate
        for record_type in list(records):
            items = records.pop(record_type)
            schema = default_registry().current(record_type).schema
            for i in range(0, len(items), chunk):
                avro = [convert_record(r, schema) for r in items[i : i + chunk]]
                push_records(settings, self.bootstrap, record_type, avro, batch=500)
            del items, avro
        push_s = time.perf_counter() - t
        bench_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"backfill: pushed in {push_s:.1f} s (containers of 500) — not a figure",
              flush=True)  # fmt: skip
        out = self.drain("backfill", settings, analyses_clock=day + timedelta(days=1))
        out.update(stations=stations, generated=total, generate_s=round(gen_s, 1),
                   push_s=round(push_s, 1),
                   bench_peak_rss_mib=round(bench_rss, 1))  # fmt: skip
        self.results["backfill"] = out
        rate = out["records"] / out["ingest_s"]
        scaled = TARGET_BACKFILL_RECORDS / rate
        self.figure(f"backfill of a province-day ({total:,} records, {stations} stations)",
                    f"ingest {out['ingest_s']:.1f} s ({rate:,.0f} rec/s, cold start to "
                    f"caught up) + analyses {out['analyses_s']:.1f} s; at that rate 9 M = "
                    f"{scaled:.0f} s + analyses"
                    + (" (extrapolated)" if total < TARGET_BACKFILL_RECORDS else ""),
                    "≤ 300 s for ≈9 M",
                    (out["ingest_s"] + out["analyses_s"]) * TARGET_BACKFILL_RECORDS / total
                    <= TARGET_BACKFILL_S if total < TARGET_BACKFILL_RECORDS
                    else out["ingest_s"] + out["analyses_s"] <= TARGET_BACKFILL_S,
                    extrapolated=total < TARGET_BACKFILL_RECORDS)  # fmt: skip

    def backlogs(self) -> None:
        sizes = [int(x) for x in self.args.backlogs.split(",") if x]
        rows = []
        for n in sizes:
            ns = argparse.Namespace(records=n, stations=200)
            bench = Bench.__new__(Bench)  # its push only: records, stations, version
            bench.args, bench.phases, bench.workdir = ns, {}, self.workdir
            bench.sampler = ingest_bench.RssSampler()
            from schemas import default_registry

            bench.version = default_registry().current("sale")
            settings = self.settings(f"backlog{n}")
            ensure_topics(settings, self.bootstrap)
            push = bench.push(settings, self.bootstrap, 500)
            print(f"backlog {n:,}: pushed {push.messages:,} containers in {push.wall_s:.1f} s",
                  flush=True)  # fmt: skip
            out = self.drain(f"backlog-{n}", settings)
            out["backlog"] = n
            out["broker_rss_mib"] = round(_vmrss(self.broker.process.pid) / MiB, 1)  # type: ignore[union-attr]
            rows.append(out)
            print(f"backlog {n:,}: drained in {out['ingest_s']:.1f} s, peak RSS "
                  f"{out['peak_rss_ingest_mib']:.0f} MiB [load {load_now()['loadavg_1m']}]",
                  flush=True)  # fmt: skip
        self.results["backlogs"] = rows
        peaks = [r["peak_rss_ingest_mib"] for r in rows]
        def per_million(a: dict[str, Any], b: dict[str, Any]) -> float:
            span_m = (b["backlog"] - a["backlog"]) / 1e6
            return (b["peak_rss_ingest_mib"] - a["peak_rss_ingest_mib"]) / span_m if span_m \
                else 0.0  # fmt: skip

        # flat as the backlog grows: judged between the two largest backlogs (DuckDB's
        # cache, bounded by FUELTRACE_DB_MEMORY_LIMIT, fills over the first millions)
        overall = per_million(rows[0], rows[-1])
        slope = per_million(rows[-2], rows[-1]) if len(rows) > 1 else 0.0
        flat = slope <= FLAT_MIB_PER_M
        self.figure("peak RSS of the ingest process while a backlog drains",
                    ", ".join(f"{r['backlog'] / 1e6:g} M: {r['peak_rss_ingest_mib']:.0f} MiB"
                              for r in rows)
                    + f" — {slope:+.0f} MiB per extra million between the two largest "
                    f"({overall:+.0f} from the first): {'flat' if flat else 'grows'}",
                    f"≤ 1 GiB, flat (≤ {FLAT_MIB_PER_M:g} MiB per extra million records "
                    "between the two largest backlogs)",
                    max(peaks) <= TARGET_RSS_MIB and flat,
                    mib_per_million=round(slope, 1),
                    mib_per_million_from_first=round(overall, 1))  # fmt: skip

    def run(self) -> dict[str, Any]:
        a = self.args
        started = load_now()
        with EmbeddedBroker(self.workdir / "broker") as broker:
            self.broker = broker
            print(f"broker {broker.bootstrap}; workdir {self.workdir}; load {started}",
                  flush=True)  # fmt: skip
            phases = a.only.split(",") if a.only else ["throughput", "latency", "backfill",
                                                       "backlogs"]  # fmt: skip
            for phase in phases:
                t = time.perf_counter()
                getattr(self, phase)()
                print(f"— {phase} done in {time.perf_counter() - t:.0f} s", flush=True)
        print("\nfigure | value | target | verdict | load (1 min)")
        for f in self.figures:
            others = [n for n, on in (("anomaly_bench", f["anomaly_bench_running"]),
                                      ("CI", f["ci_running"]),
                                      ("another bench", f["other_bench_running"]))
                      if on]  # fmt: skip
            print(
                f"{f['figure']} | {f['value']} | {f['target']} | {f['verdict']} | "
                f"{f['loadavg_1m']}{' (' + ', '.join(others) + ' running)' if others else ''}"
            )
        return {"command": " ".join([Path(sys.executable).name, *sys.argv]), "args": vars(a),
                "environment": ingest_bench.environment(), "load_at_start": started,
                "load_at_end": load_now(), "figures": self.figures, **self.results}  # fmt: skip


def event_station(k: int) -> str:
    return f"LN-SY-{9000 + k:04d}"


def event_sale(k: int, now_ms: int, *, gap: bool) -> dict[str, Any]:
    """A sale at event station ``k``: the seed (clean, 10 min ago) or, with ``gap``, one
    whose totalizer starts ``GAP_L`` after the seed ended (totalizer_gap fires)."""
    volume, price = 20.0, 780
    start_l = 1_000.0 + (20.0 + GAP_L if gap else 0.0)
    started = now_ms - (60_000 if gap else 600_000)
    return {
        "txn_id": f"EV{k:04d}{'G' if gap else 'S'}", "station_id": event_station(k),
        "dispenser_id": "D1", "nozzle_id": "N1", "product": "gasoline_92",
        "volume_l": volume, "unit_price_fen": price, "amount_fen": round(price * volume),
        "totalizer_start_l": start_l, "totalizer_end_l": round(start_l + volume, 2),
        "started_at": started, "ended_at": started + int(volume * 1500) + 5_000,
        "invoice_id": None,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--ingest-records", type=int, default=100_000,
                   help="records of the throughput phases (100000)")  # fmt: skip
    p.add_argument("--rate", type=float, default=1000.0, help="steady records/s (1000)")
    p.add_argument("--latency-s", type=float, default=60.0,
                   help="measured window of the latency phases (60)")  # fmt: skip
    p.add_argument("--sample-every", type=int, default=100,
                   help="time every Nth record to queryable (100: 10 a second; the samples "
                   "visible in one batch are checked one request after another)")  # fmt: skip
    p.add_argument("--event-every-s", type=float, default=3.0,
                   help="one totalizer-gap sale every N s (3: 20 in 60 s)")  # fmt: skip
    p.add_argument(
        "--analysis-interval-s",
        type=float,
        default=None,
        help="FUELTRACE_ANALYSIS_INTERVAL_S for serve (default: the setting's, 5)",
    )
    p.add_argument(
        "--backfill-records",
        type=int,
        default=1_000_000,
        help="size of the generated province-day (1000000; 9000000 = the target)",
    )
    p.add_argument(
        "--backlogs",
        default="1000000,3000000",
        help="backlog sizes, comma-separated (1000000,3000000; add 10000000)",
    )
    p.add_argument("--only", help="comma-separated phases: throughput,latency,backfill,backlogs")
    p.add_argument(
        "--py-spy",
        metavar="DIR",
        help="record the drain children with py-spy (raw stacks) into DIR",
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--db-memory-limit", metavar="SIZE",
                   help="FUELTRACE_DB_MEMORY_LIMIT of the drains and serve (default: the "
                        "setting's)")  # fmt: skip
    p.add_argument("--drain-child", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.drain_child:
        return drain_child(json.loads(args.drain_child))
    tmp = Path(tempfile.mkdtemp(prefix="fueltrace-pipeline-"))
    try:
        result = Pipeline(args, tmp).run()
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n",
                                   encoding="utf-8")  # fmt: skip
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
