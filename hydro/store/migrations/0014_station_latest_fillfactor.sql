-- station_latest is rewritten by every batch: one row for each station in it. Half of each page is
-- left free, so that an update can stay on its row's page (a HOT update: no new index entry, half
-- the WAL and half the buffers); measured, the upsert of a batch then costs half as much, and it
-- had cost more than the batch's COPY. CLUSTER rewrites the rows already there at the new fill (one
-- row per station: a moment).
ALTER TABLE station_latest SET (fillfactor = 50);
CLUSTER station_latest USING station_latest_pkey;
