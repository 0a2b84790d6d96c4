"""The gateway's Prometheus metrics, served on EVMON_METRICS_ADDRESS:EVMON_GATEWAY_METRICS_PORT (0: off).

One port per process, no multiprocess mode: the gateway is one asyncio process.

    evmonitor_gateway_chargers_connected                 gauge, read from the open sessions at scrape time
    evmonitor_gateway_messages_total{action, result}     CALLs from chargers: result ok | error (a CALLERROR answered)
    evmonitor_gateway_events_published_total{kind}       records Kafka acknowledged: kind event | deadletter
    evmonitor_gateway_handshakes_total{result}           accepted | refused (unknown id, bad password, registry down)

`action` is an OCPP 1.6 action name, or `other` for any name the gateway has no handler for (a
bounded label set whatever chargers send).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["GatewayMetrics", "serve_metrics"]


class _Connected(Collector):
    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("evmonitor_gateway_chargers_connected", "Chargers connected now")
        gauge.add_metric([], self.count())
        yield gauge


class GatewayMetrics:
    """The gateway's registry; `connected` is asked at scrape time (the number of open charger sessions)."""

    def __init__(self, connected: Callable[[], int], actions: frozenset[str]) -> None:
        self.registry = CollectorRegistry()
        self.actions = actions
        self.messages = Counter("evmonitor_gateway_messages", "CALLs received from chargers, by action and result",
                                ["action", "result"], registry=self.registry)  # fmt: skip
        self.published = Counter("evmonitor_gateway_events_published", "Records Kafka acknowledged, by kind",
                                 ["kind"], registry=self.registry)  # fmt: skip
        self.handshakes = Counter("evmonitor_gateway_handshakes", "WebSocket handshakes, by result", ["result"],
                                  registry=self.registry)  # fmt: skip
        for kind in ("event", "deadletter"):
            self.published.labels(kind)
        for result in ("accepted", "refused"):
            self.handshakes.labels(result)
        self.registry.register(_Connected(connected))

    def message(self, action: str, result: str) -> None:
        self.messages.labels(action if action in self.actions else "other", result).inc()


def serve_metrics(port: int, metrics: GatewayMetrics, address: str = "127.0.0.1") -> Any:
    """Serve /metrics on address:`port` from a daemon thread; returns the server."""
    server, _thread = start_http_server(port, addr=address, registry=metrics.registry)
    return server
