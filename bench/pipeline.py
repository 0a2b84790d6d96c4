"""End-to-end runs: a fresh sandbox, workers and bridge, a drain-mode day from produce to reconciled.

The clock starts before the first message is sent and stops when the bridge's committed
offsets cover every message (so every event is in each enabled store and its batch marked
done); then the stores are reconciled against the plan's truth, outside the clock. While the
clock runs, the CPU of each of our processes, of each store and of the machine is taken from
/proc, and the resident memory of the bridge and workers is sampled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.procstat import CpuMeter, RssSampler, own_cpu_seconds
from bench.stats import per_thousand, rate
from bench.workload import Workload, check_exact, produce
from evmonitor.config import Settings
from evmonitor.stack.reconcile import wait_drained
from evmonitor.stack.sandbox import Sandbox

__all__ = ["BENCH_SETTINGS", "OURS", "RunResult", "Scenario", "run_scenario", "postgres_backends"]

OURS = ("bridge", "worker-persist", "worker-index")

# Every benchmark sandbox runs the production defaults of Settings (batch 2,000 events / 200 ms,
# 6 partitions, a 1 s commit interval, ...), not the test sandbox's quicker ones. The end of a run
# is seen when offsets are committed; a bridge that is caught up commits at once (not at the next
# interval), so the interval adds nothing to a run's end.
BENCH_SETTINGS: dict[str, Any] = {"batch_max_ms": 200, "topic_partitions": 6, "commit_interval_s": 1.0}


@dataclass(frozen=True)
class Scenario:
    """One end-to-end configuration. `settings` are extra Settings overrides for the sandbox."""

    name: str
    sinks: tuple[str, ...]
    batch_max_events: int = Settings.model_fields["batch_max_events"].default  # the production default
    concurrency: int = 1
    settings: tuple[tuple[str, Any], ...] = ()


@dataclass
class RunResult:
    scenario: str
    sinks: list[str]
    batch_max_events: int
    concurrency: int
    events: int
    seconds: float
    events_per_s: float
    produce_s: float
    exact: bool
    detail: str = ""
    cpu_s: dict[str, float] = field(default_factory=dict)
    cpu_us_per_event: dict[str, float] = field(default_factory=dict)  # = CPU-ms per 1,000 events
    idle_cpu_pct: dict[str, float] = field(default_factory=dict)  # our processes' CPU with nothing to do
    net_us_per_event: dict[str, float] = field(default_factory=dict)  # ours, less that idle cost
    machine_busy_fraction: float = 0.0
    background_fraction: float = 0.0  # of the machine, used by processes that are not this run's
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    rss_samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("rss_samples")
        return out


def postgres_backends(sandbox: Sandbox) -> Callable[[], list[int]]:
    """A function giving the pids of the PostgreSQL backends serving the sandbox's database."""
    engine = sa.create_engine(sandbox.admin_url, connect_args={"connect_timeout": 5})

    def pids() -> list[int]:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": sandbox.database})
            return [r[0] for r in rows]

    return pids


def start_pipeline(sandbox: Sandbox, scenario: Scenario) -> None:
    for sink in scenario.sinks:
        sandbox.start_worker(sink, concurrency=scenario.concurrency)
    sandbox.wait_workers(scenario.sinks)
    sandbox.start_bridge()


def meter_for(sandbox: Sandbox) -> CpuMeter:
    pids: dict[str, Any] = {name: proc.pid for name, proc in sandbox.processes.items()}
    pids.update({name: proc.pid for name, proc in sandbox.services.items()})
    pids["postgres"] = postgres_backends(sandbox)
    return CpuMeter(pids)


def run_scenario(
    scenario: Scenario,
    workload: Workload,
    *,
    workdir: Path,
    admin_url: str,
    timeout_s: float = 600,
    idle_s: float = 3.0,
    say: Callable[[str], None] = print,
) -> RunResult:
    """Run `workload` through `scenario` on a fresh sandbox.

    Before the clock starts, each of our processes is measured idle for `idle_s`: what a bridge
    and workers cost per second with nothing to do (poll loops, heartbeats). `net_us_per_event`
    subtracts it, so a run held back by a slow store does not make our per-event cost look
    higher than it is; `cpu_us_per_event` is the gross figure.
    """
    overrides = dict(BENCH_SETTINGS, sinks=list(scenario.sinks), batch_max_events=scenario.batch_max_events)
    overrides.update(dict(scenario.settings))
    with Sandbox(workdir, admin_url=admin_url, **overrides) as sandbox:
        start_pipeline(sandbox, scenario)
        meter = meter_for(sandbox)
        ours = {name: sandbox.processes[name].pid for name in OURS if name in sandbox.processes}
        idle = CpuMeter(dict(ours))
        idle.start()
        time.sleep(idle_s)  # the pipeline's own cost per second with nothing to do
        idle_cpu = idle.stop()
        idle_per_s = {name: idle_cpu[name] / idle_cpu["_wall"] for name in ours}
        with RssSampler(ours) as rss:
            meter.start()
            own_before = own_cpu_seconds()
            started = time.monotonic()
            sent, produce_s = produce(sandbox.settings, workload)
            drained = wait_drained(sandbox.settings, sent.targets(), timeout_s=timeout_s)
            seconds = time.monotonic() - started
            cpu = meter.stop()
            cpu["simulator"] = own_cpu_seconds() - own_before
        exact, detail = check_exact(sandbox.settings, workload, sent, scenario.sinks) if drained else (False, "")
        if not drained:
            detail = f"not drained after {timeout_s:.0f}s; logs: {sandbox.logs}"
    busy, total = cpu.pop("_machine_busy"), max(1e-9, cpu.pop("_machine_total"))
    cpu.pop("_wall")
    events = workload.events
    result = RunResult(
        scenario=scenario.name, sinks=list(scenario.sinks), batch_max_events=scenario.batch_max_events,
        concurrency=scenario.concurrency, events=events, seconds=round(seconds, 3),
        events_per_s=round(rate(events, seconds), 1), produce_s=round(produce_s, 3), exact=exact, detail=detail,
        cpu_s={k: round(v, 3) for k, v in cpu.items()},
        cpu_us_per_event={k: round(per_thousand(v, events) * 1000, 1) for k, v in cpu.items()},
        idle_cpu_pct={k: round(v * 100, 2) for k, v in idle_per_s.items()},
        net_us_per_event={k: round(per_thousand(max(0.0, cpu[k] - idle_per_s[k] * seconds), events) * 1000, 1)
                          for k in idle_per_s},
        machine_busy_fraction=round(busy / total, 3),
        background_fraction=round(max(0.0, busy - sum(cpu.values())) / total, 3),
        peak_rss_mb={k: round(v / 2**20, 1) for k, v in rss.peaks().items()},
        rss_samples=rss.samples,
    )  # fmt: skip
    say(f"  {scenario.name}: {events} events in {seconds:.1f}s = {result.events_per_s:,.0f}/s "
        f"(produce {produce_s:.1f}s), exact {'yes' if exact else 'NO ' + detail}")  # fmt: skip
    return result
