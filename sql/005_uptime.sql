-- evmonitor uptime schema: the outage ledger per charging port and its audit (see beat/outages.py).
-- Applied at every start after the files before it; every statement is idempotent.
--
-- A row is one outage of one port (station, connector >= 1): the union of every signal that
-- showed the port down (Faulted, Unavailable, station_offline; connector 0 and offline count
-- on every port). Beat recomputes the rows within EVMON_ALERT_LOOKBACK_S from status_events and
-- the station_offline alerts; the id is port + start, so a recompute finds the same rows and
-- never touches the operator's columns (cause, note, cause_by, cause_at).
CREATE TABLE IF NOT EXISTS port_outages (
    id                  text PRIMARY KEY,          -- outage:<station>:<connector>:<started_at, UTC>
    station_id          text NOT NULL,
    connector_id        integer NOT NULL,          -- the port
    started_at          timestamptz NOT NULL,
    ended_at            timestamptz,               -- NULL while the outage lasts
    minutes             numeric(14, 3) GENERATED ALWAYS AS
        (round(extract(epoch FROM ended_at - started_at) / 60, 3)) STORED,
    signals             text[] NOT NULL,           -- what showed it: Faulted, Unavailable, station_offline
    error_code          text,                      -- the first error code of a Faulted signal
    cause               text NOT NULL DEFAULT 'unknown',   -- evmonitor.names.OutageCause
    note                text,
    cause_by            text,                      -- who set the cause (NULL: nobody yet)
    cause_at            timestamptz,
    recorded_at         timestamptz NOT NULL,      -- the job's `now` when first recorded
    computed_at         timestamptz NOT NULL       -- the job's `now` when last changed
);
CREATE INDEX IF NOT EXISTS port_outages_port ON port_outages (station_id, connector_id, started_at);
CREATE INDEX IF NOT EXISTS port_outages_open ON port_outages (station_id) WHERE ended_at IS NULL;

-- Every change an operator (or a recompute carrying a cause over) made to an outage.
CREATE TABLE IF NOT EXISTS port_outage_audit (
    id                  bigserial PRIMARY KEY,
    outage_id           text NOT NULL,
    changed_by          text NOT NULL,
    changed_at          timestamptz NOT NULL,
    before              jsonb NOT NULL,            -- {cause, note}
    after               jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS port_outage_audit_outage ON port_outage_audit (outage_id, changed_at);

-- Session quality: the highest power_kw of a session's progress readings (merge rule GREATEST,
-- evmonitor/fold/rules.py). Sessions folded before this column existed keep NULL.
ALTER TABLE charging_sessions ADD COLUMN IF NOT EXISTS peak_power_kw double precision;
