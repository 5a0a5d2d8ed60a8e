-- Alerts, their transitions and the SMS outbox. An alert is one episode of one rule family at
-- one station (警戒 then 保证 is one alert that escalated). Transitions and the outbox rows they
-- cause are written in the evaluator's transaction, together with its journal cursor.
CREATE TABLE alerts (
    id              bigserial   PRIMARY KEY,
    station         text        NOT NULL,
    family          text        NOT NULL,
    rule_id         text        NOT NULL,      -- the rule of the rank it stands at
    rank            smallint    NOT NULL,
    severity        text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('open', 'cleared')),
    opened_at       timestamptz NOT NULL,      -- observation times, not arrival times
    escalated_at    timestamptz,
    cleared_at      timestamptz,
    peak_value      double precision,
    below_count     smallint    NOT NULL DEFAULT 0,  -- consecutive readings below clearing
    last_notified_at timestamptz,              -- wall time of the last open/escalate/reminder
    late            boolean     NOT NULL DEFAULT false,
    acknowledged_by text,
    acknowledged_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX alerts_one_open_per_family ON alerts (station, family) WHERE state = 'open';
CREATE INDEX alerts_opened_at_idx ON alerts (opened_at);

CREATE TABLE alert_events (
    id          bigserial   PRIMARY KEY,
    alert_id    bigint      NOT NULL REFERENCES alerts (id),
    change      text        NOT NULL CHECK (change IN ('open', 'escalate', 'clear', 'remind')),
    rule_id     text        NOT NULL,
    rank        smallint    NOT NULL,
    observed_at timestamptz NOT NULL,
    value       double precision,
    late        boolean     NOT NULL,          -- older than alerting.max_age: history, no SMS
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id);

-- One row per SMS to one person. Status: queued -> sending -> sent -> delivered, or failed.
CREATE TABLE outbox (
    id              bigserial   PRIMARY KEY,
    alert_id        bigint      REFERENCES alerts (id),
    event_id        bigint      REFERENCES alert_events (id),
    station         text,
    role            text        NOT NULL,
    person          text        NOT NULL,
    phone           text        NOT NULL,
    body            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    provider_id     text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status IN ('queued', 'sending');
CREATE UNIQUE INDEX outbox_provider_id_idx ON outbox (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX outbox_alert_idx ON outbox (alert_id);
