"""Does the bridge keep anything per record? `Bridge.step` fed records for a while, under tracemalloc.

    .venv/bin/python -m bench.bridge_heap [SECONDS]

A fake consumer hands out the simulator's events again and again with growing offsets; every
batch completes at once and offsets are committed every 0.2 s, as in a long run of the real
bridge, without Kafka or Celery. Prints the traced Python heap after a sixth of the time and at
the end, and the allocations that grew most between the two: a leak in our per-record state
(offsets, event times, batches) shows as growth that follows the records.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from typing import Any

from bench.bridge_loop import _TP, _Consumer, _NoDeadLetters, _Record
from bench.workload import plan_workload
from evmonitor.bridge.bridge import Bridge
from evmonitor.config import Settings
from evmonitor.deadletter import DeadLetters

__all__ = ["bridge_heap"]


class _Endless(_Consumer):
    def __init__(self, messages: list[Any]) -> None:
        super().__init__([])
        self.messages = messages
        self.sent = 0
        self.offsets: dict[Any, int] = {}

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        out: dict[Any, list[Any]] = {}
        now_ms = int(time.time() * 1000)
        for _ in range(max_records):
            message = self.messages[self.sent % len(self.messages)]
            self.sent += 1
            tp = _TP(message.topic, 0)
            offset = self.offsets.get(tp, 0)
            self.offsets[tp] = offset + 1
            out.setdefault(tp, []).append(_Record(offset, message.key, message.value, now_ms))
        return out


def bridge_heap(seconds: float = 90.0) -> tuple[int, float, float, list[str]]:
    """(records, heap MB early, heap MB at the end, the biggest growths)."""
    consumer = _Endless(list(plan_workload("bridge_heap", events=60_000, seed=7).plan.messages))
    done: dict[str, set[str]] = {}
    bridge = Bridge(Settings(batch_max_events=500, commit_interval_s=0.2, completion_poll_s=0.05), consumer=consumer,
                    publish=lambda sink, batch: done.setdefault(batch.batch_id, set()).add(sink),
                    completions=lambda ids: {i: done.pop(i) for i in ids if i in done},
                    deadletters=DeadLetters(_NoDeadLetters(), "ev.deadletter"))  # fmt: skip
    tracemalloc.start(6)
    started = time.monotonic()
    early = None
    while time.monotonic() - started < seconds:
        bridge.step(poll_timeout_ms=0)
        if early is None and time.monotonic() - started >= seconds / 6:
            gc.collect()
            early = (tracemalloc.take_snapshot(), tracemalloc.get_traced_memory()[0], consumer.sent)
    gc.collect()
    late, late_bytes = tracemalloc.take_snapshot(), tracemalloc.get_traced_memory()[0]
    assert early is not None
    growth = [str(stat) for stat in late.compare_to(early[0], "lineno")[:5]]
    print(f"heap {early[1] / 2**20:.2f} MB after {early[2]:,} records, {late_bytes / 2**20:.2f} MB after {consumer.sent:,}")
    return consumer.sent, early[1] / 2**20, late_bytes / 2**20, growth


if __name__ == "__main__":
    _, _, _, grown = bridge_heap(float(sys.argv[1]) if len(sys.argv) > 1 else 90.0)
    print("\n".join(grown))
