-- evmonitor maintenance schema: rollups, alerts, availability, reports (see beat/).
-- Applied at every start after 001_core.sql; every statement is idempotent.
--
-- Incremental rollups: triggers on the core tables append "marks" (which station-hours, which
-- stations changed) to append-only tables. A job reads marks, recomputes what they name from
-- the core tables and deletes exactly the marks it read, in one transaction. Marks are never
-- updated in place, so concurrent persist workers never wait on each other's marks (no
-- deadlocks), and a change committed after the job's snapshot leaves its mark behind for the
-- next run: nothing is lost, and recomputing a whole hour from charging_sessions converges.

-- The time a session occupies its connector: from its first event to its completion, or to its
-- latest event while it has none (an active or stale session). Never an inverted range.
CREATE OR REPLACE FUNCTION evm_occupancy(start_time timestamptz, end_time timestamptz, last_event_at timestamptz)
RETURNS tstzrange LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tstzrange(start_time, greatest(start_time, coalesce(end_time, last_event_at)), '[]')
$$;
CREATE INDEX IF NOT EXISTS charging_sessions_occupancy
    ON charging_sessions USING gist (evm_occupancy(start_time, end_time, last_event_at));

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

CREATE OR REPLACE FUNCTION evm_mark_session_hours() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO rollup_marks (station_id, hour_start)
        SELECT DISTINCT n.station_id, h
        FROM new_rows n, LATERAL evm_session_hours(n.start_time, coalesce(n.end_time, n.last_event_at)) h;
    ELSE
        -- only changes a rollup can see; a replayed event updates the row to itself
        INSERT INTO rollup_marks (station_id, hour_start)
        SELECT DISTINCT r.station_id, h
        FROM (
            SELECT o.station_id AS old_station, o.start_time AS old_start,
                   coalesce(o.end_time, o.last_event_at) AS old_until,
                   n.station_id, n.start_time, coalesce(n.end_time, n.last_event_at) AS until
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.station_id, n.start_time, n.end_time, n.last_event_at, n.energy_delivered_kwh, n.cost_eur,
                   n.held_reason)
                  IS DISTINCT FROM
                  (o.station_id, o.start_time, o.end_time, o.last_event_at, o.energy_delivered_kwh, o.cost_eur,
                   o.held_reason)
        ) c,
        LATERAL (VALUES (c.old_station, c.old_start, c.old_until), (c.station_id, c.start_time, c.until))
            AS r(station_id, start_time, until),
        LATERAL evm_session_hours(r.start_time, r.until) h;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER charging_sessions_mark_insert
    AFTER INSERT ON charging_sessions REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION evm_mark_session_hours();
CREATE OR REPLACE TRIGGER charging_sessions_mark_update
    AFTER UPDATE ON charging_sessions REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION evm_mark_session_hours();

-- A new station adds capacity to its first day; a changed profile (connectors, operator, city,
-- first seen) changes the hours and days it is part of. Heartbeats change none of these.
CREATE OR REPLACE FUNCTION evm_mark_station() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO rollup_marks (station_id, hour_start)
        VALUES (NEW.id, date_trunc('hour', NEW.first_seen_at, 'UTC'));
    ELSE
        -- every 12 h from first to last seen: at least one mark inside every local day
        INSERT INTO rollup_marks (station_id, hour_start)
        SELECT NEW.id, h FROM generate_series(date_trunc('hour', least(OLD.first_seen_at, NEW.first_seen_at), 'UTC'),
                                              NEW.last_seen_at, interval '12 hours') h
        UNION
        SELECT NEW.id, hour_start FROM station_hourly WHERE station_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION evm_mark_status_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fault_marks (station_id, since) SELECT station_id, min(ts) FROM new_rows GROUP BY station_id;
    RETURN NULL;
END
$$;

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

-- The station trigger reads station_hourly, so it is created once that table exists.
CREATE OR REPLACE TRIGGER charging_stations_mark_insert
    AFTER INSERT ON charging_stations FOR EACH ROW EXECUTE FUNCTION evm_mark_station();
CREATE OR REPLACE TRIGGER charging_stations_mark_update
    AFTER UPDATE ON charging_stations FOR EACH ROW
    WHEN ((OLD.connector_count, OLD.operator, OLD.city, OLD.first_seen_at)
          IS DISTINCT FROM (NEW.connector_count, NEW.operator, NEW.city, NEW.first_seen_at))
    EXECUTE FUNCTION evm_mark_station();
CREATE OR REPLACE TRIGGER status_events_mark_insert
    AFTER INSERT ON status_events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION evm_mark_status_events();

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
