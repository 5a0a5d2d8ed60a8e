-- A confirmation answers the severity the alert stood at when it was given: once the alert
-- escalates, the ladder of the new severity asks again (a patrol person who confirmed the
-- yellow has not yet answered the red). A person confirms each rank of an alert once. Rows
-- from before this migration take the alert's rank as it stands, so no running ladder restarts.
ALTER TABLE confirmations ADD COLUMN rank smallint;
UPDATE confirmations c SET rank = a.rank FROM alerts a WHERE a.id = c.alert_id;
ALTER TABLE confirmations ALTER COLUMN rank SET NOT NULL;
DROP INDEX confirmations_one_per_person;
CREATE UNIQUE INDEX confirmations_one_per_person ON confirmations (alert_id, rank, phone);
