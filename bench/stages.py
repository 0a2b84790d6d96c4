"""Raw stage ceilings, each stage alone on the same machine: what the parts can do without us.

* `kafka_produce` / `kafka_consume`: kafka-python sending the workload to the event topics (the
  simulator's own cost), then one consumer of a fresh group reading it all back, configured as
  the bridge's consumer is.
* `postgres_upsert`: the persist task's statements per batch exactly as a worker runs them (its
  row locks, the upserts and beat's marks: evmonitor/storage/marks.py, and the batch's completion
  marker; prepared once per connection, as a worker's), with the rows folded and
  serialised beforehand, one transaction per batch on one connection: PostgreSQL's ceiling for
  the same writes. The batches are the bridge's (`lane_batches`): each holds one lane's events
  (the station's Kafka partition modulo `batch_lanes`), `batch_max_events` of them, the lanes
  taking turns; a lane's batch folds more events into each row than a batch of the stream as it
  comes, so this is the ceiling of the transactions the pipeline really makes. The folding and serialising it skips is reported apart (`persist_prepare`):
  that is our cost, not the store's. The same writes again without beat's marks (and their
  locks), `postgres_upsert_without_marks`, show what the marks cost the persist path. The same
  writes on 2 connections at once (every other batch each, as two worker processes take them),
  `postgres_upsert_2_connections`, show how far PostgreSQL goes when one writer's round trips
  and client time no longer stand between its statements; batches that share stations still
  queue behind each other's per-station locks, so `postgres_upsert_2_connections_disjoint` writes
  the same events in batches that each hold one half of the stations (the two connections never
  share a station): what a second writer could add if batches were routed by station.

Bulk indexing lives in `bench.search_stage`, the Celery round trip in `bench.celery_stage`. A
stage measured several times reports its median run (`pick_median`), with every run's rate.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from kafka.partitioner.default import murmur2

from bench.procstat import cpu_seconds
from bench.stats import median_index, rate
from bench.workload import Workload, produce
from evmonitor.config import Settings
from evmonitor.contract import Limits, Rejection, validate
from evmonitor.fastpath import FastPath
from evmonitor.fold import fold_columns
from evmonitor.names import EVENT_TOPICS
from evmonitor.storage.kafka import make_consumer
from evmonitor.storage.postgres import PostgresStore

__all__ = ["StageResult", "kafka_stages", "pick_median", "postgres_upsert", "thread_cpu", "wire_events"]


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


def pick_median(runs: list[StageResult]) -> StageResult:
    """The run with the median rate, noting every run's rate (`runs_per_s`)."""
    chosen = runs[median_index([r.per_s for r in runs])]
    chosen.extra["runs_per_s"] = [r.per_s for r in runs]
    return chosen


def thread_cpu() -> float:
    return time.thread_time()


def wire_events(workload: Workload) -> tuple[list[dict[str, Any]], StageResult]:
    """The workload's events as the bridge hands them to tasks (validated, normalised), and what
    that cost in-process (`bridge_validate`: our cost per event, not a store's). As in the bridge,
    the fast path first and the pydantic models for what it leaves (`slow_path` counts those);
    `models_cpu_us_per_event` is the models alone on the same events, for comparison."""
    now_ms = int(time.time() * 1000)
    now, limits = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc), Limits()
    fast = FastPath(limits)

    def by_models(value: bytes) -> dict[str, Any]:
        event = validate(value, received_at=now, limits=limits)
        if isinstance(event, Rejection):
            raise AssertionError(f"the workload holds an invalid event: {event}")
        return event.to_wire()

    out, slow = [], 0
    cpu0 = thread_cpu()
    for message in workload.plan.messages:
        accepted = fast(message.value, now_ms)
        if accepted is None:
            slow += 1
            out.append(by_models(message.value))
        else:
            out.append(accepted[0])
    cpu = thread_cpu() - cpu0
    n = len(out)
    cpu0 = thread_cpu()
    for message in workload.plan.messages:
        by_models(message.value)
    models = thread_cpu() - cpu0
    return out, StageResult("bridge_validate", round(rate(n, cpu)), "events", n, round(cpu, 3), round(cpu / n * 1e6, 1),
                            {"what": "validate + normalise (fast path, pydantic for the rest), in-process",
                             "slow_path": slow, "models_cpu_us_per_event": round(models / n * 1e6, 1)})  # fmt: skip


def _consume_all(settings: Settings, expected: int) -> StageResult:
    group = settings.model_copy(update={"consumer_group": f"bench-ceiling-{uuid.uuid4().hex[:8]}"})
    consumer = make_consumer(group, *EVENT_TOPICS)
    try:
        count, started, cpu0 = 0, None, 0.0
        deadline = time.monotonic() + 120
        while count < expected and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=settings.batch_max_events)
            if batch and started is None:  # the clock starts with the first records, after the group join
                started, cpu0 = time.monotonic(), thread_cpu()
            count += sum(len(records) for records in batch.values())
        seconds = time.monotonic() - (started or time.monotonic())
        cpu = thread_cpu() - cpu0
    finally:
        consumer.close(autocommit=False)
    try:
        import crc32c  # noqa: F401

        crc = "crc32c (C)"
    except ImportError:
        crc = "pure Python"
    return StageResult("kafka_consume", round(rate(count, seconds)), "msg", count, round(seconds, 3),
                       round(cpu / max(1, count) * 1e6, 1), {"crc": crc, "complete": count >= expected})  # fmt: skip


def kafka_stages(settings: Settings, workload: Workload, repeats: int, say: Callable[[str], None]) -> list[StageResult]:
    """Load the event topics with `workload` (timed: the producer), then consume it all (timed)."""
    _, produce_s = produce(settings, workload)
    produced = StageResult("kafka_produce", round(rate(workload.events, produce_s)), "msg", workload.events,
                           round(produce_s, 3))  # fmt: skip
    say(f"  kafka produce: {produced.per_s:,.0f} msg/s")
    consumed = pick_median([_consume_all(settings, workload.events) for _ in range(repeats)])
    say(f"  kafka consume: {consumed.per_s:,.0f} msg/s ({consumed.extra['crc']}, {consumed.cpu_us_per_item} CPU-us/msg)")
    return [produced, consumed]


# what the persist path writes, and the marks it writes for beat
_WRITTEN = ("charging_stations", "connector_status", "status_events", "charging_sessions", "station_presence",
            "rollup_marks", "fault_marks", "ledger_marks", "presence_marks")


def _timed_writes(store: PostgresStore, params: list[tuple[dict[str, str], dict[str, list[str]]]],
                  pg_pids: Callable[[], list[int]], name: str, events: int, rows: int, batch_events: int,
                  connections: int = 1) -> StageResult:  # fmt: skip
    """Empty the tables the persist path writes, then write every batch's rows (and its completion
    marker, as the persist task does), one transaction each; with `connections` > 1, that many
    threads on their own connections take every n-th batch (as that many workers would)."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(_WRITTEN)}, ingest_batches")
    numbered = list(enumerate(params))
    shares = [numbered[k::connections] for k in range(connections)]
    ready = threading.Barrier(connections)

    def write(share: list[tuple[int, tuple[dict[str, str], dict[str, list[str]]]]], clocked: bool) -> None:
        if not clocked:  # open the pool's connections (and prepare the statements) before the clock starts
            with store.engine.connect():  # held until each thread has its own
                ready.wait()
            store.write_rows({})
            return
        for i, (p, keys) in share:
            store.write_rows(p, keys, (str(uuid.UUID(int=i)), "persist", batch_events))

    def run_all(clocked: bool) -> None:
        if connections == 1:
            return write(shares[0], clocked)
        with ThreadPoolExecutor(connections) as pool:
            for done in [pool.submit(write, share, clocked) for share in shares]:
                done.result()

    run_all(clocked=False)
    backends0 = {p: cpu_seconds(p) for p in pg_pids()}
    started = time.monotonic()
    run_all(clocked=True)
    seconds = time.monotonic() - started
    server = sum(cpu_seconds(p) - backends0.get(p, 0.0) for p in pg_pids())
    return StageResult(name, round(rate(events, seconds)), "events", events, round(seconds, 3), None,
                       {"rows_per_s": round(rate(rows, seconds)), "server_cpu_us_per_event": round(server / events * 1e6, 1)})  # fmt: skip


def _batch_params(store: PostgresStore, batches: list[list[dict[str, Any]]]) -> list[tuple[dict[str, str], dict[str, list[str]]]]:
    """What a persist worker makes of each batch before its transaction: rows per table, lock keys."""
    return [(store.column_rows(columns), store.lock_keys(columns)) for columns in map(fold_columns, batches)]


def _row_count(params: list[tuple[dict[str, str], dict[str, list[str]]]]) -> int:
    return sum(len(json.loads(text)) for rows, _ in params for text in rows.values())


def postgres_upsert(settings: Settings, events: list[dict[str, Any]], batch_size: int, pg_pids: Callable[[], list[int]],
                    repeats: int, say: Callable[[str], None]) -> list[StageResult]:  # fmt: skip
    store = PostgresStore.connect(settings.sqlalchemy_url)
    bare_store = PostgresStore(store.engine, marks=False)
    try:
        batches = lane_batches(events, batch_size, settings.topic_partitions, settings.batch_lanes)
        cpu0 = thread_cpu()
        params = _batch_params(store, batches)
        prepare_cpu = thread_cpu() - cpu0
        rows = _row_count(params)
        n = len(events)
        upsert = pick_median([_timed_writes(store, params, pg_pids, "postgres_upsert", n, rows, batch_size) for _ in range(repeats)])
        bare = pick_median([_timed_writes(bare_store, params, pg_pids, "postgres_upsert_without_marks", n, rows, batch_size)
                            for _ in range(repeats)])  # fmt: skip
        pair = pick_median([_timed_writes(store, params, pg_pids, "postgres_upsert_2_connections", n, rows, batch_size,
                                          connections=2) for _ in range(repeats)])  # fmt: skip
        apart = _batch_params(store, station_halves(events, batch_size))
        disjoint = pick_median([_timed_writes(store, apart, pg_pids, "postgres_upsert_2_connections_disjoint", n,
                                              _row_count(apart), batch_size, connections=2) for _ in range(repeats)])  # fmt: skip
    finally:
        store.engine.dispose()
    upsert.extra.update(rows=rows, batch_events=batch_size)
    prepare = StageResult("persist_prepare", round(rate(n, prepare_cpu)), "events", n, round(prepare_cpu, 3),
                          round(prepare_cpu / n * 1e6, 1), {"what": "fold + rows to JSON, in-process"})  # fmt: skip
    say(f"  postgres upsert: {upsert.per_s:,.0f} events/s = {upsert.extra['rows_per_s']:,.0f} rows/s, "
        f"{upsert.extra['server_cpu_us_per_event']} server CPU-us/event "
        f"(fold + serialise: {prepare.cpu_us_per_item} CPU-us/event)")  # fmt: skip
    say(f"  postgres upsert without beat's marks: {bare.per_s:,.0f} events/s, "
        f"{bare.extra['server_cpu_us_per_event']} server CPU-us/event")  # fmt: skip
    say(f"  postgres upsert on 2 connections at once: {pair.per_s:,.0f} events/s, "
        f"{pair.extra['server_cpu_us_per_event']} server CPU-us/event")  # fmt: skip
    say(f"  postgres upsert on 2 connections, stations split between them: {disjoint.per_s:,.0f} events/s, "
        f"{disjoint.extra['server_cpu_us_per_event']} server CPU-us/event")  # fmt: skip
    return [upsert, prepare, bare, pair, disjoint]


def lane_batches(events: list[dict[str, Any]], batch_size: int, partitions: int, lanes: int) -> list[list[dict[str, Any]]]:
    """The events in the bridge's batches: by lane (the partition kafka-python's default
    partitioner gives the station's key, modulo `lanes`), `batch_size` at most, in stream order
    within a lane, the lanes taking turns."""
    by_lane: dict[int, list[dict[str, Any]]] = {}
    lane_of: dict[str, int] = {}
    for event in events:
        station = event["station_id"]
        lane = lane_of.get(station)
        if lane is None:
            lane = lane_of[station] = (murmur2(station.encode()) & 0x7FFFFFFF) % partitions % lanes
        by_lane.setdefault(lane, []).append(event)
    return _in_turns([evs for _, evs in sorted(by_lane.items())], batch_size)


def _in_turns(groups: list[list[dict[str, Any]]], batch_size: int) -> list[list[dict[str, Any]]]:
    """Each group cut into batches of `batch_size` in its order, the groups' batches taking turns."""
    batched = [[group[i : i + batch_size] for i in range(0, len(group), batch_size)] for group in groups]
    return [batches[i] for i in range(max(map(len, batched), default=0)) for batches in batched if i < len(batches)]


def station_halves(events: list[dict[str, Any]], batch_size: int) -> list[list[dict[str, Any]]]:
    """The events in batches that each hold one half of the stations (crc32 of the station id),
    the halves' batches alternating: with 2 connections taking every other batch, no two
    concurrent batches share a station, so neither waits for the other's locks."""
    halves: list[list[dict[str, Any]]] = [[], []]
    for event in events:
        halves[zlib.crc32(event["station_id"].encode()) & 1].append(event)
    return _in_turns(halves, batch_size)
