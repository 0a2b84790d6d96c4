"""The bridge's consumer joins its group, and re-joins in a rebalance, though it works between polls.

kafka-python 3.0.12 starts a JoinGroup over when the previous one finished while nobody was
polling (see `KafkaSource`). A JoinGroup takes ~3 s on tansu, so a consumer whose caller spends
time between short polls can keep missing the end of its joins and never get a partition. The
bridge is such a caller: between polls it publishes batches, reads completions, commits and
writes watermarks. Here that work is a pause of 450 ms after every 100 ms poll: the pause stands
for the bridge's work, it waits for nothing.
"""

from __future__ import annotations

import threading
import time

from evmonitor.bridge.joining import _join_sent, start_joining
from evmonitor.bridge.wiring import KafkaSource
from evmonitor.names import EVENT_TOPICS
from evmonitor.stack.procs import wait_for
from evmonitor.storage.kafka import make_consumer

WORK_S = 0.45  # the caller's work between two polls


def busy_poll(source: KafkaSource) -> None:
    source.poll(timeout_ms=100, max_records=10)
    time.sleep(WORK_S)  # the bridge's work between polls (not a wait for anything)


def test_a_consumer_busy_between_polls_joins_its_group(pipeline):
    source = KafkaSource(make_consumer(pipeline.settings, *EVENT_TOPICS))
    try:
        def joined() -> bool:
            busy_poll(source)
            return bool(source.assignment())

        wait_for(joined, timeout_s=30, what="the group join of a consumer that works between polls")
        partitions = {(t, p) for t in EVENT_TOPICS for p in range(pipeline.settings.topic_partitions)}
        assert {(tp.topic, tp.partition) for tp in source.assignment()} == partitions
    finally:
        source.close()


class Member(threading.Thread):
    """One consumer of the group on its own thread, as each bridge is its own process."""

    def __init__(self, settings) -> None:
        super().__init__(daemon=True)
        self.source = KafkaSource(make_consumer(settings, *EVENT_TOPICS))
        self.owned: set[tuple[str, int]] = set()  # after its last poll, read by the test's thread
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.done.is_set():
                busy_poll(self.source)
                self.owned = {(tp.topic, tp.partition) for tp in self.source.assignment()}
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.source.close()


def test_two_consumers_busy_between_polls_share_the_partitions_after_a_rebalance(pipeline):
    partitions = {(t, p) for t in EVENT_TOPICS for p in range(pipeline.settings.topic_partitions)}
    first = Member(pipeline.settings)
    first.start()
    second = None
    try:
        wait_for(lambda: first.owned == partitions, timeout_s=30, what="the first member's join")
        second = Member(pipeline.settings)  # its join makes the first one re-join
        second.start()

        def shared() -> bool:
            assert first.error is None and second.error is None, (first.error, second.error)
            a, b = first.owned, second.owned
            return bool(a) and bool(b) and not a & b and a | b == partitions

        wait_for(shared, timeout_s=60, what="a rebalance between two consumers that work between polls")
    finally:
        for member in (first, second):
            if member is not None:
                member.done.set()
                member.join(timeout=30)


def test_the_join_a_bridge_starts_before_it_is_built_gets_it_every_partition_and_record(pipeline):
    """`start_joining` leaves a JoinGroup in flight (so the broker's ~3 s wait runs while the
    bridge imports and connects); a source made afterwards, with what the early polls returned,
    gets every partition and every record. The pause stands for building the bridge (~1 s)."""
    topic = str(EVENT_TOPICS[0])
    sent = pipeline.publish([(topic, f"station-{i}".encode(), b"{}") for i in range(30)])
    stop = threading.Event()
    early = start_joining(pipeline.settings, stop)
    source = None
    try:
        assert _join_sent(early.consumer), "start_joining returned before its JoinGroup was sent"
        time.sleep(1.0)  # stands for the bridge's imports and connections (not a wait for anything)
        source = KafkaSource(early.consumer, stop, pending=early.take())
        got: dict[tuple[str, int], int] = {}

        def everything() -> bool:
            for tp, records in source.poll(timeout_ms=250, max_records=100).items():
                got[(tp.topic, tp.partition)] = records[-1].offset + 1
            return got == {tp: end for tp, end in sent.items() if end}

        wait_for(everything, timeout_s=30, what="the records of the early-joined consumer")
        partitions = {(t, p) for t in EVENT_TOPICS for p in range(pipeline.settings.topic_partitions)}
        assert {(tp.topic, tp.partition) for tp in source.assignment()} == partitions
    finally:
        if source is not None:
            source.close()
        else:
            early.consumer.close()


def test_a_consumer_closed_during_its_join_leaves_the_group_usable(pipeline):
    """Stopping a bridge during its start (or a rebalance) must not strand the next one: tansu 0.6
    assigns nothing to the group's next member for minutes when a member leaves while its
    JoinGroup is held, so `KafkaSource.close` finishes the join first."""
    stop = threading.Event()
    early = start_joining(pipeline.settings, stop)
    assert _join_sent(early.consumer)
    KafkaSource(early.consumer, stop, pending=early.take()).close()  # the JoinGroup still held
    source = KafkaSource(make_consumer(pipeline.settings, *EVENT_TOPICS))
    try:
        partitions = {(t, p) for t in EVENT_TOPICS for p in range(pipeline.settings.topic_partitions)}

        def assigned() -> bool:
            source.poll(timeout_ms=250, max_records=10)
            return {(tp.topic, tp.partition) for tp in source.assignment()} == partitions

        wait_for(assigned, timeout_s=30, what="the next member's partitions after a close during a join")
    finally:
        source.close()
