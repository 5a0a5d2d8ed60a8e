-- Rainfall rules read the journal too: it carries each batch's rainfall beside its water levels
-- (NULL where a reading has only the other). Batches journaled before this migration have no
-- rainfall, which unnest() reads as NULLs.
ALTER TABLE ingest_journal ADD COLUMN rainfalls float8[];
ALTER TABLE ingest_journal ALTER COLUMN rainfalls SET STORAGE EXTERNAL;
