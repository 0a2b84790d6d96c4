"""The held-sessions job: a session whose facts disagree, or that is physically impossible, is
held (DESIGN.md invariant 5); this job makes the second kind visible and raises both as alerts.

Whether a session's events disagree is a generated column of its row (`held_reason`), kept by
the persist path whatever the order of events. Whether it is physically impossible needs its
station's `max_power_kw`, from another table: the persist path reads no other table (its lock
order and its speed), so this job copies it into `charging_sessions.power_limit_kw`, which the
same generated column reads. Until this job has run after a session's latest change, such a
session is counted: the window is one `alerts_interval_s`.

Idempotent: the copy changes only rows whose limit differs; alerts are upserted by session id;
an open alert whose session is no longer held (an operator corrected the row, or a re-boot
raised the station's max power) is closed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from beat.alert_store import load_alerts, upsert_alerts
from beat.alerts import conflict_alert
from beat.db import try_job_lock
from evmonitor.config import Settings
from evmonitor.storage.postgres import translate_errors

__all__ = ["hold_conflicts"]

# rows locked in id order, as the persist path locks them, so the two never deadlock each other. A
# new limit can change the generated held reason (and so energy and cost): those sessions mark their
# hours for the rollups and, once ended, their station for the ledger, as the persist path's marks
# do (evmonitor/storage/marks.py). The place and times do not change here, so the hours are the
# row's. FOR UPDATE returns the latest version of each row, so `old_held` is exact.
_JOIN_LIMITS = sa.text("""
WITH todo AS (
    SELECT s.id, st.max_power_kw, s.held_reason AS old_held
    FROM charging_sessions s JOIN charging_stations st ON st.id = s.station_id
    WHERE s.power_limit_kw IS DISTINCT FROM st.max_power_kw
    ORDER BY s.id FOR UPDATE OF s
), joined AS (
    UPDATE charging_sessions s SET power_limit_kw = todo.max_power_kw, updated_at = now() FROM todo WHERE s.id = todo.id
    RETURNING s.station_id, s.start_time, s.end_time, s.last_event_at, s.held_reason IS DISTINCT FROM todo.old_held AS moved
), hours AS (
    INSERT INTO rollup_marks (station_id, hour_start)
    SELECT DISTINCT j.station_id, h
    FROM joined j CROSS JOIN LATERAL evm_session_hours(j.start_time, coalesce(j.end_time, j.last_event_at)) h
    WHERE j.moved
), ledger AS (
    INSERT INTO ledger_marks (station_id, since)
    SELECT station_id, min(start_time) FROM joined WHERE moved AND end_time IS NOT NULL GROUP BY station_id
)
SELECT count(*) FROM joined
""")

_HELD = sa.text("SELECT * FROM charging_sessions WHERE held_reason IS NOT NULL ORDER BY id")


def hold_conflicts(engine: sa.Engine, settings: Settings, now: datetime) -> dict[str, Any]:
    """Copy stations' max power into sessions, alert on every held session, close resolved alerts."""
    with translate_errors(), engine.begin() as conn:
        if not try_job_lock(conn, "conflicts"):
            return {"skipped": "another run holds the lock"}
        joined = conn.execute(_JOIN_LIMITS).scalar_one()
        held = conn.execute(_HELD).mappings().all()
        names = dict(conn.execute(sa.text("SELECT id, name FROM charging_stations")).all())
        opened = upsert_alerts(conn, [conflict_alert(r) for r in held], now=now, names=names)
        still_held = {str(r["id"]) for r in held}
        resolved = [replace(a, until=max(now, a.since))
                    for a in load_alerts(conn, "kind = 'session_conflict' AND status = 'open'")
                    if a.session_id not in still_held]  # fmt: skip
        closed = upsert_alerts(conn, resolved, now=now, names=names)
    return {"limits_joined": joined, "held": len(held), "alerts_changed": len(opened), "alerts_closed": len(closed)}
