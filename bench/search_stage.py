"""The search server's own ceiling: the index task's bulk requests, bodies made beforehand.

Each measurement goes to a fresh osmem (its speed and memory depend on what it holds), over one
keep-alive connection, then over two in parallel (would a second index worker help?). The
server's CPU and memory per document come from /proc: osmem keeps every document in memory,
which is why the index path's workloads stay under ~30k documents.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.procstat import cpu_seconds, rss_bytes
from bench.stages import StageResult, pick_median
from bench.stats import percentile, rate
from evmonitor.stack.embedded import start_search
from evmonitor.stack.procs import free_port, stop
from evmonitor.storage.search import SearchStore, bulk_body

__all__ = ["bulk_index", "bulk_latency"]


def _post(url: str, bodies: list[bytes]) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        for body in bodies:
            conn.request("POST", "/_bulk", body=body, headers={"Content-Type": "application/x-ndjson"})
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200 or answer.get("errors"):
                raise RuntimeError(f"bulk request refused: {response.status} {str(answer)[:300]}")
    finally:
        conn.close()


def _post_all(url: str, bodies: list[bytes], errors: list[BaseException]) -> None:
    try:
        _post(url, bodies)
    except BaseException as exc:  # reported by the caller: a thread's exception would vanish
        errors.append(exc)


def _one_run(prefix: str, bodies: list[bytes], docs: int, clients: int, log_dir: Path, label: str) -> StageResult:
    server = start_search(free_port(), log_dir)
    try:
        url = f"http://{server.address}"
        SearchStore.connect(url, prefix).install_template()
        rss0, cpu0 = rss_bytes(server.pid), cpu_seconds(server.pid)
        errors: list[BaseException] = []
        started = time.monotonic()
        threads = [threading.Thread(target=_post_all, args=(url, bodies[i::clients], errors)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - started
        if errors:
            raise errors[0]
        grown, cpu = rss_bytes(server.pid) - rss0, cpu_seconds(server.pid) - cpu0
    finally:
        stop(server, timeout_s=5)
    return StageResult(label, round(rate(docs, seconds)), "docs", docs, round(seconds, 3), None,
                       {"clients": clients, "server_cpu_us_per_doc": round(cpu / docs * 1e6),
                        "server_rss_kb_per_doc": round(grown / 1024 / docs, 1)})  # fmt: skip


def bulk_index(prefix: str, events: list[dict[str, Any]], batch_size: int, log_dir: Path, repeats: int,
               say: Callable[[str], None]) -> list[StageResult]:  # fmt: skip
    bodies = [bulk_body(prefix, events[i : i + batch_size]) for i in range(0, len(events), batch_size)]
    results = []
    for label, clients, times in (("bulk_index", 1, repeats), ("bulk_index_2_clients", 2, 1)):
        result = pick_median([_one_run(prefix, bodies, len(events), clients, log_dir / f"{label}-{i}", label)
                              for i in range(times)])  # fmt: skip
        say(f"  {label.replace('_', ' ')}: {result.per_s:,.0f} docs/s ({result.extra['server_cpu_us_per_doc']} CPU-us "
            f"and {result.extra['server_rss_kb_per_doc']} KB of server memory per document)")  # fmt: skip
        results.append(result)
    return results


def bulk_latency(prefix: str, events: list[dict[str, Any]], *, docs_per_s: float, every_s: float, log_dir: Path,
                 say: Callable[[str], None]) -> StageResult:  # fmt: skip
    """Bulk requests at a steady pace (as the index worker sends them at that load: one batch
    every `every_s`), into a fresh server: the latency of each request, no evmonitor process
    involved. It shows what the search server alone adds to freshness (and its stalls)."""
    per_request = max(1, round(docs_per_s * every_s))
    bodies = [bulk_body(prefix, events[i : i + per_request]) for i in range(0, len(events), per_request)]
    server = start_search(free_port(), log_dir / "bulk_latency")
    latencies = []
    try:
        url = f"http://{server.address}"
        SearchStore.connect(url, prefix).install_template()
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        started = time.monotonic()
        for i, body in enumerate(bodies):
            delay = started + i * every_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the requests
            sent = time.monotonic()
            conn.request("POST", "/_bulk", body=body, headers={"Content-Type": "application/x-ndjson"})
            conn.getresponse().read()
            latencies.append((time.monotonic() - sent) * 1000)
        seconds = time.monotonic() - started
        conn.close()
    finally:
        stop(server, timeout_s=5)
    result = StageResult("bulk_latency", round(rate(len(events), seconds)), "docs", len(events), round(seconds, 3), None,
                         {"docs_per_request": per_request, "every_ms": round(every_s * 1000),
                          "request_ms_p50": round(percentile(latencies, 50) or 0), "request_ms_p99": round(percentile(latencies, 99) or 0),
                          "request_ms_max": round(max(latencies, default=0)),
                          "stalls_over_500ms": sum(1 for ms in latencies if ms > 500)})  # fmt: skip
    e = result.extra
    say(f"  bulk latency at {result.per_s:,.0f} docs/s ({per_request} per request): p50 {e['request_ms_p50']} ms, "
        f"p99 {e['request_ms_p99']} ms, max {e['request_ms_max']} ms, {e['stalls_over_500ms']} requests over 500 ms")  # fmt: skip
    return result
