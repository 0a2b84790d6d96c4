-- Presence history: when each station was heard from, per minute of event time. Written by the
-- persist path's fold (evmonitor/fold/rules.py PRESENCE) for every event, heartbeats included
-- (status_events excludes them), so beat/faults.py can find a station's silences in the past, not
-- only the one it is in now. Order-insensitive and idempotent like the fold: first_ts is the
-- LEAST, last_ts the GREATEST of the minute's events. Pruned with the status history (retention).
CREATE TABLE IF NOT EXISTS station_presence (
    station_id          text NOT NULL,
    minute              timestamptz NOT NULL,      -- date_trunc('minute', event time)
    first_ts            timestamptz NOT NULL,
    last_ts             timestamptz NOT NULL,
    PRIMARY KEY (station_id, minute)
);

-- Late presence: a new minute, a minute heard earlier than known, or a minute heard later than
-- known that is not the station's latest (it can shorten a silence after it) marks its station, so
-- the next faults run (beat/faults.py) redraws the offline episodes from that minute; the run
-- deletes the marks it read. A punctual event (later in the station's latest minute) marks nothing.
CREATE TABLE IF NOT EXISTS presence_marks (
    id                  bigserial PRIMARY KEY,
    station_id          text NOT NULL,
    since               timestamptz NOT NULL       -- the earliest minute whose presence changed
);

-- Written by the persist path in the transaction of its change (evmonitor/storage/marks.py); the
-- triggers of earlier versions go.
DROP TRIGGER IF EXISTS station_presence_mark_insert ON station_presence;
DROP TRIGGER IF EXISTS station_presence_mark_update ON station_presence;
DROP FUNCTION IF EXISTS evm_mark_presence_insert();
DROP FUNCTION IF EXISTS evm_mark_presence_update();

-- A database from before this table: each station's last message is its presence (silences before
-- it are not known; the offline alerts already recorded stay). Idempotent: a known moment again.
-- A minute it adds is new presence, marked as the persist path marks one.
WITH added AS (
    INSERT INTO station_presence (station_id, minute, first_ts, last_ts)
    SELECT id, date_trunc('minute', last_seen_at), last_seen_at, last_seen_at FROM charging_stations
    WHERE last_seen_at IS NOT NULL
    ON CONFLICT (station_id, minute) DO NOTHING
    RETURNING station_id, minute
)
INSERT INTO presence_marks (station_id, since) SELECT station_id, minute FROM added;
