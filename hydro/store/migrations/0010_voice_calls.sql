-- 叫应 voice calls: how a placed call ended, as Twilio's call status callback reports it. A
-- call's row stays 'sent' once Twilio accepted it (its status is how far hydro's part went);
-- call_status is the call's own outcome: completed (answered), busy, no-answer, failed or
-- canceled. The callbacks themselves are kept in delivery_receipts, as SMS receipts are.
ALTER TABLE outbox ADD COLUMN call_status text
    CHECK (call_status IN ('completed', 'busy', 'no-answer', 'failed', 'canceled'));
