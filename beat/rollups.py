"""Rollups: per station per UTC hour, and per local day for the network, operators, cities and
stations, recomputed in SQL from `charging_sessions`.

Incremental: the writers mark the station-hours a change can alter, in the transaction of the
change (evmonitor/storage/marks.py, beat/conflicts.py); a run recomputes exactly those hours, and
every local day they overlap, as a whole, from the sessions table. Idempotent: a recomputation that finds the stored values writes nothing (`computed_at`
moves only when a value does), so running twice changes nothing.

Definitions (for an interval [t0, t1): a UTC hour, or a local day), over sessions not held
(`held_reason IS NULL`: a session whose events disagree counts nowhere until resolved):

    sessions_started    sessions with t0 <= start_time < t1
    sessions_completed  sessions with t0 <= end_time < t1
    energy_kwh, revenue_eur   energy_delivered_kwh and cost_eur of the sessions started in it
    occupied_connector_min    sum over sessions of their occupancy (start_time to end_time, or to
                              last_event_at while not completed) clipped to [t0, t1)
    utilization_pct     occupied / (connectors x minutes of the interval) x 100
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from evmonitor.days import days_overlapping
from beat.db import try_job_lock
from evmonitor.config import Settings
from evmonitor.storage.postgres import translate_errors

__all__ = ["recompute_days", "recompute_hours", "refresh_rollups"]

# Aggregates of the sessions overlapping [t0, t1) (alias s), as SQL over the names t0 and t1.
# The FILTER on occupancy matters under a LEFT JOIN: least/greatest skip NULLs, so a row with no
# session would otherwise count as occupied for the whole interval.
_ACTIVITY = """
    count(s.id) FILTER (WHERE s.start_time >= {t0} AND s.start_time < {t1}) AS sessions_started,
    count(s.id) FILTER (WHERE s.end_time >= {t0} AND s.end_time < {t1}) AS sessions_completed,
    coalesce(sum(s.energy_delivered_kwh) FILTER (WHERE s.start_time >= {t0} AND s.start_time < {t1}), 0) AS energy_kwh,
    coalesce(sum(s.cost_eur) FILTER (WHERE s.start_time >= {t0} AND s.start_time < {t1}), 0) AS revenue_eur,
    coalesce(sum(extract(epoch FROM least(upper(evm_occupancy(s.start_time, s.end_time, s.last_event_at)), {t1})
                                    - greatest(s.start_time, {t0})))
             FILTER (WHERE s.id IS NOT NULL), 0) AS occupied_s
"""
# A held session (DESIGN.md invariant 5) counts in no rollup until it is resolved.
# The bounds the overlap implies (exact: the overlap's own test stays) are what the indexes find a
# station's sessions by: an ended session's end (charging_sessions_ended, sql/002), an open
# one's start (charging_sessions_open_station, sql/001), one index scan each, OR-ed.
_OVERLAPS = ("s.held_reason IS NULL "
             "AND (s.end_time IS NOT NULL AND greatest(s.start_time, s.end_time) >= {t0} "
             "OR s.end_time IS NULL AND s.start_time < {t1}) "
             "AND evm_occupancy(s.start_time, s.end_time, s.last_event_at) && tstzrange({t0}, {t1}, '[)')")  # fmt: skip

_HOURS = sa.text(f"""
WITH todo AS (
    SELECT * FROM unnest(CAST(:stations AS text[]), CAST(:hours AS timestamptz[])) AS t(station_id, hour_start)
), calc AS (  -- one aggregate per (distinct) station-hour: a nested loop on the indexes
    SELECT t.station_id, t.hour_start, a.*
    FROM todo t
    CROSS JOIN LATERAL (
        SELECT {_ACTIVITY.format(t0="t.hour_start", t1="(t.hour_start + interval '1 hour')")}
        FROM charging_sessions s
        WHERE s.station_id = t.station_id
          AND {_OVERLAPS.format(t0="t.hour_start", t1="t.hour_start + interval '1 hour'")}
    ) a
), rows AS (
    SELECT c.*, coalesce(st.connector_count, 1) AS connectors,
           (c.sessions_started + c.sessions_completed > 0 OR c.occupied_s > 0) AS active
    FROM calc c LEFT JOIN charging_stations st ON st.id = c.station_id
), gone AS (
    DELETE FROM station_hourly h USING rows r
    WHERE h.station_id = r.station_id AND h.hour_start = r.hour_start AND NOT r.active
    RETURNING 1
), put AS (
    INSERT INTO station_hourly AS h (station_id, hour_start, sessions_started, sessions_completed, energy_kwh,
                                     revenue_eur, occupied_connector_min, connectors, utilization_pct, computed_at)
    SELECT station_id, hour_start, sessions_started, sessions_completed, energy_kwh, revenue_eur,
           round(occupied_s / 60, 3), connectors, round(occupied_s / (connectors * 3600) * 100, 2), :now
    FROM rows WHERE active
    ON CONFLICT (station_id, hour_start) DO UPDATE SET
        sessions_started = EXCLUDED.sessions_started, sessions_completed = EXCLUDED.sessions_completed,
        energy_kwh = EXCLUDED.energy_kwh, revenue_eur = EXCLUDED.revenue_eur,
        occupied_connector_min = EXCLUDED.occupied_connector_min, connectors = EXCLUDED.connectors,
        utilization_pct = EXCLUDED.utilization_pct, computed_at = EXCLUDED.computed_at
    WHERE (h.sessions_started, h.sessions_completed, h.energy_kwh, h.revenue_eur, h.occupied_connector_min,
           h.connectors, h.utilization_pct)
          IS DISTINCT FROM
          (EXCLUDED.sessions_started, EXCLUDED.sessions_completed, EXCLUDED.energy_kwh, EXCLUDED.revenue_eur,
           EXCLUDED.occupied_connector_min, EXCLUDED.connectors, EXCLUDED.utilization_pct)
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM put) AS written
""")

_DAYS = sa.text(f"""
WITH days AS (
    SELECT d AS day, (d::timestamp AT TIME ZONE :tz) AS t0, ((d + 1)::timestamp AT TIME ZONE :tz) AS t1
    FROM unnest(CAST(:days AS date[])) AS d
), per_station AS (
    SELECT d.day, st.id AS station_id, coalesce(st.operator, '(unknown)') AS operator,
           coalesce(st.city, '(unknown)') AS city, coalesce(st.connector_count, 1) AS connectors,
           coalesce(st.connector_count, 1) * extract(epoch FROM d.t1 - d.t0) AS capacity_s, a.*
    FROM days d
    JOIN charging_stations st ON st.first_seen_at < d.t1
    CROSS JOIN LATERAL (
        SELECT {_ACTIVITY.format(t0="d.t0", t1="d.t1")}
        FROM charging_sessions s
        WHERE s.station_id = st.id AND {_OVERLAPS.format(t0="d.t0", t1="d.t1")}
    ) a
), grouped AS (
    SELECT day,
           CASE WHEN GROUPING(station_id) = 0 THEN 'station' WHEN GROUPING(operator) = 0 THEN 'operator'
                WHEN GROUPING(city) = 0 THEN 'city' ELSE 'network' END AS scope,
           coalesce(station_id, operator, city, 'all') AS key,
           count(*) AS stations, sum(connectors) AS connectors,
           sum(sessions_started) AS sessions_started, sum(sessions_completed) AS sessions_completed,
           sum(energy_kwh) AS energy_kwh, sum(revenue_eur) AS revenue_eur,
           round(sum(occupied_s) / 60, 3) AS occupied_connector_min,
           round(sum(capacity_s) / 60, 3) AS capacity_connector_min,
           round(sum(occupied_s) / sum(capacity_s) * 100, 2) AS utilization_pct
    FROM per_station
    GROUP BY GROUPING SETS ((day), (day, operator), (day, city), (day, station_id))
), gone AS (
    DELETE FROM daily_rollups r
    WHERE r.day = ANY(CAST(:days AS date[]))
      AND NOT EXISTS (SELECT 1 FROM grouped g WHERE g.day = r.day AND g.scope = r.scope AND g.key = r.key)
    RETURNING 1
), put AS (
    INSERT INTO daily_rollups AS r (day, scope, key, stations, connectors, sessions_started, sessions_completed,
                                    energy_kwh, revenue_eur, occupied_connector_min, capacity_connector_min,
                                    utilization_pct, timezone, computed_at)
    SELECT day, scope, key, stations, connectors, sessions_started, sessions_completed, energy_kwh, revenue_eur,
           occupied_connector_min, capacity_connector_min, utilization_pct, :tz, :now
    FROM grouped
    ON CONFLICT (day, scope, key) DO UPDATE SET
        stations = EXCLUDED.stations, connectors = EXCLUDED.connectors,
        sessions_started = EXCLUDED.sessions_started, sessions_completed = EXCLUDED.sessions_completed,
        energy_kwh = EXCLUDED.energy_kwh, revenue_eur = EXCLUDED.revenue_eur,
        occupied_connector_min = EXCLUDED.occupied_connector_min,
        capacity_connector_min = EXCLUDED.capacity_connector_min, utilization_pct = EXCLUDED.utilization_pct,
        timezone = EXCLUDED.timezone, computed_at = EXCLUDED.computed_at
    WHERE (r.stations, r.connectors, r.sessions_started, r.sessions_completed, r.energy_kwh, r.revenue_eur,
           r.occupied_connector_min, r.capacity_connector_min, r.utilization_pct, r.timezone)
          IS DISTINCT FROM
          (EXCLUDED.stations, EXCLUDED.connectors, EXCLUDED.sessions_started, EXCLUDED.sessions_completed,
           EXCLUDED.energy_kwh, EXCLUDED.revenue_eur, EXCLUDED.occupied_connector_min,
           EXCLUDED.capacity_connector_min, EXCLUDED.utilization_pct, EXCLUDED.timezone)
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM put) AS written
""")


def _no_jit(conn: sa.Connection) -> None:
    """No JIT in this transaction: the planner's guess of a station's sessions past a bound it
    learns per row (a third of them) makes these queries look costly enough to compile, and
    compiling takes hundreds of ms where running takes a few."""
    conn.exec_driver_sql("SET LOCAL jit = off")


def recompute_hours(conn: sa.Connection, pairs: Iterable[tuple[str, datetime]], now: datetime) -> tuple[int, int]:
    """Recompute the given (station_id, UTC hour) rows; return (rows deleted, rows written)."""
    pairs = sorted(set(pairs))
    if not pairs:
        return 0, 0
    _no_jit(conn)
    row = conn.execute(
        _HOURS, {"stations": [p[0] for p in pairs], "hours": [p[1] for p in pairs], "now": now}
    ).one()
    return int(row.deleted), int(row.written)


def recompute_days(conn: sa.Connection, days: Iterable[date], timezone: str, now: datetime) -> tuple[int, int]:
    """Recompute every scope of the given local days; return (rows deleted, rows written)."""
    days = sorted(set(days))
    if not days:
        return 0, 0
    _no_jit(conn)
    row = conn.execute(_DAYS, {"days": days, "tz": timezone, "now": now}).one()
    return int(row.deleted), int(row.written)


def refresh_rollups(
    engine: sa.Engine, settings: Settings, now: datetime, *, days: Iterable[date] = (), page: int = 50_000
) -> dict[str, Any]:
    """Recompute every marked station-hour and the local days they touch (plus `days`).

    Each page of marks is read, recomputed and deleted in one transaction; marks that other
    transactions add meanwhile stay for the next page or run.
    """
    result = {"marks": 0, "hours_written": 0, "hours_deleted": 0, "days": [], "days_written": 0}
    extra = set(days)
    while True:
        with translate_errors(), engine.begin() as conn:
            if not try_job_lock(conn, "rollups"):
                return {**result, "skipped": "another run holds the lock"}
            marks = conn.execute(
                sa.text("SELECT id, station_id, hour_start FROM rollup_marks ORDER BY id LIMIT :page"), {"page": page}
            ).all()
            pairs = {(m.station_id, m.hour_start) for m in marks}
            deleted, written = recompute_hours(conn, pairs, now)
            touched = days_overlapping({hour for _, hour in pairs}, settings.zone) | extra
            days_deleted, days_written = recompute_days(conn, touched, settings.timezone, now)
            if marks:
                conn.execute(sa.text("DELETE FROM rollup_marks WHERE id = ANY(:ids)"), {"ids": [m.id for m in marks]})
        extra = set()
        result["marks"] += len(marks)
        result["hours_written"] += written
        result["hours_deleted"] += deleted
        result["days"] = sorted(set(result["days"]) | {d.isoformat() for d in touched})
        result["days_written"] += days_written + days_deleted
        if len(marks) < page:
            return result
