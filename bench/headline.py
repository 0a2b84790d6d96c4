"""From raw results to the figures that matter: ratios, per-event costs, targets and their verdicts.

Pure functions over the results dictionary the runner writes as JSON, so the same rules give the
same summary from a saved file (`python -m bench --report FILE`) and are unit-tested.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench.stats import ratio, slowest

__all__ = ["OURS", "Target", "cpu_cap_per_s", "headline", "ours_us_per_event", "targets"]

OURS = ("bridge", "worker-persist", "worker-index")
PATH_STAGES = {
    "persist": ("kafka_consume", "celery_batch_task", "postgres_upsert"),
    "index": ("kafka_consume", "celery_batch_task", "bulk_index"),
}


def _rate(results: dict[str, Any], run: str) -> float | None:
    found = results.get("runs", {}).get(run)
    return found["events_per_s"] if found and found.get("exact") else None


def bad_drain_ratio(results: dict[str, Any]) -> float | None:
    """10% bad input over clean, records/s, as backlog drains counted from the first fetch (the
    `bad` section's `bad_drain` pair): the pipeline's rates, without the producer's (which the
    end-to-end pair shares the cores with, and which spends its time on the bad mix's 250 KB
    `too_large` records) and without the start-up both drains spend alike."""
    runs = (results.get("bad_drain") or {}).get("runs") or {}
    clean, bad = runs.get("drain_persist_clean"), runs.get("drain_persist_bad_10")
    if not clean or not bad or not clean.get("exact") or not bad.get("exact"):
        return None
    return ratio(bad.get("events_per_s_after_first_fetch"), clean.get("events_per_s_after_first_fetch"))


def ours_us_per_event(run: dict[str, Any], *, net: bool = False) -> float:
    """CPU-µs per event of the bridge and the workers together (= CPU-ms per 1,000 events);
    with `net`, less what they cost idle over the same time (see bench.pipeline.run_scenario)."""
    figures = run.get("net_us_per_event" if net else "cpu_us_per_event", {})
    return round(sum(v for k, v in figures.items() if k in OURS), 1)


def cpu_cap_per_s(run: dict[str, Any], cores: int) -> float | None:
    """The rate at which every process measured in a run, together, would use all `cores`."""
    total = sum(run.get("cpu_us_per_event", {}).values())
    return round(cores * 1e6 / total) if total else None


def _fraction(results: dict[str, Any], path: str) -> dict[str, Any]:
    stages = results.get("stages", {})
    measured = {name: stages[name]["per_s"] for name in PATH_STAGES[path] if name in stages}
    worst = slowest(measured)
    e2e = _rate(results, path)
    return {
        "end_to_end_per_s": e2e,
        "slowest_stage": worst[0] if worst else None,
        "slowest_stage_per_s": worst[1] if worst else None,
        "fraction": ratio(e2e, worst[1] if worst else None),
    }


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios first (end to end / slowest stage, batched / per event, 2 workers / 1), then costs."""
    runs = results.get("runs", {})
    out: dict[str, Any] = {
        "persist_vs_slowest_stage": _fraction(results, "persist"),
        "index_vs_slowest_stage": _fraction(results, "index"),
        "batched_over_per_event": {
            path: ratio(_rate(results, path), _rate(results, f"{path}_per_event")) for path in ("persist", "index")
        },
        "two_workers_over_one": {
            path: ratio(_rate(results, f"{path}_2_workers"), _rate(results, path)) for path in ("persist", "index")
        },
        "bad_input_over_clean": bad_drain_ratio(results),
        "bad_input_over_clean_end_to_end": ratio(_rate(results, "persist_bad_10"), _rate(results, "persist")),
        "batch_size_curve": {
            str(run["batch_max_events"]): run["events_per_s"]
            for name, run in sorted(runs.items(), key=lambda kv: kv[1]["batch_max_events"])
            if run["sinks"] == ["persist"] and run["concurrency"] == 1 and run.get("exact")
        },
        "ours_us_per_event": {name: ours_us_per_event(run) for name, run in runs.items()},
        "ours_net_us_per_event": {name: ours_us_per_event(run, net=True) for name, run in runs.items()},
    }
    cores = results.get("meta", {}).get("cpus") or 2
    out["cpu_cap_per_s"] = {name: cpu_cap_per_s(run, cores) for name, run in runs.items()}
    return out


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _cpu_story(run: dict[str, Any], cores: int) -> str:
    """Where the CPU went during a run, biggest first, and the rate that budget allows."""
    per_event = sorted(run.get("cpu_us_per_event", {}).items(), key=lambda kv: -kv[1])
    parts = ", ".join(f"{name} {us:.0f}" for name, us in per_event if us >= 0.5)
    cap = cpu_cap_per_s(run, cores)
    return (f"machine {run.get('machine_busy_fraction', 0):.0%} busy ({run.get('background_fraction', 0):.0%} of it "
            f"not ours); CPU-µs per event: {parts}; on {cores} cores that sum caps the rate at {cap:,} events/s")  # fmt: skip


def targets(results: dict[str, Any]) -> list[Target]:
    """The issue's targets, each with the figure measured and, when missed, what holds it back."""
    head = headline(results)
    runs = results.get("runs", {})
    stages = results.get("stages", {})
    cores = results.get("meta", {}).get("cpus") or 2
    out = []

    persist = _rate(results, "persist")
    frac = head["persist_vs_slowest_stage"]
    why = ""
    if persist is not None and persist < 20_000:
        why = (f"slowest stage alone: {frac['slowest_stage']} at {frac['slowest_stage_per_s'] or 0:,.0f}/s; "
               + _cpu_story(runs["persist"], cores))  # fmt: skip
    out.append(Target("persist path end to end", ">= 20,000 events/s",
                      f"{persist:,.0f} events/s" if persist else "not measured",
                      None if persist is None else persist >= 20_000, why))  # fmt: skip

    index, bulk = _rate(results, "index"), stages.get("bulk_index", {}).get("per_s")
    share = ratio(index, bulk)
    why = ""
    if share is not None and share < 0.8:
        why = _cpu_story(runs["index"], cores)
    out.append(Target("index path vs the search server's bulk ceiling", ">= 80%",
                      f"{share:.0%} ({index:,.0f} of {bulk:,.0f} docs/s)" if share is not None else "not measured",
                      None if share is None else share >= 0.8, why))  # fmt: skip

    both = runs.get("both")
    ours = ours_us_per_event(both, net=True) if both else None
    why = ""
    if ours is not None and ours > 60:
        mine = {k: v for k, v in both["net_us_per_event"].items() if k in OURS}
        why = "net CPU-µs per event: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(mine.items(), key=lambda kv: -kv[1]))
    out.append(Target("our processes together (both sinks)", "<= 60 CPU-µs per event",
                      f"{ours:.0f} net, {ours_us_per_event(both):.0f} gross" if ours is not None else "not measured",
                      None if ours is None else ours <= 60, why))  # fmt: skip

    bad, end_to_end = head["bad_input_over_clean"], head["bad_input_over_clean_end_to_end"]
    why = ""
    if bad is not None and bad < 0.9:
        why = "; ".join(_cpu_story(runs[name], cores) for name in ("persist_bad_10",) if name in runs)
    seen = f"{bad:.0%} (backlog drains, from the first fetch)" if bad is not None else "not measured"
    if end_to_end is not None:
        seen += f"; end to end while producing {end_to_end:.0%}"
    out.append(Target("persist path with 10% bad input vs clean (records/s)", ">= 90%", seen,
                      None if bad is None else bad >= 0.9, why))  # fmt: skip

    gain = head["batched_over_per_event"]["persist"]
    why = ""
    if gain is not None and gain < 20:
        why = "; ".join(_cpu_story(runs[name], cores) for name in ("persist_per_event",) if name in runs)
    out.append(Target("batched vs one task per event (persist path)", ">= 20x",
                      f"{gain:.1f}x" if gain is not None else "not measured",
                      None if gain is None else gain >= 20, why))  # fmt: skip

    fresh = results.get("freshness") or {}
    search = fresh.get("search_ms") or {}
    p99 = search.get("p99")
    why = ""
    if p99 is not None and p99 >= 2000:
        why = (f"median delay grew from {search.get('first_third_p50') or 0:,.0f} ms to "
               f"{search.get('last_third_p50') or 0:,.0f} ms: the index path fell behind the offered load"
               if (search.get("last_third_p50") or 0) > 2 * (search.get("first_third_p50") or 0) + 500
               else "the delay is high from the start")  # fmt: skip
        why += f"; machine {fresh.get('machine_busy_fraction', 0):.0%} busy, {fresh.get('background_fraction', 0):.0%} not ours"
        paced = stages.get("bulk_latency", {}).get("extra")
        if paced:
            why += (f"; the search server alone at that pace answers bulk requests in p50 {paced['request_ms_p50']} ms, "
                    f"p99 {paced['request_ms_p99']} ms, max {paced['request_ms_max']} ms "
                    f"({paced['stalls_over_500ms']} requests over 500 ms)")  # fmt: skip
    out.append(Target(f"p99 produce -> searchable at {fresh.get('offered_per_s', 1000):,.0f} events/s", "< 2 s",
                      f"{p99 / 1000:.2f} s" if p99 is not None else "not measured",
                      None if p99 is None else p99 < 2000, why))  # fmt: skip

    soak = results.get("soak") or {}
    flat = [soak.get("memory", {}).get(name, {}).get("flat") for name in OURS]
    met = None if not soak or None in flat else all(flat)
    grown = ", ".join(f"{n} {soak['memory'][n]['growth_mb']:+.0f} MB" for n in OURS if soak and "growth_mb" in soak["memory"].get(n, {}))
    out.append(Target("bridge and worker memory over the soak", "flat",
                      f"{soak.get('minutes')} min: {grown}" if soak else "not run (--soak MINUTES)", met,
                      "" if met in (True, None) else "memory grew past the tolerance; see the series in the JSON"))  # fmt: skip
    return out
