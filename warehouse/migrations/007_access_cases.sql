-- Schema version 7: the HTTP service. Who may call it (`api_token`), what the station
-- gateway already answered (`gateway_upload`, for idempotent retries), and what people
-- did about each anomaly: its cases (`anomaly_case`) and the append-only audit trail of
-- every action on them (`case_event`). Findings themselves stay in `anomaly` (006): a
-- case is the regulator's work on a finding, not the finding.

-- A bearer token is "ft_<token_id>_<secret>": the id finds the row, the secret (256
-- random bits) is stored only as sha256(salt || secret) and compared in constant time.
CREATE TABLE api_token (
    token_id VARCHAR PRIMARY KEY,
    salt VARCHAR NOT NULL,                -- hex, 16 random bytes
    secret_hash VARCHAR NOT NULL,         -- hex sha256(salt || secret)
    role VARCHAR NOT NULL,                -- station | depot | city_regulator | provincial_regulator | admin
    scope VARCHAR,                        -- station_id, depot_id or city; NULL for the others
    label VARCHAR NOT NULL,               -- who holds it (a person, a station's gateway)
    created_at TIMESTAMPTZ NOT NULL,
    created_by VARCHAR NOT NULL,
    expires_at TIMESTAMPTZ,               -- NULL: until revoked
    revoked_at TIMESTAMPTZ,
    revoked_by VARCHAR
);

-- The gateway's answers by idempotency key, per sender: a retried upload gets the same
-- answer and nothing is produced twice. Pruned after FUELTRACE_GATEWAY_IDEMPOTENCY_TTL_H.
CREATE TABLE gateway_upload (
    sender VARCHAR NOT NULL,              -- the token's role:scope (a station, a depot, …)
    idempotency_key VARCHAR NOT NULL,
    request_sha256 VARCHAR NOT NULL,      -- of the record type and the body
    record_type VARCHAR NOT NULL,
    status INTEGER NOT NULL,
    response JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (sender, idempotency_key)
);

-- A case: the work on one finding, open → acknowledged → investigating → closed with a
-- resolution. A closed finding that the rules find again gets a new case (case_no + 1)
-- linked to the closed one; the closed case is never reopened in place.
CREATE SEQUENCE case_seq START 1;
CREATE TABLE anomaly_case (
    case_id BIGINT PRIMARY KEY,
    anomaly_id VARCHAR NOT NULL,
    case_no INTEGER NOT NULL,             -- 1 for the finding's first case, then 2, 3, …
    state VARCHAR NOT NULL,               -- open | acknowledged | investigating | closed
    resolution VARCHAR,                   -- confirmed_violation | explained | false_alarm
    assignee VARCHAR,
    opened_at TIMESTAMPTZ NOT NULL,
    opened_by VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    closed_at TIMESTAMPTZ,
    reopened_from BIGINT,                 -- the closed case this one follows
    UNIQUE (anomaly_id, case_no)
);

-- The audit trail: who, when, what and why, one row per action. Append-only: no code
-- updates or deletes a row of it.
CREATE SEQUENCE case_event_seq START 1;
CREATE TABLE case_event (
    event_id BIGINT PRIMARY KEY,
    case_id BIGINT NOT NULL,
    anomaly_id VARCHAR NOT NULL,
    "at" TIMESTAMPTZ NOT NULL,
    actor VARCHAR NOT NULL,               -- token label and id, or system:rules
    actor_role VARCHAR NOT NULL,
    action VARCHAR NOT NULL,              -- opened | reopened | acknowledged | investigating | closed | assigned | note
    from_state VARCHAR,
    to_state VARCHAR,
    resolution VARCHAR,
    assignee VARCHAR,
    reason VARCHAR                        -- the why; for a note, the note
);
CREATE INDEX case_event_case ON case_event (case_id);
