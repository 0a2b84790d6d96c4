"""A Celery worker whose only task does nothing but count: Celery and Redis alone, no store.

Started by the Celery stage (`bench.stages`) as
`python -m celery -A bench.probe worker -Q bench ...` with the sandbox's EVMON_* environment,
so it has the same app configuration (acks_late, prefetch, task events) and pool as the real workers.
The task adds its batch's length to a Redis counter, which is how the harness sees it finish
without a result backend.
"""

from __future__ import annotations

from typing import Any

import redis

from evmonitor.app import create_app
from evmonitor.config import Settings
from evmonitor.transport import decode_events

__all__ = ["COUNTER_EVENTS", "COUNTER_TASKS", "QUEUE", "TASK", "app"]

QUEUE = "bench"
TASK = "evmonitor.bench.noop_batch"
COUNTER_TASKS = "evmonitor-bench:tasks"
COUNTER_EVENTS = "evmonitor-bench:events"

settings = Settings()  # an entry point: the worker process builds its Settings here, once
app = create_app(settings)
_redis: redis.Redis | None = None


@app.task(name=TASK, acks_late=True)
def noop_batch(batch_id: str, payload: str | list[dict[str, Any]]) -> None:
    """Count the batch and return: the cost of one Celery round trip of a batch task."""
    events = decode_events(payload)  # as the ingest tasks do
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.broker_url)
    pipe = _redis.pipeline(transaction=False)
    pipe.incrby(COUNTER_EVENTS, len(events))
    pipe.incr(COUNTER_TASKS)
    pipe.execute()
