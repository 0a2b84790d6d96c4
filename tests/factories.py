"""Valid events built by hand, for tests: `make_event(type, **overrides)` -> JSON-able dict."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from evmonitor.fold import held_reason, session_cost_eur, session_energy_kwh

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def make_event(event_type: str, *, at: datetime = NOW, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "timestamp": iso(at),
        "station_id": "ST-0001",
    }
    defaults: dict[str, dict[str, Any]] = {
        "station_boot": dict(name="Alexanderplatz 1", operator="VoltWay", city="Berlin", latitude=52.52,
                             longitude=13.41, max_power_kw=150.0, connector_count=2, price_eur_per_kwh=0.69),
        "station_status": dict(connector_id=1, status="Available", error_code="NoError"),
        "session_started": dict(session_id=str(uuid.uuid4()), connector_id=1, meter_start_wh=100_000,
                                price_eur_per_kwh=0.69, id_tag="RFID-1234"),
        "session_progress": dict(session_id=str(uuid.uuid4()), connector_id=1, meter_wh=105_000, power_kw=48.5),
        "session_completed": dict(session_id=str(uuid.uuid4()), connector_id=1, meter_stop_wh=110_000,
                                  stop_reason="Local"),
    }  # fmt: skip
    base.update(defaults.get(event_type, {}))
    base.update(fields)
    return base


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def session_events(
    session_id: str | None = None,
    *,
    start: datetime = NOW,
    meter_start_wh: int = 1_000_000,
    readings: list[int] = (2_500, 7_000, 11_000),
    price: float = 0.59,
    station_id: str = "ST-0001",
    connector_id: int = 1,
) -> list[dict[str, Any]]:
    """One complete session: started, a progress event per reading (Wh delivered), completed."""
    session_id = session_id or str(uuid.uuid4())
    common = dict(session_id=session_id, station_id=station_id, connector_id=connector_id)
    events = [make_event("session_started", at=start, meter_start_wh=meter_start_wh, price_eur_per_kwh=price, **common)]
    for i, delivered in enumerate(readings, 1):
        events.append(make_event("session_progress", at=start + timedelta(minutes=5 * i),
                                 meter_wh=meter_start_wh + delivered, power_kw=40.0 + i, **common))  # fmt: skip
    stop = meter_start_wh + (readings[-1] if readings else 0)
    events.append(make_event("session_completed", at=start + timedelta(minutes=5 * (len(readings) + 1)),
                             meter_stop_wh=stop, **common))  # fmt: skip
    return events


def session_money(row: dict[str, Any]) -> tuple[Decimal | None, Decimal | None]:
    """(energy_delivered_kwh, cost_eur) of a folded session row: what the generated columns hold."""
    if row.get("meter_start_wh") is None or held_reason(row) is not None:
        return None, None
    energy = session_energy_kwh(row["meter_start_wh"], row["meter_max_wh"])
    return energy, None if row.get("price_eur_per_kwh") is None else session_cost_eur(energy, row["price_eur_per_kwh"])
