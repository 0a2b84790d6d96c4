"""Two stacks sharing one Redis: each one's tasks are its own (EVMON_STACK_ID, docs/delivery.md)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import redis

from evmonitor.contract import validate
from evmonitor.names import Queue, SinkName, TaskName
from evmonitor.stack.procs import wait_for
from evmonitor.transport import make_celery
from tests.factories import encode, session_events


def batch(received_at: datetime) -> list[dict]:
    """One session's events, normalised as the bridge hands them to the persist task."""
    events = session_events(start=received_at - timedelta(hours=1))
    return [validate(encode(e), received_at=received_at).to_wire() for e in events]


def test_a_worker_never_runs_a_task_another_stack_published(pipeline):
    """Stack B's worker runs B's batch and leaves A's in A's queue, though both use the same Redis."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    stack_a = pipeline.settings.model_copy(update={"stack_id": "stack-a"})
    stack_b = pipeline.settings.model_copy(update={"stack_id": "stack-b"})
    assert stack_a.broker_key_prefix != stack_b.broker_key_prefix
    a_batch, b_batch = str(uuid.uuid4()), str(uuid.uuid4())
    make_celery(stack_a).send_task(TaskName.PERSIST_BATCH, args=[a_batch, batch(now)], queue=Queue.PERSIST)

    pipeline.settings = stack_b
    pipeline.start_worker(Queue.PERSIST)
    make_celery(stack_b).send_task(TaskName.PERSIST_BATCH, args=[b_batch, batch(now)], queue=Queue.PERSIST)

    def done(batch_id: str) -> bool:
        rows = pipeline.sql("SELECT sink FROM ingest_batches WHERE batch_id = :b", b=batch_id)
        return [r.sink for r in rows] == [SinkName.PERSIST]

    wait_for(lambda: done(b_batch), timeout_s=60, what="stack B's batch", hint=pipeline.logs_hint())
    assert not done(a_batch)
    queues = redis.Redis.from_url(pipeline.settings.broker_url)
    assert queues.llen(stack_a.broker_key_prefix + Queue.PERSIST) == 1
    assert queues.llen(stack_b.broker_key_prefix + Queue.PERSIST) == 0
    assert pipeline.sql("SELECT count(*) AS n FROM charging_sessions")[0].n == 1
