-- Readings, their revisions, the per-station latest reading and the quarantine.
-- TimescaleDB specifics (hypertable, compression, retention, continuous aggregates) are applied
-- after the versioned migrations by hydro.store.layout, because they depend on configuration and
-- on whether the extension is installed.

CREATE TABLE readings (
    station     text             NOT NULL,
    time        timestamptz      NOT NULL,
    water_level double precision,
    flow        double precision,
    rainfall    double precision,
    battery_v   double precision,
    PRIMARY KEY (station, time)
);

-- A value that a later delivery for the same (station, time) replaced: gateways re-send corrected
-- values, and operators must be able to see what the alerting saw at the time.
CREATE TABLE reading_revisions (
    id          bigserial        PRIMARY KEY,
    station     text             NOT NULL,
    time        timestamptz      NOT NULL,
    water_level double precision,
    flow        double precision,
    rainfall    double precision,
    battery_v   double precision,
    replaced_at timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX reading_revisions_station_time_idx ON reading_revisions (station, time);

-- One row per station: its reading with the latest observation time. Kept by the writer in the same
-- transaction as the readings, so evaluators and operator views never scan the readings table.
CREATE TABLE station_latest (
    station     text             PRIMARY KEY,
    time        timestamptz      NOT NULL,
    water_level double precision,
    flow        double precision,
    rainfall    double precision,
    battery_v   double precision,
    received_at timestamptz      NOT NULL
);

-- Everything a gateway sent that was not stored as a reading, with the reason. Nothing is dropped.
CREATE TABLE quarantine (
    id          bigserial   PRIMARY KEY,
    received_at timestamptz NOT NULL,
    topic       text        NOT NULL,
    gateway     text        NOT NULL,
    station     text,
    code        text        NOT NULL,
    reason      text        NOT NULL,
    payload     bytea       NOT NULL
);
CREATE INDEX quarantine_received_at_idx ON quarantine (received_at);
CREATE INDEX quarantine_station_idx ON quarantine (station, received_at) WHERE station IS NOT NULL;
