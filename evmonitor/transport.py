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

Payload: a batch's events are one JSON string (`encode_events`), made once per batch by the
bridge, however many sinks and re-publishes it has. The bridge stores it in Redis under its own
key (`Payloads`, a claim check) and the task carries only a reference, `{"ref": key}`; the
worker reads the key and parses it once (`decode_events`). Sent inside the task, the ~550 KB of a
2,000-event batch were JSON-escaped, base64-encoded and copied into the message envelope by the
bridge, then decoded twice, copied into kombu's unacked hash and sent back to Redis by the worker:
about a third of a persist worker's CPU (BENCHMARKS.md). Key lifetime: the bridge deletes a
batch's payload once every sink has completed it, and each (re-)publish sets it again with
`EVMON_PAYLOAD_TTL_S`, so the payload of a batch the bridge still waits for never expires; a task
that finds its payload gone (a duplicate of a finished batch, or one outliving a dead bridge)
does nothing, and whatever it did not write is re-published from Kafka. `decode_events` also
takes the forms older bridges sent (the JSON string inline, or a list of dicts), so a rolling
upgrade loses nothing: upgrade the workers before the bridges.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson
import redis
from celery import Celery
from kombu import Queue as KombuQueue
from redis.exceptions import RedisError

from evmonitor.config import Settings
from evmonitor.errors import TransientError
from evmonitor.names import MAINTENANCE_TASK_PREFIX, Queue, TaskName

__all__ = ["Payloads", "decode_events", "encode_events", "make_celery", "payload_ref"]

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


def decode_events(payload: str | bytes | Events) -> Events:
    """The events of a batch: its JSON payload parsed (as read from Redis, or inline in a task of
    an older bridge), or the list of dicts still older bridges sent."""
    if not isinstance(payload, (str, bytes)):
        return payload
    if payload[:1] in (" ", b" "):  # written by the stdlib (see encode_events)
        return json.loads(payload)
    return orjson.loads(payload)


def payload_ref(payload: Any) -> str | None:
    """The Redis key a batch task's payload argument refers to, or None for an inline payload."""
    if isinstance(payload, dict) and isinstance(payload.get("ref"), str):
        return payload["ref"]
    return None


class Payloads:
    """Batch payloads in Redis, one key per batch: `<stack prefix>payload:<batch id>`.

    The broker's Redis (`EVMON_BROKER_URL`), under the stack's key prefix like every Celery key,
    so `evmonitor down` and stacks sharing a Redis treat them as they treat the queues. Redis
    errors raise `TransientError`: the bridge retries the publish, a task retries itself.
    """

    def __init__(self, client: Any, prefix: str, ttl_s: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    @classmethod
    def connect(cls, settings: Settings) -> "Payloads":
        client = redis.Redis.from_url(settings.broker_url, socket_timeout=30, socket_connect_timeout=5)
        return cls(client, settings.broker_key_prefix, settings.payload_ttl_s)

    def key(self, batch_id: str) -> str:
        return f"{self.prefix}payload:{batch_id}"

    def put(self, batch_id: str, payload: str) -> dict[str, str]:
        """Store (or store again, with a fresh TTL) a batch's payload; returns the task's reference."""
        key = self.key(batch_id)
        try:
            self.client.set(key, payload, ex=self.ttl_s)
        except RedisError as exc:
            raise TransientError(f"broker: storing payload {key}: {exc!r}") from exc
        return {"ref": key}

    def get(self, ref: str) -> bytes | None:
        """The payload a task refers to, or None when it is gone (expired, or its batch finished)."""
        try:
            return self.client.get(ref)
        except RedisError as exc:
            raise TransientError(f"broker: reading payload {ref}: {exc!r}") from exc

    def drop(self, batch_ids: Sequence[str]) -> None:
        """Delete the payloads of finished batches (best effort: their TTL removes what is left)."""
        keys = [self.key(batch_id) for batch_id in batch_ids]
        try:
            for start in range(0, len(keys), 500):
                self.client.delete(*keys[start:start + 500])
        except RedisError as exc:
            raise TransientError(f"broker: deleting payloads: {exc!r}") from exc

    def close(self) -> None:
        self.client.close()


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
