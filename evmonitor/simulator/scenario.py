"""Drain mode's valid events: a fleet's whole day (or window) as one timeline, in time order.

`build_timeline` turns a fleet, its outages and its scheduled sessions into events: boots at
the window's start, heartbeats, faults and recoveries, maintenance windows (the whole station,
connector 0, Unavailable, then Available), and for each session the OCPP sequence
Preparing -> session_started + Charging -> progress every meter interval -> session_completed +
Finishing -> Available. Each connector keeps one cumulative meter register across sessions, so
meters never run backwards. Every random draw comes from the generators passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from evmonitor.contract import ChargePointStatus
from evmonitor.simulator import events
from evmonitor.simulator.fleet import Station
from evmonitor.simulator.messages import new_uuid
from evmonitor.simulator.physics import electrical
from evmonitor.simulator.schedule import Outages, Slot

__all__ = ["MAINTENANCE_INFO", "Record", "SessionMeters", "Timeline", "build_timeline"]

MAINTENANCE_INFO = "Scheduled maintenance"


@dataclass(frozen=True, slots=True)
class Record:
    ts_ms: int
    seq: int  # creation order: breaks timestamp ties so a session's events keep their order
    event: dict[str, Any]
    session_id: str | None  # set on session_* events: the unit that `reorder` permutes


@dataclass(frozen=True, slots=True)
class SessionMeters:
    session_id: str
    station_id: str
    meter_start_wh: int
    meter_stop_wh: int
    price_eur_per_kwh: float


@dataclass(slots=True)
class Timeline:
    records: list[Record] = field(default_factory=list)
    sessions: list[SessionMeters] = field(default_factory=list)

    def add(self, ts_ms: int, event: dict[str, Any], session_id: str | None = None) -> None:
        self.records.append(Record(ts_ms, len(self.records), event, session_id))


def build_timeline(
    rng: random.Random,
    fleet: list[Station],
    outages: Outages,
    slots: list[Slot],
    start_ms: int,
    end_ms: int,
    meter_interval_s: float,
    heartbeat_interval_s: float,
) -> Timeline:
    """All valid events of the window, sorted by time; ties keep creation order."""
    if meter_interval_s <= 0 or heartbeat_interval_s <= 0:
        raise ValueError("meter and heartbeat intervals must be positive")
    line = Timeline()
    for station in fleet:
        _station_life(rng, line, station, outages, start_ms, end_ms, int(heartbeat_interval_s * 1000))
    registers: dict[tuple[int, int], int] = {}
    for slot in sorted(slots, key=lambda s: (s.station.index, s.connector_id, s.start_ms)):
        key = (slot.station.index, slot.connector_id)
        if key not in registers:  # a connector's register has counted for years before today
            registers[key] = rng.randint(1_000_000, 400_000_000)
        registers[key] = _session(rng, line, slot, registers[key], int(meter_interval_s * 1000))
    line.records.sort(key=lambda r: (r.ts_ms, r.seq))
    return line


def _station_life(
    rng: random.Random, line: Timeline, station: Station, outages: Outages, start_ms: int, end_ms: int,
    heartbeat_ms: int,
) -> None:
    sid = station.station_id
    line.add(start_ms, events.station_boot(new_uuid(rng), start_ms, station))
    line.add(start_ms, events.station_status(new_uuid(rng), start_ms, sid, 0, ChargePointStatus.AVAILABLE))
    for connector_id in range(1, station.connector_count + 1):
        line.add(start_ms, events.station_status(new_uuid(rng), start_ms, sid, connector_id, ChargePointStatus.AVAILABLE))
    last_ms = min(end_ms, outages.silent_at.get(station.index, end_ms + 1) - 1)  # silent: nothing after
    t = start_ms + 1 + int(rng.random() * heartbeat_ms)
    while t <= last_ms:
        line.add(t, events.heartbeat(new_uuid(rng), t, sid))
        t += heartbeat_ms
    for connector_id in range(1, station.connector_count + 1):
        for fault in outages.faults.get((station.index, connector_id), ()):
            line.add(fault.start_ms, events.station_status(
                new_uuid(rng), fault.start_ms, sid, connector_id, ChargePointStatus.FAULTED, fault.error_code, fault.info))
            line.add(fault.end_ms, events.station_status(
                new_uuid(rng), fault.end_ms, sid, connector_id, ChargePointStatus.AVAILABLE))
    for window in outages.maintenance.get(station.index, ()):
        line.add(window.start_ms, events.station_status(
            new_uuid(rng), window.start_ms, sid, 0, ChargePointStatus.UNAVAILABLE, info=MAINTENANCE_INFO))
        line.add(window.end_ms, events.station_status(new_uuid(rng), window.end_ms, sid, 0, ChargePointStatus.AVAILABLE))


def _session(rng: random.Random, line: Timeline, slot: Slot, meter_start_wh: int, meter_interval_ms: int) -> int:
    """Emit one session's events; return the connector's register after it."""
    station, connector_id, visit, curve = slot.station, slot.connector_id, slot.visit, slot.curve
    sid, dc = station.station_id, station.power.is_dc
    shrink = slot.shrink
    plugged_ms = slot.start_ms + int(visit.plug_in_s * 1000 * shrink)
    stop_ms = max(plugged_ms, slot.end_ms - int(visit.leave_s * 1000 * shrink))
    session_id = new_uuid(rng)

    line.add(slot.start_ms, events.station_status(new_uuid(rng), slot.start_ms, sid, connector_id, ChargePointStatus.PREPARING))
    line.add(plugged_ms, events.session_started(
        new_uuid(rng), plugged_ms, station, session_id, connector_id, meter_start_wh,
        visit.id_tag, visit.vehicle.battery_kwh, visit.soc_start,
    ), session_id)
    line.add(plugged_ms, events.station_status(new_uuid(rng), plugged_ms, sid, connector_id, ChargePointStatus.CHARGING))
    t = plugged_ms + meter_interval_ms
    while t < stop_ms:
        reading = curve.at((t - plugged_ms) / 1000)
        voltage_v, current_a = electrical(reading, visit.vehicle, dc, rng)
        line.add(t, events.session_progress(
            new_uuid(rng), t, sid, session_id, connector_id, meter_start_wh + int(reading.energy_wh),
            round(reading.power_kw, 2), round(reading.soc_percent, 1), voltage_v, current_a,
        ), session_id)
        t += meter_interval_ms
    meter_stop_wh = meter_start_wh + int(curve.at((stop_ms - plugged_ms) / 1000).energy_wh)
    line.add(stop_ms, events.session_completed(
        new_uuid(rng), stop_ms, sid, session_id, connector_id, meter_stop_wh, visit.stop_reason), session_id)
    line.add(stop_ms, events.station_status(new_uuid(rng), stop_ms, sid, connector_id, ChargePointStatus.FINISHING))
    line.add(slot.end_ms, events.station_status(new_uuid(rng), slot.end_ms, sid, connector_id, ChargePointStatus.AVAILABLE))
    line.sessions.append(SessionMeters(session_id, sid, meter_start_wh, meter_stop_wh, station.price_eur_per_kwh))
    return meter_stop_wh
