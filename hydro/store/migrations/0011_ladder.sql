-- 叫应 ladders: every step an alert's ladder took (a call, an escalation, the stop), once per
-- alert and key, written in the transaction that queues its outbox rows, so a restart or a
-- second hydro run neither repeats a step nor forgets one. taken_at is the evaluator's clock.
CREATE TABLE ladder_steps (
    id         bigserial   PRIMARY KEY,
    alert_id   bigint      NOT NULL REFERENCES alerts (id),
    key        text        NOT NULL,      -- red:call:patrol:2, red:county:1, stop ...
    reason     text        NOT NULL,      -- for people: 巡查责任人未确认, 第2次呼叫
    taken_at   timestamptz NOT NULL,
    outbox_ids bigint[]    NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ladder_steps_once ON ladder_steps (alert_id, key);

-- A person's confirmation link (<api.public_url>/c/<code>): one per alert and person, reused by
-- every SMS of the alert to them; unguessable, and no good after expires_at.
CREATE TABLE confirmation_links (
    code       text        PRIMARY KEY,
    alert_id   bigint      NOT NULL REFERENCES alerts (id),
    role       text        NOT NULL,
    person     text        NOT NULL,
    phone      text        NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX confirmation_links_one_per_person ON confirmation_links (alert_id, phone);
