"""`fueltrace serve`: the ingest, the analyses, the API, the web page and /metrics in one
process.

One DuckDB connection, and cursors of it: the pipeline (:mod:`fueltrace.pipeline`)
consumes and loads (its loader thread, strictly in turn) and, beside it in a thread of
its own, brings the analyses up to date at most every ``FUELTRACE_ANALYSIS_INTERVAL_S``
(they refresh the warehouse gauges, open and reopen cases and forget old gateway
receipts). HTTP requests read and write through cursors of it (:mod:`fueltrace.api.db`).

A broker that goes away pauses the ingest (``fueltrace_up`` for ``broker`` and
``ingest`` 0, ``/readyz`` 503, retries with back-off: :mod:`fueltrace.pipeline`) while
the API keeps answering from the warehouse. An error retrying cannot fix stops the
process, exit code 2. SIGINT or SIGTERM: the server stops taking requests, the batch
being collected is loaded, everything closes, exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

import uvicorn

from fueltrace.api.app import create_app
from fueltrace.errors import TransientError
from fueltrace.pipeline import Pipeline, accepts_connections
from fueltrace.settings import Settings
from ingest.consumer import open_ingest
from ingest.kafka_client import producer as make_producer
from ingest.kafka_client import resolve_bootstrap
from ingest.topics import ensure_topics

log = logging.getLogger(__name__)


def serve(settings: Settings, host: str | None = None, port: int | None = None, *,
          announce: Callable[[str], None] = print) -> int:  # fmt: skip
    """Run everything until SIGINT/SIGTERM; the exit code."""
    host = host or settings.http_host
    port = settings.http_port if port is None else port
    bootstrap = resolve_bootstrap(settings)
    ensure_topics(settings, bootstrap)
    ingest = open_ingest(settings, bootstrap)
    stop = threading.Event()
    producer = None
    server: uvicorn.Server | None = None

    def fatal() -> None:
        stop.set()
        if server is not None:
            server.should_exit = True

    pipeline = Pipeline(settings, ingest, stop, fatal, daemon=True)
    try:
        producer = make_producer(settings, bootstrap, linger_ms=0)
        app = create_app(settings, ingest.con, producer=producer, bootstrap=bootstrap,
                         checks={"broker": lambda: accepts_connections(bootstrap),
                                 "ingest": pipeline.healthy})  # fmt: skip
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                timeout_graceful_shutdown=10, server_header=False)  # fmt: skip
        server = uvicorn.Server(config)
        for sig in (signal.SIGINT, signal.SIGTERM):  # uvicorn restores and re-raises these
            signal.signal(sig, lambda *_: stop.set())
        pipeline.start()
        threading.Thread(target=_announce, args=(server, host, announce), daemon=True).start()
        server.run()
    finally:
        stop.set()
        if pipeline.is_alive():
            pipeline.join(timeout=settings.broker_timeout_s + 30)
        if producer is not None:
            producer.close(timeout=settings.broker_timeout_s)
        ingest.close()
        ingest.con.close()
    if pipeline.failed is not None:
        return 75 if isinstance(pipeline.failed, TransientError) else 2
    return 0


def _announce(server: uvicorn.Server, host: str, announce: Callable[[str], None]) -> None:
    """Say where the service is once it listens (the real port, if 0 was asked for)."""
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if not server.started:
        return
    port = server.servers[0].sockets[0].getsockname()[1] if server.servers else 0
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    announce(f"serving at http://{shown}:{port}/  (API docs /docs, OpenAPI /openapi.json, "
             "/metrics, /healthz, /readyz); Ctrl-C stops")  # fmt: skip
