-- evmonitor core schema. Applied at every start; every statement is idempotent.
-- Rows are folds of events: each column merges order-insensitively by its rule in evmonitor/fold/rules.py.

CREATE TABLE IF NOT EXISTS charging_stations (
    id                  text PRIMARY KEY,              -- the station_id of the events
    name                text NOT NULL,                 -- the station_id until its boot arrives
    operator            text,
    city                text,
    latitude            double precision,
    longitude           double precision,
    max_power_kw        double precision,
    connector_count     integer,
    price_eur_per_kwh   numeric(8, 4),
    vendor              text,
    model               text,
    firmware_version    text,
    boot_at             timestamptz,
    boot_event_id       text,
    status              text,                          -- whole-station status (connector 0)
    error_code          text,
    status_at           timestamptz,
    status_event_id     text,
    first_seen_at       timestamptz NOT NULL,
    last_seen_at        timestamptz NOT NULL,
    last_heartbeat_at   timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS connector_status (
    station_id          text NOT NULL,
    connector_id        integer NOT NULL,
    status              text NOT NULL,
    error_code          text NOT NULL,
    info                text,
    status_at           timestamptz NOT NULL,
    status_event_id     text NOT NULL,
    PRIMARY KEY (station_id, connector_id)
);

-- Every status change (heartbeats excluded), for fault and availability history.
CREATE TABLE IF NOT EXISTS status_events (
    event_id            uuid PRIMARY KEY,
    station_id          text NOT NULL,
    connector_id        integer NOT NULL,
    status              text NOT NULL,
    error_code          text NOT NULL,
    info                text,
    ts                  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS status_events_station_ts ON status_events (station_id, ts);

-- Why a session is held (DESIGN.md invariant 5), or NULL: a pure function of its merged row, so
-- the same whatever order its events came in. The Python twin is evmonitor.fold.money.held_reason;
-- docs/delivery.md states the rules. Changing this body does not recompute stored rows: bump the
-- marker in the DO block below as well.
CREATE OR REPLACE FUNCTION evm_held_reason(
    station_id text, station_id_max text, connector_id integer, connector_id_max integer,
    meter_start_wh bigint, meter_start_max_wh bigint, meter_min_wh bigint, meter_max_wh bigint,
    start_time timestamptz, last_event_at timestamptz, power_limit_kw double precision)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN station_id <> station_id_max THEN 'station_mismatch'
        WHEN connector_id <> connector_id_max THEN 'connector_mismatch'
        WHEN meter_start_wh <> meter_start_max_wh THEN 'meter_start_mismatch'
        WHEN meter_min_wh < meter_start_wh THEN 'meter_below_start'
        -- one minute of grace at full power absorbs second-rounded timestamps and Wh-rounded meters
        WHEN (meter_max_wh - meter_start_wh) * 3600.0
             > power_limit_kw * 1000.0 * (extract(epoch FROM last_event_at - start_time)::double precision + 60)
            THEN 'exceeds_max_power'
    END
$$;

CREATE TABLE IF NOT EXISTS charging_sessions (
    id                  uuid PRIMARY KEY,              -- the session_id of the events
    station_id          text NOT NULL,                 -- the least (station, connector) of its events
    connector_id        integer NOT NULL,
    start_time          timestamptz NOT NULL,          -- earliest event of the session
    end_time            timestamptz,                   -- set by session_completed, then sticks
    status              text NOT NULL,                 -- active | completed | stale
    meter_start_wh      bigint,
    meter_max_wh        bigint,
    meter_stop_wh       bigint,
    price_eur_per_kwh   numeric(8, 4),
    stop_reason         text,
    id_tag_hash         text,                          -- never the clear id_tag
    vehicle_battery_kwh double precision,
    soc_start_percent   double precision,
    progress_at         timestamptz,
    progress_meter_wh   bigint,
    progress_event_id   text,
    power_kw            double precision,
    soc_percent         double precision,
    last_event_at       timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Both extremes of the facts a session's events must agree on, each with the event that carried
-- it (evmonitor/fold/rules.py); power_limit_kw is the station's max_power_kw, copied by beat.
ALTER TABLE charging_sessions
    ADD COLUMN IF NOT EXISTS place_min_event_id       text,
    ADD COLUMN IF NOT EXISTS station_id_max           text,
    ADD COLUMN IF NOT EXISTS connector_id_max         integer,
    ADD COLUMN IF NOT EXISTS place_max_event_id       text,
    ADD COLUMN IF NOT EXISTS meter_start_event_id     text,
    ADD COLUMN IF NOT EXISTS meter_start_max_wh       bigint,
    ADD COLUMN IF NOT EXISTS meter_start_max_event_id text,
    ADD COLUMN IF NOT EXISTS meter_min_wh             bigint,
    ADD COLUMN IF NOT EXISTS meter_min_event_id       text,
    ADD COLUMN IF NOT EXISTS power_limit_kw           double precision;
-- The generated columns, (re)made once per definition: a database from before held sessions has
-- energy and cost that ignore held_reason. The comment on cost_eur marks the definition.
DO $$
BEGIN
    IF col_description('charging_sessions'::regclass,
                       (SELECT attnum FROM pg_attribute
                        WHERE attrelid = 'charging_sessions'::regclass AND attname = 'cost_eur' AND NOT attisdropped))
       IS DISTINCT FROM 'evm:held-1' THEN
        ALTER TABLE charging_sessions
            DROP COLUMN IF EXISTS held_reason, DROP COLUMN IF EXISTS energy_delivered_kwh, DROP COLUMN IF EXISTS cost_eur;
        ALTER TABLE charging_sessions
            ADD COLUMN held_reason text GENERATED ALWAYS AS (evm_held_reason(
                station_id, station_id_max, connector_id, connector_id_max, meter_start_wh, meter_start_max_wh,
                meter_min_wh, meter_max_wh, start_time, last_event_at, power_limit_kw)) STORED,
            -- DESIGN.md's money; NULL while the session is held, so no SUM counts it
            ADD COLUMN energy_delivered_kwh numeric(14, 3) GENERATED ALWAYS AS (CASE WHEN evm_held_reason(
                station_id, station_id_max, connector_id, connector_id_max, meter_start_wh, meter_start_max_wh,
                meter_min_wh, meter_max_wh, start_time, last_event_at, power_limit_kw) IS NULL
                THEN (GREATEST(meter_max_wh, meter_start_wh) - meter_start_wh) / 1000.0 END) STORED,
            ADD COLUMN cost_eur numeric(14, 2) GENERATED ALWAYS AS (CASE WHEN evm_held_reason(
                station_id, station_id_max, connector_id, connector_id_max, meter_start_wh, meter_start_max_wh,
                meter_min_wh, meter_max_wh, start_time, last_event_at, power_limit_kw) IS NULL
                THEN round((GREATEST(meter_max_wh, meter_start_wh) - meter_start_wh) / 1000.0 * price_eur_per_kwh, 2)
                END) STORED;
        COMMENT ON COLUMN charging_sessions.cost_eur IS 'evm:held-1';
    END IF;
END
$$;
CREATE INDEX IF NOT EXISTS charging_sessions_start_time ON charging_sessions (start_time);
CREATE INDEX IF NOT EXISTS charging_sessions_station ON charging_sessions (station_id, start_time);
-- No index holds last_event_at, which every progress event moves: such an update changes no
-- indexed column and can be HOT (no new index entry; issue 15). Open sessions are found by
-- station and start (beat/rollups.py), the active ones by station (beat/stale.py, whose cutoff on
-- last_event_at filters the active sessions: as many as connectors in use).
DROP INDEX IF EXISTS charging_sessions_open;  -- was (last_event_at) WHERE end_time IS NULL
CREATE INDEX IF NOT EXISTS charging_sessions_open_station ON charging_sessions (station_id, start_time)
    WHERE end_time IS NULL;
CREATE INDEX IF NOT EXISTS charging_sessions_active ON charging_sessions (station_id)
    WHERE end_time IS NULL AND status = 'active';
CREATE INDEX IF NOT EXISTS charging_sessions_held ON charging_sessions (id) WHERE held_reason IS NOT NULL;
-- Room in each page for the new versions of its sessions' rows, so that a HOT update finds it
-- (measured: 4 in 5 session updates HOT at 75, 2 in 5 at 100; the heap takes up to a third more
-- disk). Pages written from now on; set once (no catalog write at every start).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_class WHERE oid = 'charging_sessions'::regclass AND 'fillfactor=75' = ANY (reloptions)) THEN
        ALTER TABLE charging_sessions SET (fillfactor = 75);
    END IF;
END
$$;

-- Durable completion of a bridge batch in one sink ('persist' or 'index'). The bridge commits
-- Kafka offsets only past batches that have both rows; see docs/delivery.md.
CREATE TABLE IF NOT EXISTS ingest_batches (
    batch_id            uuid NOT NULL,
    sink                text NOT NULL,
    events              integer NOT NULL,
    rejected            integer NOT NULL DEFAULT 0,
    completed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, sink)
);
CREATE INDEX IF NOT EXISTS ingest_batches_completed_at ON ingest_batches (completed_at);
