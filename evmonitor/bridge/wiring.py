"""The bridge's real I/O: a kafka-python consumer, Celery publishing, PostgreSQL completions."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from evmonitor.bridge.batching import Batch
from evmonitor.bridge.bridge import Bridge
from evmonitor.bridge.joining import EarlyJoin, start_joining, stop_on_signals, until_connected
from evmonitor.bridge.metrics import LagProbe, serve_metrics
from evmonitor.heartbeat import start_heartbeat
from evmonitor.config import Settings
from evmonitor.deadletter import DeadLetters
from evmonitor.errors import TransientError
from evmonitor.names import QUEUE_BY_SINK, TASK_BY_SINK, SinkName
from evmonitor.storage.kafka import make_deadletter_producer
from evmonitor.storage.postgres import PostgresStore
from evmonitor.transport import Payloads, make_celery

__all__ = ["CeleryPublisher", "KafkaSource", "build_bridge", "run_bridge"]

log = logging.getLogger("evmonitor.bridge")


class KafkaSource:
    """A KafkaConsumer seen through the few calls the bridge makes; errors become TransientError.

    While the consumer is joining its group (at start, or again in a rebalance), `poll` keeps
    polling, without returning to the bridge, until the join is done, `join_wait_s` has passed
    or `stop` is set. kafka-python 3.0.12 runs the JoinGroup/SyncGroup exchange as a task that
    `poll` waits on, but a poll that finds that task already finished starts a new one and drops
    its result (`BaseCoordinator.join_group_async`). A JoinGroup takes ~3 s on tansu, so a caller
    that works between short polls sees its joins finish while it is away and starts them over,
    for ever: 100 ms polls 300 ms apart never joined in 40 s (three tries), back-to-back ones
    joined in 3.1 s. The bridge works between polls (publishing, completions, commits), and
    tests/integration/test_group_join.py fails without this loop.
    """

    def __init__(self, consumer: Any, stop: threading.Event | None = None, join_wait_s: float | None = None,
                 pending: dict[Any, list[Any]] | None = None) -> None:  # fmt: skip
        """`pending`: records a poll returned before this source existed (`EarlyJoin`), which its
        first poll returns."""
        self.consumer = consumer
        self.pending = pending or {}
        self.lag = LagProbe(consumer)
        self.stop = stop or threading.Event()
        if join_wait_s is None:  # tansu answers a JoinGroup within half a session timeout (+1 s)
            join_wait_s = consumer.config.get("session_timeout_ms", 10_000) / 1000
        self.join_wait_s = join_wait_s

    def joining(self) -> bool:
        """Whether the consumer still has a group join to finish.

        The coordinator's own test (kafka-python's `need_rejoin`, the condition its join loop
        runs on) when it has one: during a rebalance, a member still holds its old partitions
        until the new assignment comes. Otherwise, holding no partition.
        """
        coordinator = getattr(self.consumer, "_coordinator", None)
        need_rejoin = getattr(coordinator, "need_rejoin", None)
        if callable(need_rejoin):
            return bool(need_rejoin())
        return not self.consumer.assignment()

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        if self.pending:
            records, self.pending = self.pending, {}
            return records
        records = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        if not records and self.joining():
            deadline = time.monotonic() + self.join_wait_s
            while not records and not self.stop.is_set() and self.joining():
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0:
                    break
                records = self.consumer.poll(timeout_ms=min(left_ms, 250), max_records=max_records)
        self.lag.refresh()  # here, on the bridge's thread: the consumer is not thread-safe
        return records

    def assignment(self) -> set[Any]:
        return self.consumer.assignment()

    def paused(self) -> set[Any]:
        return self.consumer.paused()

    def pause(self, *tps: Any) -> None:
        self.consumer.pause(*tps)

    def resume(self, *tps: Any) -> None:
        self.consumer.resume(*tps)

    def progress(self) -> dict[tuple[str, int], tuple[int | None, int | None]]:
        """(position, high-water mark) of every assigned partition, as the consumer last saw them.

        The high-water mark comes with each fetch response (`KafkaConsumer.highwater`); unlike
        `end_offsets()` it needs no extra request and is right on tansu.
        """
        out: dict[tuple[str, int], tuple[int | None, int | None]] = {}
        for tp in self.consumer.assignment():
            try:
                out[(tp.topic, tp.partition)] = (self.consumer.position(tp, timeout_ms=50), self.consumer.highwater(tp))
            except Exception:  # noqa: BLE001 - a partition being revoked: reported next time
                continue
        return out

    def commit_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        try:
            self.consumer.commit(
                {TopicPartition(t, p): OffsetAndMetadata(off, "", -1) for (t, p), off in offsets.items()}
            )
        except KafkaError as exc:  # RebalanceInProgress, CommitFailed, connection errors: next tick
            raise TransientError(f"kafka commit: {exc!r}") from exc

    def close(self) -> None:
        """Leave the group and close, after finishing a join in flight (at most `join_wait_s`).

        A consumer that leaves while the broker holds its JoinGroup leaves tansu 0.6's group unable
        to give the next member any partition: measured, a new member had none 150 s later. One
        that dies in its join is evicted after its session timeout (the next member had its
        partitions 11.4 s later), and one that leaves after its join is done hands them over in a
        rebalance (3.3 s). So a bridge stopped during its start, or in a rebalance, first finishes
        the join. What those polls return is neither handled nor committed: the group hands it out
        again.
        """
        try:
            deadline = time.monotonic() + self.join_wait_s
            while self.joining() and time.monotonic() < deadline:
                self.consumer.poll(timeout_ms=250, max_records=1)
        except KafkaError as exc:  # closing anyway
            log.warning("bridge: could not finish the group join before leaving (%r)", exc)
        self.consumer.close(autocommit=False)


class CeleryPublisher:
    """Publishes one task per batch per sink; a publish that Redis did not take raises.

    The batch's events (`Batch.payload`, one JSON string encoded once) go to Redis under their own
    key (`evmonitor.transport.Payloads`) once per publishing round: the first sink a round
    publishes stores them, with a fresh TTL, and every task of the round carries the reference.
    A round is a `publish_count`: the bridge counts one when all its sinks took the batch, so a
    re-publish stores the payload again (Redis may have lost it) and a round retried after a
    failed send does not.
    """

    def __init__(self, app: Any, payloads: Payloads) -> None:
        self.app = app
        self.payloads = payloads
        self._stored: tuple[str, int, dict[str, str]] | None = None  # (batch id, round, reference)

    def _reference(self, batch: Batch) -> dict[str, str]:
        stored = self._stored
        if stored is not None and stored[0] == batch.batch_id and stored[1] == batch.publish_count:
            return stored[2]
        ref = self.payloads.put(batch.batch_id, batch.payload())  # raises TransientError
        self._stored = (batch.batch_id, batch.publish_count, ref)
        return ref

    def __call__(self, sink: SinkName, batch: Batch) -> None:
        ref = self._reference(batch)
        try:
            self.app.send_task(TASK_BY_SINK[sink], args=[batch.batch_id, ref], queue=QUEUE_BY_SINK[sink])
        except (KombuError, RedisError, OSError) as exc:
            raise TransientError(f"broker: {exc!r}") from exc


def _forgetting(*forgets: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """One `forget` for the bridge from several: each runs even if one before it failed."""

    def forget(batch_ids: list[str]) -> None:
        failed: TransientError | None = None
        for one in forgets:
            try:
                one(batch_ids)
            except TransientError as exc:
                failed = exc
        if failed is not None:
            raise failed

    return forget


def build_bridge(
    settings: Settings, app: Any | None = None, stop: threading.Event | None = None, early: EarlyJoin | None = None
) -> tuple[Bridge, KafkaSource, Any]:
    """Connect everything the bridge needs; returns (bridge, source, dead-letter producer).

    `early`: the consumer, its group join already started (`start_joining`; else started here,
    first). Waits (with a log line) for PostgreSQL and Kafka if they are not reachable yet.
    """
    stop = stop or threading.Event()
    if early is None:
        early = start_joining(settings, stop)
    if app is None:
        app = make_celery(settings)  # publishes by task name: the bridge needs no task module
    store = until_connected(lambda: PostgresStore.connect(settings.sqlalchemy_url, settings.sql_dir), "PostgreSQL", stop)
    payloads = Payloads.connect(settings)  # connects on first use: a publish retries until Redis is up
    source = KafkaSource(early.consumer, stop, pending=early.take())
    producer = until_connected(lambda: make_deadletter_producer(settings), "Kafka", stop)
    bridge = Bridge(
        settings,
        consumer=source,
        publish=CeleryPublisher(app, payloads),
        completions=store.completed,
        forget=_forgetting(store.forget, payloads.drop),
        watermarks=store.record_watermarks,
        deadletters=DeadLetters(producer, settings.deadletter_topic),
    )
    early.listener.on_revoked = bridge.on_revoked
    return bridge, source, producer


def run_bridge(settings: Settings, stop: threading.Event | None = None, early: EarlyJoin | None = None) -> Bridge:
    """Run the bridge until SIGTERM/SIGINT (or `stop`): then flush, commit and exit. `early`: see
    `build_bridge`."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        stop_on_signals(stop)
    bridge, source, producer = build_bridge(settings, stop=stop, early=early)
    server = None
    if settings.bridge_metrics_port:
        server = serve_metrics(settings.bridge_metrics_port, bridge, source.lag, settings.metrics_address)
        log.info("bridge: metrics on http://%s:%d/metrics", settings.metrics_address, settings.bridge_metrics_port)
    stop_heartbeat = start_heartbeat(settings, "bridge", state=lambda: {"batches_in_flight": len(bridge.inflight)})
    try:
        bridge.run(stop)
    finally:
        stop_heartbeat()
        source.close()
        producer.close(timeout=10)
        if server is not None:
            server.shutdown()
    return bridge
