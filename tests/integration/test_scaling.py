"""Scaling out: two worker processes on one queue share its work, and the totals stay exact."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from evmonitor.fold import session_cost_eur, session_energy_kwh
from evmonitor.simulator import plan_drain
from evmonitor.stack.procs import wait_for

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
