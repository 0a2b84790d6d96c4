"""PostgreSQL's ceiling on a head of the drain's events against all of them, interleaved.

    .venv/bin/python -m bench.ceiling_span [EVENTS] [HEAD] [ROUNDS]

Plans the drain workload (`EVENTS`, default 600,000, the drain section's), then on one throw-away
database writes its first `HEAD` events (default 160,000) and all of them in turns, `ROUNDS`
times (default 2), each as the drain section's ceiling does (`bench.stages._timed_writes`: the
tables emptied, the bridge's batches, one transaction each on one connection). Prints events/s
and server CPU-µs per event of each: whether a head of the drain stands for all its writes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.pipeline import BENCH_SETTINGS, postgres_backends
from bench.stages import _batch_params, _timed_writes, lane_batches, wire_events
from bench.workload import plan_workload
from evmonitor.stack.sandbox import DEFAULT_ADMIN_URL, Sandbox
from evmonitor.storage.postgres import PostgresStore

__all__ = ["ceiling_span"]


def ceiling_span(events: int = 600_000, head: int = 160_000, rounds: int = 2) -> list[tuple[int, int, float]]:
    """(events written, events/s, server CPU-µs per event) of each write, in the order run."""
    wire, _ = wire_events(plan_workload("drain", events=events, seed=4))
    out = []
    with Sandbox(Path(tempfile.mkdtemp(prefix="ceiling-span-")), admin_url=DEFAULT_ADMIN_URL, sinks=["persist"],
                 **BENCH_SETTINGS) as sandbox:  # fmt: skip
        s = sandbox.settings
        store = PostgresStore.connect(s.sqlalchemy_url)
        try:
            for _ in range(rounds):
                for n in (min(head, len(wire)), len(wire)):
                    batches = lane_batches(wire[:n], s.batch_max_events, s.topic_partitions, s.batch_lanes)
                    result = _timed_writes(store, _batch_params(store, batches), postgres_backends(sandbox), "span", n, 0,
                                           s.batch_max_events)  # fmt: skip
                    out.append((n, result.per_s, result.extra["server_cpu_us_per_event"]))
                    print(f"{n:>9,} events: {result.per_s:>7,} events/s, "
                          f"{result.extra['server_cpu_us_per_event']} server CPU-us/event", flush=True)
        finally:
            store.engine.dispose()
    return out


if __name__ == "__main__":
    ceiling_span(*[int(a) for a in sys.argv[1:4]])
