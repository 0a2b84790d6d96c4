"""The Celery ceiling: one worker process with a task that does nothing (`bench.probe`).

Three figures: how many empty batch tasks per second a publisher and one worker get through
(the per-task cost of Celery + Redis, which bounds the one-task-per-event design), how many
events per second travel in 500-event batch tasks (the per-byte cost), and the latency of one
round trip when nothing else is queued.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from bench.probe import COUNTER_TASKS, QUEUE, TASK
from bench.stages import StageResult, pick_median
from bench.stats import percentile, rate
from evmonitor.config import REPO_ROOT
from evmonitor.stack.procs import spawn, stop, wait_for
from evmonitor.stack.sandbox import Sandbox
from evmonitor.names import INGEST_POOL
from evmonitor.transport import encode_events

__all__ = ["celery_round_trip"]


def _wait_count(client: redis.Redis, key: str, target: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if int(client.get(key) or 0) >= target:
            return True
        time.sleep(0.002)  # polling another process's counter
    return False


def celery_round_trip(
    sandbox: Sandbox,
    events: list[dict[str, Any]],
    *,
    empty_tasks: int,
    batch_tasks: int,
    batch_size: int = 500,
    round_trips: int = 30,
    repeats: int = 1,
    say: Callable[[str], None] = print,
) -> list[StageResult]:
    """Each throughput figure is the median of `repeats` runs."""
    from evmonitor.app import create_app

    cmd = [sys.executable, "-m", "celery", "-A", "bench.probe", "worker", "-Q", QUEUE, "--pool", INGEST_POOL, "-E",
           "--without-mingle", "--without-gossip", "-n", "bench-probe@%h", "--loglevel", "WARNING"]  # fmt: skip
    proc = spawn("celery-probe", cmd, log_dir=sandbox.logs, env=sandbox.env, cwd=REPO_ROOT)
    app = create_app(sandbox.settings)
    client = redis.Redis.from_url(sandbox.settings.broker_url)
    try:
        def ready() -> bool:
            replies = app.control.inspect(timeout=0.5).active_queues() or {}
            return any(q["name"] == QUEUE for qs in replies.values() for q in qs)

        wait_for(ready, timeout_s=60, what="the Celery probe worker", hint=f"Logs: {sandbox.logs}")

        def send(n_tasks: int, batch: list[dict[str, Any]]) -> float:
            base = int(client.get(COUNTER_TASKS) or 0)
            started = time.monotonic()
            for _ in range(n_tasks):
                # as the bridge publishes: the batch's events as one JSON string, encoded once per batch
                app.send_task(TASK, args=[str(uuid.uuid4()), encode_events(batch)], queue=QUEUE)
            if not _wait_count(client, COUNTER_TASKS, base + n_tasks, timeout_s=300):
                raise RuntimeError(f"the probe worker did not finish {n_tasks} tasks; logs: {sandbox.logs}")
            return time.monotonic() - started

        send(20, [])  # warm-up: connections, pool, first-task imports
        batch = events[:batch_size]
        moved = batch_tasks * len(batch)
        empties, batches = [], []
        for _ in range(repeats):
            empty_s = send(empty_tasks, [])
            empties.append(StageResult("celery_empty_task", round(rate(empty_tasks, empty_s)), "tasks", empty_tasks,
                                       round(empty_s, 3)))  # fmt: skip
            batch_s = send(batch_tasks, batch)
            batches.append(StageResult("celery_batch_task", round(rate(moved, batch_s)), "events", moved, round(batch_s, 3),
                                       None, {"batch_events": len(batch), "tasks_per_s": round(rate(batch_tasks, batch_s), 1)}))  # fmt: skip
        latencies = [send(1, []) * 1000 for _ in range(round_trips)]
    finally:
        stop(proc, timeout_s=15)
        client.close()
    empty, batched = pick_median(empties), pick_median(batches)
    empty.extra.update(round_trip_ms_p50=round(percentile(latencies, 50) or 0, 2),
                       round_trip_ms_p99=round(percentile(latencies, 99) or 0, 2))  # fmt: skip
    say(f"  celery: {empty.per_s:,.0f} empty tasks/s (round trip p50 {empty.extra['round_trip_ms_p50']} ms); "
        f"{batched.per_s:,.0f} events/s in {len(batch)}-event tasks")  # fmt: skip
    return [empty, batched]
