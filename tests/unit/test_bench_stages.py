"""The PostgreSQL stage writes the bridge's batches: by lane, as the bridge makes them."""

from __future__ import annotations

from kafka.partitioner.default import DefaultPartitioner

from bench.stages import lane_batches, station_halves


class _Cluster:
    """What kafka-python's DefaultPartitioner asks of the cluster metadata."""

    def __init__(self, partitions: int) -> None:
        self.ids = set(range(partitions))

    def topics(self):
        return {"ev.station.status"}

    def partitions_for_topic(self, topic):
        return self.ids

    def available_partitions_for_topic(self, topic):
        return self.ids


def _events(n: int, stations: int) -> list[dict]:
    return [{"station_id": f"ST-{(i * 7) % stations:05d}", "n": i} for i in range(n)]


def test_lane_batches_hold_one_lane_each_in_stream_order_the_lanes_taking_turns():
    events = _events(5_000, 300)
    partitions, lanes, size = 6, 3, 400
    partitioner = DefaultPartitioner()

    def lane(event):  # the partition the producer's partitioner gives the station's key, modulo lanes
        key = event["station_id"].encode()
        return partitioner.partition("ev.station.status", key, key, None, None, _Cluster(partitions)) % lanes

    batches = lane_batches(events, size, partitions, lanes)
    assert sorted(e["n"] for b in batches for e in b) == list(range(5_000))  # each event once
    assert all(0 < len(b) <= size and len({lane(e) for e in b}) == 1 for b in batches)
    for which in range(lanes):  # a lane's events in stream order, full batches but its last
        own = [b for b in batches if lane(b[0]) == which]
        assert [e["n"] for b in own for e in b] == [e["n"] for e in events if lane(e) == which]
        assert all(len(b) == size for b in own[:-1])
    firsts = [lane(b[0]) for b in batches[:lanes]]
    assert sorted(firsts) == list(range(lanes))  # the lanes take turns


def test_station_halves_never_put_one_station_in_both_halves():
    events = _events(3_000, 200)
    batches = station_halves(events, 250)
    assert sorted(e["n"] for b in batches for e in b) == list(range(3_000))
    halves = [set(), set()]
    for i, batch in enumerate(batches):
        halves[i % 2] |= {e["station_id"] for e in batch}
    assert not halves[0] & halves[1]
