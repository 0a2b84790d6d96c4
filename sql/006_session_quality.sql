-- evmonitor session quality (issue 14): a session that failed to deliver energy. Applied at every
-- start after the files before it; every statement is idempotent.
--
-- Written by beat (beat/sessions.py, run with the outage ledger), never by the fold: recomputed from
-- the session row and the status history for every session that ended within EVMON_ALERT_LOOKBACK_S,
-- so late or reordered status events give the same verdict. A session failed when it ended during a
-- fault (Faulted on its connector or on connector 0 at its end_time) or delivered less than
-- EVMON_MIN_SESSION_WH. NULL: not judged (still running, held, or no start meter and no fault).
ALTER TABLE charging_sessions
    ADD COLUMN IF NOT EXISTS failed          boolean,
    ADD COLUMN IF NOT EXISTS failure_reason  text,      -- ended_in_fault | under_min_energy
    ADD COLUMN IF NOT EXISTS failure_code    text;      -- the OCPP error code active at its end (NULL: none)
CREATE INDEX IF NOT EXISTS charging_sessions_failed ON charging_sessions (station_id, end_time) WHERE failed;
COMMENT ON COLUMN port_outages.signals IS
    'what showed the outage: Faulted, Unavailable, connection_closed, station_offline, failed_session';

-- Late history: a status change or an ended session that arrives for a time older than the lookback
-- (events may be up to EVMON_MAX_EVENT_AGE_S old) marks its station, so the next ledger run
-- (beat/outages.py) redraws from that time instead of missing it; the run deletes what it read.
CREATE TABLE IF NOT EXISTS ledger_marks (
    id                  bigserial PRIMARY KEY,
    station_id          text NOT NULL,
    since               timestamptz NOT NULL       -- the earliest time the change can move an outage
);

CREATE OR REPLACE FUNCTION evm_mark_ledger_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_marks (station_id, since) SELECT station_id, min(ts) FROM new_rows GROUP BY station_id;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER status_events_ledger_mark
    AFTER INSERT ON status_events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION evm_mark_ledger_status();

-- a session's verdict (and so its outage) can change when it ends or its meters or place change
CREATE OR REPLACE FUNCTION evm_mark_ledger_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ledger_marks (station_id, since)
        SELECT station_id, min(start_time) FROM new_rows WHERE end_time IS NOT NULL GROUP BY station_id;
    ELSE
        INSERT INTO ledger_marks (station_id, since)
        SELECT n.station_id, min(least(n.start_time, o.start_time))
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.end_time IS NOT NULL
          AND (n.station_id, n.connector_id, n.start_time, n.end_time, n.meter_start_wh, n.meter_max_wh, n.held_reason)
              IS DISTINCT FROM
              (o.station_id, o.connector_id, o.start_time, o.end_time, o.meter_start_wh, o.meter_max_wh, o.held_reason)
        GROUP BY n.station_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER charging_sessions_ledger_mark_insert
    AFTER INSERT ON charging_sessions REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION evm_mark_ledger_sessions();
CREATE OR REPLACE TRIGGER charging_sessions_ledger_mark_update
    AFTER UPDATE ON charging_sessions REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION evm_mark_ledger_sessions();
