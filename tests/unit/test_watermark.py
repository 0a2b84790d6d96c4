"""The event-time watermark: the bridge's rows per partition, and the moment beat judges by."""

from __future__ import annotations

from collections import namedtuple
from datetime import timedelta

import pytest

from beat.watermark import PartitionMark, watermark
from evmonitor.bridge.bridge import Bridge
from evmonitor.config import Settings
from evmonitor.deadletter import DeadLetters
from tests.factories import NOW, encode, make_event
from tests.unit.test_bridge import FakeConsumer, FakeProducer

MIN = timedelta(minutes=1)
TP = namedtuple("TP", "topic partition")


def mark(partition, caught_up, event_time=None, observed_at=NOW):
    return PartitionMark("ev.station.status", partition, caught_up, event_time, observed_at)


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        ([], NOW),  # no bridge ever ran: the wall clock
        ([mark(0, True, observed_at=NOW - 3 * MIN)], NOW - 3 * MIN),  # caught up 3 min ago, then nothing known
        ([mark(0, True), mark(1, False, NOW - 60 * MIN)], NOW - 60 * MIN),  # one partition catching up holds all back
        ([mark(0, False, NOW - 5 * MIN), mark(1, False, NOW - 9 * MIN)], NOW - 9 * MIN),  # the slowest partition
        ([mark(0, True), mark(1, False, None)], None),  # a partition that processed nothing yet: wait
        ([mark(0, False, NOW + 10 * MIN)], NOW),  # event times ahead of the wall clock: capped by it
        ([mark(0, True, NOW - 90 * MIN, observed_at=NOW - MIN)], NOW - MIN),  # caught up: its old events don't matter
        # a quiet partition that just got a record: as of when it was last caught up, not its old events
        ([PartitionMark("t", 0, False, NOW - 90 * MIN, NOW, caught_up_at=NOW - 2 * MIN)], NOW - 2 * MIN),
    ],
)
def test_the_watermark_rule(marks, expected):
    assert watermark(marks, NOW) == expected


class ProgressConsumer(FakeConsumer):
    """FakeConsumer whose high-water marks are what was fed, with positions past what was polled."""

    def progress(self):
        out = {}
        for tp in self.queue:
            polled = getattr(self, f"_n_{tp.topic}_{tp.partition}", 0)
            out[(tp.topic, tp.partition)] = (polled, polled + len(self.queue[tp]))
        return out


def test_the_bridge_reports_committed_event_time_until_caught_up():
    settings = Settings(batch_max_events=2, commit_interval_s=1.0, completion_poll_s=0.1, watermark_interval_s=1.0)
    consumer, rows, done, clock = ProgressConsumer(), [], {}, [1000.0]
    bridge = Bridge(settings, consumer=consumer, publish=lambda sink, batch: None,
                    completions=lambda ids: {i: done[i] for i in ids if i in done},
                    deadletters=DeadLetters(FakeProducer(), "ev.deadletter"), watermarks=rows.append,
                    clock=lambda: clock[0], wall=lambda: NOW)  # fmt: skip
    old = [encode(make_event("station_status", at=NOW - (60 - i) * MIN, heartbeat=True)) for i in range(4)]
    consumer.feed("ev.station.status", 0, old)
    consumer.feed("ev.session.started", 0, [])

    def run():
        bridge.step(poll_timeout_ms=0)
        clock[0] += 1.1

    run()  # polls 2 (one batch), commits nothing: the partition is unknown, the empty one caught up
    assert {(r["topic"], r["caught_up"], r["event_time"], r["caught_up_at"]) for r in rows[-1]} == {
        ("ev.session.started", True, None, NOW), ("ev.station.status", False, None, None)}
    first = next(iter(bridge.inflight))
    done[first] = {"persist", "index"}
    run()  # completes and commits the first batch; polls the last two
    status = next(r for r in rows[-1] if r["topic"] == "ev.station.status")
    assert (status["caught_up"], status["event_time"], status["committed_offset"]) == (False, NOW - 59 * MIN, 2)
    for batch_id in list(bridge.inflight):
        done[batch_id] = {"persist", "index"}
    run()
    status = next(r for r in rows[-1] if r["topic"] == "ev.station.status")
    assert (status["caught_up"], status["event_time"], status["committed_offset"]) == (True, NOW - 57 * MIN, 4)


def test_a_failed_watermark_write_is_retried_and_stops_nothing():
    from evmonitor.errors import TransientError

    calls = []

    def down(rows):
        calls.append(rows)
        raise TransientError("postgres down")

    consumer, clock = ProgressConsumer(), [1000.0]
    consumer.feed("ev.station.status", 0, [encode(make_event("station_status"))])
    bridge = Bridge(Settings(watermark_interval_s=1.0), consumer=consumer, publish=lambda sink, batch: None,
                    completions=lambda ids: {i: {"persist", "index"} for i in ids},
                    deadletters=DeadLetters(FakeProducer(), "ev.deadletter"), watermarks=down,
                    clock=lambda: clock[0], wall=lambda: NOW)  # fmt: skip
    for _ in range(3):
        bridge.step(poll_timeout_ms=0)
        clock[0] += 1.1
    assert len(calls) == 3 and bridge.stats.consumed == 1
