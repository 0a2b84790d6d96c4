"""The pipeline end to end on real services: Kafka -> bridge -> Celery -> PostgreSQL + Elasticsearch."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from evmonitor.contract import TOPIC_BY_TYPE
from tests.factories import encode, iso, make_event, session_events

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def as_messages(events):
    return [(TOPIC_BY_TYPE[e["event_type"]], e["station_id"].encode(), encode(e)) for e in events]


def test_handcrafted_events_duplicated_reordered_and_malformed_end_where_the_design_says(pipeline):
    """Valid events land once each, in any order; bad ones reach ev.deadletter with reasons."""
    pipeline.start_workers()
    pipeline.start_bridge()
    boot = make_event("station_boot", at=NOW - timedelta(hours=1), station_id="ST-A", name="Hauptbahnhof")
    s1 = session_events(start=NOW - timedelta(minutes=50), meter_start_wh=2_000_000, readings=[3_000, 9_500, 14_321],
                        price=0.59, station_id="ST-A")  # fmt: skip
    s2 = session_events(start=NOW - timedelta(minutes=40), meter_start_wh=10, readings=[40_000], price=0.79,
                        station_id="ST-B", connector_id=2)  # fmt: skip
    valid = [boot, *s1, *s2]
    noisy = valid + s1[:2] + s2[-1:]  # duplicates, including a second session_completed
    random.Random(4).shuffle(noisy)
    noisy.sort(key=lambda e: e["event_type"] != "session_completed")  # completions first
    bad = [
        ("ev.session.progress", b"ST-A", b"{\"event_type\": \"session_progress\", "),
        ("ev.session.started", b"ST-A", encode({**s1[0], "meter_start_wh": -1})),
        ("ev.station.status", b"ST-B", encode(make_event("station_status", timestamp=iso(NOW + timedelta(days=900))))),
        ("ev.station.status", b"ST-B", b"[]"),
    ]
    targets = pipeline.publish(as_messages(noisy) + bad)
    pipeline.wait_drained(targets)

    rows = {str(r.id): r for r in pipeline.sql("SELECT * FROM charging_sessions")}
    assert len(rows) == 2
    a, b = rows[s1[0]["session_id"]], rows[s2[0]["session_id"]]
    assert (a.status, a.energy_delivered_kwh, a.cost_eur) == ("completed", Decimal("14.321"), Decimal("8.45"))
    assert (b.status, b.energy_delivered_kwh, b.cost_eur) == ("completed", Decimal("40.000"), Decimal("31.60"))
    assert a.start_time == datetime.fromisoformat(s1[0]["timestamp"])
    assert a.id_tag_hash and a.id_tag_hash != "RFID-1234"
    stations = {r.id: r for r in pipeline.sql("SELECT * FROM charging_stations")}
    assert stations["ST-A"].name == "Hauptbahnhof" and stations["ST-B"].name == "ST-B"

    search = pipeline.search()
    search.refresh()
    assert search.count() == len(valid)
    assert search.count({"term": {"event_type": "session_completed"}}) == 2

    reasons = sorted(d["reason"] for d in pipeline.deadletters())
    assert reasons == ["invalid_json", "not_an_object", "out_of_range", "timestamp_out_of_window"]


def test_nothing_is_committed_while_workers_are_down_and_everything_lands_once_they_come(pipeline):
    """With no worker running the bridge commits nothing; started workers drain it exactly."""
    from evmonitor.stack.reconcile import wait_drained

    pipeline.start_bridge()
    events = [e for i in range(5) for e in session_events(start=NOW - timedelta(minutes=30 + i), station_id=f"ST-{i}")]
    targets = pipeline.publish(as_messages(events))
    assert not wait_drained(pipeline.settings, targets, timeout_s=4), "offsets committed before any worker ran"
    pipeline.start_workers()
    pipeline.wait_drained(targets)
    assert pipeline.sql("SELECT count(*) AS n FROM charging_sessions")[0].n == 5
    search = pipeline.search()
    search.refresh()
    assert search.count() == len(events)
