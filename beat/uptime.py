"""Beat's uptime alert: a port below EVMON_UPTIME_TARGET_PCT over the trailing window.

The uptime query itself is `evmonitor.ledger.uptime` (shared with the CLI, the API and reports).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from beat.alert_store import load_alerts, upsert_alerts
from beat.alerts import Kind, uptime_alerts
from evmonitor.config import Settings
from evmonitor.days import local_day
from evmonitor.ledger.uptime import uptime_rows
from evmonitor.storage.postgres import translate_errors

__all__ = ["track_uptime_alerts"]


def track_uptime_alerts(engine: sa.Engine, settings: Settings, now: datetime) -> dict[str, int]:
    """Open or close `uptime_below_target` alerts from each port's uptime over the trailing window.

    The window is the local days from `uptime_window_days` ago through today, cut at `now`.
    """
    last_day = local_day(now, settings.zone)
    first_day = local_day(now - timedelta(days=settings.uptime_window_days), settings.zone) + timedelta(days=1)
    rows = [r for r in uptime_rows(engine, settings, first_day, last_day, now) if r.connector_id is not None]
    with translate_errors(), engine.begin() as conn:
        open_by_port = {(a.station_id, a.connector_id): a
                        for a in load_alerts(conn, "kind = :kind AND status = 'open'", kind=str(Kind.UPTIME))}  # fmt: skip
        names = dict(conn.execute(sa.text("SELECT id, name FROM charging_stations")).all())
        alerts = [a for r in rows for a in uptime_alerts(
            r.station_id, r.connector_id, r.figures.uptime_pct, target_pct=settings.uptime_target_pct,
            window_days=settings.uptime_window_days, open_alert=open_by_port.get((r.station_id, r.connector_id)),
            now=now)]  # fmt: skip
        changed = upsert_alerts(conn, alerts, now=now, names=names)
    return {"opened": sum(a.until is None for a in changed), "closed": sum(a.until is not None for a in changed)}
