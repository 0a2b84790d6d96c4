"""Kafka edge: topics, producers and consumers configured the way this pipeline needs them.

Consumers use a short session timeout so that a group (re)joins in seconds, not tens of
seconds; producers wait for every in-sync replica (`acks="all"`): an event counts as accepted
only once Kafka has it, which is where invariant 1 begins.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from evmonitor.config import Settings
from evmonitor.errors import TransientError
from evmonitor.names import EVENT_TOPICS, Topic

__all__ = ["ensure_topics", "make_consumer", "make_deadletter_producer", "make_producer", "translate_errors"]


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Map every kafka-python exception to `TransientError`: we only produce events that passed
    validation (or dead letters of bounded size), so what Kafka refuses is the broker's state
    (unreachable, no leader, a rebalance, a timeout), never the record."""
    try:
        yield
    except KafkaError as exc:
        raise TransientError(f"kafka: {exc!r}") from exc


def ensure_topics(bootstrap: str, partitions: int, topics: Iterable[str] = ()) -> list[str]:
    """Create the event and dead-letter topics that do not exist yet; return the created ones."""
    wanted = [str(t) for t in topics] or [str(t) for t in (*EVENT_TOPICS, Topic.DEADLETTER)]
    with translate_errors():
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        try:
            existing = set(admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                try:
                    admin.create_topics([NewTopic(t, partitions, 1) for t in missing])
                except TopicAlreadyExistsError:
                    pass  # another process won the race; the topic is there
            return missing
        finally:
            admin.close()


def make_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    config: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        retries=5,
        request_timeout_ms=15000,
    )
    config.update(overrides)
    with translate_errors():
        return KafkaProducer(**config)


def make_deadletter_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """The producer of `ev.deadletter` (the bridge's, and the workers'): `make_producer` with
    batches of `deadletter_batch_bytes`.

    With the default 256 KB batches every `too_large` dead letter (its original base64-encoded:
    ~333 KB for a 250 KB original) opened a batch of its own, and closed the partition's batch
    before it and the one after it: three produce batches, a sender wake-up and a CRC each. With
    1 MB batches they share batches with the small dead letters around them (bench.bridge_loop
    --bad: see the commit that brought this).
    """
    return make_producer(settings.kafka_bootstrap, **{"batch_size": settings.deadletter_batch_bytes, **overrides})


def make_consumer(settings: Settings, *topics: str, **overrides: Any) -> KafkaConsumer:
    config: dict[str, Any] = dict(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # A fresh member waits ~3 s in JoinGroup, and that wait is tansu's: its coordinator (tansu
        # 0.6, tansu-broker/src/coordinator/group/administrator.rs, `join`) answers a JoinGroup
        # only once half the group's session timeout has passed, checking every 1 s, so that
        # other members can join the same generation (Kafka's group.initial.rebalance.delay.ms,
        # 3 s by default, plays the same role). kafka-python's side (FindCoordinator, the
        # MEMBER_ID_REQUIRED round trip, SyncGroup) takes ~10 ms. Measured (issue 15): first
        # records 3.01-3.05 s after subscribe at 6000, 2.0 s at 4000, 1.0 s at 2000. A 2 s
        # session would leave one missed heartbeat before a busy bridge is evicted, so 6 s stays.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        # The bridge polls with max_records=batch_max_events; this is the same for other callers.
        max_poll_records=settings.batch_max_events,
        # Fetch sizes were measured against tansu (issue 15: 200k events, 6 partitions, fresh
        # groups, interleaved runs): 256 KB, 1 MB and 4 MB partition fetches, fetch_min_bytes
        # 64 KB and 1,000-record polls all cost 3.7-4.7 CPU-us per message, within the run-to-run
        # spread. kafka-python's per-record decoding (DefaultRecordBatch._read_msg, decode_varint:
        # ~60% of the consumer thread under py-spy) is the cost, and no setting changes it.
        # kafka-python hands out one partition's fetched records before the next one's, so the
        # partition fetch also sets how many records of one partition come in a row: with 4 MB,
        # a backlog arrived as ~25 full batches of one partition, and consecutive batches shared
        # their stations (two persist workers then queue behind each other's per-station locks).
        # EVMON_KAFKA_PARTITION_FETCH_BYTES (128 KB, ~400 records) lets the lanes alternate.
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=settings.kafka_partition_fetch_bytes,
    )
    config.update(overrides)
    with translate_errors():
        consumer = KafkaConsumer(**config)
    if topics:
        consumer.subscribe(list(topics))
    return consumer
