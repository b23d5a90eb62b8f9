"""The ``fueltrace`` command line. Each sub-command is a thin call into the packages."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fueltrace import logs
from fueltrace.bad_settings import settings_problems
from fueltrace.errors import FuelTraceError, UsageError
from fueltrace.settings import Settings, load_settings

COMMANDS: dict[str, str] = {
    "demo": "Start the embedded broker, simulate a province, push, ingest, report.",
    "broker": "Run the embedded Kafka-protocol broker (Tansu) in the foreground.",
    "topics": "Create the SPEC's topics that are missing on the broker.",
    "push": "Send a JSON-lines file of one record type to Kafka.",
    "ingest": "Consume the record topics into the warehouse.",
    "dead-letters": "List dead-lettered messages and records recorded in the warehouse.",
    "anomalies": "List the anomalies the rules found (filters; a table or JSON lines).",
    "trace": "Trace a sale back to its depot batches, a batch forward, or a delivery.",
    "recall": "Recall report for a batch: tanks to seal, stations, sales (CSV or JSON).",
    "settings": "Print every setting, its value and what it is for.",
    "serve": "Run ingest, analyses, the regulator API, the gateway, the web page and /metrics.",
    "token": "Create, revoke or list the HTTP service's access tokens.",
}


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_broker(settings: Settings, args: argparse.Namespace) -> int:
    from ingest.embedded_broker import EmbeddedBroker, running_address
    from ingest.topics import ensure_topics

    existing = running_address(settings.state_dir)
    if existing:
        print(f"an embedded broker already runs at {existing}", file=sys.stderr)
        return 1
    stop = _stop_on_signals()
    with EmbeddedBroker(settings.state_dir, port=args.port) as broker:
        ensure_topics(settings, broker.bootstrap)
        print(f"embedded broker at {broker.bootstrap} (address in {settings.state_dir}/broker.json)"
              "; Ctrl-C stops it", flush=True)  # fmt: skip
        while not stop.wait(0.5):
            if broker.process is None or broker.process.poll() is not None:
                print("the broker process exited; see broker.log", file=sys.stderr)
                return 1
    return 0


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    from ingest.kafka_client import resolve_bootstrap
    from ingest.topics import all_topics, ensure_topics

    created = ensure_topics(settings, resolve_bootstrap(settings))
    for topic in all_topics(settings):
        print(f"{topic}\t{'created' if topic in created else 'exists'}")
    return 0


def cmd_push(settings: Settings, args: argparse.Namespace) -> int:
    from ingest.kafka_client import resolve_bootstrap
    from ingest.push import push_file

    result = push_file(settings, lambda: resolve_bootstrap(settings), args.type,
                       Path(args.file), batch=args.batch)  # fmt: skip
    for error in result.errors:
        print(error, file=sys.stderr)
    refused = ("the file was refused" if any(e.where.line is None for e in result.errors)
               else f"{len(result.errors)} lines rejected")  # fmt: skip
    print(f"{result.sent} records sent in {result.messages} messages; {refused}")
    return 1 if result.errors else 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from fueltrace.analyses import run_analyses
    from fueltrace.pipeline import Pipeline
    from ingest.consumer import open_ingest
    from ingest.kafka_client import resolve_bootstrap
    from ingest.topics import ensure_topics
    from warehouse.queries import print_summary

    bootstrap = resolve_bootstrap(settings)
    ensure_topics(settings, bootstrap)
    stop = _stop_on_signals()
    if not args.until_idle and settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port)
        print(f"metrics at http://127.0.0.1:{settings.metrics_port}/metrics", flush=True)
    ingest = open_ingest(settings, bootstrap)
    try:
        if args.until_idle:
            summary = ingest.run(until_idle=True, should_stop=stop.is_set)
        else:  # in the foreground, as serve runs it: analyses, and a broker that goes away
            running = Pipeline(settings, ingest, stop, stop.set)
            running.run()
            if running.failed is not None:
                raise running.failed
            summary = ingest.summary
        result = run_analyses(ingest.con, settings)
        print_summary(ingest.con, summary)
        trace, found = result.traceability, result.anomalies
        print(f"traceability: {trace.tanks} tanks' lineage recomputed, "
              f"{trace.deliveries} deliveries checked")
        print(f"anomalies: {found.raised} raised, {found.updated} updated, "
              f"{found.resolved} resolved over {found.stations} stations "
              f"(`fueltrace anomalies` lists them)")
    finally:
        ingest.close()
    return 0


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from warehouse.connection import connect
    from warehouse.queries import dead_letters

    rows = dead_letters(connect(settings.db, read_only=True), reason=args.reason, limit=args.limit)
    for row in rows:
        if args.json:
            print(json.dumps(row, default=str, ensure_ascii=False))
        else:
            where = f"{row['topic']}[{row['partition']}]@{row['offset']}"
            if row["record_index"] >= 0:
                where += f" record {row['record_index']}"
            print(f"{where}\t{row['reason']}\t{row['field'] or '-'}\t{row['detail']}")
    return 0


def _when(text: str | None) -> datetime | None:
    """An ISO-8601 date or time from the command line; a date means its UTC midnight."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"not an ISO-8601 date or time: {text!r} "
                         "(e.g. 2026-11-20 or 2026-11-20T08:00:00+08:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_anomalies(settings: Settings, args: argparse.Namespace) -> int:
    from processors.rules import BY_NAME
    from warehouse.anomalies import AnomalyFilter, list_anomalies
    from warehouse.connection import connect

    if args.rule is not None and args.rule not in BY_NAME:
        raise UsageError(f"unknown rule {args.rule!r}; rules: {', '.join(sorted(BY_NAME))}")
    flt = AnomalyFilter(city=args.city, rule=args.rule, severity=args.severity,
                        station_id=args.station, since=_when(args.since),
                        until=_when(args.until), include_resolved=args.all)  # fmt: skip
    rows = list_anomalies(connect(settings.db, read_only=True), flt, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, default=str))
        return 0
    if not rows:
        print("no anomalies match", file=sys.stderr)
    for row in rows:
        where = row["station_id"] + (f"/{row['subject']}" if row["subject"] else "")
        window = f"{row['window_start'][:16]} → {row['window_end'][:16]}"
        state = "  [resolved]" if row["state"] == "resolved" else ""
        print(f"{row['anomaly_id']}  {row['severity']:<8} {row['rule']:<26} "
              f"{row['city'] or '-':<9} {where:<22} {window}{state}\n    {row['summary']}")
    return 0


def _print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def cmd_trace(settings: Settings, args: argparse.Namespace) -> int:
    from warehouse import trace
    from warehouse.connection import connect

    con = connect(settings.db, read_only=True)
    if args.what == "sale":
        result = trace.trace_sale(con, args.station_id, args.txn_id)
    elif args.what == "batch":
        result = trace.trace_batch(con, args.batch_id)
    else:
        result = trace.trace_delivery(con, args.delivery_id)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        print(render_trace(args.what, result))
    return 0


def cmd_recall(settings: Settings, args: argparse.Namespace) -> int:
    from warehouse import trace
    from warehouse.connection import connect
    from warehouse.reports import recall_csv

    report = trace.recall_report(connect(settings.db, read_only=True), args.batch_id)
    text = (json.dumps(report, ensure_ascii=False, indent=2, default=str)
            if args.format == "json" else recall_csv(report, sales=args.sales))  # fmt: skip
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"recall report for {args.batch_id} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def render_trace(what: str, result: dict[str, Any]) -> str:
    from warehouse.reports import render_batch, render_delivery, render_sale

    return {"sale": render_sale, "batch": render_batch, "delivery": render_delivery}[what](result)


def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    for name, info in Settings.model_fields.items():
        print(f"FUELTRACE_{name.upper()}={getattr(settings, name)}\n    {info.description}")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from fueltrace.demo import run_demo

    return run_demo(settings, stations=args.stations, depots=args.depots, days=args.days,
                    seed=args.seed, serve=not args.no_serve, port=args.port)  # fmt: skip


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from fueltrace.api.serve import serve

    return serve(settings, host=args.host, port=args.port)


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from fueltrace.errors import WarehouseBusy
    from warehouse import access
    from warehouse.connection import connect

    try:
        con = connect(settings.db)
    except WarehouseBusy as exc:
        raise WarehouseBusy(f"{exc.message}. While `fueltrace serve` runs, manage tokens "
                            "through its admin API (POST/GET /api/v1/tokens, "
                            "DELETE /api/v1/tokens/ID)") from exc  # fmt: skip
    try:
        now = datetime.now(UTC)
        if args.action == "create":
            token, row = access.create_token(con, role=args.role, scope=args.scope,
                                             label=args.label, created_by="cli",
                                             now=now, expires_at=_when(args.expires))  # fmt: skip
            print(token)
            print(f"token {row['token_id']}: {row['role']}"
                  + (f" of {row['scope']}" if row["scope"] else "") + f", for {row['label']}. "
                  "Shown once: only its hash is kept.", file=sys.stderr)  # fmt: skip
        elif args.action == "revoke":
            row = access.revoke_token(con, args.token_id, by="cli", now=now)
            print(f"token {row['token_id']} revoked at {row['revoked_at']}")
        else:
            for row in access.list_tokens(con, include_revoked=args.all):
                if args.json:
                    print(json.dumps(row, ensure_ascii=False))
                else:
                    state = f"revoked {row['revoked_at'][:16]}" if row["revoked_at"] else "active"
                    print(f"{row['token_id']}  {row['role']:<21} {row['scope'] or '-':<16} "
                          f"{state:<24} {row['label']}")
    finally:
        con.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fueltrace",
        description="Ingest and trace a province's fuel: depot batch → tanker → tank → sale. "
        "Settings come from FUELTRACE_* environment variables (see `fueltrace settings`).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-json", action="store_true",
                        help="log JSON lines instead of key=value text (FUELTRACE_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("demo", help=COMMANDS["demo"], description=COMMANDS["demo"])
    p.add_argument("--stations", type=int, default=24, help="stations to simulate (24)")
    p.add_argument("--depots", type=int, default=3, help="depots to simulate (3)")
    p.add_argument("--days", type=float, default=2.0, help="days of data (2)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument("--no-serve", action="store_true",
                   help="stop after the report instead of serving the API and web page")
    p.add_argument("--port", type=int, default=None,
                   help="port to serve on (default FUELTRACE_HTTP_PORT)")  # fmt: skip
    p = sub.add_parser("broker", help=COMMANDS["broker"], description=COMMANDS["broker"])
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    sub.add_parser("topics", help=COMMANDS["topics"], description=COMMANDS["topics"])
    p = sub.add_parser("push", help=COMMANDS["push"], description=COMMANDS["push"])
    p.add_argument("--type", required=True, help="record type: facility, dispatch, delivery, "
                   "tank_reading, sale, vapor, device_status")  # fmt: skip
    p.add_argument("--batch", type=int, default=1,
                   help="records per message; > 1 sends Avro container files (1)")  # fmt: skip
    p.add_argument("file", help="JSON lines, one record per line")
    p = sub.add_parser("ingest", help=COMMANDS["ingest"], description=COMMANDS["ingest"])
    p.add_argument("--until-idle", action="store_true",
                   help="stop once everything available is loaded, print a summary")  # fmt: skip
    p = sub.add_parser("dead-letters", help=COMMANDS["dead-letters"],
                       description=COMMANDS["dead-letters"])  # fmt: skip
    p.add_argument("--reason", help="only this reason")
    p.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p = sub.add_parser("anomalies", help=COMMANDS["anomalies"], description=COMMANDS["anomalies"])
    p.add_argument("--city", help="only this city (e.g. Dalian)")
    p.add_argument("--rule", help="only this rule (e.g. totalizer_gap)")
    p.add_argument("--severity", choices=("critical", "high", "medium", "low"))
    p.add_argument("--station", help="only this station id")
    p.add_argument("--since", help="windows ending at or after this ISO-8601 date/time")
    p.add_argument("--until", help="windows starting before this ISO-8601 date/time")
    p.add_argument("--all", action="store_true", help="also those resolved by later data")
    p.add_argument("--limit", type=int, default=None, help="at most this many")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p = sub.add_parser("trace", help=COMMANDS["trace"], description=COMMANDS["trace"])
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    q = what.add_parser("sale", help="backward: the batches a sale's litres came from")
    q.add_argument("station_id")
    q.add_argument("txn_id")
    q.add_argument("--json", action="store_true", help="JSON instead of a table")
    q = what.add_parser("batch", help="forward: every tank and sale holding part of a batch")
    q.add_argument("batch_id")
    q.add_argument("--json", action="store_true", help="JSON instead of a table")
    q = what.add_parser("delivery", help="a delivery, its batch and its checks")
    q.add_argument("delivery_id")
    q.add_argument("--json", action="store_true", help="JSON instead of a table")
    p = sub.add_parser("recall", help=COMMANDS["recall"], description=COMMANDS["recall"])
    p.add_argument("batch_id")
    p.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default)")
    p.add_argument("--sales", action="store_true", help="CSV: one row per sale, not per tank")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    sub.add_parser("settings", help=COMMANDS["settings"], description=COMMANDS["settings"])
    p = sub.add_parser("serve", help=COMMANDS["serve"], description=COMMANDS["serve"])
    p.add_argument("--host", default=None, help="address (default FUELTRACE_HTTP_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (default FUELTRACE_HTTP_PORT)")
    p = sub.add_parser("token", help=COMMANDS["token"], description=COMMANDS["token"]
                       + " They are kept in the warehouse, hashed; stop `fueltrace serve` "
                       "first or use its admin API.")  # fmt: skip
    action = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = action.add_parser("create", help="a new token, printed once")
    q.add_argument("--role", required=True, choices=("station", "depot", "city_regulator",
                                                     "provincial_regulator", "admin"))
    q.add_argument("--scope", help="station_id (station), depot_id (depot), city "
                   "(city_regulator); none for the others")  # fmt: skip
    q.add_argument("--label", required=True, help="who holds it")
    q.add_argument("--expires", help="ISO-8601 expiry (default: until revoked)")
    q = action.add_parser("revoke", help="revoke a token by its id")
    q.add_argument("token_id")
    q = action.add_parser("list", help="the tokens (never their secrets)")
    q.add_argument("--all", action="store_true", help="also revoked ones")
    q.add_argument("--json", action="store_true", help="JSON lines")
    return parser


HANDLERS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "broker": cmd_broker,
    "topics": cmd_topics,
    "push": cmd_push,
    "ingest": cmd_ingest,
    "dead-letters": cmd_dead_letters,
    "anomalies": cmd_anomalies,
    "settings": cmd_settings,
    "trace": cmd_trace,
    "recall": cmd_recall,
    "serve": cmd_serve,
    "token": cmd_token,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.verbose, json_format=True if args.log_json else None)
    try:
        settings = load_settings()
    except ValueError as exc:  # a setting that makes no sense: nothing is started
        for problem in settings_problems(exc):
            print(f"fueltrace {args.command}: error: {problem}", file=sys.stderr)
        print("Fix or unset it; the README's Settings section describes each one.",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        return HANDLERS[args.command](settings, args)
    except FuelTraceError as exc:
        kind = "transient" if exc.transient else "error"
        print(f"fueltrace {args.command}: {kind}: {exc}", file=sys.stderr)
        return 75 if exc.transient else 2  # EX_TEMPFAIL lets a supervisor retry
    except OSError as exc:  # a file named on the command line (recall -o, …)
        if exc.filename is None:
            raise
        print(f"fueltrace {args.command}: error: {exc.filename}: {exc.strerror}",
              file=sys.stderr)  # fmt: skip
        return 2


def run() -> Any:  # pragma: no cover - the console script
    sys.exit(main())
