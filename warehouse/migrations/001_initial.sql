-- fueltrace warehouse, schema version 1.
-- Record tables hold every accepted record once (by natural key), in the units of
-- the Avro schemas (litres, °C, kg/m³ at 20 °C, Pa, fen, UTC), plus where it came
-- from (src_partition, src_offset, src_index) and the load that stored it.

CREATE SEQUENCE load_seq START 1;

CREATE TABLE ingest_load (
    load_id BIGINT PRIMARY KEY,
    finished_at TIMESTAMPTZ NOT NULL,
    messages BIGINT NOT NULL,
    records BIGINT NOT NULL,
    loaded BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    conflicts BIGINT NOT NULL,
    dead_letters BIGINT NOT NULL
);

-- Consumed offsets, committed in the same transaction as the rows they produced.
CREATE TABLE ingest_offset (
    topic VARCHAR NOT NULL,
    "partition" INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    load_id BIGINT NOT NULL,
    PRIMARY KEY (topic, "partition")
);

CREATE TABLE dead_letter (
    topic VARCHAR NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    record_index INTEGER NOT NULL,          -- -1: the message as a whole
    record_type VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    field VARCHAR,
    detail VARCHAR NOT NULL,
    message_key VARCHAR,
    load_id BIGINT NOT NULL
);

-- The same natural key seen again with the same content: stored once, counted here.
CREATE TABLE ingest_duplicate (
    record_type VARCHAR NOT NULL,
    natural_key VARCHAR NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    record_index INTEGER NOT NULL,
    load_id BIGINT NOT NULL
);

-- The same natural key with different content: a finding. The first version stays
-- in the record table; the other is kept here whole.
CREATE TABLE key_conflict (
    record_type VARCHAR NOT NULL,
    natural_key VARCHAR NOT NULL,
    fields_differing VARCHAR[] NOT NULL,
    stored_partition INTEGER NOT NULL,
    stored_offset BIGINT NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    record_index INTEGER NOT NULL,
    record JSON NOT NULL,
    load_id BIGINT NOT NULL
);

CREATE TABLE facility_version (
    facility_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    city VARCHAR NOT NULL,
    operator VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    tanks STRUCT(tank_id VARCHAR, product VARCHAR, capacity_l DOUBLE)[] NOT NULL,
    nozzles STRUCT(nozzle_id VARCHAR, dispenser_id VARCHAR, tank_id VARCHAR)[] NOT NULL,
    licences STRUCT(kind VARCHAR, number VARCHAR, valid_from DATE, valid_until DATE,
                    status VARCHAR)[] NOT NULL,
    src_partition INTEGER NOT NULL, src_offset BIGINT NOT NULL, src_index INTEGER NOT NULL,
    load_id BIGINT NOT NULL
);

-- Facility dimensions: the latest updated_at of each facility, rebuilt on load.
CREATE TABLE station (
    station_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, city VARCHAR NOT NULL,
    operator VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE depot (
    depot_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, city VARCHAR NOT NULL,
    operator VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE tank (
    station_id VARCHAR NOT NULL, tank_id VARCHAR NOT NULL, product VARCHAR NOT NULL,
    capacity_l DOUBLE NOT NULL, PRIMARY KEY (station_id, tank_id)
);
CREATE TABLE nozzle (
    station_id VARCHAR NOT NULL, nozzle_id VARCHAR NOT NULL, dispenser_id VARCHAR NOT NULL,
    tank_id VARCHAR NOT NULL, PRIMARY KEY (station_id, nozzle_id)
);
CREATE TABLE licence (
    facility_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, number VARCHAR NOT NULL,
    valid_from DATE NOT NULL, valid_until DATE NOT NULL, status VARCHAR NOT NULL
);

CREATE TABLE dispatch (
    dispatch_id VARCHAR NOT NULL,
    depot_id VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL,
    product VARCHAR NOT NULL,
    station_id VARCHAR NOT NULL,
    vehicle_plate VARCHAR NOT NULL,
    seal_ids VARCHAR[] NOT NULL,
    volume_l DOUBLE NOT NULL,
    temperature_c DOUBLE NOT NULL,
    density_kg_m3 DOUBLE NOT NULL,
    dispatched_at TIMESTAMPTZ NOT NULL,
    src_partition INTEGER NOT NULL, src_offset BIGINT NOT NULL, src_index INTEGER NOT NULL,
    load_id BIGINT NOT NULL
);

CREATE TABLE delivery (
    delivery_id VARCHAR NOT NULL,
    station_id VARCHAR NOT NULL,
    tank_id VARCHAR NOT NULL,
    dispatch_id VARCHAR,
    product VARCHAR NOT NULL,
    vehicle_plate VARCHAR NOT NULL,
    seal_ids VARCHAR[] NOT NULL,
    seals_intact BOOLEAN NOT NULL,
    volume_l DOUBLE NOT NULL,
    temperature_c DOUBLE NOT NULL,
    density_kg_m3 DOUBLE NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ NOT NULL,
    src_partition INTEGER NOT NULL, src_offset BIGINT NOT NULL, src_index INTEGER NOT NULL,
    load_id BIGINT NOT NULL
);

CREATE TABLE tank_reading (
    station_id VARCHAR NOT NULL,
    tank_id VARCHAR NOT NULL,
    product VARCHAR NOT NULL,
    read_at TIMESTAMPTZ NOT NULL,
    level_mm DOUBLE NOT NULL,
    volume_l DOUBLE NOT NULL,
    water_mm DOUBLE NOT NULL,
    temperature_c DOUBLE NOT NULL,
    src_partition INTEGER NOT NULL, src_offset BIGINT NOT NULL, src_index INTEGER NOT NULL,
    load_id BIGINT NOT NULL
);

CREATE TABLE sale (
    txn_id VARCHAR NOT NULL,
    station_id VARCHAR NOT NULL,
    dispenser_id VARCHAR NOT NULL,
    nozzle_id VARCHAR NOT NULL,
    product VARCHAR NOT NULL,
    volume_l DOUBLE NOT NULL,
    unit_price_fen BIGINT NOT NULL,
    amount_fen BIGINT NOT NULL,
    totalizer_start_l DOUBLE NOT NULL,
    totalizer_end_l DOUBLE NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ NOT NULL,
    invoice_id VARCHAR,
    src_partition INTEGER NOT NULL, src_offset BIGINT NOT NULL, src_index INTEGER NOT NULL,
    load_id BIGINT NOT NULL
);

CREATE TABLE vapor (
    station_id VARCHAR NOT NULL,
    nozzle_id VARCHAR NOT NULL,
    measured_at TIMESTAMPTZ NOT NULL,
    al_ratio DOUBLE NOT NULL,
    pressure_pa DOUBLE NOT NULL,
    src_partition INTEGER NOT NULL, src_offset BIGINT NOT NULL, src_index INTEGER NOT NULL,
    load_id BIGINT NOT NULL
);

CREATE TABLE device_status (
    station_id VARCHAR NOT NULL,
    device_id VARCHAR NOT NULL,
    device_kind VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    "at" TIMESTAMPTZ NOT NULL,
    src_partition INTEGER NOT NULL, src_offset BIGINT NOT NULL, src_index INTEGER NOT NULL,
    load_id BIGINT NOT NULL
);
