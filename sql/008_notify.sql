-- evmonitor alert notifications: a durable outbox (see beat/notify.py).
-- An `alert_outbox` row is written in the same transaction as the alert change it announces
-- (opened, closed, or withdrawn when late events redrew it), so none is lost; beat's deliver_notifications job creates one
-- `alert_deliveries` row per configured channel (webhook, email) and retries it with backoff
-- until delivered or EVMON_NOTIFY_MAX_AGE_S has passed. Applied at every start; idempotent.
CREATE TABLE IF NOT EXISTS alert_outbox (
    id           bigserial PRIMARY KEY,
    delivery_id  uuid NOT NULL DEFAULT gen_random_uuid(),  -- the idempotency id receivers see
    alert_id     text NOT NULL,
    event        text NOT NULL,                            -- opened | closed | withdrawn (superseded)
    payload      jsonb NOT NULL,                           -- the alert as announced
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_outbox_created ON alert_outbox (created_at);

CREATE TABLE IF NOT EXISTS alert_deliveries (
    outbox_id        bigint NOT NULL REFERENCES alert_outbox (id) ON DELETE CASCADE,
    channel          text NOT NULL,                        -- webhook | email
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    delivered_at     timestamptz,
    gave_up_at       timestamptz,                          -- still failing after EVMON_NOTIFY_MAX_AGE_S
    last_error       text,
    PRIMARY KEY (outbox_id, channel)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_due ON alert_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
