"""The reports' one view of the uptime code and of session quality: every call the daily and
monthly reports make into `evmonitor.ledger.uptime` (and the `failed` column of `charging_sessions`) goes
through here, so a change of those signatures is a change of this file only.

- `port_uptime`: each port's `PortUptime` over whole local days, by `evmonitor.ledger.uptime_rows`
  (the formula of 23 CFR 680.116(b), T_total from the station's first message if later).
- `failed_sessions_sql`: how to count failed sessions on this database: the `failed` column
  when it exists, else a constant 0 and `known=False`, which the reports state in words.
- `period_has_data`: whether anything at all was recorded in a period (else: "no data").
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from evmonitor.config import Settings
from evmonitor.ledger import Uptime, uptime_rows
from evmonitor.reports.model import PortUptime

__all__ = ["as_port_uptime", "failed_sessions_sql", "period_has_data", "port_uptime"]


def as_port_uptime(figures: Uptime) -> PortUptime:
    return PortUptime(figures.total_min, figures.outage_min, figures.excluded_min, figures.uptime_pct)


def port_uptime(
    engine: sa.Engine, settings: Settings, first_day: date, last_day: date, now: datetime
) -> dict[tuple[str, int | None], Uptime]:
    """(station, port) -> its figures over [first_day, last_day] (local days), cut at `now`;
    (station, None) -> the station's (the sum of its ports')."""
    return {(r.station_id, r.connector_id): r.figures for r in uptime_rows(engine, settings, first_day, last_day, now)}


def failed_sessions_sql(conn: sa.Connection) -> tuple[str, bool]:
    """The SQL aggregate counting failed sessions, and whether this database records them at all.

    The `failed` column comes with session quality (issue 14 item 4); until it exists every
    session counts as not failed and the report says that failed sessions are not recorded.
    """
    known = conn.execute(sa.text(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'charging_sessions' AND column_name = 'failed')")).scalar_one()  # fmt: skip
    return ("count(*) FILTER (WHERE failed)", True) if known else ("0", False)


_HAS_DATA = sa.text("""
SELECT EXISTS (SELECT 1 FROM status_events WHERE ts >= :t0 AND ts < :t1)
    OR EXISTS (SELECT 1 FROM charging_sessions WHERE start_time < :t1 AND last_event_at >= :t0)
    OR EXISTS (SELECT 1 FROM charging_stations WHERE (first_seen_at >= :t0 AND first_seen_at < :t1)
                                                   OR (last_seen_at >= :t0 AND last_seen_at < :t1)
                                                   OR (first_seen_at < :t0 AND last_seen_at >= :t1))
    OR EXISTS (SELECT 1 FROM port_outages WHERE started_at < :t1 AND coalesce(ended_at, 'infinity') > :t0)
""")


def period_has_data(conn: sa.Connection, t0: datetime, t1: datetime) -> bool:
    """True if any status change, session, station message or outage falls in [t0, t1).

    A station seen before and after the period counts as seen in it (its heartbeats are not
    kept one by one; had it gone silent, its offline outage would be in the ledger).
    """
    return bool(conn.execute(_HAS_DATA, {"t0": t0, "t1": t1}).scalar_one())
