"""Scaling out: two worker processes on one queue share its work, and the totals stay exact."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from evmonitor.contract import decode
from evmonitor.fold import session_cost_eur, session_energy_kwh
from evmonitor.simulator import plan_drain
from evmonitor.stack.procs import free_port, wait_for
from tests.factories import encode, session_events

SUCCEEDED = re.compile(r"Task evmonitor\.persist_batch\[(?P<task>[0-9a-f-]+)\] succeeded in [\d.]+s: (?P<events>\d+)")


def expected_sessions(events: list[dict]) -> tuple[int, Decimal, Decimal]:
    """Sessions, kWh and EUR as DESIGN.md derives them from the events sent."""
    started = {e["session_id"]: e for e in events if e["event_type"] == "session_started"}
    highest: dict[str, int] = defaultdict(int)
    for e in events:
        if "session_id" in e:
            meter = e.get("meter_wh", e.get("meter_stop_wh", e.get("meter_start_wh")))
            highest[e["session_id"]] = max(highest[e["session_id"]], meter)
    energy = {sid: session_energy_kwh(s["meter_start_wh"], highest[sid]) for sid, s in started.items()}
    cost = {sid: session_cost_eur(energy[sid], s["price_eur_per_kwh"]) for sid, s in started.items()}
    return len(started), sum(energy.values(), Decimal(0)), sum(cost.values(), Decimal(0))


def drain_a_day(pipeline, seed: int) -> list[dict]:
    """Start the bridge, publish 8 hours of 8 stations and wait until drained; the events sent."""
    pipeline.start_bridge()
    now = datetime.now(timezone.utc)
    plan = plan_drain(stations=8, sessions=60, seed=seed, start=now - timedelta(hours=8), end=now)
    pipeline.wait_drained(pipeline.publish([(m.topic, m.key, m.value) for m in plan.messages]))
    return [json.loads(m.value) for m in plan.messages]


def test_two_persist_workers_split_the_work_and_every_event_is_persisted_exactly_once(pipeline):
    """Both workers of queue persist run batches; their counts add up to every valid event; totals are exact."""
    from evmonitor.app import create_app

    pipeline.settings = pipeline.settings.model_copy(update={"batch_max_events": 25})  # many small batches
    pipeline.start_worker("persist", name="persist-a")
    pipeline.start_worker("persist", name="persist-b")
    pipeline.start_worker("index")
    app = create_app(pipeline.settings)

    def both_listening() -> bool:
        replies = app.control.inspect(timeout=0.5).active_queues() or {}
        persist = {w.split("@")[0] for w, qs in replies.items() if any(q["name"] == "persist" for q in qs)}
        return persist == {"persist-a", "persist-b"} and any(q["name"] == "index" for qs in replies.values() for q in qs)

    wait_for(both_listening, timeout_s=60, what="two persist workers and an index worker", hint=pipeline.logs_hint())
    events = drain_a_day(pipeline, seed=4)

    per_worker: dict[str, dict[str, int]] = {}
    for name in ("persist-a", "persist-b"):
        per_worker[name] = {m["task"]: int(m["events"]) for m in SUCCEEDED.finditer(pipeline.log(name))}
    assert all(len(tasks) > 0 for tasks in per_worker.values()), {n: len(t) for n, t in per_worker.items()}
    assert not set(per_worker["persist-a"]) & set(per_worker["persist-b"])  # no task ran on both
    assert sum(n for tasks in per_worker.values() for n in tasks.values()) == len(events)

    stats = app.control.inspect(timeout=2).stats() or {}
    executed = {w.split("@")[0]: s["total"].get("evmonitor.persist_batch", 0) for w, s in stats.items()}
    assert {n: executed[n] for n in per_worker} == {n: len(t) for n, t in per_worker.items()}

    sessions, energy, cost = expected_sessions(events)
    [row] = pipeline.sql("SELECT count(*) AS n, sum(energy_delivered_kwh) AS kwh, sum(cost_eur) AS eur "
                         "FROM charging_sessions")  # fmt: skip
    assert (row.n, row.kwh, row.eur) == (sessions, energy, cost)
    status_changes = sum(1 for e in events if e["event_type"] == "station_status" and not e.get("heartbeat"))
    assert pipeline.sql("SELECT count(*) AS n FROM status_events")[0].n == status_changes


def test_a_solo_worker_with_concurrency_2_is_two_processes_that_share_the_queue_and_stop_gracefully(pipeline):
    """`worker --pool solo -c 2`: nodes NAME-1 and NAME-2 both run batches, totals exact; SIGTERM stops both cleanly."""
    from evmonitor.app import create_app

    pipeline.settings = pipeline.settings.model_copy(update={"batch_max_events": 25})
    pipeline.start_worker("persist", name="persist-s", concurrency=2, pool="solo")
    pipeline.start_worker("index")
    app = create_app(pipeline.settings)
    nodes = {"persist-s-1", "persist-s-2"}

    def listening() -> bool:
        replies = app.control.inspect(timeout=0.5).active_queues() or {}
        return {w.split("@")[0] for w, qs in replies.items() if any(q["name"] == "persist" for q in qs)} == nodes

    wait_for(listening, timeout_s=60, what="two solo persist workers", hint=pipeline.logs_hint())
    events = drain_a_day(pipeline, seed=5)

    succeeded = {m["task"]: int(m["events"]) for m in SUCCEEDED.finditer(pipeline.log("persist-s"))}
    assert sum(succeeded.values()) == len(events)
    stats = app.control.inspect(timeout=2).stats() or {}
    executed = {w.split("@")[0]: s["total"].get("evmonitor.persist_batch", 0) for w, s in stats.items()}
    assert all(executed[n] > 0 for n in nodes) and sum(executed[n] for n in nodes) == len(succeeded), executed
    sessions, energy, cost = expected_sessions(events)
    [row] = pipeline.sql("SELECT count(*) AS n, sum(energy_delivered_kwh) AS kwh, sum(cost_eur) AS eur "
                         "FROM charging_sessions")  # fmt: skip
    assert (row.n, row.kwh, row.eur) == (sessions, energy, cost)

    assert pipeline.stop("persist-s", timeout_s=30), "the solo workers did not exit on SIGTERM"
    assert pipeline.log("persist-s").count("Warm shutdown") == 2


def send_batches(pipeline, app, stations: list[str]) -> list[str]:
    """One persist task per station (a whole session each), sent straight to queue persist; their batch ids."""
    from evmonitor.transport import encode_events

    now = datetime.now(timezone.utc).replace(microsecond=0)
    batch_ids = []
    for station in stations:
        events = [decode(encode(e), received_at=now).to_wire()
                  for e in session_events(start=now - timedelta(minutes=30), station_id=station)]  # fmt: skip
        batch_ids.append(str(uuid.uuid4()))
        app.send_task("evmonitor.persist_batch", args=[batch_ids[-1], encode_events(events)], queue="persist")
    return batch_ids


@contextmanager
def sessions_locked(pipeline) -> Iterator[None]:
    """Hold a lock on charging_sessions that every persist transaction waits for, until the block ends."""
    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("LOCK TABLE charging_sessions IN SHARE ROW EXCLUSIVE MODE")
            yield
    finally:
        engine.dispose()


def waiting_on_the_lock(pipeline) -> int:
    return pipeline.sql("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'")[0].n  # fmt: skip


def persist_tasks_counted(port: int) -> float:
    """The persist_batch SUCCESS count on a worker's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "evmonitor_task_duration_seconds_count" and s.labels["queue"] == "persist"
               and s.labels["task"] == "evmonitor.persist_batch" and s.labels["state"] == "SUCCESS")  # fmt: skip


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_solo_processes_task_histograms_reach_their_parents_metrics_and_outlive_a_dead_process(pipeline):
    """`worker --pool solo -c 2 --metrics-port`: both processes run tasks at once, the parent serves the sum of
    their samples, and a process that died keeps its samples in the sum while the other goes on."""
    from evmonitor.app import create_app

    port = free_port()
    parent = pipeline.start("persist-m", "worker", "-Q", "persist", "--pool", "solo", "-c", "2", "-n", "persist-m@%h",
                            "--metrics-port", str(port))  # fmt: skip
    pipeline.wait_workers(("persist",))
    wait_for(lambda: len(children(parent.pid)) == 2, timeout_s=30, what="two solo worker processes")
    app = create_app(pipeline.settings)
    with sessions_locked(pipeline):  # each process holds one task until the lock goes: two at once means two processes
        sent = send_batches(pipeline, app, ["ST-M1", "ST-M2"])
        wait_for(lambda: waiting_on_the_lock(pipeline) == 2, timeout_s=60, what="a persist task in each process",
                 hint=pipeline.logs_hint())  # fmt: skip
    sent += send_batches(pipeline, app, ["ST-M3", "ST-M4", "ST-M5", "ST-M6"])
    wait_for(lambda: persist_tasks_counted(port) == len(sent), timeout_s=60, what=f"{len(sent)} tasks on /metrics",
             hint=pipeline.logs_hint())  # fmt: skip
    assert pipeline.sql("SELECT count(*) AS n FROM ingest_batches WHERE sink = 'persist'")[0].n == len(sent)

    dead, survivor = children(parent.pid)
    os.kill(dead, signal.SIGKILL)
    wait_for(lambda: children(parent.pid) == [survivor], timeout_s=10, what="the killed process to be reaped")
    assert persist_tasks_counted(port) == len(sent)  # its samples stay in the sum: a count never goes back
    sent += send_batches(pipeline, app, ["ST-M7"])
    wait_for(lambda: persist_tasks_counted(port) == len(sent), timeout_s=60, what="the surviving process's task",
             hint=pipeline.logs_hint())  # fmt: skip
    assert parent.alive()


def test_sigterm_to_a_solo_parent_lets_each_process_finish_its_running_task_then_all_exit(pipeline):
    """SIGTERM to `worker --pool solo -c 2` while each process runs a batch: both batches land, both exit warm."""
    from evmonitor.app import create_app

    parent = pipeline.start("persist-t", "worker", "-Q", "persist", "--pool", "solo", "-c", "2", "-n", "persist-t@%h",
                            "--metrics-port", str(free_port()))  # fmt: skip
    pipeline.wait_workers(("persist",))
    wait_for(lambda: len(children(parent.pid)) == 2, timeout_s=30, what="two solo worker processes")
    processes = children(parent.pid)
    samples = Path(pipeline.settings.state_dir).resolve() / "metrics" / f"worker-{parent.pid}"
    assert samples.is_dir()
    with sessions_locked(pipeline):
        sent = send_batches(pipeline, create_app(pipeline.settings), ["ST-T1", "ST-T2"])
        wait_for(lambda: waiting_on_the_lock(pipeline) == 2, timeout_s=60, what="a persist task in each process",
                 hint=pipeline.logs_hint())  # fmt: skip
        os.kill(parent.pid, signal.SIGTERM)
    wait_for(lambda: not parent.alive(), timeout_s=60, what="the solo workers to exit", hint=pipeline.logs_hint())
    rows = pipeline.sql("SELECT batch_id::text AS b FROM ingest_batches WHERE sink = 'persist'")
    assert sorted(r.b for r in rows) == sorted(sent)
    log = pipeline.log("persist-t")
    assert log.count("Warm shutdown") == 2 and log.count("succeeded") == 2, log[-3000:]
    assert not any(Path(f"/proc/{pid}").exists() for pid in processes)
    assert not samples.exists()  # the parent took its samples' folder with it
