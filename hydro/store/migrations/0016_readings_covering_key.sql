-- A station's series (hydro.store.series) reads its values from the primary key alone, an
-- index-only scan: readings arrive in time order, all stations of a moment together, so a month
-- of one station's readings lies on as many heap pages as it has readings (8,640), which the
-- scan would otherwise read one by one. battery_v is left out: no series shows it.
-- Rebuilding the key reads the whole table and holds writers back meanwhile (about 20 s per
-- 10 million rows), once.
ALTER TABLE readings
    DROP CONSTRAINT readings_pkey,
    ADD PRIMARY KEY (station, time) INCLUDE (water_level, flow, rainfall);
