-- Who is sending an outbox row and until when that claim holds. A row is 'sending' from its
-- claim until its outcome is recorded; only once its lease has run out (its sender died) may
-- another process queue it again, so a standby never sends what a live process is sending.
-- Rows left 'sending' by an older hydro have no lease and count as abandoned.
ALTER TABLE outbox ADD COLUMN claimed_by text;
ALTER TABLE outbox ADD COLUMN lease_until timestamptz;
CREATE INDEX outbox_lease_idx ON outbox (lease_until) WHERE status = 'sending';
