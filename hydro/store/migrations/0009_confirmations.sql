-- 叫应: an outbox row is an SMS or a voice call, and a person's answer to an alert is kept.
-- A person confirms an alert once; the first answer stands (a later key press or link changes
-- nothing), so the wake-up time is the time to the first confirmation.
ALTER TABLE outbox ADD COLUMN channel text NOT NULL DEFAULT 'sms'
    CHECK (channel IN ('sms', 'voice'));

CREATE TABLE confirmations (
    id           bigserial   PRIMARY KEY,
    alert_id     bigint      NOT NULL REFERENCES alerts (id),
    role         text        NOT NULL,
    person       text        NOT NULL,
    phone        text        NOT NULL,
    answer       text        NOT NULL CHECK (answer IN ('keypress', 'link', 'operator')),
    confirmed_at timestamptz NOT NULL,
    recorded_by  text        NOT NULL,      -- the person (key press, link) or the operator
    outbox_id    bigint      REFERENCES outbox (id),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX confirmations_one_per_person ON confirmations (alert_id, phone);
