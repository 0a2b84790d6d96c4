"""Memory over a longer run: does the resident memory of the bridge and the workers stay flat?

The persist sink alone (issue 15's path, at a rate it sustains) or both sinks (a modest rate:
osmem keeps ~8 KB per document in memory), the production batch settings, a steady load. The
resident memory of each of our processes (their trees: a worker and its pool) is sampled every
few seconds; the verdict compares the second quarter of the run with the last
(`bench.stats.flatness`). The run ends reconciled like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pipeline import BENCH_SETTINGS, OURS, Scenario, start_pipeline
from bench.procstat import RssSampler
from bench.stats import flatness
from bench.workload import Workload, check_exact
from evmonitor.names import SinkName
from evmonitor.stack.reconcile import wait_drained
from evmonitor.stack.sandbox import Sandbox
from evmonitor.stack.simulate import RecordingProducer
from evmonitor.storage.kafka import make_producer

__all__ = ["Soak", "run_soak", "send_paced"]


@dataclass
class Soak:
    minutes: float
    rate_per_s: float
    events: int
    sinks: list[str]
    exact: bool
    detail: str = ""
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    series_mb: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def send_paced(producer: RecordingProducer, workload: Workload, rate_per_s: float) -> int:
    """Send the workload's messages at `rate_per_s`, in 10 ms steps; return how many."""
    group = max(1, round(rate_per_s * 0.01))
    started = time.monotonic()
    for i, message in enumerate(workload.plan.messages):
        if i % group == 0:
            delay = started + i / rate_per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the offered load
        producer.send(message.topic, key=message.key, value=message.value)
    producer.flush()
    return len(workload.plan.messages)


def run_soak(
    workload: Workload,
    *,
    rate_per_s: float,
    workdir: Path,
    admin_url: str,
    sinks: tuple[str, ...] = (SinkName.PERSIST, SinkName.INDEX),
    interval_s: float = 2.0,
    say: Callable[[str], None] = print,
) -> Soak:
    minutes = workload.events / rate_per_s / 60
    say(f"  soak: {workload.events} events at {rate_per_s:.0f}/s, {minutes:.1f} minutes, {' + '.join(sinks)}")
    with Sandbox(workdir, admin_url=admin_url, **dict(BENCH_SETTINGS, sinks=list(sinks))) as sandbox:
        start_pipeline(sandbox, Scenario("soak", tuple(sinks)))
        pids = {name: sandbox.processes[name].pid for name in OURS if name in sandbox.processes}
        stores = ("kafka", "redis") + (("elasticsearch",) if SinkName.INDEX in sinks else ())
        pids.update({name: sandbox.services[name].pid for name in stores})
        producer = RecordingProducer(make_producer(sandbox.settings.kafka_bootstrap))
        with RssSampler(pids, interval_s=interval_s) as rss:
            try:
                sent = send_paced(producer, workload, rate_per_s)
            finally:
                producer.close()
            drained = wait_drained(sandbox.settings, producer.sent.targets(), timeout_s=600)
        exact, detail = check_exact(sandbox.settings, workload, producer.sent, tuple(sinks))
        if not drained:
            exact, detail = False, f"not drained; logs: {sandbox.logs}"
    result = Soak(minutes=round(minutes, 2), rate_per_s=rate_per_s, events=sent, sinks=[str(s) for s in sinks],
                  exact=exact, detail=detail)  # fmt: skip
    for name, samples in rss.samples.items():
        verdict = flatness(samples)
        peak = max((b for _, b in samples), default=0)
        result.memory[name] = {"peak_mb": round(peak / 2**20, 1), **(verdict.as_dict() if verdict else {"flat": None})}
        if name not in OURS:  # the in-memory stores grow with the data they hold: context, not a verdict
            result.memory[name]["flat"] = None
        result.series_mb[name] = [(round(t, 1), round(b / 2**20, 1)) for t, b in samples]
        if name in OURS:
            say(f"    {name}: peak {peak / 2**20:.0f} MB, {result.memory[name]}")
    return result
