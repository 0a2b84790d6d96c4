"""Raw stage ceilings, each stage alone on the same machine: what the parts can do without us.

* `kafka_produce` / `kafka_consume`: kafka-python sending the workload to the event topics (the
  simulator's own cost), then one consumer of a fresh group reading it all back, configured as
  the bridge's consumer is.
* `postgres_upsert`: the persist task's four statements per batch, with the rows folded and
  serialised beforehand, one transaction per batch on one connection: PostgreSQL's own ceiling
  for our merge SQL. The folding and serialising it skips is reported apart (`persist_prepare`):
  that is our cost, not the store's.
* `bulk_index`: the index task's bulk requests (500 documents of the workload each), bodies
  serialised beforehand, posted over one keep-alive connection, then over two in parallel.

The Celery ceiling needs a worker process and lives in `bench.celery_stage`.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from bench.procstat import cpu_seconds, rss_bytes
from bench.stats import rate
from bench.workload import Workload, produce
from evmonitor.config import EVENT_TOPICS, Settings
from evmonitor.contract import Limits, Rejection, validate
from evmonitor.fold import fold_columns
from evmonitor.storage.kafka import make_consumer
from evmonitor.storage.postgres import PostgresStore
from evmonitor.storage.search import daily_index, to_document

__all__ = ["StageResult", "bulk_index", "kafka_stages", "postgres_upsert", "wire_events"]


@dataclass
class StageResult:
    name: str
    per_s: float  # items per second
    unit: str  # what an item is: "msg", "events", "docs", "tasks"
    items: int
    seconds: float
    cpu_us_per_item: float | None = None  # the client's CPU (ours), where it is meaningful
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _thread_cpu() -> float:
    return time.thread_time()


def wire_events(workload: Workload) -> tuple[list[dict[str, Any]], StageResult]:
    """The workload's events as the bridge hands them to tasks (validated, normalised), and what
    that cost in-process (`bridge_validate`: our cost per event, not a store's)."""
    now, limits = datetime.now(timezone.utc), Limits()
    out = []
    cpu0 = _thread_cpu()
    for message in workload.plan.messages:
        event = validate(message.value, received_at=now, limits=limits)
        if isinstance(event, Rejection):
            raise AssertionError(f"the workload holds an invalid event: {event}")
        out.append(event.to_wire())
    cpu = _thread_cpu() - cpu0
    n = len(out)
    return out, StageResult("bridge_validate", round(rate(n, cpu)), "events", n, round(cpu, 3), round(cpu / n * 1e6, 1),
                            {"what": "validate + normalise (to_wire), in-process"})  # fmt: skip


def kafka_stages(settings: Settings, workload: Workload, say: Callable[[str], None]) -> list[StageResult]:
    """Load the event topics with `workload` (timed: the producer), then consume it all (timed)."""
    _, produce_s = produce(settings, workload)
    produced = StageResult("kafka_produce", round(rate(workload.events, produce_s)), "msg", workload.events,
                           round(produce_s, 3))  # fmt: skip
    say(f"  kafka produce: {produced.per_s:,.0f} msg/s")
    group = settings.model_copy(update={"consumer_group": f"bench-ceiling-{uuid.uuid4().hex[:8]}"})
    consumer = make_consumer(group, *EVENT_TOPICS)
    try:
        count, started, cpu0 = 0, None, 0.0
        deadline = time.monotonic() + 120
        while count < workload.events and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=settings.batch_max_events)
            if batch and started is None:
                started, cpu0 = time.monotonic(), _thread_cpu()
            count += sum(len(records) for records in batch.values())
        seconds = time.monotonic() - (started or time.monotonic())
        cpu = _thread_cpu() - cpu0
    finally:
        consumer.close(autocommit=False)
    try:
        import crc32c  # noqa: F401

        crc = "crc32c (C)"
    except ImportError:
        crc = "pure Python"
    consumed = StageResult("kafka_consume", round(rate(count, seconds)), "msg", count, round(seconds, 3),
                           round(cpu / max(1, count) * 1e6, 1), {"crc": crc, "complete": count >= workload.events})  # fmt: skip
    say(f"  kafka consume: {consumed.per_s:,.0f} msg/s ({crc}, {consumed.cpu_us_per_item} CPU-us/msg)")
    return [produced, consumed]


def postgres_upsert(settings: Settings, events: list[dict[str, Any]], batch_size: int, pg_pids: Callable[[], list[int]],
                    say: Callable[[str], None]) -> list[StageResult]:  # fmt: skip
    store = PostgresStore.connect(settings.sqlalchemy_url)
    try:
        batches = [events[i : i + batch_size] for i in range(0, len(events), batch_size)]
        cpu0 = _thread_cpu()
        params = [store.column_rows(fold_columns(batch)) for batch in batches]
        prepare_cpu = _thread_cpu() - cpu0
        rows = sum(len(json.loads(text)) for p in params for text in p.values())
        store.write_rows({})  # connect before the clock starts
        backends0 = {p: cpu_seconds(p) for p in pg_pids()}
        started = time.monotonic()
        for p in params:
            store.write_rows(p)
        seconds = time.monotonic() - started
        server_cpu = sum(cpu_seconds(p) - backends0.get(p, 0.0) for p in pg_pids())
    finally:
        store.engine.dispose()
    n = len(events)
    upsert = StageResult("postgres_upsert", round(rate(n, seconds)), "events", n, round(seconds, 3), None,
                         {"rows": rows, "rows_per_s": round(rate(rows, seconds)), "batch_events": batch_size,
                          "server_cpu_us_per_event": round(server_cpu / n * 1e6, 1)})  # fmt: skip
    prepare = StageResult("persist_prepare", round(rate(n, prepare_cpu)), "events", n, round(prepare_cpu, 3),
                          round(prepare_cpu / n * 1e6, 1), {"what": "fold + rows to JSON, in-process"})  # fmt: skip
    say(f"  postgres upsert: {upsert.per_s:,.0f} events/s = {upsert.extra['rows_per_s']:,.0f} rows/s "
        f"(fold + serialise: {prepare.cpu_us_per_item} CPU-us/event)")  # fmt: skip
    return [upsert, prepare]


def _bulk_bodies(events: list[dict[str, Any]], prefix: str, batch_size: int) -> list[bytes]:
    bodies = []
    for i in range(0, len(events), batch_size):
        lines = []
        for event in events[i : i + batch_size]:
            lines.append(json.dumps({"index": {"_index": daily_index(prefix, event["timestamp"]), "_id": event["event_id"]}}))
            lines.append(json.dumps(to_document(event)))
        bodies.append(("\n".join(lines) + "\n").encode())
    return bodies


def _post_all(url: str, bodies: list[bytes], errors: list[BaseException]) -> None:
    try:
        _post(url, bodies)
    except BaseException as exc:  # reported by the caller: a thread's exception would vanish
        errors.append(exc)


def _post(url: str, bodies: list[bytes]) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        for body in bodies:
            conn.request("POST", "/_bulk", body=body, headers={"Content-Type": "application/x-ndjson"})
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200 or answer.get("errors"):
                raise RuntimeError(f"bulk request refused: {response.status} {str(answer)[:300]}")
    finally:
        conn.close()


def bulk_index(settings: Settings, events: list[dict[str, Any]], batch_size: int, server_pid: int,
               say: Callable[[str], None]) -> list[StageResult]:  # fmt: skip
    """Half the documents over one connection, the other half over two in parallel."""
    half = len(events) // 2
    results = []
    for label, part, clients in (("bulk_index", events[:half], 1), ("bulk_index_2_clients", events[half:], 2)):
        bodies = _bulk_bodies(part, settings.index_prefix, batch_size)
        rss0 = rss_bytes(server_pid)
        errors: list[BaseException] = []
        started = time.monotonic()
        threads = [threading.Thread(target=_post_all, args=(settings.elasticsearch_url, bodies[i::clients], errors))
                   for i in range(clients)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - started
        if errors:
            raise errors[0]
        grown = rss_bytes(server_pid) - rss0
        result = StageResult(label, round(rate(len(part), seconds)), "docs", len(part), round(seconds, 3), None,
                             {"clients": clients, "server_rss_kb_per_doc": round(grown / 1024 / max(1, len(part)), 1)})  # fmt: skip
        say(f"  {label.replace('_', ' ')}: {result.per_s:,.0f} docs/s ({result.extra['server_rss_kb_per_doc']} KB "
            "of server memory per document)")  # fmt: skip
        results.append(result)
    return results
