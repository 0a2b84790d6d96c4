"""One benchmark run: plan the workloads, then each section on fresh sandboxes, then the report.

Sections, in order (each can be skipped with `--skip`):

* `stages`    raw ceilings, each stage alone (one sandbox): Kafka produce and consume,
              PostgreSQL upsert, bulk indexing, a Celery round trip
* `drain`     backlog drain (issue 15): the day is in the topics before the clock starts; persist
              sink and both sinks as `up` runs them (2 persist processes), 1 persist process,
              2 bridges (bench.drain)
* `paths`     end to end, persist path and index path alone, then both sinks together
* `baseline`  one Celery task per event (batch_max_events=1), persist and index paths
* `batch`     the persist path at batch sizes 50, 500 and 5,000 (1 and the default, 2,000, come from above)
* `scaling`   2 worker processes per queue instead of 1
* `freshness` delay from produce to PostgreSQL at 5,000 events/s (persist sink alone), and to
              PostgreSQL and searchable at 1,000 events/s (both sinks)
* `soak`      only with `--soak MINUTES`: memory over a longer run (persist sink by default)

The JSON also holds issue 15's `ratios` and `targets` (bench.drain_targets), computed from the
raw figures of the same run.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.celery_stage import celery_round_trip
from bench.drain import DRAIN_SCENARIOS, DrainScenario, run_drain, same_run_ceilings
from bench.drain_targets import ratios, targets
from bench.freshness import measure_freshness
from bench.machine import describe_machine
from bench.pipeline import BENCH_SETTINGS, Scenario, meter_for, postgres_backends, run_scenario, start_pipeline
from bench.search_stage import bulk_index, bulk_latency
from bench.soak import run_soak
from bench.stages import kafka_stages, postgres_upsert, wire_events
from bench.workload import Workload, plan_at_least, plan_workload
from evmonitor.names import SinkName
from evmonitor.stack.sandbox import Sandbox

__all__ = ["Options", "SECTIONS", "run"]

SECTIONS = ("stages", "drain", "paths", "bad", "baseline", "batch", "scaling", "freshness", "soak")


@dataclass
class Options:
    quick: bool = False
    soak_minutes: float = 0.0
    soak_rate: float | None = None  # default: SOAK_RATES[soak_sinks]
    soak_sinks: str = "persist"  # "persist" or "both"
    fresh_rate: float = 1000.0
    fresh_persist_rate: float = 5000.0
    skip: tuple[str, ...] = ()
    profile: bool = False
    admin_url: str = ""
    seed: int = 1
    workdir: Path | None = None
    drain_events: int = 0  # 0: the default of the mode (see `sizes`)

    @property
    def sizes(self) -> dict[str, int]:
        """Events per workload. `index` stays under ~30k documents: osmem keeps ~8 KB each.

        `drain` is the backlog of the drain section: by default a minute of a 10,000 events/s
        network (600,000 events), so that the pipeline's start-up (about 4 s, 3 of them the
        broker's consumer-group join) weighs in it as it does after a real outage.
        """
        if self.quick:
            sizes = {"persist": 30_000, "index": 6_000, "per_event": 500, "drain": 30_000}
        else:
            sizes = {"persist": 120_000, "index": 20_000, "per_event": 2_000, "drain": 600_000}
        if self.drain_events:
            sizes["drain"] = self.drain_events
        if "drain" in self.skip:
            del sizes["drain"]
        return sizes

    @property
    def fresh_seconds(self) -> float:
        return 8.0 if self.quick else 30.0

    @property
    def soak_per_s(self) -> float:
        return self.soak_rate or SOAK_RATES[self.soak_sinks]


# a soak's default offered load: the persist path sustains well above 2,000 events/s on 2 cores;
# osmem keeps every document in memory, so a soak through it stays modest
SOAK_RATES = {"persist": 2000.0, "both": 200.0}


def _scenarios(opts: Options) -> list[tuple[str, Scenario, str]]:
    """(section, scenario, workload name) in the order they run."""
    per_event = (("max_inflight_batches", 1000),)  # give the baseline room: 64 single events would cap it
    out = [
        ("paths", Scenario("persist", (SinkName.PERSIST,)), "persist"),
        ("paths", Scenario("index", (SinkName.INDEX,)), "index"),
        ("paths", Scenario("both", (SinkName.PERSIST, SinkName.INDEX)), "index"),
        ("bad", Scenario("persist_bad_10", (SinkName.PERSIST,)), "persist_bad"),
        ("baseline", Scenario("persist_per_event", (SinkName.PERSIST,), batch_max_events=1, settings=per_event), "per_event"),
        ("baseline", Scenario("index_per_event", (SinkName.INDEX,), batch_max_events=1, settings=per_event), "per_event"),
        ("batch", Scenario("persist_batch_50", (SinkName.PERSIST,), batch_max_events=50), "persist"),
        ("batch", Scenario("persist_batch_500", (SinkName.PERSIST,), batch_max_events=500), "persist"),
        ("batch", Scenario("persist_batch_5000", (SinkName.PERSIST,), batch_max_events=5000), "persist"),
        ("scaling", Scenario("persist_2_workers", (SinkName.PERSIST,), concurrency=2), "persist"),
        ("scaling", Scenario("index_2_workers", (SinkName.INDEX,), concurrency=2), "index"),
    ]
    return [item for item in out if item[0] not in opts.skip]


def _stages(opts: Options, work: dict[str, Workload], base: Path, say: Callable[[str], None]) -> dict[str, Any]:
    say("stage ceilings (each stage alone)")
    out = {}
    repeats = 1 if opts.quick else 3  # stage figures are the median of this many runs
    with Sandbox(base / "stages", admin_url=opts.admin_url, **BENCH_SETTINGS) as sandbox:
        settings = sandbox.settings
        results = kafka_stages(settings, work["persist"], repeats, say)
        persist_events, validated = wire_events(work["persist"])
        say(f"  bridge validate + normalise: {validated.cpu_us_per_item} CPU-us/event (pydantic models alone: "
            f"{validated.extra['models_cpu_us_per_event']}; {validated.extra['slow_path']} events left to them)")
        results += [validated]
        results += postgres_upsert(settings, persist_events, settings.batch_max_events, postgres_backends(sandbox),
                                   repeats, say)  # fmt: skip
        index_events, _ = wire_events(work["index"])
        results += bulk_index(settings.index_prefix, index_events, settings.batch_max_events, sandbox.logs, repeats, say)
        paced = wire_events(plan_workload("paced", events=int(opts.fresh_rate * (5 if opts.quick else 20)), seed=opts.seed + 5))[0]
        results.append(bulk_latency(settings.index_prefix, paced, docs_per_s=opts.fresh_rate,
                                    every_s=settings.batch_max_ms / 1000, log_dir=sandbox.logs, say=say))  # fmt: skip
        results += celery_round_trip(sandbox, persist_events, empty_tasks=600 if opts.quick else 2000,
                                     batch_tasks=40 if opts.quick else 100, repeats=repeats, say=say)  # fmt: skip
    for result in results:
        out[result.name] = result.to_json()
    return out


def _drain(opts: Options, work: dict[str, Workload], base: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """The drain scenarios, and the ceilings their ratios divide by, measured on the persist
    drain's sandbox once it is drained: a plain Kafka consumer reading the same topics and
    PostgreSQL writing the same events in the bridge's batches. The `stages` section measures
    its ceilings on the smaller `persist` workload (750 stations against 3,750): in lane batches
    of 2,000 events its rows fold several times denser, so it is not the drain's writes."""
    say("backlog drain (the day is in the topics before the clock starts)")
    out: dict[str, Any] = {"runs": {}, "ceilings": {}}
    for scenario in DRAIN_SCENARIOS:
        workload = work["index" if SinkName.INDEX in scenario.sinks else "drain"]  # osmem holds every document
        after = None
        if scenario.name == "drain_persist":
            def after(sandbox: Sandbox, workload: Workload = workload) -> None:
                out["ceilings"] = same_run_ceilings(sandbox, workload, 1 if opts.quick else 3, say)
        result = run_drain(scenario, workload, workdir=base / scenario.name, admin_url=opts.admin_url, after=after, say=say)
        out["runs"][scenario.name] = result.to_json()
    out["workloads"] = {s.name: "index" if SinkName.INDEX in s.sinks else "drain" for s in DRAIN_SCENARIOS}
    return out


def _bad_drain(opts: Options, work: dict[str, Workload], base: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Issue 11's ratio without the producer in the clock: the persist workload, clean and with
    10% malformed records, each as a backlog drain through what `up` runs."""
    say("bad input as backlog drains (the producer before the clock)")
    out: dict[str, Any] = {"runs": {}}
    for name, workload in (("drain_persist_clean", "persist"), ("drain_persist_bad_10", "persist_bad")):
        result = run_drain(DrainScenario(name, (SinkName.PERSIST,)), work[workload], workdir=base / name,
                           admin_url=opts.admin_url, say=say)  # fmt: skip
        out["runs"][name] = result.to_json()
    return out


def _freshness(opts: Options, base: Path, results: dict[str, Any], say: Callable[[str], None]) -> None:
    runs = (("freshness_persist", opts.fresh_persist_rate, (SinkName.PERSIST,)),
            ("freshness", opts.fresh_rate, (SinkName.PERSIST, SinkName.INDEX)))  # fmt: skip
    for i, (key, rate_per_s, sinks) in enumerate(runs):
        say(f"freshness at {rate_per_s:,.0f} events/s for {opts.fresh_seconds:.0f}s ({' + '.join(sinks)})")
        fresh_work = plan_workload(key, events=int(rate_per_s * opts.fresh_seconds) + 100, seed=opts.seed + 7 + i)
        with Sandbox(base / key, admin_url=opts.admin_url, **dict(BENCH_SETTINGS, sinks=list(sinks))) as sandbox:
            start_pipeline(sandbox, Scenario(key, sinks))
            fresh = measure_freshness(sandbox.settings, fresh_work, meter_for(sandbox), rate_per_s=rate_per_s,
                                      seconds=opts.fresh_seconds, search=SinkName.INDEX in sinks)  # fmt: skip
        results[key] = fresh.to_json()
        say(f"  to PostgreSQL: {fresh.postgres_ms}" + (f"; to searchable: {fresh.search_ms} (ms)" if fresh.search_ms else " (ms)"))


def run(opts: Options, say: Callable[[str], None] = print) -> dict[str, Any]:
    started = time.monotonic()
    base = Path(opts.workdir or tempfile.mkdtemp(prefix="evmonitor-bench-"))
    results: dict[str, Any] = {"meta": describe_machine(), "options": {k: str(v) for k, v in opts.__dict__.items()}}
    say(f"machine: {results['meta']['cpu_model']}, {results['meta']['cpus']} CPUs; sandboxes under {base}")
    say("planning workloads ...")
    sizes = opts.sizes
    work = {name: plan_workload(name, events=n, seed=opts.seed + i) for i, (name, n) in enumerate(sizes.items())}
    if "bad" not in opts.skip:  # the persist workload's very events, plus 10% malformed messages
        work["persist_bad"] = plan_workload("persist_bad", events=sizes["persist"], seed=opts.seed, bad_ratio=0.1)
    results["workloads"] = {name: w.describe() for name, w in work.items()}
    if "stages" not in opts.skip:
        results["stages"] = _stages(opts, work, base, say)
    if "drain" not in opts.skip:
        results["drain"] = _drain(opts, work, base, say)
    results["runs"] = {}
    scenarios = _scenarios(opts)
    if scenarios:
        say("end to end (produce -> committed -> reconciled)")
    for i, (_, scenario, workload) in enumerate(scenarios):
        result = run_scenario(scenario, work[workload], workdir=base / f"{i}-{scenario.name}", admin_url=opts.admin_url,
                              idle_s=1.0 if opts.quick else 3.0, say=say)  # fmt: skip
        results["runs"][scenario.name] = result.to_json()
        results.setdefault("memory_series_mb", {})[scenario.name] = {
            name: [(round(t, 1), round(b / 2**20, 1)) for t, b in samples] for name, samples in result.rss_samples.items()
        }
    if "bad" not in opts.skip:
        results["bad_drain"] = _bad_drain(opts, work, base, say)
    if "freshness" not in opts.skip:
        _freshness(opts, base, results, say)
    if opts.soak_minutes > 0 and "soak" not in opts.skip:
        rate_per_s = opts.soak_per_s
        sinks = (SinkName.PERSIST,) if opts.soak_sinks == "persist" else (SinkName.PERSIST, SinkName.INDEX)
        soak_work = plan_at_least("soak", events=int(opts.soak_minutes * 60 * rate_per_s), seed=opts.seed + 11)
        soak = run_soak(soak_work, rate_per_s=rate_per_s, workdir=base / "soak", admin_url=opts.admin_url, sinks=sinks,
                        say=say)  # fmt: skip
        results["soak"] = soak.to_json()
    if opts.profile:
        from bench.profile_run import profile_persist

        results["profile"] = profile_persist(work["persist"], base / "profile", opts.admin_url, say)
    results["meta"]["duration_s"] = round(time.monotonic() - started, 1)
    results["ratios"] = ratios(results)  # issue 15's, from the raw figures above (see bench.drain_targets)
    results["targets"] = targets(results)
    return results


def save(results: dict[str, Any], out_dir: Path, markdown: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["meta"]["date"].replace(":", "").replace("-", "")[:15]
    json_path, md_path = out_dir / f"{stamp}.json", out_dir / f"{stamp}.md"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path
