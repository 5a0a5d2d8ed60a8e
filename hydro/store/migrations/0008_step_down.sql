-- A threshold alert steps down (保证 -> 警戒) with the same hysteresis as a clear: a transition
-- of its own, and the highest rank held by the readings counted towards it, so a restart in
-- the middle of those readings steps down to the same rank.
ALTER TABLE alert_events DROP CONSTRAINT alert_events_change_check;
ALTER TABLE alert_events ADD CONSTRAINT alert_events_change_check
    CHECK (change IN ('open', 'escalate', 'clear', 'remind', 'step_down'));
ALTER TABLE alerts ADD COLUMN below_held smallint NOT NULL DEFAULT 0;
