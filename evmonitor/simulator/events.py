"""Event payloads of DESIGN.md as plain dicts, one builder per event type.

Builders take every value explicitly (ids, times, readings) and draw nothing themselves, so
drain mode and live mode produce the same shapes from different clocks.
"""

from __future__ import annotations

from typing import Any

from evmonitor.contract import ChargePointStatus
from evmonitor.simulator.fleet import Station
from evmonitor.simulator.messages import iso_ms

__all__ = [
    "heartbeat",
    "session_completed",
    "session_progress",
    "session_started",
    "station_boot",
    "station_status",
]

Event = dict[str, Any]


def _envelope(event_id: str, event_type: str, ts_ms: int, station_id: str) -> Event:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "timestamp": iso_ms(ts_ms),
        "station_id": station_id,
    }


def station_boot(event_id: str, ts_ms: int, station: Station) -> Event:
    return {
        **_envelope(event_id, "station_boot", ts_ms, station.station_id),
        "name": station.name,
        "operator": station.operator,
        "city": station.city.name,
        "latitude": station.latitude,
        "longitude": station.longitude,
        "max_power_kw": station.power.max_power_kw,
        "connector_count": station.connector_count,
        "price_eur_per_kwh": station.price_eur_per_kwh,
        "vendor": station.vendor,
        "model": station.model,
        "firmware_version": station.firmware_version,
    }


def station_status(
    event_id: str,
    ts_ms: int,
    station_id: str,
    connector_id: int,
    status: str,
    error_code: str = "NoError",
    info: str | None = None,
) -> Event:
    event = {
        **_envelope(event_id, "station_status", ts_ms, station_id),
        "connector_id": connector_id,
        "status": status,
        "error_code": error_code,
    }
    if info is not None:
        event["info"] = info
    return event


def heartbeat(event_id: str, ts_ms: int, station_id: str) -> Event:
    """A liveness ping of the whole station (connector 0) that changes nothing."""
    return {**station_status(event_id, ts_ms, station_id, 0, ChargePointStatus.AVAILABLE), "heartbeat": True}


def session_started(
    event_id: str,
    ts_ms: int,
    station: Station,
    session_id: str,
    connector_id: int,
    meter_start_wh: int,
    id_tag: str,
    vehicle_battery_kwh: float,
    soc_percent: float,
) -> Event:
    return {
        **_envelope(event_id, "session_started", ts_ms, station.station_id),
        "session_id": session_id,
        "connector_id": connector_id,
        "meter_start_wh": meter_start_wh,
        "price_eur_per_kwh": station.price_eur_per_kwh,
        "id_tag": id_tag,
        "vehicle_battery_kwh": vehicle_battery_kwh,
        "soc_percent": soc_percent,
    }


def session_progress(
    event_id: str,
    ts_ms: int,
    station_id: str,
    session_id: str,
    connector_id: int,
    meter_wh: int,
    power_kw: float,
    soc_percent: float,
    voltage_v: float,
    current_a: float,
) -> Event:
    return {
        **_envelope(event_id, "session_progress", ts_ms, station_id),
        "session_id": session_id,
        "connector_id": connector_id,
        "meter_wh": meter_wh,
        "power_kw": power_kw,
        "soc_percent": soc_percent,
        "voltage_v": voltage_v,
        "current_a": current_a,
    }


def session_completed(
    event_id: str,
    ts_ms: int,
    station_id: str,
    session_id: str,
    connector_id: int,
    meter_stop_wh: int,
    stop_reason: str,
) -> Event:
    return {
        **_envelope(event_id, "session_completed", ts_ms, station_id),
        "session_id": session_id,
        "connector_id": connector_id,
        "meter_stop_wh": meter_stop_wh,
        "stop_reason": stop_reason,
    }
