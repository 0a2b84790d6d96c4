"""The retention job: what is older than the operator keeps is dropped, so disk use is bounded.

    event indices    `<EVMON_INDEX_PREFIX>-YYYY.MM.DD` whose day is older than EVMON_RETENTION_EVENTS_DAYS
    status history   `status_events` rows older than EVMON_RETENTION_EVENTS_DAYS
    presence history `station_presence` minutes older than EVMON_RETENTION_EVENTS_DAYS
    closed alerts    older than EVMON_RETENTION_ALERTS_DAYS, in PostgreSQL and in `charging-alerts`
    hourly rollups   `station_hourly` older than EVMON_RETENTION_HOURLY_DAYS
    sessions         only if EVMON_RETENTION_SESSIONS_DAYS > 0 (default 0: sessions are kept)

Daily rollups, availability and report records are small and kept. Every cut-off is computed
from `now`, so a second run at the same moment drops nothing more: the job is idempotent.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from beat.db import try_job_lock
from beat.indexes import bulk
from evmonitor.config import Settings
from evmonitor.storage.postgres import translate_errors
from evmonitor.storage.search import translate_errors as search_errors

__all__ = ["apply_retention", "expired_event_indices"]

log = logging.getLogger("evmonitor.retention")


def expired_event_indices(names: list[str], prefix: str, before: date) -> list[str]:
    """The daily event indices among `names` whose day is before `before` (others are never touched)."""
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d{{4}})\.(\d{{2}})\.(\d{{2}})$")
    expired = []
    for name in names:
        match = pattern.match(name)
        if match:
            try:
                day = date(*(int(part) for part in match.groups()))
            except ValueError:
                continue  # not a day we wrote
            if day < before:
                expired.append(name)
    return sorted(expired)


def apply_retention(engine: sa.Engine, client: Any, settings: Settings, now: datetime) -> dict[str, Any]:
    """Drop what is past the retention settings as of `now`; return what was dropped."""
    events_cutoff = now - timedelta(days=settings.retention_events_days)
    with search_errors():
        listed = client.cat.indices(index=f"{settings.index_prefix}-*", format="json")
    names = [row["index"] for row in listed]
    indices = expired_event_indices(names, settings.index_prefix, events_cutoff.date())
    with search_errors():
        for name in indices:
            client.indices.delete(index=name, ignore_unavailable=True)

    with translate_errors(), engine.begin() as conn:
        if not try_job_lock(conn, "retention"):
            return {"skipped": "another run holds the lock", "indices_dropped": indices}
        status_rows = conn.execute(
            sa.text("DELETE FROM status_events WHERE ts < :cutoff"), {"cutoff": events_cutoff}
        ).rowcount
        presence_rows = conn.execute(
            sa.text("DELETE FROM station_presence WHERE minute < :cutoff"), {"cutoff": events_cutoff}
        ).rowcount
        alert_ids = conn.execute(
            sa.text("DELETE FROM alerts WHERE status <> 'open' AND coalesce(until, since) < :cutoff RETURNING id"),
            {"cutoff": now - timedelta(days=settings.retention_alerts_days)},
        ).scalars().all()
        hourly_rows = conn.execute(
            sa.text("DELETE FROM station_hourly WHERE hour_start < :cutoff"),
            {"cutoff": now - timedelta(days=settings.retention_hourly_days)},
        ).rowcount
        session_rows = 0
        if settings.retention_sessions_days > 0:
            session_rows = conn.execute(
                sa.text("DELETE FROM charging_sessions WHERE end_time IS NOT NULL AND end_time < :cutoff"),
                {"cutoff": now - timedelta(days=settings.retention_sessions_days)},
            ).rowcount
    if alert_ids:
        bulk(client, [{"delete": {"_index": settings.alerts_index, "_id": alert_id}} for alert_id in alert_ids])
    result = {
        "indices_dropped": indices,
        "status_events_deleted": status_rows,
        "presence_deleted": presence_rows,
        "alerts_deleted": len(alert_ids),
        "hourly_rollups_deleted": hourly_rows,
        "sessions_deleted": session_rows,
    }
    if indices or status_rows or presence_rows or alert_ids or hourly_rows or session_rows:
        log.info("retention: %s", result)
    return result
