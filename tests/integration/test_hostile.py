"""Hostile records published straight into a running pipeline: dead-lettered or kept verbatim, never a stop."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from evmonitor.contract import TOPIC_BY_TYPE
from evmonitor.names import Queue, SinkName, TaskName, Topic
from evmonitor.transport import make_celery
from tests.factories import encode, make_event, session_events
from tests.unit.test_hostile import HOSTILE

NOW = datetime.now(timezone.utc).replace(microsecond=0)
STATION = "ST-HOSTILE"
HYPERLINK = '=HYPERLINK("http://x","y")'
SCRIPT = "<script>alert(1)</script>"
SQL = "'; DROP TABLE charging_sessions; --"
MARKUP = '"><img src=x onerror=alert(1)>'
SESSION_TOPICS = [Topic.SESSION_STARTED, Topic.SESSION_PROGRESS, Topic.SESSION_COMPLETED, Topic.STATION_STATUS]


def as_messages(events):
    return [(TOPIC_BY_TYPE[e["event_type"]], e["station_id"].encode(), encode(e)) for e in events]


def seconds_until_completed(pipeline, session_id: str, began: float, timeout_s: float = 60) -> float:
    """Poll PostgreSQL until the session is completed; the seconds since `began`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = pipeline.sql("SELECT status FROM charging_sessions WHERE id = :id", id=session_id)
        if rows and rows[0].status == "completed":
            return time.monotonic() - began
        time.sleep(0.05)  # polling a database with a deadline, not synchronising on time
    raise AssertionError(f"session {session_id} not completed in {timeout_s}s. Logs: {pipeline.logs}")


def alive(pipeline, *names: str) -> dict[str, bool]:
    return {name: pipeline.processes[name].alive() for name in names}


def test_hostile_records_end_in_deadletter_and_a_clean_session_behind_them_lands(pipeline):
    """Every hostile kind is dead-lettered with its reason and bytes, markup is stored verbatim, and the clean
    session published after them on the same partitions lands as fast as one before them, with nothing stopped."""
    pipeline.start_workers()
    pipeline.start_bridge()
    processes = ("bridge", "worker-persist", "worker-index")

    before = session_events(start=NOW - timedelta(minutes=50), station_id=STATION, meter_start_wh=500)
    began = time.monotonic()
    pipeline.publish(as_messages(before))
    baseline_s = seconds_until_completed(pipeline, before[0]["session_id"], began)

    key = STATION.encode()
    hostile = [(SESSION_TOPICS[i % len(SESSION_TOPICS)], key, value) for i, (_, value, _) in enumerate(HOSTILE)]
    boot = make_event("station_boot", at=NOW - timedelta(minutes=40), station_id=STATION, name=HYPERLINK,
                      operator=SCRIPT, city=SQL, vendor="\t=1+1", model="@SUM(A1)")  # fmt: skip
    status = make_event("station_status", at=NOW - timedelta(minutes=39), station_id=STATION, connector_id=1,
                        status="Faulted", error_code="OtherError", info=MARKUP)  # fmt: skip
    clean = session_events(start=NOW - timedelta(minutes=30), station_id=STATION, meter_start_wh=1_000_000,
                           readings=[2_500, 7_000, 11_111], price=0.59)  # fmt: skip
    began = time.monotonic()
    targets = pipeline.publish(hostile + as_messages([boot, status]) + as_messages(clean))
    behind_s = seconds_until_completed(pipeline, clean[0]["session_id"], began)
    assert behind_s <= 2 * baseline_s + 5, f"{behind_s:.1f}s behind hostile records vs {baseline_s:.1f}s before"
    pipeline.wait_drained(targets)

    letters = pipeline.deadletters()
    assert Counter((d["original"], d["reason"]) for d in letters) == Counter(
        (value or b"", str(reason)) for _, value, reason in HOSTILE
    )
    assert all(d["source"]["key"] == STATION and d["stage"] == "bridge" for d in letters)
    assert any("tombstone" in d["detail"] for d in letters)

    session = pipeline.sql("SELECT * FROM charging_sessions WHERE id = :id", id=clean[0]["session_id"])[0]
    assert (session.energy_delivered_kwh, session.cost_eur) == (Decimal("11.111"), Decimal("6.56"))
    assert pipeline.sql("SELECT count(*) AS n FROM charging_sessions")[0].n == 2
    station = pipeline.sql("SELECT * FROM charging_stations WHERE id = :id", id=STATION)[0]
    assert (station.name, station.operator, station.city, station.vendor, station.model) == (
        HYPERLINK, SCRIPT, SQL, "\t=1+1", "@SUM(A1)")  # fmt: skip
    assert pipeline.sql("SELECT info FROM connector_status WHERE station_id = :s", s=STATION)[0].info == MARKUP

    pipeline.http("POST", "/charging-events*/_refresh")
    hits = pipeline.http("GET", "/charging-events*/_search?size=100")["hits"]["hits"]
    assert len(hits) == len(before) + 2 + len(clean)
    boots = [h["_source"] for h in hits if h["_source"]["event_type"] == "station_boot"]
    assert [(b["name"], b["operator"], b["city"]) for b in boots] == [(HYPERLINK, SCRIPT, SQL)]
    assert alive(pipeline, *processes) == dict.fromkeys(processes, True)
    assert "Traceback" not in pipeline.log("bridge")


def test_a_batch_with_events_postgresql_refuses_is_dead_lettered_by_the_worker_not_retried(pipeline):
    """Events that bypassed the contract with values PostgreSQL refuses are dead-lettered as sink_rejected;
    the rest of their batch lands, the batch is marked done, and the worker keeps working."""
    pipeline.start_workers((Queue.PERSIST,))
    good = session_events(start=NOW - timedelta(minutes=20), station_id="ST-GOOD")
    wire = lambda e: {k: v for k, v in e.items() if k != "id_tag"}  # noqa: E731 - as the bridge hands them on
    overflow = wire(make_event("session_started", at=NOW - timedelta(minutes=19), station_id="ST-BAD",
                               meter_start_wh=2**63))  # bigint ends at 2**63 - 1  # fmt: skip
    surrogate = wire(make_event("station_boot", at=NOW - timedelta(minutes=18), station_id="ST-BAD2",
                                name="Lade\ud800punkt"))  # not text: no UTF-8 form  # fmt: skip
    batch_id = str(uuid.uuid4())
    app = make_celery(pipeline.settings)
    app.send_task(TaskName.PERSIST_BATCH, args=[batch_id, [*map(wire, good), overflow, surrogate]],
                  queue=Queue.PERSIST)  # fmt: skip

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not pipeline.sql(
        "SELECT 1 FROM ingest_batches WHERE batch_id = :b AND sink = :s", b=batch_id, s=SinkName.PERSIST
    ):
        time.sleep(0.1)  # polling a database with a deadline
    done = pipeline.sql("SELECT events, rejected FROM ingest_batches WHERE batch_id = :b", b=batch_id)
    assert [(r.events, r.rejected) for r in done] == [(len(good) + 2, 2)], pipeline.log("worker-persist")[-3000:]
    letters = pipeline.deadletters()
    assert sorted((d["reason"], d["stage"], d["event_id"]) for d in letters) == sorted(
        [("sink_rejected", "persist", overflow["event_id"]), ("sink_rejected", "persist", surrogate["event_id"])]
    )
    assert pipeline.sql("SELECT status FROM charging_sessions")[0].status == "completed"
    assert pipeline.processes["worker-persist"].alive()
