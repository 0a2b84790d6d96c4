"""The outage ledger (`port_outages`, sql/005_uptime.sql): recomputed by beat, annotated by operators.

`track_outages` redraws, in one transaction at a given `now`, every port's outages that end
within the lookback window (EVMON_ALERT_LOOKBACK_S) from the status history, the
`station_offline` alert episodes and the failed sessions (`beat.sessions`, judged first), with the pure rules of `beat.uptime_rules`. Idempotent and
order-insensitive: it reads the history, not what arrived since the last run, so late,
reordered or replayed status events give the same ledger. Each connector's history is read
from its last status before the window that was not down, so an outage that began before the
window keeps its true start (and its id). Rows ending before the window are settled: kept as
they are, with their causes, for the 12-month uptime.

An outage's cause is the operator's (`set_cause`): a recompute never writes it. When late events
move an outage's start (a new id), the cause moves to the outage that now covers the old one,
and the audit says so.

Offline episodes come from the `alerts` table that `beat.faults` keeps (heartbeats are not in
status_events): run the faults job first for the freshest ledger; the next run catches up anyway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from beat.db import try_job_lock
from beat.uptime_rules import DOWN_STATUSES, Outage, StatusChange, port_outages
from evmonitor.config import Settings
from evmonitor.ledger.outages import OUTAGE_COLUMNS, audit, default_user, list_outages, set_cause
from evmonitor.names import OutageCause
from evmonitor.storage.postgres import translate_errors

# OUTAGE_COLUMNS, default_user, list_outages and set_cause live in evmonitor.ledger.outages (the API reads them)
__all__ = ["OUTAGE_COLUMNS", "default_user", "ledger_marks", "list_outages", "set_cause", "track_outages"]

RECOMPUTE = "evmonitor.maintenance.track_outages"

_DOWN = sorted(str(s) for s in DOWN_STATUSES)

# Each connector's history from its last status before the window that was not down.
_HISTORY = sa.text("""
WITH anchors AS (
    SELECT station_id, connector_id,
           max(ts) FILTER (WHERE ts < :horizon AND status <> ALL(:down)) AS anchor
    FROM status_events GROUP BY station_id, connector_id
)
SELECT e.event_id::text AS event_id, e.station_id, e.connector_id, e.ts, e.status, e.error_code, e.info
FROM status_events e
JOIN anchors a ON a.station_id = e.station_id AND a.connector_id = e.connector_id
WHERE e.ts >= coalesce(a.anchor, '-infinity') AND e.ts <= :now
""")

_OFFLINE = sa.text("""
SELECT station_id, since, until FROM alerts
WHERE kind = 'station_offline' AND status <> 'superseded' AND since <= :now
  AND coalesce(until, 'infinity') >= :horizon
""")

# Failed sessions (beat.sessions) are outages of their port from start to end.
_FAILED = sa.text("""
SELECT station_id, connector_id, start_time, end_time, failure_code FROM charging_sessions
WHERE failed AND end_time >= :horizon AND start_time <= :now
""")

_UPSERT = sa.text("""
INSERT INTO port_outages AS o (id, station_id, connector_id, started_at, ended_at, signals, error_code,
                               recorded_at, computed_at)
VALUES (:id, :station_id, :connector_id, :started_at, :ended_at, :signals, :error_code, :now, :now)
ON CONFLICT (id) DO UPDATE SET ended_at = EXCLUDED.ended_at, signals = EXCLUDED.signals,
    error_code = EXCLUDED.error_code, computed_at = EXCLUDED.computed_at
WHERE (o.ended_at, o.signals, o.error_code) IS DISTINCT FROM (EXCLUDED.ended_at, EXCLUDED.signals, EXCLUDED.error_code)
RETURNING 1
""")


def ledger_marks(engine: sa.Engine) -> tuple[datetime | None, int | None]:
    """(the earliest time late history touched, the last mark read) of `ledger_marks` (sql/006), or Nones."""
    with translate_errors(), engine.connect() as conn:
        row = conn.execute(sa.text("SELECT min(since), max(id) FROM ledger_marks")).one()
    return row[0], row[1]


def track_outages(
    engine: sa.Engine, settings: Settings, now: datetime, *, since: datetime | None = None,
    marks_upto: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Redraw the ledger within the lookback window at `now` (from `since` if earlier: late history,
    see `ledger_marks`); delete the marks up to `marks_upto`; return what changed."""
    with translate_errors(), engine.begin() as conn:
        if not try_job_lock(conn, "outages"):
            return {"skipped": "another run holds the lock"}
        # An outage still open in the ledger is redrawn whole, however old (beat may have been down
        # longer than the lookback while it ended), and so is late history (events are accepted up
        # to EVMON_MAX_EVENT_AGE_S old), but never from before the retained history.
        oldest_open = conn.execute(sa.text("SELECT min(started_at) FROM port_outages WHERE ended_at IS NULL")).scalar()
        kept_from = now - timedelta(days=settings.retention_events_days) + settings.lookback
        horizon = now - settings.lookback
        earliest = min((t for t in (oldest_open, since) if t is not None), default=None)
        if earliest is not None and earliest < horizon:
            horizon = max(earliest, kept_from)
        connectors = dict(conn.execute(sa.text("SELECT id, coalesce(connector_count, 1) FROM charging_stations")).all())
        changes: dict[str, list[StatusChange]] = defaultdict(list)
        for r in conn.execute(_HISTORY, {"horizon": horizon, "now": now, "down": _DOWN}):
            changes[r.station_id].append(StatusChange(r.station_id, r.connector_id, r.ts, r.status, r.error_code,
                                                      r.event_id, r.info))  # fmt: skip
        offline: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
        for r in conn.execute(_OFFLINE, {"horizon": horizon, "now": now}):
            offline[r.station_id].append((r.since, r.until if r.until is None or r.until <= now else None))
        failed: dict[str, list[tuple[int, datetime, datetime, str | None]]] = defaultdict(list)
        for r in conn.execute(_FAILED, {"horizon": horizon, "now": now}):
            failed[r.station_id].append((r.connector_id, r.start_time, r.end_time, r.failure_code))
        outages: list[Outage] = []
        for station_id in sorted({*changes, *offline, *failed}):
            outages += [o for o in port_outages(station_id, connectors=connectors.get(station_id, 1),
                                                changes=changes[station_id], offline=offline[station_id],
                                                failed_sessions=failed[station_id])
                        if o.ended_at is None or o.ended_at >= horizon]  # fmt: skip

        upserted = sum(
            conn.execute(_UPSERT, {"id": o.id, "station_id": o.station_id, "connector_id": o.connector_id,
                                   "started_at": o.started_at, "ended_at": o.ended_at,
                                   "signals": [str(s) for s in o.signals], "error_code": o.error_code,
                                   "now": now}).first() is not None  # fmt: skip
            for o in outages
        )
        keep = [o.id for o in outages]
        gone = conn.execute(
            sa.text("DELETE FROM port_outages WHERE coalesce(ended_at, 'infinity') >= :horizon AND id <> ALL(:keep) "
                    "RETURNING id, station_id, connector_id, started_at, ended_at, cause, note, cause_by"),
            {"horizon": horizon, "keep": keep},
        ).all()
        carried = _carry_causes(conn, [g for g in gone if g.cause_by is not None], outages, now)
        if marks_upto is not None:
            conn.execute(sa.text("DELETE FROM ledger_marks WHERE id <= :upto"), {"upto": marks_upto})
    return {"outages": len(outages), "changed": upserted, "removed": len(gone), "causes_carried": carried,
            "from": horizon.isoformat()}


def _carry_causes(conn: sa.Connection, gone: Sequence[Any], outages: list[Outage], now: datetime) -> int:
    """Give an operator's cause on a redrawn outage to the new outage of that port that covers its start."""
    carried = 0
    for old in sorted(gone, key=lambda g: (g.started_at, g.id)):
        heir = next((o for o in outages if (o.station_id, o.connector_id) == (old.station_id, old.connector_id)
                     and o.started_at <= old.started_at and (o.ended_at is None or old.started_at < o.ended_at)),
                    None)  # fmt: skip
        if heir is None:
            continue
        row = conn.execute(
            sa.text("UPDATE port_outages SET cause = :cause, note = :note, cause_by = :by, cause_at = :now "
                    "WHERE id = :id AND cause_by IS NULL RETURNING id"),
            {"cause": old.cause, "note": old.note, "by": old.cause_by, "now": now, "id": heir.id},
        ).first()
        if row is not None:
            audit(conn, heir.id, RECOMPUTE, now, {"cause": str(OutageCause.UNKNOWN), "note": None},
                  {"cause": old.cause, "note": old.note, "from": old.id})  # fmt: skip
            carried += 1
    return carried
