-- Readings an operator typed in (a patrol person read the gauge and phoned it in while the
-- station's gateway was down): who entered each one and why. The reading itself is a row of
-- readings like a gateway's, evaluated like one; this table is the audit beside it, and keeps the
-- values as they were typed even if a gateway later sends that time with others.
CREATE TABLE manual_readings (
    id          bigserial   PRIMARY KEY,
    station     text        NOT NULL,
    time        timestamptz NOT NULL,
    water_level float8,
    flow        float8,
    rainfall    float8,
    entered_by  text        NOT NULL,
    note        text        NOT NULL,
    entered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX manual_readings_station_time ON manual_readings (station, time);
