"""The stale-sessions job: an active session silent for `stale_after` is marked stale, with an alert.

Marking is a status change only: energy and cost stay derived from the highest meter seen, and
the persist sink's merge rules still apply, so a `session_completed` that arrives later closes
the session as if it had never been stale (the alert is closed on the next run, with `until` =
the session's end), and a session that speaks again is active again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from beat.alert_store import load_alerts, upsert_alerts
from beat.alerts import stale_alert, stale_closed
from beat.db import try_job_lock
from evmonitor.config import Settings
from evmonitor.storage.postgres import translate_errors

__all__ = ["mark_stale_sessions"]


def mark_stale_sessions(engine: sa.Engine, settings: Settings, now: datetime) -> dict[str, Any]:
    """Mark sessions stale as of `now`, open their alerts, close alerts of sessions that moved on."""
    with translate_errors(), engine.begin() as conn:
        if not try_job_lock(conn, "stale"):
            return {"skipped": "another run holds the lock"}
        marked = conn.execute(
            sa.text(
                "UPDATE charging_sessions SET status = 'stale', updated_at = now() "
                "WHERE end_time IS NULL AND status = 'active' AND last_event_at < :cutoff "
                "RETURNING id::text AS id, station_id, connector_id, last_event_at"
            ),
            {"cutoff": now - settings.stale_after},
        ).all()
        names = dict(conn.execute(sa.text("SELECT id, name FROM charging_stations")).all())
        opened = upsert_alerts(
            conn,
            [stale_alert(r.id, r.station_id, r.connector_id, r.last_event_at) for r in marked],
            now=now,
            names=names,
        )
        still_open = load_alerts(conn, "kind = 'session_stale' AND status = 'open'")
        sessions = {
            str(r.id): r
            for r in conn.execute(
                sa.text(
                    "SELECT id, status, end_time, last_event_at FROM charging_sessions "
                    "WHERE id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": [a.session_id for a in still_open]},
            )
        }
        closing = []
        for alert in still_open:
            session = sessions.get(alert.session_id)
            if session is not None:
                done = stale_closed(alert, status=session.status, end_time=session.end_time,
                                    last_event_at=session.last_event_at)  # fmt: skip
                if done is not None:
                    closing.append(done)
        closed = upsert_alerts(conn, closing, now=now, names=names)
    return {"marked_stale": len(marked), "alerts_opened": len(opened), "alerts_closed": len(closed)}
