"""The two ingest tasks: one task per micro-batch per queue, never one per event.

Both are idempotent (upserts folded by session; documents keyed by event_id), acknowledged
late, and retried with backoff for as long as a store is down (`TransientError`). A batch that a
store refuses for good is bisected: only the poison events are dead-lettered, the rest lands.
Each task ends by recording the batch's completion for its sink in PostgreSQL; the bridge
commits Kafka offsets only past batches complete in both sinks.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger

from evmonitor.config import Settings
from evmonitor.deadletter import DeadLetters, Source, deadletter_record
from evmonitor.errors import Reason, TransientError
from evmonitor.poison import isolate_poison
from evmonitor.storage.kafka import make_producer
from evmonitor.storage.postgres import PostgresStore
from evmonitor.storage.search import SearchStore
from workers.app import app

log = get_task_logger(__name__)


class _Resources:
    """Per-process connections, opened on first use (after the pool forked)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._postgres: PostgresStore | None = None
        self._search: SearchStore | None = None
        self._deadletters: DeadLetters | None = None

    @property
    def postgres(self) -> PostgresStore:
        with self._lock:
            if self._postgres is None:
                self._postgres = PostgresStore.connect(self.settings.sqlalchemy_url)
            return self._postgres

    @property
    def search(self) -> SearchStore:
        with self._lock:
            if self._search is None:
                self._search = SearchStore.connect(self.settings.elasticsearch_url, self.settings.index_prefix)
            return self._search

    @property
    def deadletters(self) -> DeadLetters:
        with self._lock:
            if self._deadletters is None:
                self._deadletters = DeadLetters(
                    make_producer(self.settings.kafka_bootstrap), self.settings.deadletter_topic
                )
            return self._deadletters


_resources: _Resources | None = None


def resources() -> _Resources:
    global _resources
    if _resources is None:
        _resources = _Resources(app.conf.evmonitor_settings)
    return _resources


def _dead_letter(rejected: list[tuple[dict[str, Any], str]], stage: str) -> None:
    dlq = resources().deadletters
    now = datetime.now(timezone.utc)
    for event, detail in rejected:
        original = json.dumps(event, separators=(",", ":")).encode()
        key = event.get("station_id", "").encode()
        record = deadletter_record(
            reason=Reason.SINK_REJECTED,
            detail=detail,
            original=original,
            source=Source(key=key),
            received_at=now,
            stage=stage,
            event_id=event.get("event_id"),
        )
        dlq.send(record, reason=Reason.SINK_REJECTED, key=key)
    dlq.flush()
    log.warning("%s: dead-lettered %d events the store refused", stage, len(rejected))


class IngestTask(Task):
    acks_late = True
    autoretry_for = (TransientError,)
    retry_backoff = 1
    retry_backoff_max = 15  # overridden from EVMON_RETRY_BACKOFF_MAX_S by the app's task_annotations
    retry_jitter = True
    max_retries = None  # a store outage is waited out; valid events are never dropped for it


@app.task(base=IngestTask, name="evmonitor.persist_batch")
def persist_batch(batch_id: str, events: list[dict[str, Any]]) -> int:
    """Merge a batch of normalised events into PostgreSQL and mark it done for `persist`."""
    store = resources().postgres
    rejected = isolate_poison(events, store.write_events)
    if rejected:
        _dead_letter(rejected, "persist")
    store.mark_done(batch_id, "persist", len(events), len(rejected))
    return len(events) - len(rejected)


@app.task(base=IngestTask, name="evmonitor.index_batch")
def index_batch(batch_id: str, events: list[dict[str, Any]]) -> int:
    """Bulk-index a batch of normalised events and mark it done for `index`."""
    rejected = resources().search.index_events(events)
    if rejected:
        _dead_letter(rejected, "index")
    resources().postgres.mark_done(batch_id, "index", len(events), len(rejected))
    return len(events) - len(rejected)
