"""Reconciliation: what the simulator sent versus what PostgreSQL, Elasticsearch and the
dead-letter topic hold, scoped to one run so that earlier data does not blur the answer.

Scope: PostgreSQL rows by the run's session and station ids; Elasticsearch documents by the
run's station ids and time window; dead letters by the source offsets the run wrote to.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from evmonitor.config import Settings
from evmonitor.deadletter import parse_record
from evmonitor.storage.search import SearchStore

__all__ = ["Observed", "Row", "SentOffsets", "compare", "observe", "wait_drained"]

TPKey = tuple[str, int]


@dataclass
class SentOffsets:
    """Per partition, the lowest and highest offset a run wrote (from the producer's acks)."""

    ranges: dict[TPKey, tuple[int, int]] = field(default_factory=dict)

    def add(self, topic: str, partition: int, offset: int) -> None:
        lo, hi = self.ranges.get((topic, partition), (offset, offset))
        self.ranges[(topic, partition)] = (min(lo, offset), max(hi, offset))

    def contains(self, topic: str, partition: int, offset: int) -> bool:
        span = self.ranges.get((topic, partition))
        return span is not None and span[0] <= offset <= span[1]

    def targets(self) -> dict[TPKey, int]:
        """Committed offsets that mean 'all of the run is done'."""
        return {tp: hi + 1 for tp, (_, hi) in self.ranges.items()}


class CommitWatch:
    """Reads the bridge group's committed offsets (without joining the group)."""

    def __init__(self, settings: Settings, targets: dict[TPKey, int]) -> None:
        self.targets = targets
        self.total = sum(targets.values())
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group, enable_auto_commit=False
        )

    def behind(self) -> int:
        """Records of the targets not yet committed."""
        behind = 0
        for (topic, partition), target in self.targets.items():
            committed = self.consumer.committed(TopicPartition(topic, partition)) or 0
            behind += max(0, target - committed)
        return behind

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def wait_drained(
    settings: Settings,
    targets: dict[TPKey, int],
    *,
    timeout_s: float,
    on_progress: Callable[[int, int], None] | None = None,
    until_fraction: float = 1.0,
) -> bool:
    """Poll the bridge group's committed offsets until they reach `targets` (or time out).

    Returns True when drained (or, with `until_fraction`, when that share is committed).
    Progress is reported as (records behind, records in total).
    """
    watch = CommitWatch(settings, targets)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            behind = watch.behind()
            if on_progress:
                on_progress(behind, watch.total)
            if watch.total - behind >= until_fraction * watch.total:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)  # polling another process's progress
    finally:
        watch.close()


def read_all_deadletters(settings: Settings, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Every record on the dead-letter topic, parsed, from its beginning to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(settings.deadletter_topic) or set()
        tps = [TopicPartition(settings.deadletter_topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                out.extend(parse_record(record.value) for record in records)
            # highwater(), not end_offsets(): tansu answers the latter wrongly
            if all(consumer.highwater(tp) is not None and consumer.position(tp) >= consumer.highwater(tp) for tp in tps):
                break
        return out
    finally:
        consumer.close(autocommit=False)


def read_deadletters(settings: Settings, sent: SentOffsets, timeout_s: float = 30.0) -> Counter:
    """Count dead letters by reason whose source record is one the run sent (deduplicated)."""
    seen: dict[tuple[str, int, int], str] = {}
    for body in read_all_deadletters(settings, timeout_s):
        src = body.get("source") or {}
        if src.get("topic") is None or src.get("offset") is None:
            continue
        if sent.contains(src["topic"], src["partition"], src["offset"]):
            seen[(src["topic"], src["partition"], src["offset"])] = body["reason"]
    return Counter(seen.values())


@dataclass
class Observed:
    pg_sessions: int
    pg_energy_kwh: Decimal
    pg_cost_eur: Decimal
    pg_stations: int
    pg_session_mismatches: int
    es_documents: int
    deadletters: Counter


def observe(settings: Settings, truth: Any, sent: SentOffsets) -> Observed:
    session_ids = list(truth.by_session)
    station_ids = list(truth.station_ids)
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT id::text, station_id, energy_delivered_kwh, cost_eur FROM charging_sessions "
                    "WHERE id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": session_ids},
            ).all()
            stations = conn.execute(
                sa.text("SELECT count(*) FROM charging_stations WHERE id = ANY(:ids)"), {"ids": station_ids}
            ).scalar_one()
    finally:
        engine.dispose()
    mismatches = 0
    for sid, station_id, energy, cost in rows:
        want = truth.by_session[sid]
        if (station_id, energy, cost) != (want["station_id"], Decimal(str(want["energy_kwh"])), Decimal(str(want["cost_eur"]))):
            mismatches += 1
    store = SearchStore.connect(settings.elasticsearch_url, settings.index_prefix)
    store.refresh()
    documents = store.count(
        {
            "bool": {
                "filter": [
                    {"terms": {"station_id": station_ids}},
                    {"range": {"timestamp": {"gte": truth.window["start"], "lte": truth.window["end"]}}},
                ]
            }
        }
    )
    return Observed(
        pg_sessions=len(rows),
        pg_energy_kwh=sum((r[2] or Decimal(0) for r in rows), Decimal(0)),
        pg_cost_eur=sum((r[3] or Decimal(0) for r in rows), Decimal(0)),
        pg_stations=stations,
        pg_session_mismatches=mismatches + (len(session_ids) - len(rows)),
        es_documents=documents,
        deadletters=read_deadletters(settings, sent),
    )


@dataclass
class Row:
    metric: str
    expected: Any
    postgres: Any = "-"
    elasticsearch: Any = "-"
    deadletter_topic: Any = "-"

    @property
    def ok(self) -> bool:
        return all(v == "-" or v == self.expected for v in (self.postgres, self.elasticsearch, self.deadletter_topic))


def compare(truth: Any, seen: Observed) -> list[Row]:
    rows = [
        Row("sessions", truth.sessions, postgres=seen.pg_sessions),
        Row("energy kWh", Decimal(str(truth.energy_kwh)), postgres=seen.pg_energy_kwh),
        Row("revenue EUR", Decimal(str(truth.cost_eur)), postgres=seen.pg_cost_eur),
        Row("sessions differing", 0, postgres=seen.pg_session_mismatches),
        Row("stations", truth.stations, postgres=seen.pg_stations),
        Row("documents (valid events)", truth.valid_events, elasticsearch=seen.es_documents),
        Row("dead letters", sum(truth.deadletters.values()), deadletter_topic=sum(seen.deadletters.values())),
    ]
    for reason in sorted(set(truth.deadletters) | set(seen.deadletters)):
        rows.append(Row(f"  {reason}", truth.deadletters.get(reason, 0), deadletter_topic=seen.deadletters.get(reason, 0)))
    return rows

