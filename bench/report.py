"""The results as people read them: a table on the terminal and a markdown summary.

Issue 15's first (the backlog drain's ratios, its five targets with what holds back those
missed, the drain runs), then the paths' ratios and targets, then the absolute figures.
"""

from __future__ import annotations

from typing import Any

from bench import drain_targets
from bench.headline import OURS, headline, ours_us_per_event, targets

__all__ = ["markdown", "text_tables"]

_STORES = ("postgres", "kafka", "redis", "elasticsearch", "simulator")


def _fmt(value: Any, spec: str = ",.0f", suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{suffix}"


_DRAIN_RATIOS = (
    ("drain_persist_over_postgres_ceiling", "drain, persist / PostgreSQL's ceiling for the same writes", ".0%"),
    ("drain_persist_over_postgres_2_connections", "drain, persist / PostgreSQL alone on 2 connections (context)", ".0%"),
    ("drain_persist_over_kafka_consume", "drain, persist / a plain Kafka consumer", ".0%"),
    ("drain_2_workers_over_1", "drain, 2 persist worker processes (what `up` runs) / 1", ".2f"),
    ("drain_2_bridges_over_1", "drain, 2 bridges / 1 (6 partitions per topic)", ".2f"),
    ("drain_both_sinks_over_persist", "drain, both sinks / persist sink", ".2f"),
    ("ours_cpu_us_per_event_over_target", "our CPU-µs per event (bridge + persist worker) / 60", ".2f"),
)


def _drain_ratio_rows(results: dict[str, Any]) -> list[list[str]]:
    found = drain_targets.ratios(results)
    rows = []
    for key, label, spec in _DRAIN_RATIOS:
        r = found[key]
        source = f" ({r['ceiling_from']})" if "ceiling_from" in r else ""
        rows.append([label, _fmt(r["value"], spec), _fmt(r.get("after_startup"), spec), f"{_fmt(r['numerator'], ',.1f' if key.startswith('ours') else ',.0f')} "
                     f"{r['unit']} vs {_fmt(r['denominator'], ',.0f')} {r['denominator_unit']}{source}"])  # fmt: skip
    return rows


def _held(h: dict[str, Any]) -> str:
    if "us_per_event" in h:
        return f"{h['stage']} {h['us_per_event']:.0f} µs"
    if "wall_us_per_event" in h:
        return f"{h['stage']} {h['seconds']:.1f} s = {h['wall_us_per_event']:.0f} µs/event ({_fmt(h.get('share'), '.0%')} of the drain)"
    return f"{h['stage']} {h.get('growth_mb')} MB"


def _drain_target_rows(results: dict[str, Any]) -> list[list[str]]:
    verdict = {True: "met", False: "MISSED", None: "-"}
    rows = []
    for t in drain_targets.targets(results):
        held = ", ".join(_held(h) for h in t["held_back_by"])
        rows.append([t["name"], t["goal"], t["measured"], verdict[t["met"]], "; ".join(x for x in (held, t["why"]) if x)])
    return rows


def _drain_run_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, r in ((results.get("drain") or {}).get("runs") or {}).items():
        cpu = drain_targets.steady_us_per_event(r)
        start = r.get("startup_s") or {}
        rows.append([
            name, "+".join(r["sinks"]), str(r["workers"]), str(r["bridges"]), str(r["partitions"]), f"{r['events']:,}",
            f"{r['seconds']:.1f}", f"{r['events_per_s']:,.0f}", _fmt(r.get("events_per_s_after_first_fetch")),
            f"{_fmt(start.get('first_fetch'), '.1f')} / {_fmt(start.get('first_commit'), '.1f')} "
            f"({_fmt(r.get('startup_share'), '.0%')})", _fmt(sum((r.get("bridge_startup_cpu_s") or {}).values()), ".2f"),
            "yes" if r["exact"] else "NO " + r.get("detail", ""),
            _fmt(sum(v for k, v in cpu.items() if k.startswith("bridge")), ".0f"),
            _fmt(sum(v for k, v in cpu.items() if k.startswith("worker-persist")), ".0f"),
            _fmt(sum(v for k, v in cpu.items() if k.startswith("worker-index")) or None, ".0f"),
            _fmt(drain_targets.ours_us_per_event(r), ".0f"),
            *(_fmt(cpu.get(k), ".0f") for k in ("postgres", "kafka", "redis", "elasticsearch")),
            f"{r.get('machine_busy_fraction', 0):.0%}", f"{r.get('background_fraction', 0):.0%}",
            _fmt((r.get("postgres_waits") or {}).get("active_backends_mean"), ".2f"),
            _fmt((r.get("postgres_waits") or {}).get("lock_share"), ".0%"),
        ])  # fmt: skip
    return rows


_DRAIN_HEADERS = ["scenario", "sinks", "workers", "bridges", "partitions", "events", "s", "events/s", "after 1st fetch",
                  "first fetch / commit s (share)", "bridge start-up CPU s", "exact", "bridges", "w-persist",
                  "w-index", "bridge+persist", "postgres", "kafka", "redis", "search", "busy", "bg", "pg active",
                  "pg lock-wait"]  # fmt: skip


def _ratio_rows(results: dict[str, Any]) -> list[list[str]]:
    head = headline(results)
    rows = []
    for path in ("persist", "index"):
        f = head[f"{path}_vs_slowest_stage"]
        rows.append([f"{path} path end to end / its slowest stage", _fmt(f["fraction"], ".0%"),
                     f"{_fmt(f['end_to_end_per_s'])} events/s vs {f['slowest_stage'] or '-'} "
                     f"{_fmt(f['slowest_stage_per_s'])}/s"])  # fmt: skip
    runs = results.get("runs", {})
    for path in ("persist", "index"):
        rows.append([f"batched (500) / one task per event, {path}", _fmt(head["batched_over_per_event"][path], ".1f", "x"),
                     f"{_fmt(runs.get(path, {}).get('events_per_s'))} vs "
                     f"{_fmt(runs.get(path + '_per_event', {}).get('events_per_s'))} events/s"])  # fmt: skip
    drains = (results.get("bad_drain") or {}).get("runs") or {}
    rows.append(["10% bad input / clean, persist path, backlog drains from the first fetch",
                 _fmt(head["bad_input_over_clean"], ".0%"),
                 f"{_fmt(drains.get('drain_persist_bad_10', {}).get('events_per_s_after_first_fetch'))} vs "
                 f"{_fmt(drains.get('drain_persist_clean', {}).get('events_per_s_after_first_fetch'))} records/s"])  # fmt: skip
    rows.append(["10% bad input / clean, persist path, end to end while producing",
                 _fmt(head["bad_input_over_clean_end_to_end"], ".0%"),
                 f"{_fmt(runs.get('persist_bad_10', {}).get('events_per_s'))} vs "
                 f"{_fmt(runs.get('persist', {}).get('events_per_s'))} records/s"])  # fmt: skip
    for path in ("persist", "index"):
        rows.append([f"2 worker processes / 1, {path}", _fmt(head["two_workers_over_one"][path], ".2f", "x"),
                     f"{_fmt(runs.get(path + '_2_workers', {}).get('events_per_s'))} vs "
                     f"{_fmt(runs.get(path, {}).get('events_per_s'))} events/s"])  # fmt: skip
    return rows


def _target_rows(results: dict[str, Any]) -> list[list[str]]:
    verdict = {True: "met", False: "MISSED", None: "-"}
    return [[t.name, t.goal, t.measured, verdict[t.met], t.why] for t in targets(results)]


def _stage_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, s in results.get("stages", {}).items():
        notes = ", ".join(f"{k} {v}" for k, v in s.get("extra", {}).items())
        rows.append([name, f"{s['per_s']:,.0f} {s['unit']}/s", _fmt(s.get("cpu_us_per_item"), ".1f"), notes])
    return rows


def _run_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, r in results.get("runs", {}).items():
        cpu = r.get("cpu_us_per_event", {})
        rss = r.get("peak_rss_mb", {})
        rows.append([
            name, "+".join(r["sinks"]), str(r["batch_max_events"]), str(r["concurrency"]), f"{r['events']:,}",
            f"{r['seconds']:.1f}", f"{r['events_per_s']:,.0f}", "yes" if r["exact"] else "NO " + r.get("detail", ""),
            *(_fmt(cpu.get(k), ".0f") for k in OURS), _fmt(ours_us_per_event(r), ".0f"),
            _fmt(ours_us_per_event(r, net=True), ".0f"),
            *(_fmt(cpu.get(k), ".0f") for k in _STORES),
            f"{r.get('machine_busy_fraction', 0):.0%}", f"{r.get('background_fraction', 0):.0%}",
            " / ".join(_fmt(rss.get(k), ".0f") for k in OURS),
        ])  # fmt: skip
    return rows


_RUN_HEADERS = ["scenario", "sinks", "batch", "workers", "events", "s", "events/s", "exact", "bridge", "w-persist",
                "w-index", "ours", "ours net", "postgres", "kafka", "redis", "search", "sim", "busy", "bg",
                "peak RSS MB b/p/i"]  # fmt: skip


def _freshness_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, sinks in (("freshness_persist", "persist"), ("freshness", "both sinks")):
        f = results.get(key)
        if f:
            rows += _one_freshness(f, f"at {f['offered_per_s']:,.0f}/s, {sinks}")
    return rows


def _one_freshness(f: dict[str, Any], where: str) -> list[list[str]]:
    rows = []
    for name, label in (("postgres", "produce -> row in PostgreSQL"), ("search", "produce -> searchable")):
        ms = f.get(f"{name}_ms")
        if not ms:
            continue
        rows.append([f"{label}, {where}", _fmt(ms.get("p50"), ".0f"), _fmt(ms.get("p90"), ".0f"), _fmt(ms.get("p99"), ".0f"),
                     _fmt(ms.get("max"), ".0f"), f"{_fmt(ms.get('first_third_p50'), '.0f')} -> "
                     f"{_fmt(ms.get('last_third_p50'), '.0f')}", str(f["samples"][name]), str(f["unseen"][name])])  # fmt: skip
    return rows


def _soak_rows(results: dict[str, Any]) -> list[list[str]]:
    soak = results.get("soak")
    if not soak:
        return []
    return [[name, _fmt(m.get("peak_mb"), ".0f"), _fmt(m.get("early_mb"), ".0f"), _fmt(m.get("late_mb"), ".0f"),
             _fmt(m.get("growth_mb"), "+.1f"), {True: "yes", False: "NO", None: "-"}[m.get("flat")]]
            for name, m in soak["memory"].items()]  # fmt: skip


def _md(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _text(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    widths = [min(w, 60) for w in widths]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    out += ["  ".join(c[:60].ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


def _sections(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    return [
        ("Issue 15: backlog drain, ratios (same run)", ["ratio", "value", "from the first fetch", "from"],
         _drain_ratio_rows(results) if results.get("drain") else []),
        ("Issue 15: targets", ["target", "goal", "measured", "", "what holds it back (CPU-µs per event)"],
         _drain_target_rows(results)),
        ("Backlog drain (the day in the topics before the clock; CPU-µs per event, the bridge without its start-up)",
         _DRAIN_HEADERS, _drain_run_rows(results)),
        ("Ratios, end to end while producing (paths)", ["ratio", "value", "from"],
         _ratio_rows(results) if results.get("runs") else []),
        ("Targets, earlier issues", ["target", "goal", "measured", "", "what holds it back"],
         _target_rows(results) if results.get("runs") else []),
        ("Stage ceilings, each alone", ["stage", "rate", "our CPU-µs/item", "notes"], _stage_rows(results)),
        ("End to end (CPU columns: CPU-µs per event = CPU-ms per 1,000 events)", _RUN_HEADERS, _run_rows(results)),
        ("Freshness (ms)", ["delay", "p50", "p90", "p99", "max", "p50 first -> last third", "samples", "unseen"],
         _freshness_rows(results)),
        ("Soak: resident memory (MB)", ["process", "peak", "2nd quarter", "last quarter", "growth", "flat"],
         _soak_rows(results)),
    ]  # fmt: skip


def text_tables(results: dict[str, Any]) -> str:
    parts = []
    for title, headers, rows in _sections(results):
        if rows:
            parts.append(f"== {title}\n{_text(headers, rows)}")
    return "\n\n".join(parts) + "\n"


def markdown(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    packages = ", ".join(f"{k} {v}" for k, v in meta.get("packages", {}).items())
    lines = [
        f"# evmonitor benchmark, {meta.get('date', '?')}",
        "",
        f"- machine: {meta.get('cpu_model')}, {meta.get('cpus')} CPUs, {meta.get('memory_gb')} GB RAM, "
        f"Linux {meta.get('kernel')}, Python {meta.get('python')}, {meta.get('postgres')}",
        f"- code: {meta.get('git_commit')}{' (with uncommitted changes)' if meta.get('git_dirty') else ''}; "
        f"command: `{meta.get('command')}`; took {meta.get('duration_s', 0) / 60:.1f} min",
        f"- packages: {packages}",
        f"- background CPU before the run (other people's processes): {meta.get('background_cpu_before', 0):.0%} "
        "of the machine; the `bg` column gives it per scenario",
        "- workloads: " + "; ".join(f"{n}: {w['events']:,} events ({w['stations']} stations, {w['sessions']} sessions)"
                                     for n, w in results.get("workloads", {}).items()),
    ]  # fmt: skip
    for title, headers, rows in _sections(results):
        if rows:
            lines += ["", f"## {title}", "", _md(headers, rows)]
    drain = results.get("drain")
    if drain:
        _, source = drain_targets.ceiling(results, "postgres_upsert")
        lines += ["", "Backlog drain: workers started and ready, the whole workload produced into fresh topics, then "
                      "the clock starts with the bridge(s); it stops when every partition's committed offset reaches "
                      "its high-water mark; PostgreSQL (and osmem) reconciled exactly afterwards. Workloads: "
                      + ", ".join(f"{n}: {w}" for n, w in drain.get("workloads", {}).items())
                      + f". The ceilings the ratios divide by were measured in this run ({source} section)."]  # fmt: skip
    fp = results.get("freshness_persist")
    if fp:
        lines += ["", f"Freshness, persist sink alone: offered {fp['offered_per_s']:,.0f} events/s (sent "
                      f"{fp['achieved_per_s']:,.0f}/s) for {fp['seconds']} s; PostgreSQL polled every "
                      f"{fp['poll_s'] * 1000:.0f} ms; machine {fp.get('machine_busy_fraction', 0):.0%} busy, "
                      f"{fp.get('background_fraction', 0):.0%} of it not ours."]  # fmt: skip
    fresh = results.get("freshness")
    if fresh:
        lines += ["", f"Freshness: offered {fresh['offered_per_s']:,.0f} events/s (sent {fresh['achieved_per_s']:,.0f}/s) "
                      f"for {fresh['seconds']} s, both sinks, batch settings as in production; PostgreSQL polled every "
                      f"{fresh['poll_s'] * 1000:.0f} ms, search every {fresh.get('search_poll_s', fresh['poll_s']) * 1000:.0f} ms; machine {fresh.get('machine_busy_fraction', 0):.0%} busy, "
                      f"{fresh.get('background_fraction', 0):.0%} of it not ours. osmem makes a document searchable "
                      "when its bulk request returns; Elasticsearch with the template's 1 s refresh_interval would "
                      "add up to 1 s. A delay that grows through the run means the path could not keep up."]  # fmt: skip
    return "\n".join(lines) + "\n"
