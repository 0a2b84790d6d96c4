"""The bridge's Prometheus metrics, served on EVMON_METRICS_ADDRESS:EVMON_BRIDGE_METRICS_PORT (0: off).

One port per process, no multiprocess mode: the bridge is one process. The collector reads the
bridge's own counters (`Bridge.stats`, its in-flight batches) and the consumer lag that
`LagProbe` measures on the bridge's thread, so scraping never touches the Kafka consumer (which
is not thread-safe) and never slows the loop. The port has no auth: it is bound to 127.0.0.1
unless EVMON_METRICS_ADDRESS says otherwise (compose: the private container network).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["BridgeCollector", "LagProbe", "serve_metrics"]


class LagProbe:
    """Consumer lag per partition (highwater - position), refreshed at most every `every_s` on the caller's thread."""

    def __init__(self, consumer: Any, every_s: float = 1.0) -> None:
        self.consumer = consumer
        self.every_s = every_s
        self.lag: dict[tuple[str, int], int] = {}
        self._next = 0.0

    def refresh(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        lag: dict[tuple[str, int], int] = {}
        for tp in self.consumer.assignment():
            try:
                high = self.consumer.highwater(tp)
                position = self.consumer.position(tp, timeout_ms=50)
            except Exception:  # a partition being revoked: measured next time
                continue
            if high is not None and position is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - position)
        self.lag = lag  # one assignment: a scrape sees the old dict or the new one


class BridgeCollector(Collector):
    def __init__(self, bridge: Any, probe: LagProbe | None = None) -> None:
        self.bridge = bridge
        self.probe = probe

    def collect(self) -> Iterator[Any]:
        stats = self.bridge.stats
        for _ in range(3):  # the bridge's thread may add a reason while we copy
            try:
                rejected = dict(stats.rejected)
                break
            except RuntimeError:
                continue
        else:
            rejected = {}
        consumed = CounterMetricFamily("evmonitor_bridge_records", "Records consumed, by result", labels=["result"])
        consumed.add_metric(["valid"], stats.valid)
        consumed.add_metric(["rejected"], sum(rejected.values()))
        yield consumed
        slow = CounterMetricFamily("evmonitor_bridge_slow_path_records",
                                   "Records the fast path left to the pydantic models (every rejection among them)")  # fmt: skip
        slow.add_metric([], stats.slow_path)
        yield slow
        dead = CounterMetricFamily("evmonitor_bridge_deadletters", "Records dead-lettered, by reason", labels=["reason"])
        for reason, n in sorted(rejected.items()):
            dead.add_metric([reason], n)
        yield dead
        batches = CounterMetricFamily("evmonitor_bridge_batches", "Batches, by what happened", labels=["event"])
        for event, n in (("published", stats.batches_published), ("republished", stats.batches_republished),
                         ("done", stats.batches_done)):  # fmt: skip
            batches.add_metric([event], n)
        yield batches
        commits = CounterMetricFamily("evmonitor_bridge_commits", "Offset commits")
        commits.add_metric([], stats.commits)
        yield commits
        inflight = GaugeMetricFamily("evmonitor_bridge_batches_in_flight", "Batches published and not yet in every sink")
        inflight.add_metric([], len(self.bridge.inflight))
        yield inflight
        paused = GaugeMetricFamily("evmonitor_bridge_paused", "1 while back-pressure pauses fetching")
        paused.add_metric([], 1 if self.bridge.paused else 0)
        yield paused
        lag = GaugeMetricFamily("evmonitor_bridge_consumer_lag", "Records behind the partition's end",
                                labels=["topic", "partition"])  # fmt: skip
        for (topic, partition), n in sorted((self.probe.lag if self.probe else {}).items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag


def serve_metrics(port: int, bridge: Any, probe: LagProbe | None, address: str = "127.0.0.1") -> Any:
    """Serve /metrics on address:`port` from a daemon thread; returns the server."""
    registry = CollectorRegistry()
    registry.register(BridgeCollector(bridge, probe))
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server
