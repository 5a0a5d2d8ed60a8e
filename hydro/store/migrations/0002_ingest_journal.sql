-- The hand-over from ingest to evaluation: one row per committed batch with the readings it
-- inserted or changed (never the identical repeats a redelivery brings). Rows are keyed by the
-- writing transaction's id, so the evaluator can take, exactly once and with any number of
-- concurrent ingest processes, every batch whose transaction has finished: those with
-- xid < pg_snapshot_xmin(pg_current_snapshot()). The evaluator deletes what it has taken.
CREATE TABLE ingest_journal (
    id           bigserial   PRIMARY KEY,
    xid          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    written_at   timestamptz NOT NULL DEFAULT now(),
    stations     text[]      NOT NULL,
    times        timestamptz[] NOT NULL,
    water_levels float8[]    NOT NULL,
    rainfalls    float8[]    NOT NULL
);
CREATE INDEX ingest_journal_xid_idx ON ingest_journal (xid);
-- Kept for seconds, read once: compressing the arrays would cost the ingest path CPU for nothing.
ALTER TABLE ingest_journal
    ALTER COLUMN stations SET STORAGE EXTERNAL,
    ALTER COLUMN times SET STORAGE EXTERNAL,
    ALTER COLUMN water_levels SET STORAGE EXTERNAL,
    ALTER COLUMN rainfalls SET STORAGE EXTERNAL;

-- Where each consumer of the journal stands: everything below xid has been taken.
CREATE TABLE journal_cursors (
    consumer text PRIMARY KEY,
    xid      xid8 NOT NULL
);
