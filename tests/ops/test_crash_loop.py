"""Crash loop: `fueltrace serve` under continuous load is SIGKILLed 20 times by its
failpoints (``FUELTRACE_DEBUG_FAILPOINT``: mid-decode, mid-load, between the warehouse
commit and the Kafka commit, mid-analysis) and restarted each time. Afterwards the
warehouse holds every record produced exactly once, and the anomalies equal those of a
clean run: another warehouse that read the same topics once, without a crash, analysed at
the same clock."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fueltrace import failpoints
from fueltrace.analyses import run_analyses
from fueltrace.settings import Settings
from ingest.codec import encode_container, encode_single
from ingest.embedded_broker import EmbeddedBroker, free_port
from ingest.kafka_client import producer as make_producer
from ingest.push import check_lines
from ingest.records import SPECS
from ingest.topics import ensure_topics, record_topic
from schemas import default_registry
from simulator import Generated, Scenario, generate_with_truth, province_for, write_jsonl
from tests.helpers import run_ingest, settings_env
from warehouse.connection import connect

pytestmark = pytest.mark.broker
CYCLES = 20  # kills, cycling through the failpoints: each 5 times
MIN_FIRED = 3  # …of which each point must really have fired at least this often
NTH = (1, 4)  # a failpoint fires the Nth time it is reached, N drawn in this range
DIE_WITHIN_S = 30.0  # a bound, not a speed check: a start takes ~2 s, joining the group
# 1–15 s (the killed member holds its partitions until its session times out)
STATIONS, DAYS = 4, 1.5
CHUNKS = 2 * CYCLES  # the records go out in this many event-time slices, two per cycle
CONTAINER = 25  # tank readings travel in gateway batches of this many records
BATCH = 40  # records per micro-batch of the killed processes: many batches, many kills
#: The event time that orders each record type's records (facilities go first).
EVENT_TIME = {"dispatch": "dispatched_at", "delivery": "started_at", "tank_reading": "read_at",
              "sale": "started_at", "vapor": "measured_at", "device_status": "at"}  # fmt: skip
#: What an anomaly is, without when this warehouse happened to notice it.
ANOMALY = ("anomaly_id, rule, station_id, depot_id, subject, severity, state, window_start, "
           "window_end, evidence::VARCHAR")  # fmt: skip

Chunk = list[tuple[str, dict[str, Any]]]  # (record type, datum ready for Avro)
Row = tuple[Any, ...]
Rows = dict[str, list[Row]]  # record type -> its stored rows


def _province(end: datetime) -> Generated:
    """A day and a half of STATIONS stations up to ``end``, with injected wrongdoing that the
    rules find (at the top, at the bottom and in the middle of the data's time span)."""
    start = end - timedelta(days=DAYS)
    ids = [s.facility_id for s in province_for(seed=5, depots=1, stations=STATIONS, days=DAYS,
                                               start=start).stations]  # fmt: skip
    hours = timedelta(hours=1)
    scenarios = [
        Scenario("shortfall", start + hours, station_id=ids[3]),
        Scenario("pressure_fault", start + 2 * hours, station_id=ids[2]),
        Scenario("totalizer_tampering", start + 4 * hours, station_id=ids[0]),
        Scenario("expired_licence", start + 6 * hours, station_id=ids[1]),
        Scenario("device_outage", start + 8 * hours, station_id=ids[1], subject="ATG1",
                 options={"status": "offline"}),
    ]  # fmt: skip
    return generate_with_truth(seed=5, depots=1, stations=STATIONS, days=DAYS, start=start,
                               scenarios=scenarios)  # fmt: skip


def _chunks(generated: Generated, settings: Settings, directory: Path) -> list[Chunk]:
    """The records as JSON lines, checked as `fueltrace push` checks them, in CHUNKS slices
    of event time (the facilities in the first)."""
    timed: list[tuple[str, str, dict[str, Any]]] = []
    for record_type, path in write_jsonl(generated.records, directory).items():
        with open(path, encoding="utf-8") as handle:
            good, errors = check_lines(record_type, handle, settings, str(path))
        assert errors == []
        records = generated.records[record_type]
        assert len(good) == len(records)
        for (_, datum), record in zip(good, records, strict=True):
            when = "" if record_type == "facility" else record[EVENT_TIME[record_type]]
            timed.append((when, record_type, datum))
    timed.sort(key=lambda x: (x[0], x[1]))
    size = -(-len(timed) // CHUNKS)
    return [[(t, d) for _, t, d in timed[i : i + size]] for i in range(0, len(timed), size)]


class Producer(threading.Thread):
    """Sends chunk k once the crash loop has reached cycle k * CYCLES // CHUNKS, so there is
    data to decode and load in every cycle; the rest once the loop is over."""

    def __init__(self, settings: Settings, chunks: list[Chunk]) -> None:
        super().__init__(name="crash-loop-producer", daemon=True)
        self.settings, self.chunks = settings, chunks
        self.cycle = 0
        self.stop = threading.Event()
        self.sent: Counter[str] = Counter()
        self.failed: BaseException | None = None

    def run(self) -> None:
        assert self.settings.bootstrap
        kafka = make_producer(self.settings, self.settings.bootstrap, linger_ms=5)
        try:
            for k, chunk in enumerate(self.chunks):
                while self.cycle < k * CYCLES // CHUNKS and not self.stop.wait(0.05):
                    pass
                if self.stop.is_set():
                    return
                self._send(kafka, chunk)
                time.sleep(0.2)
        except BaseException as exc:  # reported by the test
            self.failed = exc
        finally:
            kafka.close(timeout=self.settings.broker_timeout_s)

    def _send(self, kafka: Any, chunk: Chunk) -> None:
        by_type: dict[str, list[dict[str, Any]]] = {}
        for record_type, datum in chunk:
            by_type.setdefault(record_type, []).append(datum)
        futures = []
        for record_type, data in by_type.items():
            version = default_registry().current(record_type)
            topic, key = record_topic(self.settings, record_type), SPECS[record_type].kafka_key
            if record_type == "tank_reading":  # as a station gateway uploads its readings
                by_key: dict[str, list[dict[str, Any]]] = {}
                for datum in data:
                    by_key.setdefault(datum[key], []).append(datum)
                for k, group in by_key.items():
                    for i in range(0, len(group), CONTAINER):
                        value = encode_container(version, group[i : i + CONTAINER])
                        futures.append(kafka.send(topic, key=k.encode(), value=value))
            else:
                futures += [kafka.send(topic, key=d[key].encode(), value=encode_single(version, d))
                            for d in data]  # fmt: skip
            self.sent[record_type] += len(data)
        kafka.flush(timeout=self.settings.broker_timeout_s)
        for future in futures:
            future.get(timeout=self.settings.broker_timeout_s)


def _serve(settings: Settings, failpoint: str, log: Path) -> subprocess.Popen[bytes]:
    env = settings_env(settings, FUELTRACE_DEBUG_FAILPOINT=failpoint, FUELTRACE_LOG_LEVEL="INFO")
    command = [sys.executable, "-m", "fueltrace", "serve", "--host", "127.0.0.1",
               "--port", str(free_port())]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))


def _crash_loop(settings: Settings, producer: Producer, logs: Path) -> dict[str, list[int]]:
    """Start, let a failpoint kill, restart: CYCLES times. Per point, the Ns that fired."""
    rng = random.Random(20261125)
    fired: dict[str, list[int]] = {p: [] for p in failpoints.POINTS}
    for cycle in range(CYCLES):
        producer.cycle = cycle
        point = failpoints.POINTS[cycle % len(failpoints.POINTS)]
        nth = rng.randint(*NTH)
        log = logs / f"{cycle:02d}-{point}-{nth}.log"
        process = _serve(settings, f"{point}:{nth}", log)
        try:
            code = process.wait(DIE_WITHIN_S)
        except subprocess.TimeoutExpired:  # the point was not reached: say so at the end
            process.send_signal(signal.SIGKILL)
            code = process.wait(10)
            assert code == -signal.SIGKILL
            continue
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        said = f"failpoint {point} hit {nth}: SIGKILL" in log.read_text(errors="replace")
        assert code == -signal.SIGKILL and said, f"{log.name}: exit {code}\n" + log.read_text(
            errors="replace")[-3000:]  # fmt: skip
        fired[point].append(nth)
    return fired


def _records(con: duckdb.DuckDBPyConnection) -> Rows:
    """Every stored record, without the load that stored it, in key order."""
    return {t: con.execute(f"SELECT * EXCLUDE (load_id) FROM {s.table} ORDER BY ALL").fetchall()
            for t, s in SPECS.items()}  # fmt: skip


def _ingest_and_analyse(settings: Settings, now: datetime) -> tuple[Rows, list[Row]]:
    """Consume what is left, analyse at ``now``; (records, active anomalies)."""
    run_ingest(settings)
    con = connect(settings.db)
    try:
        run_analyses(con, settings, now)
        for t, s in SPECS.items():  # each record stored once
            key = ", ".join(f'"{k}"' for k in s.natural_key)
            total, keys = con.execute(f"SELECT count(*), count(DISTINCT ({key})) FROM {s.table}"
                                      ).fetchall()[0]  # fmt: skip
            assert total == keys, f"{t}: {total} rows for {keys} keys"
        for table in ("ingest_duplicate", "key_conflict", "dead_letter"):  # nothing re-sent
            assert con.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table
        anomalies = con.execute(f"SELECT {ANOMALY} FROM anomaly WHERE state = 'active' "
                                "ORDER BY anomaly_id").fetchall()  # fmt: skip
        return _records(con), anomalies
    finally:
        con.close()


def test_sigkill_loop_loses_and_doubles_nothing_and_finds_the_same_anomalies(
    broker: EmbeddedBroker, settings_factory: Callable[..., Settings], tmp_path: Path,
) -> None:  # fmt: skip
    started = time.monotonic()
    settings = settings_factory(broker.bootstrap, batch_max_records=BATCH, batch_max_ms=200,
                                analysis_interval_s=0.5)  # fmt: skip
    ensure_topics(settings, broker.bootstrap)
    end = (datetime.now(UTC) - timedelta(minutes=30)).replace(minute=0, second=0, microsecond=0)
    generated = _province(end)
    produced = {t: len(r) for t, r in generated.records.items()}
    chunks = _chunks(generated, settings, tmp_path / "jsonl")
    # every cycle brings more records than the NTH[1] batches a failpoint may wait for
    assert min(map(len, chunks[:-1])) * CHUNKS // CYCLES > NTH[1] * BATCH
    producer = Producer(settings, chunks)
    (logs := tmp_path / "logs").mkdir()
    producer.start()
    try:
        fired = _crash_loop(settings, producer, logs)
    except BaseException:
        producer.stop.set()
        raise
    producer.cycle = CYCLES  # the rest goes out now
    producer.join(60)
    assert producer.failed is None and not producer.is_alive()
    assert dict(producer.sent) == produced
    print(f"\ncrash loop {time.monotonic() - started:.0f} s; fired (point: Ns): {fired}")

    now = datetime.now(UTC)  # later than every analysis the killed processes ran
    rest = settings.model_copy(update={"batch_max_records": 5000})  # the batch size is free
    crashed, crashed_anomalies = _ingest_and_analyse(rest, now)
    clean_settings = rest.model_copy(update={"db": tmp_path / "clean.duckdb",
                                             "group_id": f"{settings.group_id}-clean"})
    clean, clean_anomalies = _ingest_and_analyse(clean_settings, now)
    print(f"in all {time.monotonic() - started:.0f} s")
    assert {p: len(n) for p, n in fired.items() if len(n) < MIN_FIRED} == {}, fired
    assert {t: len(r) for t, r in clean.items()} == produced
    assert crashed == clean  # none lost, none doubled, byte for byte the same
    assert {a[1] for a in clean_anomalies} >= {"delivery_mismatch", "totalizer_gap",
                                               "unlicensed_sales", "vapor_pressure_out_of_range",
                                               "device_silent"}  # fmt: skip
    assert crashed_anomalies == clean_anomalies
