"""Alerts in PostgreSQL (the record) and in the `charging-alerts` index (for Kibana).

`upsert_alerts` writes alerts and bumps `version` only when something really changed, so a job
that runs twice leaves every row as it was; an alert that opens or closes (or is withdrawn by
`supersede`) also gets a row in `alert_outbox`, in the same transaction, for `beat.notify` to deliver. `sync_alerts` then brings the index up to date from
the table (an outbox: rows whose `indexed_version` lags their `version`); if Elasticsearch is
down, the rows wait and the next run sends them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from beat.alerts import Alert, Kind, describe
from beat.indexes import ALERTS_MAPPING, bulk, ensure_index
from evmonitor.storage.postgres import translate_errors

__all__ = ["alert_from_row", "load_alerts", "supersede", "sync_alerts", "upsert_alerts"]

_UPSERT = sa.text("""
WITH before AS (SELECT status FROM alerts WHERE id = :id)
INSERT INTO alerts AS a (id, kind, status, severity, station_id, connector_id, session_id, error_code, info,
                         since, until, message, details, opened_at, closed_at)
VALUES (:id, :kind, :status, :severity, :station_id, :connector_id, CAST(:session_id AS uuid), :error_code, :info,
        :since, :until, :message, CAST(:details AS jsonb), :now, :closed_at)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, severity = EXCLUDED.severity, error_code = EXCLUDED.error_code, info = EXCLUDED.info,
    until = EXCLUDED.until, message = EXCLUDED.message, details = EXCLUDED.details,
    closed_at = CASE WHEN EXCLUDED.until IS NULL THEN NULL ELSE coalesce(a.closed_at, EXCLUDED.closed_at) END,
    version = a.version + 1
WHERE (a.status, a.severity, a.error_code, a.info, a.until, a.message, a.details)
      IS DISTINCT FROM
      (EXCLUDED.status, EXCLUDED.severity, EXCLUDED.error_code, EXCLUDED.info, EXCLUDED.until, EXCLUDED.message,
       EXCLUDED.details)
RETURNING id, (SELECT status FROM before) AS was
""")

# an alert that opened or closed, announced by beat.notify (in the same transaction: none lost)
_OUTBOX = sa.text("INSERT INTO alert_outbox (alert_id, event, payload) VALUES (:id, :event, CAST(:payload AS jsonb))")


def _announce(conn: sa.Connection, alert: Alert, was: str | None, params: Mapping[str, Any], name: str | None) -> None:
    """Write the outbox row of an alert that opened, closed, or (`was` = "withdrawn") was superseded."""
    if was == "withdrawn":
        event = "withdrawn"
    elif alert.status == "open" and was != "open":
        event = "opened"
    elif alert.status == "closed" and was != "closed":
        event = "closed"
    else:
        return
    payload = {
        "alert_id": alert.id, "kind": str(alert.kind), "event": event, "severity": alert.severity,
        "station_id": alert.station_id, "station_name": name, "connector_id": alert.connector_id,
        "session_id": alert.session_id, "error_code": alert.error_code,
        "opened_at": _iso(alert.since), "closed_at": _iso(alert.until), "summary": params["message"],
    }  # fmt: skip
    conn.execute(_OUTBOX, {"id": alert.id, "event": event, "payload": json.dumps(payload)})


def upsert_alerts(
    conn: sa.Connection, alerts: Iterable[Alert], *, now: datetime, names: Mapping[str, str] | None = None
) -> list[Alert]:
    """Record `alerts`; return those that were new or changed."""
    names = names or {}
    changed = []
    for alert in sorted(alerts, key=lambda a: a.id):  # one lock order for concurrent runs
        params = {
            "id": alert.id,
            "kind": str(alert.kind),
            "status": alert.status,
            "severity": alert.severity,
            "station_id": alert.station_id,
            "connector_id": alert.connector_id,
            "session_id": alert.session_id,
            "error_code": alert.error_code,
            "info": alert.info,
            "since": alert.since,
            "until": alert.until,
            "message": describe(alert, names.get(alert.station_id)),
            "details": json.dumps(dict(alert.details), sort_keys=True),
            "now": now,
            "closed_at": None if alert.until is None else now,
        }
        row = conn.execute(_UPSERT, params).first()
        if row is not None:
            changed.append(alert)
            _announce(conn, alert, row.was, params, names.get(alert.station_id))
    return changed


def supersede(
    conn: sa.Connection,
    *,
    kind: Kind,
    station_id: str,
    since_from: datetime,
    keep: Iterable[str],
    connector_id: int | None = None,
) -> list[Alert]:
    """Mark `kind` alerts of a station (or connector) since `since_from` that are not in `keep`
    as superseded: late events redrew those episodes. Returns them as they were."""
    rows = conn.execute(
        sa.text(
            "UPDATE alerts SET status = 'superseded', version = version + 1 "
            "WHERE kind = :kind AND station_id = :station_id AND since >= :since_from AND status <> 'superseded' "
            "AND (CAST(:connector_id AS integer) IS NULL OR connector_id = :connector_id) "
            "AND NOT (id = ANY(CAST(:keep AS text[]))) RETURNING *"
        ),
        {"kind": str(kind), "station_id": station_id, "since_from": since_from, "keep": sorted(keep),
         "connector_id": connector_id},  # fmt: skip
    ).all()
    gone = [alert_from_row(r) for r in rows]
    for alert, row in zip(gone, rows, strict=True):
        _announce(conn, alert, "withdrawn", {"message": f"{row.message} (withdrawn: late events redrew this episode)"},
                  None)  # fmt: skip
    return gone


def alert_from_row(row: Any) -> Alert:
    return Alert(
        id=row.id,
        kind=Kind(row.kind),
        station_id=row.station_id,
        since=row.since,
        until=row.until,
        connector_id=row.connector_id,
        session_id=str(row.session_id) if row.session_id is not None else None,
        error_code=row.error_code,
        info=row.info,
        details=dict(row.details or {}),
    )


def load_alerts(conn: sa.Connection, where: str, **params: Any) -> list[Alert]:
    """Alerts (not superseded) matching a SQL condition on table `alerts`."""
    query = f"SELECT * FROM alerts WHERE status <> 'superseded' AND ({where}) ORDER BY id"
    return [alert_from_row(r) for r in conn.execute(sa.text(query), params)]


# --- the search index ---------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def alert_document(row: Any) -> dict[str, Any]:
    """The indexed form of an alert row joined with its station's profile."""
    duration = float(row.duration_s) if row.duration_s is not None else None
    details = dict(row.details or {})
    doc: dict[str, Any] = {
        "alert_id": row.id,
        "kind": row.kind,
        "status": row.status,
        "severity": row.severity,
        "station_id": row.station_id,
        "station_name": row.name,
        "operator": row.operator,
        "city": row.city,
        "connector_id": row.connector_id,
        "session_id": str(row.session_id) if row.session_id is not None else None,
        "error_code": row.error_code,
        "info": row.info,
        "since": _iso(row.since),
        "until": _iso(row.until),
        "duration_s": duration,
        "duration_min": round(duration / 60, 2) if duration is not None else None,
        "faults_in_window": details.get("faults_in_window"),
        "message": row.message,
        "opened_at": _iso(row.opened_at),
        "closed_at": _iso(row.closed_at),
        "details": details,
    }
    if row.latitude is not None and row.longitude is not None:
        doc["location"] = {"lat": row.latitude, "lon": row.longitude}
    return {k: v for k, v in doc.items() if v is not None}


def sync_alerts(engine: sa.Engine, client: Elasticsearch, index: str, *, page: int = 500) -> int:
    """Index every alert whose latest version is not in `index` yet; drop superseded ones.

    Returns the number of documents written or deleted. Raises `TransientError` when either
    store is unreachable; what was not confirmed stays pending for the next run.
    """
    ensure_index(client, index, ALERTS_MAPPING)
    done = 0
    while True:
        with translate_errors(), engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT a.*, s.name, s.operator, s.city, s.latitude, s.longitude FROM alerts a "
                    "LEFT JOIN charging_stations s ON s.id = a.station_id "
                    "WHERE a.indexed_version < a.version ORDER BY a.id LIMIT :page"
                ),
                {"page": page},
            ).all()
        if not rows:
            return done
        operations: list[dict[str, Any]] = []
        for row in rows:
            if row.status == "superseded":
                operations.append({"delete": {"_index": index, "_id": row.id}})
            else:
                operations += [{"index": {"_index": index, "_id": row.id}}, alert_document(row)]
        bulk(client, operations)
        with translate_errors(), engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE alerts SET indexed_version = :version WHERE id = :id AND version = :version"),
                [{"id": row.id, "version": row.version} for row in rows],
            )
            conn.execute(sa.text("DELETE FROM alerts WHERE status = 'superseded' AND indexed_version = version"))
        done += len(rows)
        if len(rows) < page:
            return done
