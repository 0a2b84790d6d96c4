-- evmonitor maintenance schema: rollups, alerts, availability, reports (see beat/).
-- Applied at every start after 001_core.sql; every statement is idempotent.
--
-- Incremental rollups: the writers of the core tables append "marks" (which station-hours, which
-- stations changed) to append-only tables, in the transaction of their change, with one set-based
-- statement per table and batch (the persist path: evmonitor/storage/marks.py; beat/conflicts.py);
-- no trigger on the hot tables. A job reads marks, recomputes what they name from the core tables
-- and deletes exactly the marks it read, in one transaction. Marks are never updated in place, so
-- concurrent persist workers never wait on each other's marks (no deadlocks), and a change
-- committed after the job's snapshot leaves its mark behind for the next run: nothing is lost, and
-- recomputing a whole hour from charging_sessions converges.

-- The time a session occupies its connector: from its first event to its completion, or to its
-- latest event while it has none (an active or stale session). Never an inverted range.
CREATE OR REPLACE FUNCTION evm_occupancy(start_time timestamptz, end_time timestamptz, last_event_at timestamptz)
RETURNS tstzrange LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tstzrange(start_time, greatest(start_time, coalesce(end_time, last_event_at)), '[]')
$$;
-- Rollups find a station's ended sessions overlapping an interval by the end of their occupancy
-- (beat/rollups.py: `greatest(start, end) >= t0`, implied by the overlap), open ones by their start
-- (charging_sessions_open_station, sql/001). Btrees over columns a progress event does not move,
-- where a GiST on evm_occupancy used to be: last_event_at moves with every progress event, so
-- the GiST took a new entry per event (~4 CPU-us per event on the persist path, issue 15).
DROP INDEX IF EXISTS charging_sessions_occupancy;
CREATE INDEX IF NOT EXISTS charging_sessions_ended
    ON charging_sessions (station_id, greatest(start_time, end_time)) WHERE end_time IS NOT NULL;

-- UTC hours a session touches: the hours whose rollup its change can alter.
CREATE OR REPLACE FUNCTION evm_session_hours(start_time timestamptz, occupied_until timestamptz)
RETURNS SETOF timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT generate_series(date_trunc('hour', start_time, 'UTC'),
                           date_trunc('hour', greatest(start_time, occupied_until), 'UTC'), interval '1 hour')
$$;

CREATE TABLE IF NOT EXISTS rollup_marks (
    id                  bigserial PRIMARY KEY,
    station_id          text NOT NULL,
    hour_start          timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS fault_marks (
    id                  bigserial PRIMARY KEY,
    station_id          text NOT NULL,
    since               timestamptz NOT NULL       -- earliest status change inserted
);

-- Triggers of earlier versions wrote the marks; the writers do now (see the top of this file).
DROP TRIGGER IF EXISTS charging_sessions_mark_insert ON charging_sessions;
DROP TRIGGER IF EXISTS charging_sessions_mark_update ON charging_sessions;
DROP TRIGGER IF EXISTS charging_stations_mark_insert ON charging_stations;
DROP TRIGGER IF EXISTS charging_stations_mark_update ON charging_stations;
DROP TRIGGER IF EXISTS status_events_mark_insert ON status_events;
DROP FUNCTION IF EXISTS evm_mark_session_hours();
DROP FUNCTION IF EXISTS evm_mark_station();
DROP FUNCTION IF EXISTS evm_mark_status_events();

-- --- rollups --------------------------------------------------------------------------------

-- One row per station and UTC hour with any activity (an hour with none has no row).
-- Sessions, kWh and EUR count in the hour the session started (its start_time, as the README's
-- SQL does); completions in the hour of end_time; occupancy is evm_occupancy clipped to the hour.
CREATE TABLE IF NOT EXISTS station_hourly (
    station_id              text NOT NULL,
    hour_start              timestamptz NOT NULL,
    sessions_started        integer NOT NULL,
    sessions_completed      integer NOT NULL,
    energy_kwh              numeric(14, 3) NOT NULL,
    revenue_eur             numeric(14, 2) NOT NULL,
    occupied_connector_min  numeric(14, 3) NOT NULL,
    connectors              integer NOT NULL,
    utilization_pct         numeric(7, 2) NOT NULL,    -- occupied / (connectors * 60)
    computed_at             timestamptz NOT NULL,      -- the job's `now` when the row last changed
    PRIMARY KEY (station_id, hour_start)
);
CREATE INDEX IF NOT EXISTS station_hourly_hour ON station_hourly (hour_start);

-- One row per local day (the `timezone` setting) and scope: the whole network (key 'all'),
-- each operator, each city, each station. Every station seen by the end of the day counts,
-- with connectors x minutes of the day as capacity, whether it was busy or not.
CREATE TABLE IF NOT EXISTS daily_rollups (
    day                     date NOT NULL,
    scope                   text NOT NULL,            -- network | operator | city | station
    key                     text NOT NULL,            -- 'all' | operator | city | station id
    stations                integer NOT NULL,
    connectors              integer NOT NULL,
    sessions_started        integer NOT NULL,
    sessions_completed      integer NOT NULL,
    energy_kwh              numeric(14, 3) NOT NULL,
    revenue_eur             numeric(14, 2) NOT NULL,
    occupied_connector_min  numeric(14, 3) NOT NULL,
    capacity_connector_min  numeric(14, 3) NOT NULL,
    utilization_pct         numeric(7, 2) NOT NULL,
    timezone                text NOT NULL,
    computed_at             timestamptz NOT NULL,
    PRIMARY KEY (day, scope, key)
);

-- --- alerts ---------------------------------------------------------------------------------

-- The id is derived from what the alert is about (kind, subject, since), so a job that runs
-- twice upserts the same rows. `version` grows on every real change; the search index has
-- caught up with a row when indexed_version = version. A `superseded` row (late events
-- redrew an episode) is removed from the index, then from here.
CREATE TABLE IF NOT EXISTS alerts (
    id                  text PRIMARY KEY,
    kind                text NOT NULL,             -- connector_fault | station_offline | session_stale | maintenance_due | session_conflict
    status              text NOT NULL,             -- open | closed | superseded
    severity            text NOT NULL,             -- critical | warning | info
    station_id          text NOT NULL,
    connector_id        integer,
    session_id          uuid,
    error_code          text,
    info                text,
    since               timestamptz NOT NULL,      -- when the condition began (event time)
    until               timestamptz,               -- when it ended (event time); NULL while open
    duration_s          numeric(14, 3) GENERATED ALWAYS AS (extract(epoch FROM until - since)) STORED,
    message             text NOT NULL,
    details             jsonb NOT NULL DEFAULT '{}',
    opened_at           timestamptz NOT NULL,      -- the job's `now` when first recorded
    closed_at           timestamptz,               -- the job's `now` when recorded closed
    version             integer NOT NULL DEFAULT 1,
    indexed_version     integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (kind, station_id) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS alerts_station_since ON alerts (station_id, kind, since);
CREATE INDEX IF NOT EXISTS alerts_unindexed ON alerts (id) WHERE indexed_version < version;

-- Share of connector time that was neither Faulted nor offline, per station and local day,
-- measured from the later of the day's start and the station's first message to the earlier of
-- the day's end and the job's `now` (`complete` once the day is over).
CREATE TABLE IF NOT EXISTS station_availability (
    station_id              text NOT NULL,
    day                     date NOT NULL,
    connectors              integer NOT NULL,
    measured_connector_min  numeric(14, 3) NOT NULL,
    faulted_connector_min   numeric(14, 3) NOT NULL,
    offline_connector_min   numeric(14, 3) NOT NULL,   -- offline and not already counted as faulted
    availability_pct        numeric(7, 2),             -- NULL when nothing was measured
    complete                boolean NOT NULL,
    computed_at             timestamptz NOT NULL,
    PRIMARY KEY (station_id, day)
);

-- Stations flagged for maintenance now, worst first: faults in the last 24 h per connector.
CREATE OR REPLACE VIEW maintenance_ranking AS
SELECT a.station_id, s.name, s.operator, s.city, a.since AS flagged_since,
       f.faults_24h, coalesce(s.connector_count, 1) AS connectors,
       round(f.faults_24h::numeric / coalesce(s.connector_count, 1), 2) AS faults_per_connector_24h,
       rank() OVER (ORDER BY f.faults_24h::numeric / coalesce(s.connector_count, 1) DESC, f.faults_24h DESC) AS rank
FROM alerts a
JOIN charging_stations s ON s.id = a.station_id
CROSS JOIN LATERAL (
    SELECT count(*) AS faults_24h FROM alerts f
    WHERE f.kind = 'connector_fault' AND f.status <> 'superseded' AND f.station_id = a.station_id
      AND f.since > now() - interval '24 hours'
) f
WHERE a.kind = 'maintenance_due' AND a.status = 'open';

-- --- reports --------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS reports (
    network             text NOT NULL,
    day                 date NOT NULL,
    kind                text NOT NULL DEFAULT 'daily',
    timezone            text NOT NULL,
    html_path           text NOT NULL,
    csv_path            text NOT NULL,
    stations            integer NOT NULL,
    sessions_started    integer NOT NULL,
    sessions_completed  integer NOT NULL,
    energy_kwh          numeric(14, 3) NOT NULL,
    revenue_eur         numeric(14, 2) NOT NULL,
    utilization_pct     numeric(7, 2) NOT NULL,
    availability_pct    numeric(7, 2),
    open_faults         integer NOT NULL,
    recovered_faults    integer NOT NULL,
    generated_at        timestamptz NOT NULL,
    PRIMARY KEY (network, day, kind)
);
