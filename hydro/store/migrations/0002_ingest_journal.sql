-- The hand-over from ingest to evaluation: one row per committed batch with the water levels it
-- inserted or changed (never the identical repeats a redelivery brings; rainfall joins when rules
-- use it). The evaluator takes
-- rows by deleting them in the transaction that records what it derived from them, so each is
-- taken exactly once; a batch still committing is simply not visible yet, and no long-running
-- transaction elsewhere in the cluster can hold evaluation back.
CREATE TABLE ingest_journal (
    id           bigserial     PRIMARY KEY,
    written_at   timestamptz   NOT NULL DEFAULT now(),
    stations     text[]        NOT NULL,
    times        timestamptz[] NOT NULL,
    water_levels float8[]      NOT NULL
);
-- Kept for seconds, read once: compressing the arrays would cost the ingest path CPU for nothing.
ALTER TABLE ingest_journal
    ALTER COLUMN stations SET STORAGE EXTERNAL,
    ALTER COLUMN times SET STORAGE EXTERNAL,
    ALTER COLUMN water_levels SET STORAGE EXTERNAL;
