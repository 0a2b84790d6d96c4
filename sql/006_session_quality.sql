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
