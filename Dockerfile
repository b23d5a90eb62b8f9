# The pipeline image: `fueltrace ingest` against FUELTRACE_BOOTSTRAP (real Kafka).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY fueltrace fueltrace
COPY schemas schemas
COPY ingest ingest
COPY processors processors
COPY warehouse warehouse
COPY simulator simulator
RUN pip install --no-cache-dir -c constraints.txt .
ENV FUELTRACE_DB=/data/fueltrace.duckdb \
    FUELTRACE_STATE_DIR=/data \
    FUELTRACE_SESSION_TIMEOUT_MS=10000 \
    FUELTRACE_HEARTBEAT_INTERVAL_MS=3000 \
    FUELTRACE_LOG_LEVEL=INFO
VOLUME /data
EXPOSE 9308
ENTRYPOINT ["fueltrace"]
CMD ["ingest"]
