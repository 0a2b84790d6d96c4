"""Delivery on real services: back-pressure, poison isolation, store outages, bridge restarts."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import redis

from evmonitor.contract import TOPIC_BY_TYPE, decode
from evmonitor.stack.procs import wait_for
from evmonitor.stack.reconcile import CommitWatch
from tests.factories import encode, session_events

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def as_messages(events):
    return [(TOPIC_BY_TYPE[e["event_type"]], e["station_id"].encode(), encode(e)) for e in events]


def many_sessions(n, minutes_ago=60):
    return [e for i in range(n) for e in session_events(start=NOW - timedelta(minutes=minutes_ago - i % 50),
                                                        station_id=f"ST-{i % 17}", readings=[1000 + i])]  # fmt: skip


def test_with_workers_down_the_bridge_pauses_instead_of_filling_redis(pipeline):
    """At max in-flight batches the bridge stops fetching; queues stay bounded; it resumes alone."""
    pipeline.settings = pipeline.settings.model_copy(update={"max_inflight_batches": 3, "batch_max_events": 20})
    pipeline.start_bridge()
    events = many_sessions(100)  # 500 events = 25 batches of 20
    targets = pipeline.publish(as_messages(events))
    queues = redis.Redis.from_url(pipeline.settings.broker_url)
    persist, index = (pipeline.settings.broker_key_prefix + queue for queue in ("persist", "index"))
    wait_for(lambda: queues.llen(persist) >= 3, timeout_s=30, what="three batches queued")
    watch = CommitWatch(pipeline.settings, targets)
    try:
        behind_before = watch.behind()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # observe for a while: the queue must not grow
            assert queues.llen(persist) <= 3 and queues.llen(index) <= 3
            time.sleep(0.2)
        assert watch.behind() == behind_before == len(events)
    finally:
        watch.close()
    assert "pausing fetch" in pipeline.log("bridge")
    pipeline.start_workers()
    pipeline.wait_drained(targets)
    assert pipeline.sql("SELECT count(*) AS n FROM charging_sessions")[0].n == 100
    assert "resuming fetch" in pipeline.log("bridge")


def test_a_poison_event_is_dead_lettered_and_the_rest_of_its_batch_lands(pipeline):
    """A store refusal for good bisects the batch: only the poison event goes to ev.deadletter."""
    from evmonitor.app import create_app

    pipeline.start_workers()
    good = [decode(encode(e), received_at=NOW).to_wire() for e in session_events(start=NOW - timedelta(minutes=30))]
    poison = dict(good[1], event_id=str(uuid.uuid4()), session_id=str(uuid.uuid4()), meter_wh=2**63 + 5)  # > bigint
    batch_id = str(uuid.uuid4())
    app = create_app(pipeline.settings)
    app.send_task("evmonitor.persist_batch", args=[batch_id, [*good, poison]], queue="persist")
    wait_for(lambda: pipeline.sql("SELECT count(*) AS n FROM ingest_batches WHERE batch_id = :b", b=batch_id)[0].n == 1,
             timeout_s=60, what="the batch to complete", hint=pipeline.logs_hint())  # fmt: skip
    marker = pipeline.sql("SELECT events, rejected FROM ingest_batches WHERE batch_id = :b", b=batch_id)[0]
    assert (marker.events, marker.rejected) == (len(good) + 1, 1)
    rows = pipeline.sql("SELECT id::text AS id, status, energy_delivered_kwh FROM charging_sessions")
    assert [(r.id, r.status) for r in rows] == [(good[0]["session_id"], "completed")]
    (letter,) = pipeline.deadletters()
    assert (letter["reason"], letter["stage"], letter["event_id"]) == ("sink_rejected", "persist", poison["event_id"])
    assert "22003" in letter["detail"]


def test_workers_take_every_task_form_a_payload_reference_an_inline_json_payload_and_a_list_of_dicts(pipeline):
    """Rolling upgrade: a batch whose events wait in Redis (this bridge), one sent inline as one JSON string and one
    sent as a list of dicts (older bridges) all land in both sinks."""
    from evmonitor.app import create_app
    from evmonitor.transport import Payloads, encode_events

    pipeline.start_workers()
    app = create_app(pipeline.settings)
    payloads = Payloads.connect(pipeline.settings)
    batches = {}
    for form, minutes in (("ref", 70), ("payload", 50), ("list", 30)):
        events = [decode(encode(e), received_at=NOW).to_wire()
                  for e in session_events(start=NOW - timedelta(minutes=minutes), station_id=f"ST-{form}")]  # fmt: skip
        batch_id = str(uuid.uuid4())
        batches[batch_id] = events
        if form == "ref":
            arg = payloads.put(batch_id, encode_events(events))  # {"ref": key}, as the bridge sends it
        else:
            arg = encode_events(events) if form == "payload" else events
        for task, queue in (("evmonitor.persist_batch", "persist"), ("evmonitor.index_batch", "index")):
            app.send_task(task, args=[batch_id, arg], queue=queue)

    def markers() -> set[tuple[str, str, int]]:
        rows = pipeline.sql("SELECT batch_id::text AS b, sink, events FROM ingest_batches")
        return {(r.b, r.sink, r.events) for r in rows}

    expected = {(b, sink, len(events)) for b, events in batches.items() for sink in ("persist", "index")}
    wait_for(lambda: markers() == expected, timeout_s=60, what="the batches in both sinks", hint=pipeline.logs_hint())
    rows = pipeline.sql("SELECT station_id, status FROM charging_sessions ORDER BY station_id")
    assert [(r.station_id, r.status) for r in rows] == [("ST-list", "completed"), ("ST-payload", "completed"),
                                                        ("ST-ref", "completed")]  # fmt: skip
    search = pipeline.search()
    search.refresh()
    assert search.count() == sum(map(len, batches.values()))
    payloads.close()


def test_tasks_whose_events_left_redis_do_nothing_and_the_bridge_republishes_them_exactly(pipeline):
    """The payloads of queued tasks vanish (a Redis restart, an expiry): the tasks write nothing and mark nothing,
    the bridge re-publishes the batches with their events stored again, every event lands once, and the payloads
    of finished batches are deleted."""
    pipeline.settings = pipeline.settings.model_copy(update={"republish_after_s": 20.0, "batch_max_events": 20,
                                                             "stats_interval_s": 0.2})  # fmt: skip
    pipeline.start_bridge()
    events = many_sessions(20)  # 100 events
    targets = pipeline.publish(as_messages(events))
    client = redis.Redis.from_url(pipeline.settings.broker_url)
    prefix = pipeline.settings.broker_key_prefix

    def stored() -> list[bytes]:
        return list(client.scan_iter(match=prefix + "payload:*"))

    def all_published() -> bool:  # every event read, every batch closed, one payload and one task each
        stats = [line for line in pipeline.log("bridge").splitlines() if f"'consumed': {len(events)}," in line]
        match = re.search(r"'batches_published': (\d+)", stats[-1]) if stats else None
        return match is not None and len(stored()) == int(match[1]) == client.llen(prefix + "persist")

    wait_for(all_published, timeout_s=30, what="every batch published", hint=pipeline.logs_hint())
    client.delete(*stored())  # well before the bridge's first re-publish (20 s)
    pipeline.start_workers()
    pipeline.wait_drained(targets)
    assert pipeline.sql("SELECT count(*) AS n FROM charging_sessions")[0].n == 20
    assert pipeline.sql("SELECT count(*) AS n FROM charging_sessions WHERE status = 'completed'")[0].n == 20
    search = pipeline.search()
    search.refresh()
    assert search.count() == len(events)
    assert "are no longer in Redis" in pipeline.log("worker-persist")
    assert "re-publishing" in pipeline.log("bridge")
    wait_for(lambda: not stored(), timeout_s=30, what="the finished batches' payloads deleted", hint=pipeline.logs_hint())


def test_sigterm_lets_a_solo_persist_worker_finish_its_running_batch_then_exit(pipeline):
    """SIGTERM while a big batch is being written: the batch completes (marker with every event), exit is clean."""
    from evmonitor.app import create_app
    from evmonitor.transport import encode_events

    pipeline.start_worker("persist")  # the ingest pool `up` runs: solo
    pipeline.wait_workers(("persist",))
    events = [decode(encode(e), received_at=NOW).to_wire() for e in many_sessions(1500)]
    batch_id = str(uuid.uuid4())
    create_app(pipeline.settings).send_task("evmonitor.persist_batch", args=[batch_id, encode_events(events)],
                                            queue="persist")  # fmt: skip
    wait_for(lambda: "persist_batch[" in pipeline.log("worker-persist") and " received" in pipeline.log("worker-persist"),
             timeout_s=30, what="the worker to take the batch", hint=pipeline.logs_hint())  # fmt: skip
    assert pipeline.stop("worker-persist", timeout_s=60), "the worker did not exit on SIGTERM"
    rows = pipeline.sql("SELECT events FROM ingest_batches WHERE batch_id = :b AND sink = 'persist'", b=batch_id)
    assert [r.events for r in rows] == [len(events)]
    assert "Warm shutdown" in pipeline.log("worker-persist")


def test_a_persist_connection_the_server_dropped_fails_one_attempt_and_the_retry_lands_once(pipeline):
    """Backends terminated (a PostgreSQL restart, as a persist worker sees it): the next batch fails on the dead
    connection, is retried on a new one and lands once; both sessions exact."""
    from evmonitor.app import create_app
    from evmonitor.transport import encode_events

    pipeline.start_worker("persist")
    pipeline.wait_workers(("persist",))
    app = create_app(pipeline.settings)

    def send(station: str) -> str:
        events = [decode(encode(e), received_at=NOW).to_wire()
                  for e in session_events(start=NOW - timedelta(minutes=30), station_id=station)]  # fmt: skip
        batch_id = str(uuid.uuid4())
        app.send_task("evmonitor.persist_batch", args=[batch_id, encode_events(events)], queue="persist")
        return batch_id

    def landed() -> dict[str, int]:
        rows = pipeline.sql("SELECT batch_id::text AS b, events FROM ingest_batches WHERE sink = 'persist'")
        return {r.b: r.events for r in rows}

    first = send("ST-R1")
    wait_for(lambda: first in landed(), timeout_s=60, what="the first batch", hint=pipeline.logs_hint())
    dropped = pipeline.sql("SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")[0].n  # fmt: skip
    assert dropped >= 1  # the worker's pooled connection
    second = send("ST-R2")
    wait_for(lambda: second in landed(), timeout_s=60, what="the second batch, retried", hint=pipeline.logs_hint())
    assert landed() == {first: 5, second: 5}
    rows = pipeline.sql("SELECT station_id, status, energy_delivered_kwh FROM charging_sessions ORDER BY station_id")
    assert [(r.station_id, r.status, r.energy_delivered_kwh) for r in rows] == [
        ("ST-R1", "completed", Decimal("11.000")), ("ST-R2", "completed", Decimal("11.000"))]  # fmt: skip
    assert "postgresql unavailable" in pipeline.log("worker-persist")  # the dead connection was used, then replaced


def test_a_database_outage_is_waited_out_not_dead_lettered(proxied_pipeline):
    """With PostgreSQL cut off, tasks retry until it is back; nothing valid is dead-lettered."""
    p = proxied_pipeline
    p.start_workers()
    p.start_bridge()
    p.proxies["postgres"].cut()
    events = many_sessions(20)
    targets = p.publish(as_messages(events))
    watch = CommitWatch(p.settings, targets)
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # during the outage nothing may be committed
            assert watch.behind() == len(events)
            time.sleep(0.25)
    finally:
        watch.close()
    p.proxies["postgres"].restore()
    p.wait_drained(targets)
    assert p.sql("SELECT count(*) AS n FROM charging_sessions")[0].n == 20
    assert p.deadletters() == []
    assert "retry" in p.log("worker-persist").lower()


def test_a_bridge_started_while_postgresql_is_unreachable_joins_once_it_is_back(proxied_pipeline):
    """The bridge starts its group join before it connects to PostgreSQL (evmonitor.bridge.joining);
    when the database is not there it waits, and once connected it joins (again) and drains
    everything exactly."""
    p = proxied_pipeline
    p.start_workers()
    p.proxies["postgres"].cut()
    events = many_sessions(20)
    targets = p.publish(as_messages(events))
    p.start_bridge(wait=False)
    wait_for(lambda: "waiting for PostgreSQL" in p.log("bridge"), timeout_s=30,
             what="the bridge to wait for PostgreSQL", hint=p.logs_hint())  # fmt: skip
    wait_for(lambda: "retrying in 4s" in p.log("bridge"), timeout_s=60,
             what="the bridge to wait past its join (3 s at the broker)", hint=p.logs_hint())  # fmt: skip
    assert "bridge: assigned" not in p.log("bridge")
    p.proxies["postgres"].restore()
    p.wait_drained(targets)
    assert p.sql("SELECT count(*) AS n FROM charging_sessions")[0].n == 20
    assert p.deadletters() == []


def test_a_killed_bridge_resumes_from_committed_offsets_without_loss(pipeline):
    """SIGKILL the bridge mid-stream; the restarted one replays, and totals stay exact."""
    pipeline.start_workers()
    pipeline.start_bridge()
    first = many_sessions(40, minutes_ago=120)
    targets = pipeline.publish(as_messages(first))
    pipeline.kill("bridge")
    second = many_sessions(40, minutes_ago=60)
    targets.update({k: max(v, targets.get(k, 0)) for k, v in pipeline.publish(as_messages(second)).items()})
    pipeline.restart("bridge")
    pipeline.wait_drained(targets)
    assert pipeline.sql("SELECT count(*) AS n FROM charging_sessions")[0].n == 80
    search = pipeline.search()
    search.refresh()
    assert search.count() == len(first) + len(second)


def test_sigterm_makes_the_bridge_flush_its_open_batch_commit_and_exit(pipeline):
    """A batch still open when SIGTERM arrives is published, completed and committed before exit."""
    pipeline.settings = pipeline.settings.model_copy(
        update={"batch_max_ms": 60_000, "batch_max_events": 10_000, "stats_interval_s": 0.2}
    )
    pipeline.start_workers()
    pipeline.start_bridge()
    events = many_sessions(10)
    targets = pipeline.publish(as_messages(events))
    wait_for(lambda: f"'consumed': {len(events)}," in pipeline.log("bridge"), timeout_s=30,
             what="the bridge to read every record")  # fmt: skip
    assert pipeline.sql("SELECT count(*) AS n FROM charging_sessions")[0].n == 0  # the batch is still open
    assert pipeline.stop("bridge", timeout_s=30), "the bridge did not exit on SIGTERM"
    watch = CommitWatch(pipeline.settings, targets)
    try:
        assert watch.behind() == 0
    finally:
        watch.close()
    assert pipeline.sql("SELECT count(*) AS n FROM charging_sessions")[0].n == 10
    assert "bridge stopped" in pipeline.log("bridge")

