-- evmonitor event-time watermark: how far the pipeline has processed each Kafka partition
-- (see beat/watermark.py for the rule beat judges by). Written by the bridge every
-- EVMON_WATERMARK_INTERVAL_S for the partitions it owns; read by beat's stale-session, offline
-- and outage judgments. Applied at every start after the files before it; idempotent.
CREATE TABLE IF NOT EXISTS pipeline_watermarks (
    topic             text NOT NULL,
    kafka_partition   integer NOT NULL,
    caught_up         boolean NOT NULL,     -- committed offset had reached the high-water mark
    event_time        timestamptz,          -- max event time committed by the bridge's current run (NULL: none yet)
    caught_up_at      timestamptz,          -- when the current run last saw it caught up (NULL: not yet)
    committed_offset  bigint,               -- next offset to read, as committed (NULL: nothing consumed yet)
    high_water        bigint,               -- the partition's high-water mark as the consumer last saw it
    observed_at       timestamptz NOT NULL, -- the bridge's wall clock when it wrote the row
    PRIMARY KEY (topic, kafka_partition)
);
