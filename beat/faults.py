"""The faults job: connector faults, offline stations, maintenance flags and availability.

One run, in one transaction, at a given `now`:

1. Stations with new status changes (marked by the persist path, evmonitor/storage/marks.py):
   their fault episodes are redrawn from the last healthy status before the earliest new change, so late or
   reordered status events give the same alerts as punctual ones.
2. Every station: offline episodes redrawn from its presence history (`station_presence`, every
   event's minute, heartbeats included): a silence of more than `offline_after` is an episode
   [last message, first message after it], open while it lasts. Stations with late presence
   (marked by the persist path, evmonitor/storage/marks.py) are redrawn from the earliest late
   minute, others from their last minute heard before `now`.
3. Stations with redrawn faults or an open maintenance flag: maintenance episodes.
4. Availability of every station for today and yesterday (local), and for every day an alert that
   changed in this run touches (or that the caller asks for).

The pure rules live in `beat.alerts`; this module only reads and writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from beat.alert_store import load_alerts, supersede, upsert_alerts
from beat.alerts import (
    Alert,
    Kind,
    StatusChange,
    fault_episodes,
    fault_spans,
    maintenance_episodes,
    offline_episodes,
)
from beat.availability import availability
from evmonitor.days import day_bounds, local_day, previous_day
from beat.db import try_job_lock
from evmonitor.config import Settings
from evmonitor.storage.postgres import translate_errors

__all__ = ["refresh_availability", "track_faults"]

BEGINNING = datetime(1970, 1, 1, tzinfo=timezone.utc)

_HISTORY = sa.text("""
WITH touched AS (
    SELECT DISTINCT connector_id FROM status_events WHERE station_id = :station AND ts >= :since
), anchors AS (
    SELECT t.connector_id,
           (SELECT max(p.ts) FROM status_events p
             WHERE p.station_id = :station AND p.connector_id = t.connector_id
               AND p.status <> 'Faulted' AND p.ts < :since) AS anchor
    FROM touched t
)
SELECT e.event_id::text AS event_id, e.connector_id, e.ts, e.status, e.error_code, e.info, a.anchor
FROM anchors a
JOIN status_events e ON e.station_id = :station AND e.connector_id = a.connector_id
                    AND e.ts >= coalesce(a.anchor, '-infinity')
""")

_STATIONS = sa.text(
    "SELECT id, name, first_seen_at, last_seen_at, connector_count FROM charging_stations ORDER BY id"
)


def _redraw_faults(
    conn: sa.Connection, station_id: str, since: datetime, now: datetime, names: dict, settings: Settings
) -> list[Alert]:
    debounce = timedelta(seconds=settings.alert_debounce_s)
    # an episode that ended less than the debounce before `since` may continue: read it too
    earlier = conn.execute(
        sa.text("SELECT min(since) FROM alerts WHERE kind = 'connector_fault' AND status <> 'superseded' "
                "AND station_id = :s AND since < :since AND coalesce(until, 'infinity') >= :reach"),
        {"s": station_id, "since": since, "reach": since - debounce},
    ).scalar()  # fmt: skip
    rows = conn.execute(_HISTORY, {"station": station_id, "since": min(since, earlier or since)}).all()
    anchors = {r.connector_id: r.anchor or BEGINNING for r in rows}
    changes = [StatusChange(station_id, r.connector_id, r.ts, r.status, r.error_code, r.event_id, r.info) for r in rows]
    episodes = fault_episodes(changes, debounce=debounce, now=now)
    changed = upsert_alerts(conn, episodes, now=now, names=names)
    for connector_id, anchor in sorted(anchors.items()):
        keep = [e.id for e in episodes if e.connector_id == connector_id]
        changed += supersede(conn, kind=Kind.FAULT, station_id=station_id, connector_id=connector_id,
                             since_from=anchor, keep=keep)  # fmt: skip
    return changed


# Each station's presence history from its last minute heard before `since`, up to `now`, as runs of
# minutes without a silence of more than `after` (gaps and islands): what `offline_episodes` reads.
_BOUNDS = """
WITH bounds AS (
    SELECT b.station_id,
           coalesce((SELECT max(q.minute) FROM station_presence q
                      WHERE q.station_id = b.station_id AND q.minute < b.since), '-infinity') AS start
    FROM unnest(CAST(:ids AS text[]), CAST(:froms AS timestamptz[])) AS b(station_id, since)
)"""
_HEARD = sa.text(_BOUNDS + """, heard AS (
    SELECT p.station_id, p.minute, p.first_ts, p.last_ts,
           CASE WHEN p.first_ts - lag(p.last_ts) OVER w > :after THEN 1 ELSE 0 END AS silence_before
    FROM bounds b JOIN station_presence p ON p.station_id = b.station_id AND p.minute >= b.start
    WHERE p.first_ts <= :now
    WINDOW w AS (PARTITION BY p.station_id ORDER BY p.minute)
), runs AS (
    SELECT *, sum(silence_before) OVER (PARTITION BY station_id ORDER BY minute) AS run FROM heard
)
SELECT station_id, min(first_ts) AS first_ts, max(last_ts) AS last_ts FROM runs
GROUP BY station_id, run ORDER BY station_id, min(first_ts)
""")
# stations heard after `now` (the watermark): judged again from `now` by the next run
_AHEAD = sa.text(_BOUNDS + """
SELECT DISTINCT p.station_id FROM bounds b
JOIN station_presence p ON p.station_id = b.station_id AND p.minute >= b.start AND p.last_ts > :now
""")


def _offline(
    conn: sa.Connection, stations: list[Any], marks: dict[str, datetime], settings: Settings, now: datetime,
    names: dict,
) -> list[Alert]:  # fmt: skip
    """Redraw each station's offline episodes from its presence history: from its last minute heard
    before `now`, before its open episode, and before the late presence that marked it."""
    kept_from = now - timedelta(days=settings.retention_events_days)
    opened = {a.station_id: a for a in load_alerts(conn, "kind = 'station_offline' AND status = 'open'")}
    open_since = {station_id: a.since for station_id, a in opened.items()}
    froms = {s.id: max(kept_from, min(now, marks.get(s.id, now), open_since.get(s.id, now))) for s in stations}
    params = {"ids": list(froms), "froms": list(froms.values()), "now": now, "after": settings.offline_after}
    heard: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for r in conn.execute(_HEARD, params):
        heard[r.station_id].append((r.first_ts, r.last_ts))
    changed: list[Alert] = []
    for station_id, runs in sorted(heard.items()):
        episodes = offline_episodes(station_id, runs, now=now, offline_after=settings.offline_after)
        current = opened.get(station_id)
        if current is not None and current.since < runs[0][0]:  # its last message is past retention
            episodes.append(replace(current, until=runs[0][0]))  # the first we still know of after it
        changed += upsert_alerts(conn, episodes, now=now, names=names)
        changed += supersede(conn, kind=Kind.OFFLINE, station_id=station_id, since_from=runs[0][0],
                             keep=[e.id for e in episodes])  # fmt: skip
    ahead = conn.execute(_AHEAD, params).scalars().all()
    if ahead:  # what they said after `now` is judged once `now` reaches it
        conn.execute(sa.text("INSERT INTO presence_marks (station_id, since) SELECT unnest(CAST(:ids AS text[])), :now"),
                     {"ids": sorted(ahead), "now": now})  # fmt: skip
    if changed:  # the outage ledger redraws from the earliest episode that changed (late history)
        conn.execute(sa.text("INSERT INTO ledger_marks (station_id, since) SELECT s, min(t) "
                             "FROM unnest(CAST(:s AS text[]), CAST(:t AS timestamptz[])) AS c(s, t) GROUP BY s"),
                     {"s": [a.station_id for a in changed], "t": [a.since for a in changed]})  # fmt: skip
    return changed


def _maintenance(
    conn: sa.Connection, station_ids: Iterable[str], settings: Settings, now: datetime, names: dict
) -> list[Alert]:
    # Faults before the horizon are not read, so only episodes that start a full window after it
    # are known completely; older ones are left as they are.
    horizon = now - settings.lookback
    settled_from = horizon + settings.fault_window
    changed: list[Alert] = []
    for station_id in sorted(set(station_ids)):
        starts = conn.execute(
            sa.text(
                "SELECT since FROM alerts WHERE kind = 'connector_fault' AND status <> 'superseded' "
                "AND station_id = :s AND since >= :horizon AND since <= :now"
            ),
            {"s": station_id, "horizon": horizon, "now": now},
        ).scalars().all()
        episodes = maintenance_episodes(station_id, starts, threshold=settings.maintenance_fault_threshold,
                                        window=settings.fault_window)  # fmt: skip
        # an episode that ends after `now` is still open as far as anyone can know at `now`
        episodes = [replace(e, until=None) if e.until and e.until > now else e
                    for e in episodes if e.since >= settled_from]  # fmt: skip
        changed += upsert_alerts(conn, episodes, now=now, names=names)
        changed += supersede(conn, kind=Kind.MAINTENANCE, station_id=station_id, since_from=settled_from,
                             keep=[e.id for e in episodes])  # fmt: skip
    return changed


def _days_of(alert: Alert, now: datetime, settings: Settings) -> set[date]:
    first = local_day(max(alert.since, now - settings.lookback), settings.zone)
    last = local_day(max(alert.since, min(alert.until or now, now)), settings.zone)
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


def refresh_availability(
    conn: sa.Connection, stations: list[Any], pairs: Iterable[tuple[str, date]], settings: Settings, now: datetime
) -> int:
    """Recompute station_availability for (station_id, local day) pairs; return rows changed."""
    by_id = {s.id: s for s in stations}
    todo: dict[str, set[date]] = defaultdict(set)
    for station_id, day in pairs:
        station = by_id.get(station_id)
        if station is not None and station.first_seen_at < day_bounds(day, settings.zone)[1]:
            todo[station_id].add(day)
    if not todo:
        return 0
    alerts = load_alerts(conn, "kind IN ('connector_fault', 'station_offline') AND station_id = ANY(:ids)",
                         ids=sorted(todo))  # fmt: skip
    by_station: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_station[alert.station_id].append(alert)
    rows = []
    for station_id, days in sorted(todo.items()):
        station = by_id[station_id]
        faults: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
        offline = []
        for alert in by_station[station_id]:
            if alert.kind is Kind.FAULT:  # the time really Faulted, not a debounced episode's gaps
                faults[alert.connector_id or 0].extend(fault_spans(alert))
            else:
                offline.append((alert.since, alert.until))
        for day in sorted(days):
            t0, t1 = day_bounds(day, settings.zone)
            result = availability(start=max(t0, station.first_seen_at), end=min(t1, now),
                                  connectors=station.connector_count or 1, faults=faults, offline=offline)  # fmt: skip
            rows.append({
                "station_id": station_id, "day": day, "connectors": result.connectors,
                "measured": result.measured_connector_min, "faulted": result.faulted_connector_min,
                "offline": result.offline_connector_min, "pct": result.availability_pct,
                "complete": now >= t1, "now": now,
            })  # fmt: skip
    changed = 0
    upsert = sa.text("""
        INSERT INTO station_availability AS a (station_id, day, connectors, measured_connector_min,
            faulted_connector_min, offline_connector_min, availability_pct, complete, computed_at)
        VALUES (:station_id, :day, :connectors, :measured, :faulted, :offline, :pct, :complete, :now)
        ON CONFLICT (station_id, day) DO UPDATE SET
            connectors = EXCLUDED.connectors, measured_connector_min = EXCLUDED.measured_connector_min,
            faulted_connector_min = EXCLUDED.faulted_connector_min,
            offline_connector_min = EXCLUDED.offline_connector_min, availability_pct = EXCLUDED.availability_pct,
            complete = EXCLUDED.complete, computed_at = EXCLUDED.computed_at
        WHERE (a.connectors, a.measured_connector_min, a.faulted_connector_min, a.offline_connector_min,
               a.availability_pct, a.complete)
              IS DISTINCT FROM
              (EXCLUDED.connectors, EXCLUDED.measured_connector_min, EXCLUDED.faulted_connector_min,
               EXCLUDED.offline_connector_min, EXCLUDED.availability_pct, EXCLUDED.complete)
        RETURNING 1
    """)
    for row in rows:
        changed += conn.execute(upsert, row).first() is not None
    return changed


def _read_marks(conn: sa.Connection, table: str, page: int) -> tuple[list[Any], dict[str, datetime]]:
    """The first `page` marks of `table` (fault_marks, presence_marks) and, per station, the
    earliest time they say late history touched."""
    marks = conn.execute(sa.text(f"SELECT id, station_id, since FROM {table} ORDER BY id LIMIT :page"),
                         {"page": page}).all()  # fmt: skip
    earliest: dict[str, datetime] = {}
    for mark in marks:
        earliest[mark.station_id] = min(mark.since, earliest.get(mark.station_id, mark.since))
    return marks, earliest


def track_faults(
    engine: sa.Engine, settings: Settings, now: datetime, *, days: Iterable[date] = (), page: int = 10_000
) -> dict[str, Any]:
    """Run steps 1-4 (see the module docstring) once; return what changed."""
    with translate_errors(), engine.begin() as conn:
        if not try_job_lock(conn, "faults"):
            return {"skipped": "another run holds the lock"}
        marks, since_by_station = _read_marks(conn, "fault_marks", page)
        presence, presence_since = _read_marks(conn, "presence_marks", page)
        stations = conn.execute(_STATIONS).all()
        names = {s.id: s.name for s in stations}

        changed: list[Alert] = []
        if settings.alert_debounce_s:  # episodes waiting to close once healthy for the debounce
            for alert in load_alerts(conn, "kind = 'connector_fault' AND status = 'open'"):
                since_by_station[alert.station_id] = min(alert.since, since_by_station.get(alert.station_id, alert.since))
        for station_id, since in sorted(since_by_station.items()):
            changed += _redraw_faults(conn, station_id, since, now, names, settings)
        changed += _offline(conn, stations, presence_since, settings, now, names)
        flagged = [a.station_id for a in load_alerts(conn, "kind = 'maintenance_due' AND status = 'open'")]
        changed += _maintenance(conn, [*since_by_station, *flagged], settings, now, names)

        recent = {local_day(now, settings.zone), previous_day(now, settings.zone), *days}
        pairs = {(s.id, d) for s in stations for d in recent}
        for alert in changed:
            if alert.kind in (Kind.FAULT, Kind.OFFLINE):
                pairs |= {(alert.station_id, d) for d in _days_of(alert, now, settings)}
        availability_changed = refresh_availability(conn, stations, pairs, settings, now)
        if marks:
            conn.execute(sa.text("DELETE FROM fault_marks WHERE id = ANY(:ids)"), {"ids": [m.id for m in marks]})
        if presence:
            conn.execute(sa.text("DELETE FROM presence_marks WHERE id = ANY(:ids)"), {"ids": [m.id for m in presence]})
        # more late presence to read; the marks of stations heard after `now` wait for a later `now`
        presence_more = len(presence) == page and conn.execute(
            sa.text("SELECT EXISTS (SELECT 1 FROM presence_marks WHERE since < :now)"), {"now": now}
        ).scalar()
    counts: dict[str, int] = defaultdict(int)
    for alert in changed:
        counts[str(alert.kind)] += 1
    return {"marks": len(marks), "alerts_changed": dict(counts), "availability_changed": availability_changed,
            "more": len(marks) == page or presence_more}  # fmt: skip
