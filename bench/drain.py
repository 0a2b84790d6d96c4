"""Backlog drain: the topics already hold a whole day when the pipeline starts; how fast does it
catch up? (issue 15: what users feel after an outage.)

On a fresh sandbox the workers are started and asked until each one serves its queue; the
workload is produced into the topics before the clock starts (the producer's CPU is not in the
figure), and every partition's high-water mark is read. Then the clock starts, the bridge (or
bridges) start, and the clock stops when the group's committed offset of every partition has
reached its high-water mark: every event is in each enabled store and its batch is done. The
stores are reconciled exactly against the workload's truth outside the clock.

While the clock runs, the CPU of each process is taken from /proc: the bridges from their
birth (their start-up is part of a drain), the workers, PostgreSQL's backends, tansu, Redis,
osmem. `startup_s` says when the first bridge had its partitions (first fetch) and when the
group first committed, so a short drain shows how much of it was start-up. `postgres_waits`
(bench.pgwaits) samples what the database's active backends wait on meanwhile: with two persist
workers, `Lock:advisory` is one batch queued behind another that shares its stations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from bench.pgwaits import WaitSampler
from bench.pipeline import BENCH_SETTINGS, meter_for
from bench.procstat import cpu_seconds, own_cpu_seconds, peak_rss_bytes
from bench.stats import per_thousand, rate
from bench.workload import Workload, check_exact, produce
from evmonitor.bridge.joining import ASSIGNED
from evmonitor.config import Settings
from evmonitor.names import EVENT_TOPICS, SinkName
from evmonitor.stack.procs import wait_for
from evmonitor.stack.sandbox import Sandbox

__all__ = ["DRAIN_SCENARIOS", "DrainResult", "DrainScenario", "highwater_marks", "run_drain"]

TPKey = tuple[str, int]


@dataclass(frozen=True)
class DrainScenario:
    """`workers` persist worker processes (one `worker --pool solo -c N` component, as `evmonitor
    up` starts them; the index sink gets one), `bridges` bridges in one consumer group."""

    name: str
    sinks: tuple[str, ...]
    workers: int = 2
    bridges: int = 1


# the headline drain runs what `evmonitor up` runs (EVMON_PERSIST_PROCESSES, default 2: a unit
# test keeps them equal); one persist process is the base of the scaling ratio
DRAIN_SCENARIOS = (
    DrainScenario("drain_persist", (SinkName.PERSIST,)),
    DrainScenario("drain_both", (SinkName.PERSIST, SinkName.INDEX)),
    DrainScenario("drain_persist_1_worker", (SinkName.PERSIST,), workers=1),
    DrainScenario("drain_persist_2_bridges", (SinkName.PERSIST,), bridges=2),
)


@dataclass
class DrainResult:
    scenario: str
    sinks: list[str]
    workers: int
    bridges: int
    partitions: int
    events: int
    seconds: float
    events_per_s: float
    produce_s: float  # before the clock
    exact: bool
    detail: str = ""
    startup_s: dict[str, float | None] = field(default_factory=dict)  # first fetch (assigned), first commit
    startup_share: float | None = None  # time to the first commit / the whole drain
    events_per_s_after_first_fetch: float | None = None  # the drain once a bridge had partitions
    cpu_s: dict[str, float] = field(default_factory=dict)
    cpu_us_per_event: dict[str, float] = field(default_factory=dict)  # = CPU-ms per 1,000 events
    bridge_startup_cpu_s: dict[str, float] = field(default_factory=dict)  # each bridge's CPU when it had partitions
    machine_busy_fraction: float = 0.0
    background_fraction: float = 0.0  # of the machine, used by processes that are not this run's
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    postgres_waits: dict[str, Any] = field(default_factory=dict)  # bench.pgwaits: what the backends waited on

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def process_names(prefix: str, count: int) -> list[str]:
    """`bridge`, `bridge-2`, ...: the first keeps the plain name the other sections use."""
    return [prefix if i == 0 else f"{prefix}-{i + 1}" for i in range(count)]


def highwater_marks(settings: Settings, topics: tuple[str, ...] = EVENT_TOPICS, timeout_s: float = 30) -> dict[TPKey, int]:
    """Every partition's high-water mark, from fetch responses: `highwater()`, not `end_offsets()`,
    which tansu answers wrongly."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no high-water mark for {[tp for tp in tps if consumer.highwater(tp) is None]}")
            consumer.poll(timeout_ms=200, max_records=1)
        return {(tp.topic, tp.partition): consumer.highwater(tp) for tp in tps}
    finally:
        consumer.close(autocommit=False)


class CommittedOffsets:
    """The bridge group's committed offsets, all partitions in one OffsetFetch per poll (so the
    watching costs tansu little while it is measured)."""

    def __init__(self, settings: Settings, targets: dict[TPKey, int]) -> None:
        self.group = settings.consumer_group
        self.targets = {TopicPartition(t, p): hw for (t, p), hw in targets.items()}
        self.admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)

    def behind(self) -> int:
        """Records not yet committed (a partition without a commit counts from 0)."""
        found = self.admin.list_group_offsets({self.group: list(self.targets)}).get(self.group, {})
        total = 0
        for tp, target in self.targets.items():
            offset = found.get(tp)
            committed = offset.offset if offset is not None and offset.offset >= 0 else 0
            total += max(0, target - committed)
        return total

    def close(self) -> None:
        self.admin.close()


def wait_worker_count(sandbox: Sandbox, queue: str, count: int, timeout_s: float = 60) -> None:
    """Block until `count` distinct workers consume `queue` (asked over the broker)."""
    from evmonitor.app import create_app

    app = create_app(sandbox.settings)

    def ready() -> bool:
        replies = app.control.inspect(timeout=0.5).active_queues() or {}
        return sum(1 for qs in replies.values() if any(q["name"] == queue for q in qs)) >= count

    wait_for(ready, timeout_s=timeout_s, what=f"{count} Celery workers for {queue}", hint=f"Logs: {sandbox.logs}")


def _bridge_pids(sandbox: Sandbox, name: str) -> Callable[[], list[int]]:
    return lambda: [sandbox.processes[name].pid] if name in sandbox.processes else []


class _Clock:
    """Starts the bridges and times the drain until nothing is left to commit, noting when each
    bridge first had partitions (and its CPU then) and when the group first committed."""

    def __init__(self, sandbox: Sandbox, bridges: list[str], watch: CommittedOffsets, events: int) -> None:
        self.sandbox, self.bridges, self.watch, self.events = sandbox, bridges, watch, events
        self.assigned_at: dict[str, float] = {}
        self.startup_cpu: dict[str, float] = {}
        self.first_commit_at: float | None = None
        self.seconds = 0.0

    def run(self, timeout_s: float) -> bool:
        """True once every partition's committed offset is at its high-water mark."""
        started = time.monotonic()
        for name in self.bridges:
            self.sandbox.start(name, "bridge")
        try:
            while time.monotonic() - started < timeout_s:
                now = time.monotonic() - started
                for name in self.bridges:
                    if name not in self.assigned_at and ASSIGNED in self.sandbox.log(name):
                        self.assigned_at[name] = now
                        self.startup_cpu[name] = cpu_seconds(self.sandbox.processes[name].pid)
                behind = self.watch.behind()
                if self.first_commit_at is None and behind < self.events:
                    self.first_commit_at = now
                if behind == 0:
                    return True
                time.sleep(0.1)  # polling other processes' progress
            return False
        finally:
            self.seconds = time.monotonic() - started


def run_drain(
    scenario: DrainScenario,
    workload: Workload,
    *,
    workdir: Path,
    admin_url: str,
    after: Callable[[Sandbox], None] | None = None,
    timeout_s: float = 900,
    say: Callable[[str], None] = print,
) -> DrainResult:
    """Drain `workload` through `scenario` on a fresh sandbox. `after(sandbox)` runs once the
    drain is reconciled and our processes are stopped (the same-run ceilings use it)."""
    overrides = dict(BENCH_SETTINGS, sinks=list(scenario.sinks))
    with Sandbox(workdir, admin_url=admin_url, **overrides) as sandbox:
        settings = sandbox.settings
        processes = {sink: scenario.workers if sink == SinkName.PERSIST else 1 for sink in scenario.sinks}
        for sink in scenario.sinks:
            sandbox.start_worker(sink, name=f"worker-{sink}", concurrency=processes[sink])
        sandbox.wait_workers(scenario.sinks)
        for sink in scenario.sinks:
            wait_worker_count(sandbox, sink, processes[sink])
        sent, produce_s = produce(settings, workload)
        marks = highwater_marks(settings)
        wrong = {tp: hw for tp, hw in marks.items() if hw != sent.targets().get(tp, 0)}
        if wrong:  # the clock stops at the marks; a difference means someone else wrote to the topics
            say(f"  warning: high-water marks differ from the producer's acks on {sorted(wrong)}")
        targets = {tp: hw for tp, hw in marks.items() if hw > 0}
        events = sum(targets.values())  # the topics are fresh: every record is the workload's
        watch = CommittedOffsets(settings, targets)
        watch.behind()  # connect before the clock starts
        bridges = process_names("bridge", scenario.bridges)
        meter = meter_for(sandbox)
        meter.pids.update({name: _bridge_pids(sandbox, name) for name in bridges})
        waits = WaitSampler(sandbox.admin_url, sandbox.database)
        meter.start()
        waits.start()
        own0 = own_cpu_seconds()
        clock = _Clock(sandbox, bridges, watch, events)
        drained = clock.run(timeout_s)
        seconds = clock.seconds
        cpu = meter.stop()
        postgres_waits = waits.stop()
        cpu["harness"] = own_cpu_seconds() - own0
        watch.close()
        ours = {name: proc.pid for name, proc in sandbox.processes.items()}
        peaks = {name: round(peak_rss_bytes(pid) / 2**20, 1) for name, pid in ours.items()}
        exact, detail = check_exact(settings, workload, sent, scenario.sinks) if drained else (False, "")
        if not drained:
            detail = f"not drained after {timeout_s:.0f}s; logs: {sandbox.logs}"
        if after is not None:
            for name in list(sandbox.processes):
                sandbox.stop(name, timeout_s=15)
            after(sandbox)
    busy, total = cpu.pop("_machine_busy"), max(1e-9, cpu.pop("_machine_total"))
    cpu.pop("_wall")
    first_fetch, first_commit_at = min(clock.assigned_at.values(), default=None), clock.first_commit_at
    result = DrainResult(
        scenario=scenario.name, sinks=list(scenario.sinks), workers=scenario.workers, bridges=scenario.bridges,
        partitions=len(marks), events=events, seconds=round(seconds, 3), events_per_s=round(rate(events, seconds), 1),
        produce_s=round(produce_s, 3), exact=exact, detail=detail,
        startup_s={"first_fetch": _round(first_fetch), "first_commit": _round(first_commit_at)},
        startup_share=_round(first_commit_at / seconds if first_commit_at is not None and seconds else None),
        events_per_s_after_first_fetch=round(rate(events, seconds - first_fetch), 1) if first_fetch is not None else None,
        cpu_s={k: round(v, 3) for k, v in cpu.items()},
        cpu_us_per_event={k: round(per_thousand(v, events) * 1000, 1) for k, v in cpu.items()},
        bridge_startup_cpu_s={name: round(cpu_s, 3) for name, cpu_s in clock.startup_cpu.items()},
        machine_busy_fraction=round(busy / total, 3),
        background_fraction=round(max(0.0, busy - sum(cpu.values())) / total, 3),
        peak_rss_mb=peaks,
        postgres_waits=postgres_waits,
    )  # fmt: skip
    say(f"  {scenario.name}: {events:,} events in {seconds:.1f}s = {result.events_per_s:,.0f}/s (first fetch at "
        f"{result.startup_s['first_fetch']}s, first commit at {result.startup_s['first_commit']}s; from the first "
        f"fetch {result.events_per_s_after_first_fetch or 0:,.0f}/s; PostgreSQL: {postgres_waits['active_backends_mean']} "
        f"active backends, {postgres_waits['lock_share'] or 0:.0%} of them waiting on locks), "
        f"exact {'yes' if exact else 'NO ' + detail}")  # fmt: skip
    return result


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# PostgreSQL's ceiling writes every event of the drain, not a head of it: its cost per event grows
# as the tables fill. `python -m bench.ceiling_span` (the drain's 585,601 events, 06:05 UTC, two
# interleaved rounds): the first 160,000 at 34,856 / 36,453 events/s and 25.9 / 25.0 server
# CPU-us per event, all of them at 27,869 / 28,646 and 33.0 / 32.1. The ceiling used to write the
# first 160,000, and so overstated the ceiling of the drain's writes by about a quarter.


def same_run_ceilings(sandbox: Sandbox, workload: Workload, repeats: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The ceilings the drain's ratios divide by, measured on the drained sandbox (its topics hold
    the workload; our processes are stopped): a plain Kafka consumer reading it all, and
    PostgreSQL's upsert of the same writes in the bridge's batches (`bench.stages`): every event
    of the drain."""
    from bench.pipeline import postgres_backends
    from bench.stages import _consume_all, pick_median, postgres_upsert, wire_events

    settings = sandbox.settings
    consumed = pick_median([_consume_all(settings, workload.events) for _ in range(repeats)])
    say(f"  same-run ceiling, kafka consume: {consumed.per_s:,.0f} msg/s")
    events, _ = wire_events(workload)
    stages = postgres_upsert(settings, events, settings.batch_max_events, postgres_backends(sandbox), repeats, say)
    return {s.name: s.to_json() for s in [consumed, *stages]}
