"""The bridge's own per-record cost: `Bridge.step` fed a simulator day from memory, no I/O.

    .venv/bin/python -m bench.bridge_loop [EVENTS] [ROUNDS]
    .venv/bin/python -m bench.bridge_loop --bad [EVENTS] [ROUNDS]

Records come from a fake consumer in polls of `batch_max_events`, publishing is a no-op and
every batch completes at once, so the CPU time (this thread's) is validation, normalisation and
the bookkeeping of offsets, event times and batches: what `py-spy record -- python -m
bench.bridge_loop` shows without Kafka or Celery in the way. Prints the best round's CPU-µs
per record and the records the fast path left to the pydantic models.

With `--bad`, the same events plus 10% malformed ones (the bench's `bad` section), dead-lettered
through a real KafkaProducer to a tansu started for the run: prints the CPU-µs of this process
(every thread: kafka-python's sender thread does the dead letters' network work) per bad record,
as the best bad round less the best clean round, over the bad records.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import namedtuple
from datetime import datetime, timezone
from pathlib import Path
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


def _polls(events: int, batch: int, bad_ratio: float = 0.0,
           now: datetime | None = None) -> tuple[list[dict[Any, list[Any]]], int]:  # fmt: skip
    received_ms = int((now or datetime.now(timezone.utc)).timestamp() * 1000)
    by_tp: dict[Any, list[Any]] = {}
    for message in plan_workload("bridge_loop", events=events, seed=7, now=now, bad_ratio=bad_ratio).plan.messages:
        records = by_tp.setdefault(_TP(message.topic, 0), [])
        records.append(_Record(len(records), message.key, message.value, received_ms))
    polls = [{tp: records[i : i + batch]} for tp, records in by_tp.items() for i in range(0, len(records), batch)]
    return polls, sum(len(r) for r in by_tp.values())


def _run(polls: list[dict[Any, list[Any]]], batch: int, deadletters: DeadLetters) -> tuple[float, float, Bridge]:
    """(CPU seconds of this thread, of the whole process) of one pass over `polls`, ending with
    a commit, which flushes the dead letters."""
    done: dict[str, set[str]] = {}
    consumer = _Consumer(polls)
    bridge = Bridge(Settings(batch_max_events=batch), consumer=consumer,
                    publish=lambda sink, b: done.setdefault(b.batch_id, set()).add(sink),
                    completions=lambda ids: {i: done[i] for i in ids if i in done},
                    deadletters=deadletters)  # fmt: skip
    thread0, process0 = time.thread_time(), time.process_time()
    while consumer.polls:
        bridge.step(poll_timeout_ms=0)
    bridge.commit()
    return time.thread_time() - thread0, time.process_time() - process0, bridge


def bridge_loop(events: int = 100_000, rounds: int = 3, batch: int = 500) -> tuple[float, int, int]:
    """(best CPU-µs per record, records, records left to the models) over `rounds` runs."""
    polls, n = _polls(events, batch)
    best, slow = float("inf"), 0
    for _ in range(rounds):
        spent, _, bridge = _run(polls, batch, DeadLetters(_NoDeadLetters(), "ev.deadletter"))
        best = min(best, spent)
        assert bridge.stats.valid == n, bridge.stats
        slow = bridge.stats.slow_path
    return best / n * 1e6, n, slow


def bad_loop(events: int = 50_000, rounds: int = 3, batch: int = 500, bad_ratio: float = 0.1) -> dict[str, Any]:
    """CPU-µs per bad record over `rounds` runs: the best bad round less what its valid records
    cost in the best clean round, over the bad records; of the bridge's thread, and of the whole
    process (kafka-python's sender thread sends the dead letters). Dead letters go to a tansu
    started for the run."""
    from evmonitor.names import Topic
    from evmonitor.stack.embedded import start_kafka
    from evmonitor.stack.procs import free_port, stop
    from evmonitor.storage.kafka import ensure_topics, make_deadletter_producer

    now = datetime.now(timezone.utc)
    clean, n_clean = _polls(events, batch, now=now)
    bad, n_all = _polls(events, batch, bad_ratio, now=now)
    n_bad = n_all - n_clean
    kafka = start_kafka(free_port(), Path(tempfile.mkdtemp(prefix="bridge-loop-")))
    try:
        ensure_topics(kafka.address, 6, [Topic.DEADLETTER])
        producer = make_deadletter_producer(Settings(kafka_bootstrap=kafka.address))  # as evmonitor.bridge.wiring makes it
        best = {"clean": (float("inf"),) * 2, "bad": (float("inf"),) * 2}
        for _ in range(rounds):
            for name, polls in (("clean", clean), ("bad", bad)):
                thread_s, process_s, bridge = _run(polls, batch, DeadLetters(producer, str(Topic.DEADLETTER)))
                best[name] = min(best[name][0], thread_s), min(best[name][1], process_s)
            assert sum(bridge.stats.rejected.values()) == n_bad and not bridge.deadletters.pending, bridge.stats
        producer.close()
    finally:
        stop(kafka)
    per_bad = [(b - c) / n_bad * 1e6 for b, c in zip(best["bad"], best["clean"])]
    return {"bad_records": n_bad, "thread_us_per_bad": per_bad[0], "process_us_per_bad": per_bad[1],
            "process_us_per_valid": best["clean"][1] / n_clean * 1e6}  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bad"]:
        out = bad_loop(*[int(a) for a in sys.argv[2:4]])
        print(f"bridge loop, 10% bad: {out['process_us_per_bad']:.1f} CPU-us per bad record, all threads "
              f"({out['thread_us_per_bad']:.1f} in the bridge's thread; {out['bad_records']:,} bad records; "
              f"{out['process_us_per_valid']:.2f} CPU-us per valid record)")
    else:
        us, n, slow = bridge_loop(*[int(a) for a in sys.argv[1:3]])
        print(f"bridge loop: {us:.2f} CPU-us per record (best of rounds), {n:,} records, {slow} left to the models")
