-- The duty desk's manual SMS (人工短信): one row per send, grouping the outbox rows it queued,
-- with who wrote it, when and why. The outbox rows carry the author and the reason too, so the
-- outbox listing and an alert's history show them without a join.
CREATE TABLE manual_sends (
    id          bigserial   PRIMARY KEY,
    written_by  text        NOT NULL,       -- the API token's holder, or `hydro sms send --by`
    reason      text        NOT NULL,
    audience    text        NOT NULL,       -- whom it was for, as the operator picked it
    template    text        NOT NULL,       -- the text before names and signature were filled in
    recipients  integer     NOT NULL CHECK (recipients > 0),
    alert_id    bigint      REFERENCES alerts (id),  -- sent from an alert
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE outbox ADD COLUMN manual_send_id bigint REFERENCES manual_sends (id);
ALTER TABLE outbox ADD COLUMN written_by text;
ALTER TABLE outbox ADD COLUMN reason text;
CREATE INDEX outbox_manual_send_idx ON outbox (manual_send_id) WHERE manual_send_id IS NOT NULL;
