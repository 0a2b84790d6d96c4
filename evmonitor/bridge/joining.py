"""The bridge's consumer joins its group while the rest of the bridge is being built.

A fresh member waits ~3 s in its JoinGroup (tansu answers it once half the session timeout has
passed; Kafka's group.initial.rebalance.delay.ms, 3 s by default, plays the same role: see
`evmonitor.storage.kafka.make_consumer`). The bridge used to send that JoinGroup only with its
first poll, after importing its modules and connecting to PostgreSQL (applying the schema),
Redis and Kafka: about a second of every start on this machine, added to the 3 s. A backlog
after an outage waited for both.

`start_joining` needs only kafka-python and the settings: it makes the consumer, subscribes and
polls until the JoinGroup that the broker holds is on its way (kafka-python 3 runs it in its
network thread), and the bridge builds itself during the wait. What that first poll returns (a
broker that answers a join at once) is kept and handed to the bridge's first poll, so no record
is skipped. If building takes longer than the join, kafka-python 3.0.12 starts the join over at
the next poll (`KafkaSource`): the bridge then gets its partitions when it used to, not later.

A bridge that has to wait for PostgreSQL at start stays in the join: kafka-python finishes it in
the background, and the bridge's first poll, once connected, joins again (~3 s, as before). It
does not leave the group while it waits: a consumer that leaves while its JoinGroup is held
leaves tansu 0.6's group unable to assign partitions to the next member (measured: closed 0.5 s
after its JoinGroup, a new member of the group had nothing 150 s later; see `KafkaSource.close`),
and every bridge waits for the same database anyway.

Kept free of the heavy imports (SQLAlchemy, psycopg2, Celery): `evmonitor bridge` calls this
before importing `evmonitor.bridge.wiring`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import ConsumerRebalanceListener
from kafka.errors import KafkaError

from evmonitor.config import Settings
from evmonitor.errors import TransientError
from evmonitor.names import EVENT_TOPICS
from evmonitor.storage.kafka import make_consumer

__all__ = ["ASSIGNED", "EarlyJoin", "Rebalance", "start_joining", "stop_on_signals", "until_connected"]

log = logging.getLogger("evmonitor.bridge")

T = TypeVar("T")

ASSIGNED = "bridge: assigned"  # the log line of a completed join (the sandbox and the bench wait for it)

# how long `start_joining` polls at most before leaving the join to kafka-python's thread
KICK_BUDGET_S = 1.0


class Rebalance(ConsumerRebalanceListener):
    """Hands revoked partitions to the bridge (once it exists) and logs assignments."""

    def __init__(self) -> None:
        self.on_revoked: Callable[[list[tuple[str, int]]], None] | None = None

    def on_partitions_revoked(self, revoked: Any) -> None:
        if self.on_revoked is not None and revoked:
            self.on_revoked([(tp.topic, tp.partition) for tp in revoked])

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("%s %s", ASSIGNED, sorted((tp.topic, tp.partition) for tp in assigned))


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop` (call on the main thread)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


def until_connected(connect: Callable[[], T], what: str, stop: threading.Event) -> T:
    """Call `connect` until it stops raising TransientError: a dependency may come up after us."""
    delay = 0.5
    while True:
        try:
            return connect()
        except TransientError as exc:
            if stop.is_set():
                raise
            log.warning("bridge: waiting for %s (%s); retrying in %gs", what, exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, 10.0)


def _join_sent(consumer: Any) -> bool | None:
    """Whether the consumer's JoinGroup, with the member id the broker gave it, is in flight (or
    done): None when this kafka-python does not show it (other versions than 3.0)."""
    coordinator = getattr(consumer, "_coordinator", None)
    generation = getattr(coordinator, "_generation", None)
    if coordinator is None or generation is None or not hasattr(coordinator, "_join_task"):
        return None
    if not getattr(generation, "member_id", ""):
        return False  # FindCoordinator and the first JoinGroup (MEMBER_ID_REQUIRED) still to come
    task = coordinator._join_task
    if task is not None and not task.is_done:
        return True  # the JoinGroup with the member id: the one the broker holds
    return not coordinator.need_rejoin()  # joined already (True), or the retry is still to send


class EarlyJoin:
    """A subscribed consumer whose group join has started, and what its first polls returned."""

    def __init__(self, consumer: Any, listener: Rebalance, stop: threading.Event) -> None:
        self.consumer, self.listener, self.stop = consumer, listener, stop
        self.records: dict[Any, list[Any]] = {}
        self.join()

    def join(self) -> None:
        """Subscribe and poll until the JoinGroup is sent (at most `KICK_BUDGET_S`)."""
        self.consumer.subscribe(list(EVENT_TOPICS), listener=self.listener)
        started = time.monotonic()
        deadline = started + KICK_BUDGET_S
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                sent = _join_sent(self.consumer)
                if sent:
                    break
                got = self.consumer.poll(timeout_ms=20 if sent is False else 250)
                for tp, records in got.items():
                    self.records.setdefault(tp, []).extend(records)
                if got or sent is None:
                    break
        except KafkaError as exc:  # the bridge's first poll joins (and reports) again
            log.warning("bridge: could not start the group join early (%r); joining with the first poll", exc)
            return
        log.info("bridge: joining group %s (sent in %.0f ms)", self.consumer.config.get("group_id"),
                 (time.monotonic() - started) * 1000)  # fmt: skip

    def take(self) -> dict[Any, list[Any]]:
        """What the early polls returned, once."""
        records, self.records = self.records, {}
        return records


def start_joining(settings: Settings, stop: threading.Event) -> EarlyJoin:
    """Make the bridge's consumer and start its group join (waits for Kafka if it is not up)."""
    consumer = until_connected(lambda: make_consumer(settings), "Kafka", stop)
    return EarlyJoin(consumer, Rebalance(), stop)
