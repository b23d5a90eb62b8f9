"""The ``fueltrace`` command line. Each sub-command is a thin call into the packages."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fueltrace import logs
from fueltrace.errors import FuelTraceError
from fueltrace.settings import Settings, load_settings

COMMANDS: dict[str, str] = {
    "demo": "Start the embedded broker, simulate a province, push, ingest, report.",
    "broker": "Run the embedded Kafka-protocol broker (Tansu) in the foreground.",
    "topics": "Create the SPEC's topics that are missing on the broker.",
    "push": "Send a JSON-lines file of one record type to Kafka.",
    "ingest": "Consume the record topics into the warehouse.",
    "dead-letters": "List dead-lettered messages and records recorded in the warehouse.",
    "settings": "Print every setting, its value and what it is for.",
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

    result = push_file(settings, resolve_bootstrap(settings), args.type, Path(args.file),
                       batch=args.batch)  # fmt: skip
    for error in result.errors:
        print(error, file=sys.stderr)
    print(f"{result.sent} records sent in {result.messages} messages; "
          f"{len(result.errors)} lines rejected")  # fmt: skip
    return 1 if result.errors else 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
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
        summary = ingest.run(until_idle=args.until_idle, should_stop=stop.is_set)
        print_summary(ingest.con, summary)
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


def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    for name, info in Settings.model_fields.items():
        print(f"FUELTRACE_{name.upper()}={getattr(settings, name)}\n    {info.description}")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from fueltrace.demo import run_demo

    return run_demo(settings, stations=args.stations, depots=args.depots, days=args.days,
                    seed=args.seed)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fueltrace",
        description="Ingest and trace a province's fuel: depot batch → tanker → tank → sale. "
        "Settings come from FUELTRACE_* environment variables (see `fueltrace settings`).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("demo", help=COMMANDS["demo"], description=COMMANDS["demo"])
    p.add_argument("--stations", type=int, default=24, help="stations to simulate (24)")
    p.add_argument("--depots", type=int, default=3, help="depots to simulate (3)")
    p.add_argument("--days", type=float, default=2.0, help="days of data (2)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
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
    sub.add_parser("settings", help=COMMANDS["settings"], description=COMMANDS["settings"])
    return parser


HANDLERS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "broker": cmd_broker,
    "topics": cmd_topics,
    "push": cmd_push,
    "ingest": cmd_ingest,
    "dead-letters": cmd_dead_letters,
    "settings": cmd_settings,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.verbose)
    try:
        return HANDLERS[args.command](load_settings(), args)
    except FuelTraceError as exc:
        kind = "transient" if exc.transient else "error"
        print(f"fueltrace {args.command}: {kind}: {exc}", file=sys.stderr)
        return 75 if exc.transient else 2  # EX_TEMPFAIL lets a supervisor retry


def run() -> Any:  # pragma: no cover - the console script
    sys.exit(main())
