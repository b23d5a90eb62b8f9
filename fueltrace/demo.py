"""`fueltrace demo`: the whole slice on the embedded broker, in well under a minute.

Simulate a province → write its JSON lines → push them through Kafka (tank
readings as batch messages, the way a gateway uploads a backlog) → add the kinds of
bad input a regulator's pipeline meets (bad lines, a resent file, a record changed
after it was sent, bytes that are not Avro) → ingest → report what landed and
where to look.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from fueltrace.settings import Settings
from ingest.codec import encode_single
from ingest.embedded_broker import EmbeddedBroker
from ingest.kafka_client import producer
from ingest.push import check_lines, push_records
from ingest.topics import ensure_topics, record_topic
from schemas import default_registry
from simulator import RandomScenarios, generate_with_truth, write_ground_truth, write_jsonl

#: Record types sent as Avro container files, this many records per message.
BATCHED = {"tank_reading": 500, "vapor": 200}


def _say(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:5.1f}s] {message}", flush=True)


def _bad_input(records: dict[str, list[dict[str, Any]]], directory: Path) -> Path:
    """A file with three bad lines among good ones: a typo'd number, a sale whose
    totalizer does not match its volume, a naive timestamp."""
    sales = records["sale"][:3]
    lines = [json.dumps(sales[0]) + "\n"]
    lines.append(json.dumps({**sales[1], "volume_l": "31,5"}) + "\n")
    lines.append(json.dumps({**sales[2], "totalizer_end_l": sales[2]["totalizer_end_l"] + 40})
                 + "\n")  # fmt: skip
    lines.append(json.dumps({**sales[0], "txn_id": "LATE-1", "started_at": "2026-11-20T08:00:00",
                             "ended_at": "2026-11-20T08:01:00"}) + "\n")  # fmt: skip
    path = directory / "bad_sales.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _push_province(settings: Settings, bootstrap: str, directory: Path, started: float,
                   records: dict[str, list[dict[str, Any]]]) -> None:  # fmt: skip
    for record_type, path in write_jsonl(records, directory).items():
        with open(path, encoding="utf-8") as handle:
            good, errors = check_lines(record_type, handle, settings, str(path))
        batch = BATCHED.get(record_type, 1)
        messages = push_records(settings, bootstrap, record_type, [d for _, d in good], batch)
        how = f"in {messages} batch messages" if batch > 1 else "one per message"
        _say(f"pushed {len(good):>6} {record_type:<13} {how}"
             + (f"; {len(errors)} lines rejected" if errors else ""), started)  # fmt: skip


def _push_trouble(settings: Settings, bootstrap: str, directory: Path, started: float,
                  records: dict[str, list[dict[str, Any]]]) -> None:  # fmt: skip
    bad_path = _bad_input(records, directory)
    with open(bad_path, encoding="utf-8") as handle:
        good, errors = check_lines("sale", handle, settings, str(bad_path))
    push_records(settings, bootstrap, "sale", [d for _, d in good])
    _say(f"pushed {bad_path.name}: {len(good)} good line sent, {len(errors)} refused:", started)
    for error in errors:
        print(f"         {error}")
    # A station gateway that resends its last 200 sales, and one it altered since.
    schema = default_registry().current("sale").schema
    resend_lines = [json.dumps(r) for r in records["sale"][-200:]]
    resend, _ = check_lines("sale", resend_lines, settings, "resend")
    push_records(settings, bootstrap, "sale", [d for _, d in resend])
    altered = dict(resend[0][1])
    altered["volume_l"] += 10.0
    altered["totalizer_end_l"] += 10.0
    altered["amount_fen"] = round(altered["unit_price_fen"] * altered["volume_l"])
    sale = default_registry().current("sale")
    kafka = producer(settings, bootstrap)
    topic = record_topic(settings, "sale")
    key = altered["station_id"].encode()
    kafka.send(topic, key=key, value=encode_single(sale, altered))
    kafka.send(topic, key=key, value=b'{"txn_id": "sent as JSON by a misconfigured gateway"}')
    kafka.send(topic, key=key, value=b"\xc3\x01" + b"\xff" * 8 + b"\x02")
    kafka.flush()
    kafka.close()
    assert schema  # the altered record is valid by the schema: only its content changed
    _say("resent 200 sales, 1 of them altered, and 2 messages that are not valid Avro",
         started)  # fmt: skip


def _show_traces(con: Any, directory: Path) -> None:
    """One sale traced back, and a recall of the batch that reached most stations."""
    from warehouse import trace
    from warehouse.reports import recall_csv, render_batch, render_sale

    batch = con.execute(
        "SELECT batch_id FROM delivery_batch WHERE batch_id NOT LIKE 'UNTRACED:%' "
        "GROUP BY batch_id ORDER BY count(DISTINCT station_id) DESC, batch_id LIMIT 1"
    ).fetchall()
    if not batch:
        return
    batch_id = batch[0][0]
    sale = con.execute(
        "SELECT s.station_id, s.txn_id FROM sale_std s JOIN tank_segment seg "
        "ON seg.station_id = s.station_id AND seg.tank_id = s.tank_id "
        "AND seg.valid_from <= s.at AND (seg.valid_to IS NULL OR s.at < seg.valid_to) "
        "WHERE seg.batch_id = ? AND seg.share < 0.999 ORDER BY s.at DESC LIMIT 1", [batch_id]
    ).fetchall()
    print()
    if sale:
        print(render_sale(trace.trace_sale(con, *sale[0])))
        print()
    report = trace.recall_report(con, batch_id)
    print(render_batch(report))
    (directory / "recall.csv").write_text(recall_csv(report), encoding="utf-8")
    (directory / "recall.json").write_text(json.dumps(report, ensure_ascii=False, indent=2,
                                                      default=str), encoding="utf-8")  # fmt: skip


def _show_anomalies(con: Any) -> None:
    from warehouse.anomalies import counts_by_rule, list_anomalies

    counts: dict[str, int] = {}
    for row in counts_by_rule(con):
        counts[row["rule"]] = counts.get(row["rule"], 0) + row["anomalies"]
    print("\nanomalies found (active), by rule:")
    for rule, n in sorted(counts.items()):
        print(f"  {rule:<28}{n:>6}")
    for row in list_anomalies(con, limit=3):
        print(f"  e.g. {row['anomaly_id']} [{row['severity']}] {row['summary']}")


def _show_detection(con: Any, incidents: list[Any]) -> None:
    """How many of the injected incidents the rules found: the ground truth, scored."""
    from simulator.scoring import score
    from warehouse.anomalies import AnomalyFilter, list_anomalies

    scored = score(list_anomalies(con, AnomalyFilter()), incidents)
    total = scored.total
    print(f"\ninjected wrongdoing found: {total.true_positives} of {total.incidents} "
          f"expected findings ({total.false_positives} findings matched no incident)")
    for kind, k in sorted(scored.by_kind.items()):
        note = f", {k.partly_detected} partly" if k.partly_detected else ""
        if k.undetectable:
            note += f", {k.undetectable} too short to leave a signature yet"
        print(f"  {kind:<26}{k.detected:>3} of {k.incidents} found{note}")


def _demo_tokens(db: Path, records: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    """One token per role for the demo: (who, token). A real deployment makes its own
    with `fueltrace token create`."""
    from datetime import UTC, datetime

    from warehouse.access import create_token
    from warehouse.connection import connect

    facilities = records["facility"]
    station = next(f for f in facilities if f["kind"] == "station")
    depot = next((f for f in facilities if f["kind"] == "depot"), None)
    wanted = [("admin", None), ("provincial_regulator", None),
              ("city_regulator", station["city"]), ("station", station["facility_id"])]
    if depot is not None:
        wanted.append(("depot", depot["facility_id"]))
    con = connect(db)
    try:
        made = []
        for role, scope in wanted:
            token, _ = create_token(con, role=role, scope=scope, label=f"demo {role}",
                                    created_by="demo", now=datetime.now(UTC))  # fmt: skip
            made.append((role + (f" ({scope})" if scope else ""), token))
        return made
    finally:
        con.close()


def _serve(settings: Settings, records: dict[str, list[dict[str, Any]]], port: int | None,
           started: float) -> int:  # fmt: skip
    from fueltrace.api.serve import serve

    tokens = _demo_tokens(settings.db, records)
    host = settings.http_host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{settings.http_port if port is None else port}"
    print("\nThe HTTP service (demo tokens, one per role; send as `Authorization: Bearer …`)")
    for who, token in tokens:
        print(f"  {who:<32} {token}")
    print(f"""  try          curl -H "Authorization: Bearer {tokens[1][1]}" {url}/api/v1/anomalies
  web page     {url}/      API docs {url}/docs      metrics {url}/metrics
  While it serves, the warehouse belongs to it: use the API (the CLI commands wait).""")
    _say("serving (Ctrl-C stops)", started)
    return serve(settings, port=port)


def run_demo(settings: Settings, *, stations: int = 24, depots: int = 3, days: float = 2.0,
             seed: int = 7, serve: bool = False, port: int | None = None) -> int:  # fmt: skip
    from fueltrace.analyses import run_analyses
    from ingest.consumer import Ingest
    from warehouse.connection import connect
    from warehouse.queries import print_summary

    started = time.monotonic()
    state = settings.state_dir
    directory = state / "demo"
    directory.mkdir(parents=True, exist_ok=True)
    db = state / "demo.duckdb"
    for stale in (db, db.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    with ExitStack() as stack:
        bootstrap = settings.bootstrap
        if not bootstrap:
            broker = stack.enter_context(EmbeddedBroker(state / "demo-broker"))
            bootstrap = broker.bootstrap
            _say(f"embedded broker (Tansu) started at {bootstrap}", started)
        settings = settings.model_copy(update={"db": db, "bootstrap": bootstrap})
        ensure_topics(settings, bootstrap)
        generated = generate_with_truth(seed=seed, depots=depots, stations=stations,
                                        days=days, scenarios=RandomScenarios(per_kind=1))
        records, incidents = generated.records, generated.incidents
        write_ground_truth(incidents, directory)
        total = sum(len(v) for v in records.values())
        _say(f"simulated {stations} stations and {depots} depots over {days:g} days: "
             f"{total} records, with {len(incidents)} incidents of wrongdoing injected "
             f"({directory}/ground_truth.jsonl says which)", started)  # fmt: skip
        _push_province(settings, bootstrap, directory, started, records)
        _push_trouble(settings, bootstrap, directory, started, records)

        ingest = Ingest(settings, bootstrap, connect(db, memory_limit=settings.db_memory_limit))
        open_ingests = [ingest]

        def close_ingests() -> None:
            for each in open_ingests:
                each.close()

        stack.callback(close_ingests)

        def progress(summary: Any) -> None:
            _say(f"ingest: {summary.records:>6} records in {summary.batches} batches, "
                 f"{sum(summary.loaded.values()):>6} loaded", started)  # fmt: skip

        summary = ingest.run(until_idle=True, on_batch=progress)
        result = run_analyses(ingest.con, settings)
        trace, found = result.traceability, result.anomalies
        _say(f"traceability: lineage of {trace.tanks} tanks, {trace.segments} segments, "
             f"{trace.deliveries} deliveries checked", started)  # fmt: skip
        _say(f"anomalies: {found.raised} raised by {len(found.by_rule)} rules over "
             f"{found.stations} stations", started)  # fmt: skip
        print()
        print_summary(ingest.con, summary)
        _show_traces(ingest.con, directory)
        _show_anomalies(ingest.con)
        _show_detection(ingest.con, incidents)
        ingest.con.close()
        if serve:  # the broker stays up while serving; this consumer leaves the group first
            open_ingests.clear()
            ingest.close()
            _say("done", started)
            return _serve(settings, records, port, started)
    _say("done", started)
    print(f"""
Where to look
  warehouse     {db}   (DuckDB: duckdb {db} "SELECT * FROM sale LIMIT 5")
  dead letters  FUELTRACE_DB={db} fueltrace dead-letters
  anomalies     FUELTRACE_DB={db} fueltrace anomalies   (--json, --city, --rule, --severity)
  JSON lines    {directory}/   (push them again: fueltrace push --type sale {directory}/sale.jsonl)
  trace         FUELTRACE_DB={db} fueltrace trace batch BATCH_ID   (or: trace sale STATION TXN)
  recall        {directory}/recall.csv and recall.json
  a broker to keep: fueltrace broker   (then push, and `fueltrace ingest` serves /metrics)""")
    return 0
