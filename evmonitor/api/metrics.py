"""`/metrics` of the API process: its own requests, and the network as the database sees it.

The network gauges (stations by board status, sessions by status, open alerts, completed
batches per sink) are read from PostgreSQL at scrape time by a custom collector, so they are
exact at the moment of the scrape and no other process needs to push them. Each API process has
its own registry (no multiprocess mode: run one API process per port and scrape each).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from evmonitor.api import queries

__all__ = ["ApiMetrics", "NetworkCollector"]


class NetworkCollector(Collector):
    def __init__(self, engine: sa.Engine, offline_before: Callable[[], datetime]) -> None:
        self.engine = engine
        self.offline_before = offline_before

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.engine.connect() as conn:
            counts = queries.metrics_counts(conn, offline_before=self.offline_before())
        stations = GaugeMetricFamily("evmonitor_stations", "Stations by board status", labels=["status"])
        for status in queries.BOARD_STATUSES:
            stations.add_metric([status], counts["stations"].get(status, 0))
        yield stations
        sessions = GaugeMetricFamily("evmonitor_sessions", "Charging sessions by status", labels=["status"])
        for status in sorted({"active", "completed", "stale", *counts["sessions"]}):
            sessions.add_metric([status], counts["sessions"].get(status, 0))
        yield sessions
        running = GaugeMetricFamily("evmonitor_sessions_running", "Sessions active now")
        running.add_metric([], counts["sessions"].get("active", 0))
        yield running
        alerts = GaugeMetricFamily("evmonitor_alerts_open", "Open alerts", labels=["kind", "severity"])
        for (kind, severity), n in sorted(counts["alerts_open"].items()):
            alerts.add_metric([kind, severity], n)
        yield alerts
        batches = GaugeMetricFamily("evmonitor_ingest_batches_unsettled",
                                    "Batches a sink completed that the bridge has not yet committed past", labels=["sink"])
        for sink, n in sorted(counts["batches_unsettled"].items()):
            batches.add_metric([sink], n)
        yield batches


class ApiMetrics:
    """The API's registry: request counts and latency by route template, plus the network gauges."""

    def __init__(self, engine: sa.Engine, offline_before: Callable[[], datetime]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("evmonitor_api_requests", "API requests", ["method", "route", "status"],
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("evmonitor_api_request_duration_seconds", "API request duration", ["method", "route"],
                                 registry=self.registry)  # fmt: skip
        self.registry.register(NetworkCollector(engine, offline_before))

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(time.perf_counter() - started)
