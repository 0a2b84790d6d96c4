"""The bridge's early group join (`evmonitor.bridge.joining`) against a stand-in consumer that
behaves like kafka-python 3.0's: FindCoordinator and a first JoinGroup answered MEMBER_ID_REQUIRED,
then the JoinGroup the broker holds, run as a task that polls wait on.

The real consumer against tansu: tests/integration/test_group_join.py."""

from __future__ import annotations

import threading
from collections import namedtuple
from types import SimpleNamespace
from typing import Any

from evmonitor.bridge.joining import EarlyJoin, Rebalance, _join_sent
from evmonitor.bridge.wiring import KafkaSource

TP = namedtuple("TP", "topic partition")


class Task:
    def __init__(self) -> None:
        self.is_done = False


class Coordinator:
    def __init__(self) -> None:
        self._generation = SimpleNamespace(member_id="")
        self._join_task: Task | None = None
        self.rejoin = True

    def need_rejoin(self) -> bool:
        return self.rejoin


class Consumer:
    """`polls_to_member_id` polls until the broker's member id comes back and the held JoinGroup
    is sent; `records` is what one of those polls returns (a broker that answers at once)."""

    def __init__(self, polls_to_member_id: int = 2, records: dict[Any, list[Any]] | None = None) -> None:
        self._coordinator = Coordinator()
        self.polls_to_member_id = polls_to_member_id
        self.records = records or {}
        self.polls = 0
        self.subscriptions: list[list[str]] = []
        self.config = {"group_id": "evmonitor-bridge", "session_timeout_ms": 6000}

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.subscriptions.append(list(topics))

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        self.polls += 1
        if self.polls >= self.polls_to_member_id:
            self._coordinator._generation.member_id = "member-1"
            self._coordinator._join_task = Task()
        records, self.records = self.records, {}
        return records

    def assignment(self) -> set[Any]:
        return set()


def test_start_polls_until_the_held_join_group_is_sent_and_no_longer():
    consumer = Consumer(polls_to_member_id=3)
    EarlyJoin(consumer, Rebalance(), threading.Event())
    assert consumer.polls == 3  # no member id after polls 1 and 2: FindCoordinator, MEMBER_ID_REQUIRED
    assert consumer.subscriptions and _join_sent(consumer)


def test_a_member_id_with_a_finished_join_task_is_not_a_join_in_flight():
    """The task that got MEMBER_ID_REQUIRED is done: the JoinGroup with the id is still to send."""
    consumer = Consumer()
    consumer._coordinator._generation.member_id = "member-1"
    consumer._coordinator._join_task = Task()
    consumer._coordinator._join_task.is_done = True
    assert _join_sent(consumer) is False
    consumer._coordinator.rejoin = False  # joined: nothing left to send
    assert _join_sent(consumer) is True


def test_records_an_early_poll_returns_are_the_bridges_first_poll():
    tp = TP("ev.status", 0)
    consumer = Consumer(polls_to_member_id=1, records={tp: ["r0", "r1"]})
    early = EarlyJoin(consumer, Rebalance(), threading.Event())
    source = KafkaSource(consumer, threading.Event(), pending=early.take())
    polls = consumer.polls
    assert source.poll(timeout_ms=100, max_records=10) == {tp: ["r0", "r1"]}
    assert consumer.polls == polls  # handed over, not polled again
    assert early.take() == {}
    consumer._coordinator.rejoin = False  # joined
    assert source.poll(timeout_ms=100, max_records=10) == {}
    assert consumer.polls == polls + 1


def test_a_consumer_that_does_not_show_its_join_gets_one_poll():
    """Another kafka-python than 3.0: no `_coordinator._join_task` to read, so one 250 ms poll
    starts the join and kafka-python's next polls finish it."""

    class Plain(Consumer):
        def __init__(self) -> None:
            super().__init__()
            del self._coordinator

    consumer = Plain()
    assert _join_sent(consumer) is None
    EarlyJoin(consumer, Rebalance(), threading.Event())
    assert consumer.polls == 1


def test_a_stop_during_start_sends_nothing_more():
    stop = threading.Event()
    stop.set()
    consumer = Consumer()
    EarlyJoin(consumer, Rebalance(), stop)
    assert consumer.polls == 0


def test_revoked_partitions_reach_the_bridge_once_it_exists():
    listener = Rebalance()
    listener.on_partitions_revoked([SimpleNamespace(topic="ev.status", partition=1)])  # no bridge yet: nothing
    seen: list[list[tuple[str, int]]] = []
    listener.on_revoked = seen.append
    listener.on_partitions_revoked([SimpleNamespace(topic="ev.status", partition=1)])
    assert seen == [[("ev.status", 1)]]
