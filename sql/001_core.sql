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

CREATE TABLE IF NOT EXISTS charging_sessions (
    id                  uuid PRIMARY KEY,              -- the session_id of the events
    station_id          text NOT NULL,
    connector_id        integer NOT NULL,
    start_time          timestamptz NOT NULL,          -- earliest event of the session
    end_time            timestamptz,                   -- set by session_completed, then sticks
    status              text NOT NULL,                 -- active | completed | stale
    meter_start_wh      bigint,
    meter_max_wh        bigint,
    meter_stop_wh       bigint,
    price_eur_per_kwh   numeric(8, 4),
    energy_delivered_kwh numeric(14, 3) GENERATED ALWAYS AS
        ((GREATEST(meter_max_wh, meter_start_wh) - meter_start_wh) / 1000.0) STORED,
    cost_eur            numeric(14, 2) GENERATED ALWAYS AS
        (round((GREATEST(meter_max_wh, meter_start_wh) - meter_start_wh) / 1000.0 * price_eur_per_kwh, 2)) STORED,
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
CREATE INDEX IF NOT EXISTS charging_sessions_start_time ON charging_sessions (start_time);
CREATE INDEX IF NOT EXISTS charging_sessions_station ON charging_sessions (station_id, start_time);
CREATE INDEX IF NOT EXISTS charging_sessions_open ON charging_sessions (last_event_at) WHERE end_time IS NULL;

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
