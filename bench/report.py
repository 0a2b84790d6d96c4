"""The results as people read them: a table on the terminal and a markdown summary.

Ratios first (end to end / slowest stage, batched / per event, 2 workers / 1), then the
targets with what holds back those missed, then the absolute figures.
"""

from __future__ import annotations

from typing import Any

from bench.headline import OURS, headline, ours_us_per_event, targets

__all__ = ["markdown", "text_tables"]

_STORES = ("postgres", "kafka", "redis", "elasticsearch", "simulator")


def _fmt(value: Any, spec: str = ",.0f", suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{suffix}"


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
    rows.append(["10% bad input / clean, persist path", _fmt(head["bad_input_over_clean"], ".0%"),
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
    f = results.get("freshness")
    if not f:
        return []
    rows = []
    for name, label in (("postgres", "produce -> row in PostgreSQL"), ("search", "produce -> searchable")):
        ms = f[f"{name}_ms"]
        rows.append([label, _fmt(ms.get("p50"), ".0f"), _fmt(ms.get("p90"), ".0f"), _fmt(ms.get("p99"), ".0f"),
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
        ("Ratios", ["ratio", "value", "from"], _ratio_rows(results)),
        ("Targets", ["target", "goal", "measured", "", "what holds it back"], _target_rows(results)),
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
    fresh = results.get("freshness")
    if fresh:
        lines += ["", f"Freshness: offered {fresh['offered_per_s']:,.0f} events/s (sent {fresh['achieved_per_s']:,.0f}/s) "
                      f"for {fresh['seconds']} s, both sinks, batch settings as in production; PostgreSQL polled every "
                      f"{fresh['poll_s'] * 1000:.0f} ms, search every {fresh.get('search_poll_s', fresh['poll_s']) * 1000:.0f} ms; machine {fresh.get('machine_busy_fraction', 0):.0%} busy, "
                      f"{fresh.get('background_fraction', 0):.0%} of it not ours. osmem makes a document searchable "
                      "when its bulk request returns; Elasticsearch with the template's 1 s refresh_interval would "
                      "add up to 1 s. A delay that grows through the run means the path could not keep up."]  # fmt: skip
    return "\n".join(lines) + "\n"
