"""Freshness: at a steady offered load, how long from produce until PostgreSQL has an event and
until the search server finds it.

The load is a planned day replayed at a fixed rate (live mode's rate follows the fleet's state,
not a dial). Each event's send time is noted; two pollers look for the events sent and not yet
seen, every `poll_s`:

* PostgreSQL: `status_events` rows by event_id (every status change gets one; they share their
  batches and transactions with every other event, so their delay is every event's delay);
* search: an `ids` query over `charging-events*` for a sample of the events (one in
  `search_every`, polled every `search_poll_s`: the queries load the same server that indexes,
  so they are kept few). osmem makes a document searchable when its bulk request returns;
  Elasticsearch with the index template's `refresh_interval: 1s` would add up to 1 s.

A delay is (the poll's answer arrived) - (just before `send`), so it includes up to one poll
interval of the poller's own lag. The first `warmup_s` are not counted.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from bench.procstat import CpuMeter, own_cpu_seconds
from bench.stats import percentile
from bench.workload import Workload
from evmonitor.config import Settings
from evmonitor.stack.simulate import RecordingProducer
from evmonitor.storage.kafka import make_producer

__all__ = ["Freshness", "measure_freshness"]


@dataclass
class Freshness:
    offered_per_s: float
    achieved_per_s: float
    seconds: float
    poll_s: float
    search_poll_s: float
    postgres_ms: dict[str, float | None] = field(default_factory=dict)
    search_ms: dict[str, float | None] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)
    machine_busy_fraction: float = 0.0
    background_fraction: float = 0.0  # of the machine, used by processes that are not this run's
    sinks: list[str] = field(default_factory=list)
    cpu_us_per_event: dict[str, float] = field(default_factory=dict)  # per event sent, each process

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _summary(delays_s: list[float]) -> dict[str, float | None]:
    """Percentiles in ms; also the median of the first and last third of the run (in send order):
    a last third far slower than the first means the path fell behind the offered load."""
    ms = [d * 1000 for d in delays_s]
    third = max(1, len(ms) // 3)
    figures = (("p50", percentile(ms, 50)), ("p90", percentile(ms, 90)), ("p99", percentile(ms, 99)),
               ("max", max(ms) if ms else None), ("first_third_p50", percentile(ms[:third], 50)),
               ("last_third_p50", percentile(ms[-third:], 50)))  # fmt: skip
    return {q: (round(v, 1) if v is not None else None) for q, v in figures}


class _Poller(threading.Thread):
    """Finds which pending ids have arrived, every `poll_s`, and records their delay."""

    def __init__(self, name: str, lookup: Callable[[list[str]], set[str]], poll_s: float) -> None:
        super().__init__(name=f"poll-{name}", daemon=True)
        self.lookup, self.poll_s = lookup, poll_s
        self.pending: dict[str, float] = {}
        self.delays: list[tuple[float, float]] = []  # (sent_at, delay)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.errors = 0

    def expect(self, event_id: str, sent_at: float) -> None:
        with self.lock:
            self.pending[event_id] = sent_at

    def run(self) -> None:
        while not self.stopped.is_set():
            with self.lock:
                ids = list(self.pending)
            if ids:
                try:
                    found = self.lookup(ids)
                except Exception:  # a poll that fails is retried on the next tick
                    self.errors += 1
                    found = set()
                now = time.time()
                with self.lock:
                    for event_id in found:
                        sent_at = self.pending.pop(event_id, None)
                        if sent_at is not None:
                            self.delays.append((sent_at, now - sent_at))
            self.stopped.wait(self.poll_s)


def _postgres_lookup(settings: Settings) -> Callable[[list[str]], set[str]]:
    engine = sa.create_engine(settings.sqlalchemy_url, pool_size=1)
    query = sa.text("SELECT event_id::text FROM status_events WHERE event_id = ANY(CAST(:ids AS uuid[]))")

    def lookup(ids: list[str]) -> set[str]:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(query, {"ids": ids})}

    return lookup


def _search_lookup(settings: Settings) -> Callable[[list[str]], set[str]]:
    parts = urlsplit(settings.elasticsearch_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    path = f"/{settings.index_prefix}*/_search"

    def lookup(ids: list[str]) -> set[str]:
        body = json.dumps({"query": {"ids": {"values": ids}}, "_source": False, "size": len(ids)})
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        return {hit["_id"] for hit in answer.get("hits", {}).get("hits", [])}

    return lookup


def measure_freshness(
    settings: Settings,
    workload: Workload,
    meter: CpuMeter,
    *,
    rate_per_s: float,
    seconds: float,
    warmup_s: float = 3.0,
    poll_s: float = 0.05,
    search_poll_s: float = 0.1,
    search_every: int = 20,
    settle_s: float = 15.0,
    search: bool = True,
) -> Freshness:
    """Offer `rate_per_s` for `seconds`; `meter` covers the run's processes (for the background
    share and their CPU per event). Without `search` (the persist sink alone) only PostgreSQL is polled."""
    messages = workload.plan.messages[: int(rate_per_s * seconds)]
    meter.start()
    own0 = own_cpu_seconds()
    pg = _Poller("postgres", _postgres_lookup(settings), poll_s)
    pollers = {"postgres": pg}
    if search:
        pollers["search"] = _Poller("search", _search_lookup(settings), search_poll_s)
    for poller in pollers.values():
        poller.start()
    producer = RecordingProducer(make_producer(settings.kafka_bootstrap))
    group = max(1, round(rate_per_s * 0.01))  # send in 10 ms steps
    started = time.monotonic()
    wall0 = time.time()
    sent = 0
    try:
        for i, message in enumerate(messages):
            if i % group == 0:
                delay = started + i / rate_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the offered load; this thread has nothing else to do
            event = json.loads(message.value)
            sent_at = time.time()
            producer.send(message.topic, key=message.key, value=message.value)
            if event["event_type"] == "station_status" and not event.get("heartbeat"):
                pg.expect(event["event_id"], sent_at)
            if search and i % search_every == 0:
                pollers["search"].expect(event["event_id"], sent_at)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + settle_s
    for poller in pollers.values():
        while poller.pending and time.monotonic() < deadline:
            time.sleep(poll_s)  # the pollers are still finding the last events
        poller.stopped.set()
        poller.join()
    cpu = meter.stop()
    cpu["simulator"] = own_cpu_seconds() - own0  # the paced producer and the pollers
    busy, total = cpu.pop("_machine_busy"), max(1e-9, cpu.pop("_machine_total"))
    cpu.pop("_wall")
    cutoff = wall0 + warmup_s
    result = Freshness(offered_per_s=rate_per_s, achieved_per_s=round(sent / elapsed, 1), seconds=round(elapsed, 1),
                       poll_s=poll_s, search_poll_s=search_poll_s, machine_busy_fraction=round(busy / total, 3),
                       background_fraction=round(max(0.0, busy - sum(cpu.values())) / total, 3),
                       sinks=["persist", "index"] if search else ["persist"],
                       cpu_us_per_event={k: round(v / max(1, sent) * 1e6, 1) for k, v in cpu.items()})  # fmt: skip
    for name, poller in pollers.items():
        delays = [d for at, d in sorted(poller.delays) if at >= cutoff]
        summary = _summary(delays)
        if name == "postgres":
            result.postgres_ms = summary
        else:
            result.search_ms = summary
        result.samples[name] = len(delays)
        result.unseen[name] = len(poller.pending)
    return result
