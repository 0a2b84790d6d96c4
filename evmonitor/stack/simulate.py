"""Run the simulator against the configured Kafka: drain mode and live mode, with progress."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from evmonitor.config import Settings
from evmonitor.stack.reconcile import SentOffsets, wait_drained
from evmonitor.storage.kafka import ensure_topics, make_producer

__all__ = ["RecordingProducer", "new_run_id", "run_drain", "run_live_until_stopped", "sent_summary", "wait_processed"]


def new_run_id() -> str:
    """A fresh run id: the ids a run sends are its own (`evmonitor.simulator.messages.RunRandom`)."""
    return str(uuid.uuid4())


class RecordingProducer:
    """A KafkaProducer that remembers the partition and offset Kafka gave each record."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.sent = SentOffsets()
        self.per_topic: Counter[str] = Counter()  # records Kafka acknowledged, by topic
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []

    def _on_ok(self, meta: Any) -> None:
        with self._lock:
            self.sent.add(meta.topic, meta.partition, meta.offset)
            self.per_topic[meta.topic] += 1

    def _on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, **kwargs: Any) -> Any:
        future = self.producer.send(topic, key=key, value=value, **kwargs)
        future.add_callback(self._on_ok)
        future.add_errback(self._on_error)
        return future

    def flush(self, timeout: float | None = None) -> None:
        self.producer.flush(timeout=timeout)
        if self.errors:
            raise RuntimeError(f"Kafka refused {len(self.errors)} messages: {self.errors[0]!r}")

    def close(self) -> None:
        self.producer.close(timeout=10)


def run_drain(
    settings: Settings,
    *,
    stations: int,
    sessions: int,
    seed: int,
    bad_ratio: float = 0.0,
    duplicate_ratio: float = 0.0,
    reorder: bool = False,
    meter_interval_s: float = 300,
    now: datetime | None = None,
    run_id: str | None = None,
    say: Callable[[str], None] = print,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, SentOffsets]:
    """Plan a day of the fleet, send it as fast as Kafka takes it; return (truth, offsets sent).

    `run_id` (default: a new one) makes the session and event ids unique to this run.
    """
    from evmonitor.simulator import default_window, plan_drain, send

    now = now or datetime.now(timezone.utc)
    run_id = run_id or new_run_id()
    start, end = default_window(now)
    plan = plan_drain(stations=stations, sessions=sessions, seed=seed, start=start, end=end, bad_ratio=bad_ratio,
                      duplicate_ratio=duplicate_ratio, reorder=reorder, meter_interval_s=meter_interval_s, now=now,
                      run_id=run_id)  # fmt: skip
    total = len(plan.messages)
    say(f"simulator: run {run_id}, seed {seed}: {stations} stations, {sessions} sessions, {total} messages "
        f"({plan.truth.valid_events} valid events, {plan.truth.duplicates} duplicates, {plan.truth.bad_events} bad)")  # fmt: skip
    ensure_topics(settings.kafka_bootstrap, settings.topic_partitions)
    producer = RecordingProducer(make_producer(settings.kafka_bootstrap))
    try:
        send(plan.messages, producer, on_progress=(lambda n: on_progress(n, total)) if on_progress else None)
        producer.flush()
    finally:
        producer.close()
    say(sent_summary(run_id, settings.kafka_bootstrap, producer.per_topic))
    return plan.truth, producer.sent


def sent_summary(run_id: str, bootstrap: str, per_topic: Counter[str]) -> str:
    """`simulator: sent 1,234 messages of run <id> to Kafka at HOST:PORT: ev.meter 1,000, ...` (acknowledged ones)."""
    topics = ", ".join(f"{topic} {n:,}" for topic, n in sorted(per_topic.items()))
    return (f"simulator: sent {sum(per_topic.values()):,} messages of run {run_id} to Kafka at {bootstrap} "
            f"(EVMON_KAFKA_BOOTSTRAP): {topics or 'none'}")  # fmt: skip


def wait_processed(
    settings: Settings,
    truth: Any,
    sent: SentOffsets,
    *,
    timeout_s: float,
    say: Callable[[str], None] = print,
    progress_every_s: float = 2.0,
) -> str | None:
    """Wait until the pipeline has processed what a run sent; None when done, else why not.

    Done means both: the bridge's consumer group has committed past the last offset Kafka gave
    each of the run's records (the producer's acknowledgements, not the partitions' end offsets,
    which other producers move and tansu answers wrongly), and PostgreSQL holds every session of
    the run. The bridge commits only what every sink has taken, so the second follows from the
    first; it is checked all the same, since it is what the operator will look at next.
    """
    import sqlalchemy as sa

    deadline = time.monotonic() + timeout_s
    targets = sent.targets()
    run = f"run {truth.run_id}" if truth.run_id else "the run"
    last_said = [0.0]

    def progress(behind: int, total: int) -> None:
        if time.monotonic() - last_said[0] >= progress_every_s:
            last_said[0] = time.monotonic()
            say(f"waiting: {total - behind:,} of {total:,} offsets committed by {settings.consumer_group}")

    if not wait_drained(settings, targets, timeout_s=timeout_s, on_progress=progress):
        return (f"timed out after {timeout_s:g} s: consumer group {settings.consumer_group} has not committed all "
                f"records of {run} (is the bridge running? `evmonitor status`)")  # fmt: skip
    say(f"committed: consumer group {settings.consumer_group} is past every record of the run")
    session_ids = list(truth.by_session)
    engine = sa.create_engine(settings.sqlalchemy_url, connect_args={"connect_timeout": 5})
    try:
        while True:
            with engine.connect() as conn:
                found = conn.execute(sa.text("SELECT count(*) FROM charging_sessions WHERE id = ANY(CAST(:ids AS uuid[]))"),
                                     {"ids": session_ids}).scalar_one()  # fmt: skip
            if found == len(session_ids):
                say(f"processed: PostgreSQL holds all {found:,} sessions of {run}")
                return None
            if time.monotonic() >= deadline:
                return (f"timed out after {timeout_s:g} s: PostgreSQL holds {found:,} of the run's {len(session_ids):,} "
                        "sessions although the bridge committed them (see the persist worker's log)")  # fmt: skip
            time.sleep(0.2)  # polling another process's progress
    finally:
        engine.dispose()


def run_live_until_stopped(
    settings: Settings,
    *,
    stations: int,
    seed: int,
    speed: float,
    duration_s: float | None = None,
    run_id: str | None = None,
    say: Callable[[str], None] = print,
) -> Any:
    """Live mode until SIGINT/SIGTERM or `duration_s`; in-flight sessions are completed on stop."""
    from evmonitor.simulator import run_live

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    ensure_topics(settings.kafka_bootstrap, settings.topic_partitions)
    producer = RecordingProducer(make_producer(settings.kafka_bootstrap))
    run_id = run_id or new_run_id()
    say(f"simulator: live, run {run_id}, seed {seed}: {stations} stations, speed x{speed}; Ctrl-C to stop")
    try:
        truth = run_live(producer, stations=stations, seed=seed, speed=speed, stop=stop, duration_s=duration_s,
                         run_id=run_id)
        producer.flush()
    finally:
        producer.close()
    say(f"simulator: stopped after {truth.sessions} sessions")
    return truth
