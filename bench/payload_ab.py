"""What a batch task's payload form costs the persist worker: the same batches sent inline and by
reference, to the same worker code, on fresh sandboxes.

    .venv/bin/python -m bench.payload_ab [EVENTS] [ROUNDS] [PROCESSES]

The drain's events (`plan_workload("drain")`, validated and cut into the bridge's lane batches of
2,000) are published as persist tasks while a persist worker (PROCESSES solo processes, default
2, as `evmonitor up` runs) takes them: once with each batch's JSON string inside the task (what
bridges sent before `Payloads`), once stored in Redis with the task carrying `{"ref": key}`.
The clock and the CPU counters (the worker's process tree, Redis) run from the first publish to
the last completion marker. Each round runs both forms, inline first; the workers and the
writes are identical, so the difference is the payload's way through kombu and Redis.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from bench.procstat import cpu_seconds
from bench.stages import lane_batches, wire_events
from bench.workload import plan_workload
from evmonitor.names import Queue, TaskName
from evmonitor.stack.procs import wait_for
from evmonitor.stack.sandbox import Sandbox
from evmonitor.transport import Payloads, encode_events

__all__ = ["payload_round"]

FORMS = ("inline", "ref")


def payload_round(form: str, payloads: list[str], events: int, processes: int) -> dict[str, float | int | str]:
    from evmonitor.app import create_app

    with Sandbox(Path(tempfile.mkdtemp(prefix="evmonitor-payload-"))) as sandbox:
        worker = sandbox.start_worker(Queue.PERSIST, concurrency=processes)
        sandbox.wait_workers((Queue.PERSIST,))
        app, store = create_app(sandbox.settings), Payloads.connect(sandbox.settings)
        engine = sa.create_engine(sandbox.settings.sqlalchemy_url)
        redis_pid = sandbox.services["redis"].pid

        def cpu() -> tuple[float, float]:
            return cpu_seconds(worker.pid), cpu_seconds(redis_pid)

        def done() -> bool:
            with engine.connect() as conn:
                return conn.exec_driver_sql("SELECT count(*) FROM ingest_batches").scalar() == len(payloads)

        (w0, r0), t0 = cpu(), time.monotonic()
        for payload in payloads:
            batch_id = str(uuid.uuid4())
            arg = payload if form == "inline" else store.put(batch_id, payload)
            app.send_task(TaskName.PERSIST_BATCH, args=[batch_id, arg], queue=Queue.PERSIST)
        wait_for(done, timeout_s=600, what="every batch written", hint=f"Logs: {sandbox.logs}")
        (w1, r1), seconds = cpu(), time.monotonic() - t0
        engine.dispose()
        store.close()
    return {"form": form, "events": events, "batches": len(payloads), "seconds": round(seconds, 2),
            "events_per_s": round(events / seconds), "worker_cpu_us_per_event": round((w1 - w0) / events * 1e6, 1),
            "redis_cpu_us_per_event": round((r1 - r0) / events * 1e6, 2)}  # fmt: skip


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 60_000
    rounds = int(argv[1]) if len(argv) > 1 else 2
    processes = int(argv[2]) if len(argv) > 2 else 2
    events, _ = wire_events(plan_workload("drain", events=n, seed=3))
    batches = lane_batches(events, 2000, 6, 6)
    payloads = [encode_events(batch) for batch in batches]
    total = sum(map(len, batches))
    print(f"{total:,} events in {len(batches)} batches, {sum(map(len, payloads)) / len(payloads) / 1024:,.0f} KB of "
          f"JSON each; persist worker with {processes} solo processes", flush=True)  # fmt: skip
    for _ in range(rounds):
        for form in FORMS:
            print(json.dumps(payload_round(form, payloads, total, processes)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
