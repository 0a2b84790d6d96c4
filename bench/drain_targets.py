"""Issue 15's figures from the raw results: the backlog drain's ratios and the five targets.

Pure functions over the results dictionary (`bench.runner.run` stores their answers in the JSON
as `ratios` and `targets`; `python -m bench --report FILE` computes them again from the raw
figures). Every ratio's denominator comes from the same run: PostgreSQL's ceiling and the plain
Kafka consumer's from the `stages` section, or, when it was skipped, from the same-run ceilings
the drain section measured itself (`drain.ceilings`).

A missed target names what holds it back as `held_back_by`: the processes (stages of the path)
with their CPU-µs per event, largest first, from the run's CPU breakdown.
"""

from __future__ import annotations

from typing import Any

from bench.stats import ratio

__all__ = ["GOALS", "ceiling", "drain_rate", "ours_us_per_event", "ratios", "steady_us_per_event", "targets"]

GOALS = {
    "drain_events_per_s": 20_000,
    "share_of_postgres_ceiling": 0.8,
    "ours_cpu_us_per_event": 60.0,
    "fresh_rate_per_s": 5_000,
    "fresh_p99_ms": 1_000.0,
    "soak_minutes": 10.0,
}
_HARNESS = ("harness", "simulator")  # the bench's own process: polling, not the pipeline


def _runs(results: dict[str, Any]) -> dict[str, Any]:
    return (results.get("drain") or {}).get("runs", {})


def drain_rate(results: dict[str, Any], name: str, *, after_startup: bool = False) -> float | None:
    """A drain scenario's events/s, if it ran and reconciled exactly (an inexact run has no rate);
    with `after_startup`, counted from the first bridge's first fetch."""
    run = _runs(results).get(name)
    if not run or not run.get("exact"):
        return None
    return run.get("events_per_s_after_first_fetch") if after_startup else run["events_per_s"]


def ceiling(results: dict[str, Any], stage: str) -> tuple[float | None, str]:
    """A stage ceiling of this run: (items per second, where it was measured). The drain
    section's own (the drain's workload and batches) first, else the `stages` section's."""
    for source, found in (("drain", (results.get("drain") or {}).get("ceilings")), ("stages", results.get("stages"))):
        if found and stage in found:
            return found[stage]["per_s"], source
    return None, "-"


def steady_us_per_event(run: dict[str, Any]) -> dict[str, float]:
    """CPU-µs per event of each process, each bridge without its one-off start-up (imports, group
    join: what it had spent when it first got partitions). The workers start before the clock,
    so this puts the bridges on the same footing."""
    out = dict(run.get("cpu_us_per_event", {}))
    events = run.get("events") or 0
    for name, startup_s in (run.get("bridge_startup_cpu_s") or {}).items():
        if events and name in out:
            out[name] = round(max(0.0, out[name] - startup_s / events * 1e6), 1)
    return out


def _is_ours(name: str, sinks: tuple[str, ...] = ("persist",)) -> bool:
    return name.startswith("bridge") or any(name.startswith(f"worker-{sink}") for sink in sinks)


def ours_us_per_event(run: dict[str, Any], *, steady: bool = True) -> float:
    """Bridge(s) + persist worker(s), CPU-µs per event."""
    figures = steady_us_per_event(run) if steady else run.get("cpu_us_per_event", {})
    return round(sum(v for k, v in figures.items() if _is_ours(k)), 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _ratio(numerator: float | None, denominator: float | None, unit: str, denominator_unit: str = "",
           after_startup: float | None = None, **detail: Any) -> dict[str, Any]:  # fmt: skip
    return {"value": _round(ratio(numerator, denominator)), "numerator": numerator, "denominator": denominator,
            "unit": unit, "denominator_unit": denominator_unit or unit, "after_startup": _round(after_startup),
            **detail}  # fmt: skip


def ratios(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Ratios first: the drain against the same run's ceilings, the scaling factors, our CPU
    against its budget. Each has `value` (None when a figure is missing), what it divides, and
    `after_startup`: the same with the drains counted from their first fetch (the ceilings have
    no start-up; a short drain is mostly the bridge's start-up and group join)."""
    persist = drain_rate(results, "drain_persist")
    steady = drain_rate(results, "drain_persist", after_startup=True)
    pg, pg_from = ceiling(results, "postgres_upsert")
    kafka, kafka_from = ceiling(results, "kafka_consume")
    pg2, pg2_from = ceiling(results, "postgres_upsert_2_connections")
    run = _runs(results).get("drain_persist")
    ours = ours_us_per_event(run) if run and run.get("exact") else None

    def scaling(name: str) -> dict[str, Any]:
        return _ratio(drain_rate(results, name), persist, "events/s",
                      after_startup=ratio(drain_rate(results, name, after_startup=True), steady))  # fmt: skip

    return {
        "drain_persist_over_postgres_ceiling": _ratio(persist, pg, "events/s", after_startup=ratio(steady, pg),
                                                      ceiling_from=pg_from),  # fmt: skip
        "drain_persist_over_kafka_consume": _ratio(persist, kafka, "events/s", "msg/s", after_startup=ratio(steady, kafka),
                                                   ceiling_from=kafka_from),  # fmt: skip
        "drain_persist_over_postgres_2_connections": _ratio(persist, pg2, "events/s", after_startup=ratio(steady, pg2),
                                                            ceiling_from=pg2_from,
                                                            what="PostgreSQL alone on 2 connections at once: "
                                                                 "context, not the target's ceiling"),  # fmt: skip
        "drain_2_workers_over_1": _ratio(persist, drain_rate(results, "drain_persist_1_worker"), "events/s",
                                         after_startup=ratio(steady, drain_rate(results, "drain_persist_1_worker",
                                                                                after_startup=True))),  # fmt: skip
        "drain_2_bridges_over_1": scaling("drain_persist_2_bridges"),
        "drain_both_sinks_over_persist": scaling("drain_both"),
        "ours_cpu_us_per_event_over_target": _ratio(ours, GOALS["ours_cpu_us_per_event"], "CPU-µs/event",
                                                    what="bridge + persist worker, drain_persist, without the "
                                                         "bridge's start-up",
                                                    with_startup=ours_us_per_event(run, steady=False) if ours else None),  # fmt: skip
    }


def _held_back(figures: dict[str, float], keep: Any = None) -> list[dict[str, Any]]:
    """Processes by CPU-µs per event, largest first (ignoring the bench harness and idle ones)."""
    rows = [(k, v) for k, v in figures.items() if k not in _HARNESS and v >= 0.5 and (keep is None or keep(k))]
    return [{"stage": k, "us_per_event": v} for k, v in sorted(rows, key=lambda kv: -kv[1])]


def _startup(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The drain's start-up (bridge imports, group join) as wall-clock µs per event: no CPU
    figure says it, yet a short drain spends much of its time there."""
    first_fetch, events = (run.get("startup_s") or {}).get("first_fetch"), run.get("events") or 0
    if first_fetch is None or not events:
        return []
    return [{"stage": "start-up until the first fetch (wall clock)", "wall_us_per_event": round(first_fetch / events * 1e6, 1),
             "seconds": first_fetch, "share": round(first_fetch / run["seconds"], 3) if run.get("seconds") else None}]  # fmt: skip


def _target(name: str, goal: str, measured: str, value: float | None, met: bool | None, held: list[dict[str, Any]],
            why: str = "") -> dict[str, Any]:  # fmt: skip
    if met is not False:
        held, why = [], ""
    return {"name": name, "goal": goal, "measured": measured, "value": value, "met": met, "held_back_by": held,
            "why": why}  # fmt: skip


def _cpu_why(figures: dict[str, float], cores: int) -> str:
    total = sum(v for k, v in figures.items() if k not in _HARNESS)
    cap = round(cores * 1e6 / total) if total else None
    return (f"all processes together {total:.0f} CPU-µs per event; on {cores} cores that caps the drain at "
            f"{cap or 0:,} events/s (20,000/s needs <= {cores * 1e6 / GOALS['drain_events_per_s']:.0f})")


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 15's five targets: goal, measured, met (None: not measured here) and, when missed,
    the stages and CPU-µs per event that hold it back."""
    cores = results.get("meta", {}).get("cpus") or 2
    run = _runs(results).get("drain_persist") or {}
    steady = steady_us_per_event(run) if run else {}
    persist = drain_rate(results, "drain_persist")
    out = []

    goal = GOALS["drain_events_per_s"]
    pg, _ = ceiling(results, "postgres_upsert")
    why = _cpu_why(steady, cores) + (f"; PostgreSQL's own ceiling for these writes: {pg:,.0f} events/s" if pg else "")
    out.append(_target("backlog drain, persist sink", f">= {goal:,} events/s",
                       f"{persist:,.0f} events/s" if persist else "not measured", persist,
                       None if persist is None else persist >= goal, _startup(run) + _held_back(steady), why))  # fmt: skip

    share = ratios(results)["drain_persist_over_postgres_ceiling"]
    value = share["value"]
    out.append(_target("backlog drain vs PostgreSQL's ceiling for the same writes",
                       f">= {GOALS['share_of_postgres_ceiling']:.0%}",
                       f"{value:.0%} ({persist:,.0f} of {pg:,.0f} events/s)" if value is not None else "not measured",
                       value, None if value is None else value >= GOALS["share_of_postgres_ceiling"],
                       _startup(run) + _held_back(steady, keep=lambda k: k != "postgres"),
                       "the other processes' CPU on the cores PostgreSQL shares, per event"))  # fmt: skip

    ours = ours_us_per_event(run) if persist is not None else None
    gross = ours_us_per_event(run, steady=False) if persist is not None else None
    stages = results.get("stages", {})
    inside = [f"{name} {stages[name]['cpu_us_per_item']}" for name in ("bridge_validate", "persist_prepare")
              if stages.get(name, {}).get("cpu_us_per_item") is not None]  # fmt: skip
    out.append(_target("our processes (bridge + persist worker)", f"<= {GOALS['ours_cpu_us_per_event']:.0f} CPU-µs/event",
                       f"{ours:.0f} CPU-µs/event ({gross:.0f} with the bridge's start-up)" if ours is not None
                       else "not measured", ours, None if ours is None else ours <= GOALS["ours_cpu_us_per_event"],
                       _held_back(steady, keep=_is_ours),
                       ("in-process, CPU-µs/event: " + ", ".join(inside)) if inside else ""))  # fmt: skip

    fresh = results.get("freshness_persist") or {}
    p99 = (fresh.get("postgres_ms") or {}).get("p99")
    rate_ok = fresh.get("offered_per_s", 0) >= GOALS["fresh_rate_per_s"]
    pg_ms = fresh.get("postgres_ms") or {}
    why = (f"median delay {pg_ms.get('first_third_p50') or 0:,.0f} ms in the first third, "
           f"{pg_ms.get('last_third_p50') or 0:,.0f} ms in the last; sent {fresh.get('achieved_per_s', 0):,.0f}/s; "
           f"machine {fresh.get('machine_busy_fraction', 0):.0%} busy, {fresh.get('background_fraction', 0):.0%} not ours")  # fmt: skip
    met = None if p99 is None else (p99 < GOALS["fresh_p99_ms"] and rate_ok)
    out.append(_target(f"p99 produce -> PostgreSQL at {GOALS['fresh_rate_per_s']:,} events/s offered, persist sink",
                       f"< {GOALS['fresh_p99_ms'] / 1000:.0f} s",
                       f"p99 {p99 / 1000:.2f} s, p50 {(pg_ms.get('p50') or 0) / 1000:.2f} s at "
                       f"{fresh.get('offered_per_s', 0):,.0f}/s offered" if p99 is not None else "not measured",
                       p99, met, _held_back(fresh.get("cpu_us_per_event") or {}), why))  # fmt: skip

    soak = results.get("soak") or {}
    mine = {n: m for n, m in soak.get("memory", {}).items() if _is_ours(n, ("persist", "index"))}
    flats = [m.get("flat") for m in mine.values()]
    long_enough = (soak.get("minutes") or 0) >= GOALS["soak_minutes"] * 0.95
    met = None if not mine or None in flats else (all(flats) and long_enough)
    grown = ", ".join(f"{n} {m['growth_mb']:+.1f} MB" for n, m in mine.items() if "growth_mb" in m)
    held = [{"stage": n, "growth_mb": m.get("growth_mb")} for n, m in mine.items() if m.get("flat") is False]
    why = "" if long_enough else f"the soak ran {soak.get('minutes')} min, the target asks for {GOALS['soak_minutes']:.0f}"
    out.append(_target("memory flat over a 10-minute soak", "flat (growth within max(5%, 8 MB))",
                       f"{soak.get('minutes')} min at {soak.get('rate_per_s', 0):,.0f}/s ({'+'.join(soak.get('sinks', []))}): "
                       f"{grown}" if soak else "not run (--soak 10)", None, met, held, why))  # fmt: skip
    return out
