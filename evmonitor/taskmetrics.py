"""Task duration histograms per queue for a Celery worker, in prometheus_client's multiprocess mode.

A worker runs its tasks in forked processes (a prefork pool's children, or the N solo workers of
`--pool solo -c N`), so each one writes its samples to files in a folder of its own worker
(`PROMETHEUS_MULTIPROC_DIR`, which prometheus_client reads when it is first imported: the
`worker` command sets it before anything imports prometheus_client), and the worker's main
process serves the sum on 127.0.0.1:`--metrics-port`. One port per worker process; the samples
of a child that exited are kept in the sum, and the folder goes when the main process exits.

    evmonitor_task_duration_seconds{queue, task, state}   histogram, state = SUCCESS | FAILURE | RETRY | ...
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["connect_task_metrics", "serve_task_metrics"]

_started: dict[str, float] = {}  # task id -> monotonic start, in the pool process running it
_histogram: Any = None


def _duration() -> Any:
    global _histogram
    if _histogram is None:
        from prometheus_client import Histogram

        _histogram = Histogram("evmonitor_task_duration_seconds", "Task run time, by queue, task and outcome",
                               ["queue", "task", "state"],
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))  # fmt: skip
    return _histogram


def _prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


def _postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id or "", None)
    if started is None or task is None:
        return
    queue = (getattr(task.request, "delivery_info", None) or {}).get("routing_key") or "unknown"
    _duration().labels(queue, task.name, state or "UNKNOWN").observe(time.monotonic() - started)


def connect_task_metrics() -> None:
    """Observe every task's duration (connect in the worker's main process, before the pool forks)."""
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_prerun, weak=False)
    task_postrun.connect(_postrun, weak=False)


def serve_task_metrics(port: int, folder: Path, address: str = "127.0.0.1") -> Any:
    """Serve the pool's summed samples from `folder` on address:`port`; returns the server."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server
