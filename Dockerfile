# The pipeline image: `fueltrace serve` (ingest, analyses, API, web page, /metrics)
# against FUELTRACE_BOOTSTRAP (Apache Kafka), its warehouse on the /data volume.
# Linted in CI by hadolint (tests/ops/test_dockerfile.py); built by docker-compose.yml.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/fueltrace
# the pinned dependency tree first, so a source change does not reinstall it
COPY pyproject.toml constraints.txt README.md ./
COPY fueltrace fueltrace
COPY schemas schemas
COPY ingest ingest
COPY processors processors
COPY warehouse warehouse
COPY simulator simulator
RUN /opt/fueltrace/bin/pip install -c constraints.txt .

FROM python:3.11.13-slim-bookworm
RUN groupadd --system --gid 10001 fueltrace \
    && useradd --system --uid 10001 --gid fueltrace --home-dir /data --no-create-home fueltrace \
    && mkdir /data \
    && chown fueltrace:fueltrace /data
COPY --from=build /opt/fueltrace /opt/fueltrace
ENV PATH=/opt/fueltrace/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FUELTRACE_DB=/data/fueltrace.duckdb \
    FUELTRACE_STATE_DIR=/data \
    FUELTRACE_HTTP_HOST=0.0.0.0 \
    FUELTRACE_HTTP_PORT=8080 \
    FUELTRACE_SESSION_TIMEOUT_MS=10000 \
    FUELTRACE_HEARTBEAT_INTERVAL_MS=3000 \
    FUELTRACE_LOG_LEVEL=INFO \
    FUELTRACE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('FUELTRACE_HTTP_PORT', '8080') + '/healthz', timeout=4)"]
ENTRYPOINT ["fueltrace"]
CMD ["serve"]
