"""One benchmark run: plan the workloads, then each section on fresh sandboxes, then the report.

Sections, in order (each can be skipped with `--skip`):

* `stages`    raw ceilings, each stage alone (one sandbox): Kafka produce and consume,
              PostgreSQL upsert, bulk indexing, a Celery round trip
* `paths`     end to end, persist path and index path alone, then both sinks together
* `baseline`  one Celery task per event (batch_max_events=1), persist and index paths
* `batch`     the persist path at batch sizes 50 and 5,000 (1 and 500 come from above)
* `scaling`   2 worker processes per queue instead of 1
* `freshness` delay from produce to PostgreSQL and to searchable at a steady load
* `soak`      only with `--soak MINUTES`: memory over a longer run
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
from bench.freshness import measure_freshness
from bench.machine import describe_machine
from bench.pipeline import BENCH_SETTINGS, Scenario, meter_for, postgres_backends, run_scenario, start_pipeline
from bench.search_stage import bulk_index, bulk_latency
from bench.soak import run_soak
from bench.stages import kafka_stages, postgres_upsert, wire_events
from bench.workload import Workload, plan_workload
from evmonitor.names import SinkName
from evmonitor.stack.sandbox import Sandbox

__all__ = ["Options", "SECTIONS", "run"]

SECTIONS = ("stages", "paths", "bad", "baseline", "batch", "scaling", "freshness", "soak")


@dataclass
class Options:
    quick: bool = False
    soak_minutes: float = 0.0
    soak_rate: float = 200.0
    fresh_rate: float = 1000.0
    skip: tuple[str, ...] = ()
    profile: bool = False
    admin_url: str = ""
    seed: int = 1
    workdir: Path | None = None

    @property
    def sizes(self) -> dict[str, int]:
        """Events per workload. `index` stays under ~30k documents: osmem keeps ~8 KB each."""
        if self.quick:
            return {"persist": 30_000, "index": 6_000, "per_event": 500}
        return {"persist": 120_000, "index": 20_000, "per_event": 2_000}

    @property
    def fresh_seconds(self) -> float:
        return 8.0 if self.quick else 30.0


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
    if "freshness" not in opts.skip:
        say(f"freshness at {opts.fresh_rate:,.0f} events/s for {opts.fresh_seconds:.0f}s (both sinks)")
        fresh_work = plan_workload("freshness", events=int(opts.fresh_rate * opts.fresh_seconds) + 100, seed=opts.seed + 7)
        with Sandbox(base / "freshness", admin_url=opts.admin_url, **BENCH_SETTINGS) as sandbox:
            start_pipeline(sandbox, Scenario("freshness", (SinkName.PERSIST, SinkName.INDEX)))
            fresh = measure_freshness(sandbox.settings, fresh_work, meter_for(sandbox), rate_per_s=opts.fresh_rate,
                                      seconds=opts.fresh_seconds)  # fmt: skip
        results["freshness"] = fresh.to_json()
        say(f"  to PostgreSQL: {fresh.postgres_ms}; to searchable: {fresh.search_ms} (ms)")
    if opts.soak_minutes > 0 and "soak" not in opts.skip:
        soak_work = plan_workload("soak", events=int(opts.soak_minutes * 60 * opts.soak_rate), seed=opts.seed + 11)
        soak = run_soak(soak_work, rate_per_s=opts.soak_rate, workdir=base / "soak", admin_url=opts.admin_url, say=say)
        results["soak"] = soak.to_json()
    if opts.profile:
        from bench.profile_run import profile_persist

        results["profile"] = profile_persist(work["persist"], base / "profile", opts.admin_url, say)
    results["meta"]["duration_s"] = round(time.monotonic() - started, 1)
    return results


def save(results: dict[str, Any], out_dir: Path, markdown: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["meta"]["date"].replace(":", "").replace("-", "")[:15]
    json_path, md_path = out_dir / f"{stamp}.json", out_dir / f"{stamp}.md"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path
