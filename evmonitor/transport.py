"""How work crosses the broker: the Celery configuration shared by publishers and workers.

The bridge publishes one task per micro-batch per sink, by task name (`evmonitor.names.TaskName`);
the workers and beat run those tasks. Both sides need the same broker, queues, routes and
delivery options, and neither may import the other, so they are defined here, once, and
`evmonitor.app` adds the task modules (`include=`) and beat's schedule on top.

Delivery: tasks are acknowledged late (after they ran) and rejected back to the queue if the
pool process running them dies, so a killed worker child never loses a batch. Redis keeps
nothing on disk on our machines, so the broker is not the durable log: Kafka is. The bridge
re-publishes any batch whose completion marker does not appear in PostgreSQL in time; see
docs/delivery.md.

Payload: a batch task carries its events as one JSON string (`encode_events`), made once per
batch by the bridge, however many sinks and re-publishes it has. Kombu then encodes, stores in
the unacked hash and decodes one string instead of ~500 dicts, and the worker parses it once
(`decode_events`). `decode_events` also takes the list of dicts that tasks carried before
(published by an older bridge, or still waiting in Redis), so a rolling upgrade loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson
from celery import Celery
from kombu import Queue as KombuQueue

from evmonitor.config import Settings
from evmonitor.names import MAINTENANCE_TASK_PREFIX, Queue, TaskName

__all__ = ["decode_events", "encode_events", "make_celery"]

Events = list[dict[str, Any]]


def encode_events(events: Sequence[dict[str, Any]]) -> str:
    """A batch's normalised events as one compact JSON array (the payload of a batch task).

    What orjson refuses (an int beyond 64 bits, a lone surrogate) the stdlib writes, after a
    leading space (still JSON) that tells `decode_events` to read it with the stdlib too: orjson
    would read such an int back as a float.
    """
    try:
        return orjson.dumps(events).decode()
    except orjson.JSONEncodeError:
        return " " + json.dumps(list(events), separators=(",", ":"))


def decode_events(payload: str | Events) -> Events:
    """The events of a batch task: its JSON payload parsed, or the list of dicts older bridges sent."""
    if not isinstance(payload, str):
        return payload
    if payload[:1] == " ":  # written by the stdlib (see encode_events)
        return json.loads(payload)
    return orjson.loads(payload)


def make_celery(settings: Settings, include: Sequence[str] = ()) -> Celery:
    """A Celery app for `settings`; `include` names the task modules a worker imports at start."""
    celery = Celery("evmonitor", broker=settings.broker_url, include=list(include))
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=settings.worker_prefetch,
        # every key (queues, the unacked hash) carries the stack's prefix: a worker of another stack
        # sharing this Redis never sees, runs or restores our tasks (docs/delivery.md)
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "global_keyprefix": settings.broker_key_prefix,
        },
        broker_connection_retry_on_startup=True,
        task_queues=[KombuQueue(name) for name in Queue],
        task_default_queue=Queue.MAINTENANCE,
        task_routes={
            TaskName.PERSIST_BATCH: {"queue": Queue.PERSIST},
            TaskName.INDEX_BATCH: {"queue": Queue.INDEX},
            MAINTENANCE_TASK_PREFIX + "*": {"queue": Queue.MAINTENANCE},
        },
        # the bridge handles a failed publish itself (it keeps the batch and tries again)
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        task_annotations={
            name: {"retry_backoff_max": settings.retry_backoff_max_s}
            for name in (TaskName.PERSIST_BATCH, TaskName.INDEX_BATCH)
        },
        worker_send_task_events=True,
        task_send_sent_event=False,
        timezone=settings.timezone,
        enable_utc=True,
    )
    # every task reaches the settings the same way: `self.app.conf.evmonitor_settings`
    celery.conf.evmonitor_settings = settings
    return celery
