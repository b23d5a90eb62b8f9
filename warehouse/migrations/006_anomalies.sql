-- Schema version 6: anomalies. What the rules find now (`anomaly`, one row per finding,
-- its id deterministic from rule, station, subject and window start, so a rerun finds
-- the same row), and how each finding came and went (`anomaly_history`, append-only:
-- raised, updated when late data changes its evidence, resolved when it no longer holds,
-- raised again). The case workflow of the people who act on them is kept elsewhere.

CREATE TABLE anomaly (
    anomaly_id VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,            -- critical | high | medium | low
    station_id VARCHAR NOT NULL,
    depot_id VARCHAR,                     -- when a depot is involved (a dispatch's sender)
    city VARCHAR,
    subject VARCHAR,                      -- tank, nozzle, dispatch, delivery, device, licence…
    window_start TIMESTAMPTZ NOT NULL,
    window_end TIMESTAMPTZ NOT NULL,
    evidence JSON NOT NULL,               -- numbers with units: the finding's facts
    summary VARCHAR NOT NULL,             -- text rendered from the evidence
    state VARCHAR NOT NULL,               -- active | resolved (as the rules see the data now)
    first_seen_at TIMESTAMPTZ NOT NULL,   -- analysis clock when first raised
    updated_at TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ
);

CREATE TABLE anomaly_history (
    anomaly_id VARCHAR NOT NULL,
    "at" TIMESTAMPTZ NOT NULL,            -- analysis clock
    change VARCHAR NOT NULL,              -- raised | updated | resolved | reraised
    severity VARCHAR NOT NULL,
    evidence JSON NOT NULL,
    summary VARCHAR NOT NULL,
    run_id BIGINT NOT NULL
);

CREATE SEQUENCE analysis_run_seq START 1;

-- Each run of the anomaly engine: its clock (what "now" meant for rules that depend on
-- elapsed time), how long it took and what it changed.
CREATE TABLE analysis_run (
    run_id BIGINT NOT NULL,
    clock TIMESTAMPTZ NOT NULL,
    load_id BIGINT NOT NULL,              -- loads up to this one were analysed
    duration_s DOUBLE NOT NULL,
    stations INTEGER NOT NULL,            -- stations in scope (touched by new data)
    raised INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    resolved INTEGER NOT NULL
);
