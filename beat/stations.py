"""The network now: one document per station in `charging-stations`, location and current status.

Events carry a station's location only in its boot, so a map of stations *by status* cannot be
drawn from the event log; this job draws it from PostgreSQL, where the folds already hold the
latest profile and status of every station and connector. Documents are keyed by station id, so
a re-run with the same `now` writes the same documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from beat.indexes import STATIONS_MAPPING, bulk, ensure_index
from evmonitor.config import Settings
from evmonitor.contract import ChargePointStatus
from evmonitor.storage.postgres import translate_errors

__all__ = ["OCCUPIED", "network_status", "sync_stations"]

OCCUPIED = frozenset({ChargePointStatus.PREPARING, ChargePointStatus.CHARGING, ChargePointStatus.SUSPENDED_EV, ChargePointStatus.SUSPENDED_EVSE, ChargePointStatus.FINISHING})

_QUERY = sa.text(
    """
    SELECT s.id, s.name, s.operator, s.city, s.latitude, s.longitude, s.max_power_kw, s.connector_count,
           s.price_eur_per_kwh, s.status, s.error_code, s.last_seen_at,
           coalesce(array_agg(c.status) FILTER (WHERE c.status IS NOT NULL), '{}') AS connector_statuses
    FROM charging_stations s
    LEFT JOIN connector_status c ON c.station_id = s.id
    GROUP BY s.id
    ORDER BY s.id
    """
)


def network_status(station_status: str | None, connector_statuses: list[str], last_seen_at: datetime,
                   now: datetime, offline_after: timedelta) -> str:  # fmt: skip
    """One word for a map legend, worst first: Offline, Faulted, Unavailable, Occupied, Available."""
    if now - last_seen_at > offline_after:
        return "Offline"
    if station_status == ChargePointStatus.FAULTED or ChargePointStatus.FAULTED in connector_statuses:
        return ChargePointStatus.FAULTED
    if station_status == ChargePointStatus.UNAVAILABLE or (connector_statuses and all(s == ChargePointStatus.UNAVAILABLE for s in connector_statuses)):
        return ChargePointStatus.UNAVAILABLE
    if any(s in OCCUPIED for s in connector_statuses):
        return "Occupied"
    return ChargePointStatus.AVAILABLE


def station_document(row: Mapping[str, Any], now: datetime, offline_after: timedelta) -> dict[str, Any]:
    statuses = list(row["connector_statuses"])
    doc: dict[str, Any] = {
        "station_id": row["id"],
        "name": row["name"],
        "operator": row["operator"],
        "city": row["city"],
        "max_power_kw": row["max_power_kw"],
        "connector_count": row["connector_count"],
        "price_eur_per_kwh": float(row["price_eur_per_kwh"]) if row["price_eur_per_kwh"] is not None else None,
        "status": network_status(row["status"], statuses, row["last_seen_at"], now, offline_after),
        "station_status": row["status"],
        "error_code": row["error_code"],
        "connectors_occupied": sum(s in OCCUPIED for s in statuses),
        "connectors_faulted": statuses.count(ChargePointStatus.FAULTED),
        "connectors_available": statuses.count(ChargePointStatus.AVAILABLE),
        "last_seen_at": row["last_seen_at"].isoformat(),
        "updated_at": now.isoformat(),
    }
    if row["latitude"] is not None and row["longitude"] is not None:
        doc["location"] = {"lat": row["latitude"], "lon": row["longitude"]}
    return doc


def sync_stations(engine: sa.Engine, client: Any, index: str, settings: Settings, now: datetime) -> dict[str, Any]:
    """Write every station's current document; returns how many were written."""
    offline_after = timedelta(seconds=settings.heartbeat_interval_s * settings.offline_after_heartbeats)
    with translate_errors(), engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(_QUERY)]
    if not rows:
        return {"indexed": 0}
    ensure_index(client, index, STATIONS_MAPPING)
    operations: list[dict[str, Any]] = []
    for row in rows:
        operations.append({"index": {"_index": index, "_id": row["id"]}})
        operations.append(station_document(row, now, offline_after))
    bulk(client, operations)
    return {"indexed": len(rows)}

