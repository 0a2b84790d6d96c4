"""Session quality (beat.sessions) and failed sessions as outages (beat.outages), on real PostgreSQL.

Station SQ-1, 2 ports, EVMON_MIN_SESSION_WH = 1 (the default). Sessions, all on 2026-11-02 (UTC):

    ok        port 1 09:00-09:30  5,000 Wh                                 not failed
    empty     port 2 09:00-09:10  0 Wh                                     failed under_min_energy, no code
    faulted   port 1 10:00-10:40  3,000 Wh, port 1 Faulted (GroundFailure) at 10:40 (same instant)
                                                                           failed ended_in_fault GroundFailure
    station   port 2 11:00-11:20  2,000 Wh, connector 0 Faulted (PowerSwitchFailure) 11:15-11:30
                                                                           failed ended_in_fault PowerSwitchFailure
    held      port 1 12:00-12:10  0 Wh, start meters disagree             not judged (NULL)
    running   port 2 13:00-       no end                                  not judged (NULL)

Outages: port 2 09:00-09:10 (failed_session); port 1 10:00-10:45 (failed_session 10:00-10:40 joined
with Faulted 10:40-10:45); port 1 11:15-11:30 (Faulted, connector 0); port 2 11:00-11:30
(failed_session 11:00-11:20 with the station's Faulted 11:15-11:30).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from beat.runner import Context, do_outages
from evmonitor.api import queries

NOW = datetime(2026, 11, 2, 14, 0, tzinfo=timezone.utc)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 2, hour, minute, tzinfo=timezone.utc)


SESSIONS = {  # name: (connector, start, end, delivered Wh, start meter of its other started event)
    "ok": (1, at(9), at(9, 30), 5000, None),
    "empty": (2, at(9), at(9, 10), 0, None),
    "faulted": (1, at(10), at(10, 40), 3000, None),
    "station": (2, at(11), at(11, 20), 2000, None),
    "held": (1, at(12), at(12, 10), 0, 7),
    "running": (2, at(13), None, 100, None),
}
STATUSES = [(1, at(8), "Available", "NoError"), (2, at(8), "Available", "NoError"), (0, at(8), "Available", "NoError"),
            (1, at(10, 40), "Faulted", "GroundFailure"), (1, at(10, 45), "Available", "NoError"),
            (0, at(11, 15), "Faulted", "PowerSwitchFailure"), (0, at(11, 30), "Available", "NoError")]  # fmt: skip


def _insert(engine: sa.Engine, ids: dict[str, str], statuses) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO charging_stations (id, name, connector_count, first_seen_at, last_seen_at) "
                             "VALUES ('SQ-1', 'Quality', 2, :t, :t) ON CONFLICT (id) DO NOTHING"), {"t": at(8)})  # fmt: skip
        for name, (connector, start, end, wh, other_start) in SESSIONS.items():
            conn.execute(sa.text(
                "INSERT INTO charging_sessions (id, station_id, station_id_max, connector_id, connector_id_max, "
                "start_time, end_time, status, meter_start_wh, meter_start_max_wh, meter_min_wh, meter_max_wh, "
                "last_event_at) VALUES (:id, 'SQ-1', 'SQ-1', :c, :c, :start, :end, :status, 1000, :start_max, 1000, "
                ":max, coalesce(:end, :start)) ON CONFLICT (id) DO NOTHING"),
                {"id": ids[name], "c": connector, "start": start, "end": end, "max": 1000 + wh,
                 "status": "active" if end is None else "completed",
                 "start_max": 1000 + (other_start or 0)})  # fmt: skip
        for connector, ts, status, error in statuses:
            conn.execute(sa.text("INSERT INTO status_events (event_id, station_id, connector_id, status, error_code, ts) "
                                 "VALUES (:id, 'SQ-1', :c, :s, :e, :ts)"),
                         {"id": str(uuid.uuid4()), "c": connector, "s": status, "e": error, "ts": ts})  # fmt: skip


def test_failed_sessions_are_judged_from_energy_and_faults_and_become_outages_of_their_port(pipeline):
    """Under 1 Wh or ending in a fault (its connector or the station's) fails with the code in force; held and running are not judged."""
    ids = {name: str(uuid.uuid4()) for name in SESSIONS}
    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    ctx = Context(pipeline.settings)
    try:
        # the station fault arrives late: the first run judges "station" a success, the second does not
        _insert(engine, ids, STATUSES[:5])
        first = do_outages(ctx, NOW)
        _insert(engine, ids, STATUSES[5:])
        second = do_outages(ctx, NOW + timedelta(minutes=5))
        third = do_outages(ctx, NOW + timedelta(minutes=10))
        with engine.connect() as conn:
            listed, _ = queries.session_list(conn, station_id="SQ-1", limit=10)
    finally:
        ctx.close()
        engine.dispose()
    verdicts = {name: tuple(pipeline.sql("SELECT failed, failure_reason, failure_code FROM charging_sessions "
                                         "WHERE id = :id", id=sid)[0]) for name, sid in ids.items()}  # fmt: skip
    assert verdicts == {
        "ok": (False, None, None),
        "empty": (True, "under_min_energy", None),
        "faulted": (True, "ended_in_fault", "GroundFailure"),
        "station": (True, "ended_in_fault", "PowerSwitchFailure"),
        "held": (None, None, None),
        "running": (None, None, None),
    }
    assert first["sessions"] == {"changed": 4, "failed": 2}
    assert second["sessions"] == {"changed": 1, "failed": 1} and third["sessions"]["changed"] == 0
    ledger = [(r.connector_id, r.started_at, r.ended_at, r.signals, r.error_code) for r in pipeline.sql(
        "SELECT connector_id, started_at, ended_at, signals, error_code FROM port_outages ORDER BY connector_id, started_at")]  # fmt: skip
    assert ledger == [
        (1, at(10), at(10, 45), ["Faulted", "failed_session"], "GroundFailure"),
        (1, at(11, 15), at(11, 30), ["Faulted"], "PowerSwitchFailure"),
        (2, at(9), at(9, 10), ["failed_session"], None),
        (2, at(11), at(11, 30), ["Faulted", "failed_session"], "PowerSwitchFailure"),
    ]
    shown = {r["id"]: (r["failed"], r["failure_reason"], r["failure_code"]) for r in listed}
    assert shown[ids["faulted"]] == (True, "ended_in_fault", "GroundFailure") and shown[ids["running"]] == (None, None, None)
