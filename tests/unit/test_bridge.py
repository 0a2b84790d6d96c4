"""The bridge loop against fakes: batching, the commit rule, re-publishing, back-pressure."""

from __future__ import annotations

from collections import deque, namedtuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evmonitor.bridge.bridge import Bridge, BridgeHalted
from evmonitor.bridge.offsets import OffsetTracker
from evmonitor.config import Settings
from evmonitor.deadletter import DeadLetters, parse_record
from evmonitor.errors import TransientError
from evmonitor.names import SinkName
from tests.factories import NOW, encode, make_event

TP = namedtuple("TP", "topic partition")
Record = namedtuple("Record", "offset key value timestamp")
TS = int(NOW.timestamp() * 1000)


class FakeConsumer:
    def __init__(self):
        self.queue: dict[TP, list[Record]] = {}
        self.commits: list[dict] = []
        self._paused: set = set()

    def feed(self, topic, partition, values):
        tp = TP(topic, partition)
        records = self.queue.setdefault(tp, [])
        base = sum(1 for _ in records) + getattr(self, f"_n_{topic}_{partition}", 0)
        for i, value in enumerate(values):
            records.append(Record(base + i, b"ST-0001", value, TS))

    def poll(self, timeout_ms, max_records):
        out = {}
        for tp, records in self.queue.items():
            if tp in self._paused or not records:
                continue
            take, self.queue[tp] = records[:max_records], records[max_records:]
            setattr(self, f"_n_{tp.topic}_{tp.partition}", take[-1].offset + 1)
            out[tp] = take
        return out

    def assignment(self):
        return set(self.queue)

    def paused(self):
        return set(self._paused)

    def pause(self, *tps):
        self._paused |= set(tps)

    def resume(self, *tps):
        self._paused -= set(tps)

    def commit_offsets(self, offsets):
        self.commits.append(dict(offsets))

    @property
    def committed(self):
        merged = {}
        for c in self.commits:
            merged.update(c)
        return merged


class FakeFuture:
    def __init__(self, ok=True):
        self.ok = ok
        self.exception = None if ok else RuntimeError("kafka down")

    def succeeded(self):
        return self.ok


class FakeProducer:
    def __init__(self):
        self.sent = []
        self.fail = False  # Kafka refuses the records: their futures fail at flush
        self.refuse: Exception | None = None  # send itself raises (no metadata, buffer full)
        self.log: list[str] = []

    def send(self, topic, key=None, value=None, headers=None):
        if self.refuse is not None:
            raise self.refuse
        self.sent.append((topic, key, value, headers))
        self.log.append("send")
        return FakeFuture(ok=not self.fail)

    def flush(self, timeout=None):
        self.log.append("flush")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Harness:
    def __init__(self, **overrides):
        defaults = dict(batch_max_events=10, batch_max_ms=200, commit_interval_s=1.0, completion_poll_s=0.1,
                        republish_after_s=30.0, max_inflight_batches=100, deadletter_window=1000)  # fmt: skip
        defaults.update(overrides)
        self.settings = Settings(**defaults)
        self.consumer = FakeConsumer()
        self.published: list[tuple[str, str, int]] = []
        self.done: dict[str, set[str]] = {}
        self.producer = FakeProducer()
        self.clock = Clock()
        self.publish_error: Exception | None = None
        self.bridge = Bridge(
            self.settings, consumer=self.consumer, publish=self.publish, completions=self.completions,
            deadletters=DeadLetters(self.producer, "ev.deadletter"), clock=self.clock, wall=lambda: NOW,
        )  # fmt: skip

    def publish(self, sink, batch):
        if self.publish_error:
            raise self.publish_error
        self.published.append((sink, batch.batch_id, len(batch.events)))

    def completions(self, ids):
        return {i: self.done[i] for i in ids if i in self.done}

    def complete(self, batch_id, *sinks):
        self.done.setdefault(batch_id, set()).update(sinks or tuple(SinkName))

    def run(self, steps=1, advance=0.3):
        for _ in range(steps):
            self.bridge.step(poll_timeout_ms=0)
            self.clock.t += advance

    def batch_ids(self, sink="persist"):
        return [b for s, b, _ in self.published if s == sink]


def valid(n):
    return [encode(make_event("station_status")) for _ in range(n)]


def test_one_task_per_batch_per_queue_never_per_event():
    """25 events with batches of 10 become 3 tasks on each queue."""
    h = Harness()
    h.consumer.feed("ev.station.status", 0, valid(25))
    h.run(steps=4)
    assert sorted(n for s, _, n in h.published if s == "persist") == [5, 10, 10]
    assert sorted(n for s, _, n in h.published if s == "index") == [5, 10, 10]


def test_offsets_are_committed_only_when_both_sinks_completed():
    """Nothing is committed until persist AND index report the batch done."""
    h = Harness()
    h.consumer.feed("ev.station.status", 0, valid(10))
    h.run(steps=5)
    (batch,) = h.batch_ids()
    assert h.consumer.committed == {}
    h.complete(batch, "persist")
    h.run(steps=5)
    assert h.consumer.committed == {}, "committed with only the persist sink done"
    h.complete(batch, "index")
    h.run(steps=5)
    assert h.consumer.committed == {("ev.station.status", 0): 10}


def test_a_later_batch_completing_first_does_not_move_the_commit_past_an_earlier_one():
    """Commit stops at the first unfinished batch of the partition."""
    h = Harness()
    h.consumer.feed("ev.station.status", 0, valid(20))
    h.run(steps=5)
    first, second = h.batch_ids()
    h.complete(second)
    h.run(steps=5)
    assert h.consumer.committed.get(("ev.station.status", 0), 0) == 0
    h.complete(first)
    h.run(steps=5)
    assert h.consumer.committed[("ev.station.status", 0)] == 20


def test_the_bridge_commits_as_soon_as_its_last_batch_completes_not_at_the_next_interval():
    """Caught up (nothing in flight, waiting or batched): the offsets go out at once, so a
    drained backlog shows no lag without waiting up to a commit interval. While batches are
    still in flight, commits keep to the interval."""
    h = Harness(commit_interval_s=600.0)
    h.consumer.feed("ev.station.status", 0, valid(20))
    h.run(steps=2, advance=0.05)
    first, second = h.batch_ids()
    commits = len(h.consumer.commits)
    h.complete(first)
    h.clock.t += 0.2
    h.run(steps=2, advance=0.2)
    assert len(h.consumer.commits) == commits, "committed on the interval's behalf while a batch was in flight"
    h.complete(second)
    h.clock.t += 0.2
    h.bridge.step(poll_timeout_ms=0)
    assert h.consumer.committed == {("ev.station.status", 0): 20}
    h.consumer.feed("ev.station.status", 0, valid(3))  # a batch left open: not idle
    h.run(steps=1, advance=0.01)
    assert h.consumer.committed == {("ev.station.status", 0): 20}


def test_rejected_records_are_dead_lettered_with_reason_and_original_bytes():
    """A bad record goes to ev.deadletter with its reason and bytes, and the stream goes on."""
    h = Harness()
    h.consumer.feed("ev.station.status", 0, [b"{broken", *valid(3)])
    h.run(steps=2)
    ((topic, key, value, headers),) = h.producer.sent
    record = parse_record(value)
    assert topic == "ev.deadletter" and key == b"ST-0001" and headers == [("reason", b"invalid_json")]
    assert record["reason"] == "invalid_json" and record["original"] == b"{broken"
    assert record["source"] == {"topic": "ev.station.status", "partition": 0, "offset": 0, "key": "ST-0001"}
    assert h.bridge.stats.rejected == {"invalid_json": 1} and h.bridge.stats.valid == 3


def test_no_commit_past_a_dead_letter_kafka_did_not_take():
    """If the dead-letter write fails, the offset of the bad record is not committed."""
    h = Harness()
    h.producer.fail = True
    h.consumer.feed("ev.station.status", 0, [b"{broken"])
    h.run(steps=10)
    assert h.consumer.committed == {}
    h.producer.fail = False
    h.run(steps=10)
    assert h.consumer.committed == {("ev.station.status", 0): 1}
    assert len(h.producer.sent) >= 2  # the refused record was sent again ...
    assert len({value for _, _, value, _ in h.producer.sent}) == 1  # ... the same record


def test_the_dead_letters_of_a_poll_go_out_together_and_are_flushed_before_the_commit():
    """Every dead letter of a poll is handed to the producer at the poll's end, not at the next
    commit, and the commit past them comes only after a flush that follows all of them."""
    h = Harness()
    commit_offsets = h.consumer.commit_offsets
    h.consumer.commit_offsets = lambda offsets: (h.producer.log.append("commit"), commit_offsets(offsets))
    h.consumer.feed("ev.station.status", 0, [b"{broken", b"", *valid(2), b"[]"])
    h.bridge.step(poll_timeout_ms=0)
    assert [parse_record(v)["source"]["offset"] for _, _, v, _ in h.producer.sent] == [0, 1, 4]
    assert h.producer.log == ["send"] * 3 and h.consumer.committed == {}
    h.run(steps=2)
    (batch,) = h.batch_ids()
    h.complete(batch)
    h.run(steps=5)
    assert h.consumer.committed == {("ev.station.status", 0): 5}
    assert h.producer.log[: h.producer.log.index("commit")] == ["send"] * 3 + ["flush"]


def test_a_dead_letter_the_producer_would_not_take_is_kept_and_nothing_is_committed_past_it():
    """A send that raises (no metadata, buffer full) leaves the poll's dead letters queued; they
    go out, in order, once the producer takes them again, and only then is their offset committed."""
    h = Harness()
    h.producer.refuse = RuntimeError("buffer full")
    h.consumer.feed("ev.station.status", 0, [b"{broken", b"[]"])
    with pytest.raises(RuntimeError, match="buffer full"):
        h.bridge.step(poll_timeout_ms=0)
    h.clock.t += 5.0
    with pytest.raises(RuntimeError, match="buffer full"):
        h.bridge.commit()
    assert h.consumer.committed == {} and h.bridge.deadletters.pending == 2
    h.producer.refuse = None
    h.run(steps=5, advance=1.0)
    assert [parse_record(v)["source"]["offset"] for _, _, v, _ in h.producer.sent] == [0, 1]
    assert h.consumer.committed == {("ev.station.status", 0): 2} and h.bridge.deadletters.pending == 0


def test_a_batch_whose_completion_never_comes_is_republished_to_the_missing_sink():
    """Lost with Redis or a worker: after republish_after_s the batch is published again."""
    h = Harness(republish_after_s=30.0)
    h.consumer.feed("ev.station.status", 0, valid(10))
    h.run(steps=2)
    (batch,) = h.batch_ids()
    h.complete(batch, "persist")
    h.run(steps=10, advance=4.0)
    assert [s for s, b, _ in h.published if b == batch] == ["persist", "index", "index"]
    h.complete(batch, "index")
    h.run(steps=2)
    assert h.consumer.committed == {("ev.station.status", 0): 10}


def test_a_failed_publish_is_retried_and_nothing_is_committed_meanwhile():
    """Broker down at publish time: the batch is kept, retried, and committed only once done."""
    h = Harness()
    h.publish_error = TransientError("redis down")
    h.consumer.feed("ev.station.status", 0, valid(10))
    h.run(steps=5, advance=1.0)
    assert h.published == [] and h.consumer.committed == {}
    h.publish_error = None
    h.run(steps=5, advance=1.0)
    (batch,) = h.batch_ids()
    h.complete(batch)
    h.run(steps=5)
    assert h.consumer.committed == {("ev.station.status", 0): 10}


def test_backpressure_pauses_fetching_and_resumes_by_itself():
    """With max_inflight_batches unfinished, partitions pause; completions resume them."""
    h = Harness(max_inflight_batches=2)
    h.consumer.feed("ev.station.status", 0, valid(50))
    h.run(steps=6)
    assert len(h.batch_ids()) == 2 and h.consumer.paused()
    for b in h.batch_ids():
        h.complete(b)
    h.run(steps=3)
    assert len(h.batch_ids()) > 2


def test_a_stream_of_mostly_garbage_halts_the_bridge():
    """If more than the allowed share of a window is invalid, stop and say why."""
    h = Harness(deadletter_window=20, deadletter_max_ratio=0.5)
    h.consumer.feed("ev.station.status", 0, [b"junk"] * 30)
    with pytest.raises(BridgeHalted, match="EVMON_DEADLETTER_MAX_RATIO"):
        h.run(steps=3)


@given(verdicts=st.lists(st.booleans(), max_size=60), window=st.integers(1, 12), max_ratio=st.sampled_from([0.0, 0.25, 0.5, 1.0]))
@settings(max_examples=60, deadline=None)
def test_the_bridge_halts_at_the_first_rejection_over_the_ratio_of_the_last_window(verdicts, window, max_ratio):
    """Halt exactly where a window of the last `deadletter_window` verdicts first holds more than
    `deadletter_max_ratio` rejections, judged at each rejection once the window is full."""
    last: deque[bool] = deque(maxlen=window)
    expected = None
    for i, ok in enumerate(verdicts):
        last.append(ok)
        if not ok and len(last) == window and last.count(False) / window > max_ratio:
            expected = i + 1
            break
    h = Harness(deadletter_window=window, deadletter_max_ratio=max_ratio, batch_max_events=1000, max_inflight_batches=1000)
    h.consumer.feed("ev.station.status", 0, [encode(make_event("station_status")) if ok else b"junk" for ok in verdicts])
    if expected is None:
        h.run(steps=2)
    else:
        with pytest.raises(BridgeHalted):
            h.run(steps=2)
    assert h.bridge.stats.consumed == (expected or len(verdicts))


def test_shutdown_publishes_the_open_batch_and_commits_what_completed():
    """On stop the partial batch is published, awaited and committed."""
    h = Harness(batch_max_events=100, batch_max_ms=10_000)
    h.consumer.feed("ev.station.status", 0, valid(7))
    h.run(steps=1)
    assert h.published == []
    original = h.publish

    def publish_and_complete(sink, batch):
        original(sink, batch)
        h.complete(batch.batch_id, sink)

    h.bridge.publish = publish_and_complete
    h.bridge.shutdown(timeout_s=5)
    assert h.consumer.committed == {("ev.station.status", 0): 7}


def test_tracker_commit_rule_over_partitions():
    """Each partition commits up to its own first held offset."""
    t: OffsetTracker = OffsetTracker()
    for off in range(5):
        t.consumed("a", off)
    t.hold("b1", "a", 2)
    t.consumed("b", 0)
    assert t.committable() == {"a": 2, "b": 1}
    t.release("b1")
    assert t.committable() == {"a": 5, "b": 1}


def test_with_only_the_persist_sink_enabled_commits_wait_for_persist_alone():
    """EVMON_SINKS=persist: tasks go to persist only and its completion is enough to commit."""
    h = Harness(sinks=["persist"])
    h.consumer.feed("ev.station.status", 0, valid(10))
    h.run(steps=3)
    assert {s for s, _, _ in h.published} == {"persist"}
    (batch,) = h.batch_ids()
    h.complete(batch, "persist")
    h.run(steps=5)
    assert h.consumer.committed == {("ev.station.status", 0): 10}


def test_batches_never_mix_lanes_and_a_station_keeps_its_lane_across_topics():
    """Lane = partition number modulo batch_lanes: partitions 0 and 3 of any topic share lane 0 (of 3),
    partition 1 is lane 1; each published batch holds one lane's records, so no two lanes' batches
    share a station (a station's events are in the same partition number of every topic)."""
    h = Harness(batch_max_events=4, batch_lanes=3)
    batches: dict[str, set[tuple[str, int]]] = {}
    h.bridge.tracker.hold = lambda batch_id, tp, offset: batches.setdefault(batch_id, set()).add(tp)
    h.consumer.feed("ev.station.status", 0, valid(3))
    h.consumer.feed("ev.station.status", 1, valid(3))
    h.consumer.feed("ev.meter.values", 3, valid(3))
    h.run(steps=3)
    lanes = {batch_id: {tp[1] % 3 for tp in tps} for batch_id, tps in batches.items()}
    assert all(len(lane) == 1 for lane in lanes.values()), lanes
    # lane 0: partitions 0 and 3, 6 events = a full batch of 4 and 2 flushed by age; lane 1: 3 events
    assert sorted(n for s, _, n in h.published if s == "persist") == [2, 3, 4]


def test_with_lanes_every_open_batch_is_flushed_by_age_and_at_shutdown():
    """Two lanes with a few events each: both batches go out after batch_max_ms, and at shutdown
    every open lane's batch is published."""
    h = Harness(batch_max_events=100, batch_lanes=2)
    h.consumer.feed("ev.station.status", 0, valid(2))
    h.consumer.feed("ev.station.status", 1, valid(3))
    h.run(steps=2)  # 0.6 s > 200 ms
    assert sorted(n for s, _, n in h.published if s == "persist") == [2, 3]
    h.consumer.feed("ev.station.status", 0, valid(1))
    h.consumer.feed("ev.station.status", 1, valid(1))
    h.bridge.step(poll_timeout_ms=0)
    h.bridge.shutdown(timeout_s=0)
    assert sorted(n for s, _, n in h.published if s == "persist") == [1, 1, 2, 3]


def test_lanes_closing_at_once_never_put_more_than_max_inflight_batches_out():
    """Six lanes' batches come due together: only max_inflight_batches are published, the bridge
    pauses, and the rest go out as batches complete; every offset is committed in the end."""
    h = Harness(batch_max_events=100, batch_lanes=6, max_inflight_batches=2)
    for partition in range(6):
        h.consumer.feed("ev.station.status", partition, valid(2))
    h.run(steps=3)
    assert len(h.batch_ids()) == 2 and h.bridge.paused
    while len(h.batch_ids()) < 6:
        for batch_id in h.batch_ids():
            h.complete(batch_id)
        h.run(steps=2)
        assert len(h.bridge.inflight) <= 2
    for batch_id in h.batch_ids():
        h.complete(batch_id)
    h.run(steps=10)
    assert h.consumer.committed == {("ev.station.status", p): 2 for p in range(6)}
    assert not h.bridge.paused


def test_the_events_in_flight_are_bounded_as_well_as_the_batches():
    """Full batches stop at max_inflight_events (the batch count has room), the bridge pauses, and
    the rest go out as batches complete; every offset is committed in the end."""
    h = Harness(batch_max_events=10, max_inflight_batches=100, max_inflight_events=25)
    h.consumer.feed("ev.station.status", 0, valid(60))
    h.run(steps=8)
    assert [n for s, _, n in h.published if s == "persist"] == [10, 10] and h.bridge.paused
    while len(h.batch_ids()) < 6:
        assert sum(len(b) for b in h.bridge.inflight.values()) <= 25
        for batch_id in h.batch_ids():
            h.complete(batch_id)
        h.run(steps=3)
    for batch_id in h.batch_ids():
        h.complete(batch_id)
    h.run(steps=10)
    assert h.consumer.committed == {("ev.station.status", 0): 60}
    assert not h.bridge.paused


def test_a_batch_larger_than_max_inflight_events_still_goes_out_alone():
    h = Harness(batch_max_events=50, max_inflight_events=20)
    h.consumer.feed("ev.station.status", 0, valid(100))
    h.run(steps=4)
    assert [n for s, _, n in h.published if s == "persist"] == [50] and h.bridge.paused
    (batch_id,) = h.batch_ids()
    h.complete(batch_id)
    h.run(steps=4)
    assert [n for s, _, n in h.published if s == "persist"] == [50, 50]


def test_small_batches_are_bounded_by_their_count_not_by_the_events():
    """Batches closed on age (a few events each) still get max_inflight_batches in flight."""
    h = Harness(batch_max_events=1000, batch_lanes=6, max_inflight_batches=4, max_inflight_events=32_000)
    for partition in range(6):
        h.consumer.feed("ev.station.status", partition, valid(2))
    h.run(steps=2)
    h.clock.t += 1.0  # every lane's batch is older than batch_max_ms
    h.run(steps=2)
    assert len(h.bridge.inflight) == 4 and h.bridge.paused
