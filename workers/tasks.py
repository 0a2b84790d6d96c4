"""The two ingest tasks: one task per micro-batch per queue, never one per event.

Both are idempotent (upserts folded by session; documents keyed by event_id), acknowledged
late, and retried with backoff for as long as a store is down (`TransientError`). A batch that a
store refuses for good is bisected: only the poison events are dead-lettered, the rest lands.
Each task ends by recording the batch's completion for its sink in PostgreSQL; the bridge
commits Kafka offsets only past batches complete in both sinks.

A task carries a reference to its batch's events, one JSON string the bridge stored in Redis
(`evmonitor.transport.Payloads`), read and parsed once here. A task whose payload is gone does
nothing: its batch was finished by another copy of the task, or its bridge died and the events
are re-published from Kafka. The forms older bridges sent (the JSON string inline, a list of
dicts) are taken as they are (`decode_events`).

Tasks are `shared_task`s: `evmonitor.app` composes them into the app; they reach settings and
connections through `self.app` (see `evmonitor.runtime`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from celery import Task, shared_task
from celery.utils.log import get_task_logger

from evmonitor.deadletter import Source, deadletter_record
from evmonitor.errors import Reason, TransientError
from evmonitor.names import SinkName, Stage, TaskName
from evmonitor.runtime import Connections, connections
from evmonitor.transport import decode_events, payload_ref

__all__ = ["IngestTask", "index_batch", "persist_batch"]

log = get_task_logger(__name__)


def _dead_letter(conns: Connections, rejected: list[tuple[dict[str, Any], str]], stage: Stage) -> None:
    dlq = conns.deadletters
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

    @property
    def connections(self) -> Connections:
        return connections(self.app.conf.evmonitor_settings)

    def events(self, batch_id: str, payload: Any) -> list[dict[str, Any]] | None:
        """The batch's events, or None when the payload it refers to is gone (see the module)."""
        ref = payload_ref(payload)
        if ref is None:
            return decode_events(payload)
        raw = self.connections.payloads.get(ref)  # TransientError while Redis is down: retried
        if raw is None:
            log.warning("%s: batch %s: its events are no longer in Redis (%s); nothing to do: the batch is "
                        "finished, or the bridge re-publishes it from Kafka", self.name, batch_id, ref)  # fmt: skip
            return None
        return decode_events(raw)


@shared_task(base=IngestTask, bind=True, name=TaskName.PERSIST_BATCH)
def persist_batch(self: IngestTask, batch_id: str, payload: Any) -> int:
    """Merge a batch of normalised events into PostgreSQL and mark it done for `persist`."""
    events = self.events(batch_id, payload)
    if events is None:
        return 0
    conns = self.connections
    store = conns.postgres
    # a batch that lands whole is marked done in its own transaction (one commit per batch); one
    # with refused events is marked once they are dead-lettered
    rejected = store.write_and_mark_done(events, batch_id, SinkName.PERSIST)
    if rejected:
        _dead_letter(conns, rejected, Stage.PERSIST)
        store.mark_done(batch_id, SinkName.PERSIST, len(events), len(rejected))
    return len(events) - len(rejected)


@shared_task(base=IngestTask, bind=True, name=TaskName.INDEX_BATCH)
def index_batch(self: IngestTask, batch_id: str, payload: Any) -> int:
    """Bulk-index a batch of normalised events and mark it done for `index`."""
    events = self.events(batch_id, payload)
    if events is None:
        return 0
    conns = self.connections
    rejected = conns.search.write(events)
    if rejected:
        _dead_letter(conns, rejected, Stage.INDEX)
    conns.postgres.mark_done(batch_id, SinkName.INDEX, len(events), len(rejected))
    return len(events) - len(rejected)
