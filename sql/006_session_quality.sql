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
-- (events may be up to EVMON_MAX_EVENT_AGE_S old) marks its station (a new status change; an ended
-- session whose place, connector, times, meters or held reason changed, from its start), so the
-- next ledger run (beat/outages.py) redraws from that time instead of missing it; the run deletes
-- what it read.
CREATE TABLE IF NOT EXISTS ledger_marks (
    id                  bigserial PRIMARY KEY,
    station_id          text NOT NULL,
    since               timestamptz NOT NULL       -- the earliest time the change can move an outage
);

-- Written by the writers in the transaction of their change (evmonitor/storage/marks.py,
-- beat/conflicts.py); the triggers of earlier versions go.
DROP TRIGGER IF EXISTS status_events_ledger_mark ON status_events;
DROP TRIGGER IF EXISTS charging_sessions_ledger_mark_insert ON charging_sessions;
DROP TRIGGER IF EXISTS charging_sessions_ledger_mark_update ON charging_sessions;
DROP FUNCTION IF EXISTS evm_mark_ledger_status();
DROP FUNCTION IF EXISTS evm_mark_ledger_sessions();
