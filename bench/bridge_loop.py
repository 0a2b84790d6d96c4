"""The bridge's own per-record cost: `Bridge.step` fed a simulator day from memory, no I/O.

    .venv/bin/python -m bench.bridge_loop [EVENTS] [ROUNDS]

Records come from a fake consumer in polls of `batch_max_events`, publishing is a no-op and
every batch completes at once, so the CPU time (this thread's) is validation, normalisation and
the bookkeeping of offsets, event times and batches: what `py-spy record -- python -m
bench.bridge_loop` shows without Kafka or Celery in the way. Prints the best round's CPU-µs
per record and the records the fast path left to the pydantic models.
"""

from __future__ import annotations

import sys
import time
from collections import namedtuple
from typing import Any

from bench.workload import plan_workload
from evmonitor.bridge.bridge import Bridge
from evmonitor.config import Settings
from evmonitor.deadletter import DeadLetters

__all__ = ["bridge_loop"]

_TP = namedtuple("_TP", "topic partition")
_Record = namedtuple("_Record", "offset key value timestamp")


class _Consumer:
    def __init__(self, polls: list[dict[Any, list[Any]]]) -> None:
        self.polls = list(reversed(polls))

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        return self.polls.pop() if self.polls else {}

    def assignment(self) -> set[Any]:
        return set()

    def paused(self) -> set[Any]:
        return set()

    def pause(self, *tps: Any) -> None:
        pass

    def resume(self, *tps: Any) -> None:
        pass

    def commit_offsets(self, offsets: dict[Any, int]) -> None:
        pass


class _NoDeadLetters:
    def send(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the workload is clean: nothing should be dead-lettered")

    def flush(self, timeout: float | None = None) -> None:
        pass


def bridge_loop(events: int = 100_000, rounds: int = 3, batch: int = 500) -> tuple[float, int, int]:
    """(best CPU-µs per record, records, records left to the models) over `rounds` runs."""
    received_ms = int(time.time() * 1000)
    by_tp: dict[Any, list[Any]] = {}
    for message in plan_workload("bridge_loop", events=events, seed=7).plan.messages:
        records = by_tp.setdefault(_TP(message.topic, 0), [])
        records.append(_Record(len(records), message.key, message.value, received_ms))
    polls = [{tp: records[i : i + batch]} for tp, records in by_tp.items() for i in range(0, len(records), batch)]
    n = sum(len(r) for r in by_tp.values())
    best, slow = float("inf"), 0
    for _ in range(rounds):
        done: dict[str, set[str]] = {}
        consumer = _Consumer(polls)
        bridge = Bridge(Settings(batch_max_events=batch), consumer=consumer,
                        publish=lambda sink, b: done.setdefault(b.batch_id, set()).add(sink),
                        completions=lambda ids: {i: done[i] for i in ids if i in done},
                        deadletters=DeadLetters(_NoDeadLetters(), "ev.deadletter"))  # fmt: skip
        cpu0 = time.thread_time()
        while consumer.polls:
            bridge.step(poll_timeout_ms=0)
        best = min(best, time.thread_time() - cpu0)
        assert bridge.stats.valid == n, bridge.stats
        slow = bridge.stats.slow_path
    return best / n * 1e6, n, slow


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    us, n, slow = bridge_loop(*args)
    print(f"bridge loop: {us:.2f} CPU-us per record (best of rounds), {n:,} records, {slow} left to the models")
