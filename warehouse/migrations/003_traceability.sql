-- Schema version 3: traceability. Every volume also at 20 °C (GB/T 1885), the
-- checks of each delivery against its dispatch and against the tank gauge, and the
-- lineage of each tank as the composition of its contents between events.

-- Observed values stay as they were; these are their standard volumes at 20 °C,
-- computed on ingest from the record's own temperature and density.
ALTER TABLE dispatch ADD COLUMN volume_20_l DOUBLE;
ALTER TABLE delivery ADD COLUMN volume_20_l DOUBLE;

-- Tank readings and sales at 20 °C. Their density is the tank's mix (from the
-- lineage), a sale's temperature the tank gauge's at that moment; both are
-- recomputed with the lineage when late data changes them.
CREATE TABLE reading_std (
    station_id VARCHAR NOT NULL, tank_id VARCHAR NOT NULL, read_at TIMESTAMPTZ NOT NULL,
    density_kg_m3 DOUBLE NOT NULL, volume_20_l DOUBLE NOT NULL
);
CREATE TABLE sale_std (
    station_id VARCHAR NOT NULL, txn_id VARCHAR NOT NULL, tank_id VARCHAR NOT NULL,
    "at" TIMESTAMPTZ NOT NULL,             -- ended_at: when the litres left the tank
    temperature_c DOUBLE, density_kg_m3 DOUBLE NOT NULL,
    volume_l DOUBLE NOT NULL, volume_20_l DOUBLE NOT NULL
);

-- A tank's composition between consecutive events that change it (a delivery, a
-- true-up to the gauge). Sales draw every batch in proportion, so the shares hold
-- for the whole segment and tracing a sale is one lookup. litres_20 is each
-- batch's quantity at valid_from.
CREATE TABLE tank_segment (
    station_id VARCHAR NOT NULL, tank_id VARCHAR NOT NULL,
    valid_from TIMESTAMPTZ NOT NULL, valid_to TIMESTAMPTZ,   -- NULL: still current
    batch_id VARCHAR NOT NULL, share DOUBLE NOT NULL, litres_20 DOUBLE NOT NULL,
    density_kg_m3 DOUBLE NOT NULL
);

-- Gains and losses found when the book composition is trued up to the gauge
-- (before each delivery), allocated to the batches in proportion. Negative: loss.
CREATE TABLE batch_variance (
    station_id VARCHAR NOT NULL, tank_id VARCHAR NOT NULL, "at" TIMESTAMPTZ NOT NULL,
    batch_id VARCHAR NOT NULL, litres_20 DOUBLE NOT NULL
);

-- Deliveries into tanks: which batch each brought (via its dispatch; an
-- untraced pseudo-batch when it has none).
CREATE TABLE delivery_batch (
    delivery_id VARCHAR PRIMARY KEY, station_id VARCHAR NOT NULL, tank_id VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL, "at" TIMESTAMPTZ NOT NULL, litres_20 DOUBLE NOT NULL,
    density_kg_m3 DOUBLE NOT NULL
);

-- Each delivery checked against its dispatch (NULL columns: no dispatch found).
CREATE TABLE delivery_check (
    delivery_id VARCHAR PRIMARY KEY, dispatch_id VARCHAR, station_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL,          -- matched | mismatch | no_dispatch | unknown_dispatch
    mismatches VARCHAR[] NOT NULL,    -- station, product, vehicle, seals, seals_broken, volume, density
    dispatched_20_l DOUBLE, received_20_l DOUBLE NOT NULL, difference_20_l DOUBLE,
    difference_pct DOUBLE, density_dispatched DOUBLE, density_received DOUBLE NOT NULL,
    gauge_rise_20_l DOUBLE,           -- level change + sales during unloading, at 20 °C
    gauge_difference_20_l DOUBLE,     -- declared − gauge rise
    gauge_status VARCHAR NOT NULL     -- ok | mismatch | no_readings
);

-- Dispatches no delivery claims (yet): open ends for the anomaly rules.
CREATE TABLE open_dispatch (
    dispatch_id VARCHAR PRIMARY KEY, depot_id VARCHAR NOT NULL, station_id VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL, dispatched_at TIMESTAMPTZ NOT NULL, volume_20_l DOUBLE NOT NULL,
    overdue BOOLEAN NOT NULL
);

-- Up to which load the analyses have looked, per job.
CREATE TABLE analysis_watermark (job VARCHAR PRIMARY KEY, load_id BIGINT NOT NULL);
