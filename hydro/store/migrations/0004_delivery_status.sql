-- What the SMS provider later reports about a sent message (Twilio's status callback): delivered
-- to the handset, or undelivered/failed with the carrier's error code. A callback may arrive out
-- of order or twice; only a step forward is recorded (see hydro.store.outbox).
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed'));
ALTER TABLE outbox ADD COLUMN delivered_at timestamptz;
ALTER TABLE outbox ADD COLUMN error_code text;

-- Operators page through alert history newest first, by station or by time.
CREATE INDEX alerts_station_opened_idx ON alerts (station, opened_at DESC, id DESC);
DROP INDEX alerts_opened_at_idx;
CREATE INDEX alerts_opened_idx ON alerts (opened_at DESC, id DESC);
CREATE INDEX alerts_open_idx ON alerts (station) WHERE state = 'open';

-- Every receipt as it came, kept even when it changed nothing (out of order, repeated, or for a
-- message sent before hydro kept receipts): operators audit delivery from here.
CREATE TABLE delivery_receipts (
    id          bigserial   PRIMARY KEY,
    provider_id text        NOT NULL,
    status      text        NOT NULL,
    error_code  text,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_receipts_provider_idx ON delivery_receipts (provider_id);
