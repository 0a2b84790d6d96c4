"""Live mode: the fleet runs against the wall clock and sends each event as it happens.

Timestamps are the real clock (`clock()`): the operator's page, heartbeats and offline detection
read them as they are. `speed` compresses the fleet's time: arrivals, plug-in, dwell and leave
times, meter and heartbeat intervals and faults are `speed` times shorter, and the time of day
that shapes arrivals runs `speed` times faster. Power does not: a charging car draws what its
charge curve says for each real second it charges, so the meter, power and SoC it reports are
physically possible on the timestamps sent (DESIGN.md invariant 5), and a session delivers about
`speed` times fewer kWh than the same visit would in real life. One thread runs a timer heap; it
waits with `wait` (by default `stop.wait`, so setting `stop` interrupts the wait at once). On
stop, every session in flight is completed (stop_reason Local) before the producer is flushed,
so the returned truth is exact for everything sent.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from evmonitor.contract import ChargePointStatus
from evmonitor.simulator import events
from evmonitor.simulator.demand import PEAK_WEIGHT, time_of_day_weight
from evmonitor.simulator.fleet import FAULTS, Station, build_fleet
from evmonitor.simulator.messages import Message, RunRandom, event_message, new_uuid
from evmonitor.simulator.physics import ChargeCurve, Visit, electrical, new_driver, sample_visit
from evmonitor.simulator.producer import Sender
from evmonitor.simulator.truth import GroundTruth, SessionTruth, iso_window, session_truth

__all__ = ["run_live"]

_MEAN_WEIGHT = sum(time_of_day_weight(m * 60_000) for m in range(24 * 60)) / (24 * 60)
_FAULTS_PER_CONNECTOR_DAY = 0.12
_RETRY_S = 300.0  # simulated seconds before a fault or a silence that had to wait tries again


@dataclass(slots=True)
class _Session:
    visit: Visit
    curve: ChargeCurve
    charge_s: float  # simulated seconds until the session ends (`speed` times fewer real ones)
    session_id: str = ""
    meter_start_wh: int = 0
    charging_since: float = 0.0  # real seconds; valid once phase == "charging"
    phase: str = "preparing"  # -> "charging" -> "finishing"


@dataclass(slots=True)
class _Connector:
    station: Station
    connector_id: int
    register_wh: int
    session: _Session | None = None
    faulted: bool = False

    @property
    def idle(self) -> bool:
        return self.session is None and not self.faulted


class _LiveFleet:
    def __init__(self, fleet: list[Station], rng: random.Random, sender: Sender, speed: float,
                 meter_interval_s: float, heartbeat_interval_s: float, sessions_per_station_h: float,
                 on_event: Callable[[Message], None] | None) -> None:
        self.fleet, self.rng, self.sender, self.speed = fleet, rng, sender, speed
        self.meter_interval_s, self.heartbeat_interval_s = meter_interval_s, heartbeat_interval_s
        self.on_event = on_event
        self.arrivals_per_s = sessions_per_station_h * len(fleet) / 3600 * speed / _MEAN_WEIGHT * PEAK_WEIGHT
        self.connectors = {s.index: [_Connector(s, c, rng.randint(1_000_000, 400_000_000))
                                     for c in range(1, s.connector_count + 1)] for s in fleet}
        self.cum_popularity = []
        total = 0.0
        for station in fleet:
            total += station.popularity
            self.cum_popularity.append(total)
        self.drivers = [new_driver(rng) for _ in range(max(20, len(fleet) * 8))]
        self.closing: set[int] = set()
        self.silent: set[int] = set()
        self.timers: list[tuple[float, int, Callable[..., None], tuple]] = []
        self.by_session: dict[str, SessionTruth] = {}
        self.first_ms: int | None = None
        self.last_ms = 0
        self.t0 = 0.0
        self._order = itertools.count()  # ties in the heap go first-come, never compare actions

    # --- plumbing -------------------------------------------------------------------------
    def after(self, now: float, sim_s: float, action: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self.timers, (now + sim_s / self.speed, next(self._order), action, args))

    def emit(self, now: float, build: Callable[..., dict], *args: Any) -> int:
        ts_ms = max(self.last_ms, int(now * 1000))  # per-station order survives a clock step back
        message = event_message(build(new_uuid(self.rng), ts_ms, *args))
        self.sender(message)
        self.first_ms = ts_ms if self.first_ms is None else self.first_ms
        self.last_ms = ts_ms
        if self.on_event is not None:
            self.on_event(message)
        return ts_ms

    def sim_ms(self, now: float) -> float:
        return (self.t0 + (now - self.t0) * self.speed) * 1000

    # --- the fleet's processes ----------------------------------------------------------
    def boot(self, now: float) -> None:
        self.t0 = now
        for station in self.fleet:
            sid = station.station_id
            self.emit(now, events.station_boot, station)
            self.emit(now, events.station_status, sid, 0, ChargePointStatus.AVAILABLE)
            for connector in self.connectors[station.index]:
                self.emit(now, events.station_status, sid, connector.connector_id, ChargePointStatus.AVAILABLE)
                self.after(now, self.rng.expovariate(_FAULTS_PER_CONNECTOR_DAY / 86_400), self.fault, connector)
            self.after(now, self.rng.uniform(0, self.heartbeat_interval_s), self.heartbeat, station)
        for station in self.rng.sample(self.fleet, round(len(self.fleet) * self.rng.uniform(0.02, 0.05))):
            self.after(now, self.rng.uniform(3600, 24 * 3600), self.go_silent, station)
        self.next_arrival(now)

    def heartbeat(self, now: float, station: Station) -> None:
        if station.index not in self.silent:
            self.emit(now, events.heartbeat, station.station_id)
            self.after(now, self.heartbeat_interval_s, self.heartbeat, station)

    def next_arrival(self, now: float) -> None:
        # thinning: candidates at the peak rate, kept with probability weight / peak
        due = now + self.rng.expovariate(self.arrivals_per_s)
        heapq.heappush(self.timers, (due, next(self._order), self.arrival, ()))

    def arrival(self, now: float) -> None:
        self.next_arrival(now)
        if self.rng.random() * PEAK_WEIGHT > time_of_day_weight(self.sim_ms(now)):
            return
        for _ in range(4):  # a driver tries a few stations, then gives up
            station = self.rng.choices(self.fleet, cum_weights=self.cum_popularity)[0]
            if station.index in self.closing:
                continue
            connector = next((c for c in self.connectors[station.index] if c.idle), None)
            if connector is not None:
                break
        else:
            return
        visit = sample_visit(self.rng, self.rng.choice(self.drivers), station)
        curve = ChargeCurve(visit.vehicle, station, visit.soc_start, visit.soc_target)
        charge_s = min(curve.full_s, max(60.0, visit.dwell_s - visit.plug_in_s - visit.leave_s))
        connector.session = _Session(visit, curve, charge_s)
        self.emit(now, events.station_status, station.station_id, connector.connector_id, ChargePointStatus.PREPARING)
        self.after(now, visit.plug_in_s, self.begin, connector)

    def begin(self, now: float, connector: _Connector) -> None:
        session, station = connector.session, connector.station
        if session is None or session.phase != "preparing":
            return
        session.session_id = new_uuid(self.rng)
        session.meter_start_wh = connector.register_wh
        session.phase, session.charging_since = "charging", now
        visit = session.visit
        self.emit(now, events.session_started, station, session.session_id, connector.connector_id,
                  connector.register_wh, visit.id_tag, visit.vehicle.battery_kwh, visit.soc_start)
        self.emit(now, events.station_status, station.station_id, connector.connector_id, ChargePointStatus.CHARGING)
        self.after(now, self.meter_interval_s, self.progress, connector, session)
        self.after(now, session.charge_s, self.end, connector, session, visit.stop_reason)

    def reading(self, now: float, session: _Session):
        """The meter after the real seconds charged so far: power stays physical whatever `speed`."""
        return session.curve.at(max(0.0, now - session.charging_since))

    def progress(self, now: float, connector: _Connector, session: _Session) -> None:
        if connector.session is not session or session.phase != "charging":
            return
        reading = self.reading(now, session)
        voltage_v, current_a = electrical(reading, session.visit.vehicle, connector.station.power.is_dc, self.rng)
        self.emit(now, events.session_progress, connector.station.station_id, session.session_id,
                  connector.connector_id, session.meter_start_wh + int(reading.energy_wh),
                  round(reading.power_kw, 2), round(reading.soc_percent, 1), voltage_v, current_a)
        self.after(now, self.meter_interval_s, self.progress, connector, session)

    def end(self, now: float, connector: _Connector, session: _Session, stop_reason: str) -> None:
        if connector.session is not session or session.phase != "charging":
            return
        station = connector.station
        meter_stop_wh = session.meter_start_wh + int(self.reading(now, session).energy_wh)
        session.phase = "finishing"
        connector.register_wh = meter_stop_wh
        self.emit(now, events.session_completed, station.station_id, session.session_id, connector.connector_id,
                  meter_stop_wh, stop_reason)
        self.emit(now, events.station_status, station.station_id, connector.connector_id, ChargePointStatus.FINISHING)
        self.by_session[session.session_id] = session_truth(
            station.station_id, session.meter_start_wh, meter_stop_wh, station.price_eur_per_kwh)
        self.after(now, session.visit.leave_s, self.release, connector, session)

    def release(self, now: float, connector: _Connector, session: _Session) -> None:
        if connector.session is session:
            connector.session = None
            self.emit(now, events.station_status, connector.station.station_id, connector.connector_id, ChargePointStatus.AVAILABLE)

    def fault(self, now: float, connector: _Connector) -> None:
        if connector.station.index in self.closing:
            return
        if not connector.idle:
            self.after(now, _RETRY_S, self.fault, connector)
            return
        code, info = self.rng.choice(FAULTS)
        connector.faulted = True
        self.emit(now, events.station_status, connector.station.station_id, connector.connector_id,
                  ChargePointStatus.FAULTED, code, info)
        self.after(now, self.rng.uniform(10, 120) * 60, self.recover, connector)

    def recover(self, now: float, connector: _Connector) -> None:
        connector.faulted = False
        self.emit(now, events.station_status, connector.station.station_id, connector.connector_id, ChargePointStatus.AVAILABLE)
        self.after(now, self.rng.expovariate(_FAULTS_PER_CONNECTOR_DAY / 86_400), self.fault, connector)

    def go_silent(self, now: float, station: Station) -> None:
        """Stop taking drivers; once every connector is idle, send nothing more."""
        self.closing.add(station.index)
        if all(c.idle for c in self.connectors[station.index]):
            self.silent.add(station.index)
        else:
            self.after(now, _RETRY_S, self.go_silent, station)

    def wind_down(self, now: float) -> None:
        """Complete every session in flight and free its connector: the truth is then exact."""
        for station in self.fleet:
            for connector in self.connectors[station.index]:
                session = connector.session
                if session is None:
                    continue
                if session.phase == "charging":
                    self.end(now, connector, session, "Local")
                self.release(now, connector, session)


def run_live(
    producer: Any,
    *,
    stations: int,
    seed: int,
    speed: float = 1.0,
    stop: threading.Event,
    duration_s: float | None = None,
    clock: Callable[[], float] = time.time,
    on_event: Callable[[Message], None] | None = None,
    meter_interval_s: float = 300,
    heartbeat_interval_s: float = 900,
    sessions_per_station_h: float = 4.0,
    wait: Callable[[float], Any] | None = None,
    run_id: str | None = None,
) -> GroundTruth:
    """Run `stations` stations (the fleet `plan_drain` builds for `seed`) until `stop` is set or
    `duration_s` (real seconds, by `clock`) has passed; return the truth of what was sent.

    Drivers arrive `sessions_per_station_h` times per station per simulated hour on average,
    shaped by the time of day: for 50 stations at speed 60 that is about 3 per real second
    (7 at the evening peak). A driver who finds no free connector at a few stations leaves, so
    once the fleet is full, sessions start at the rate connectors free up (~2 per second). `wait(timeout_s)` pauses the loop (default `stop.wait`; a test
    passes one that advances a fake clock). Raises `TransientError` as soon as Kafka reports a
    failed delivery, and after the final flush if any message was not delivered.
    """
    if speed <= 0 or meter_interval_s <= 0 or heartbeat_interval_s <= 0:
        raise ValueError("speed and intervals must be positive")
    wait = wait or stop.wait
    sender = Sender(producer)
    live = _LiveFleet(build_fleet(stations, seed), RunRandom(f"{seed}:live", run_id), sender, speed,
                      meter_interval_s, heartbeat_interval_s, sessions_per_station_h, on_event)
    started = clock()
    deadline = None if duration_s is None else started + duration_s
    live.boot(started)
    while not stop.is_set():
        now = clock()
        if deadline is not None and now >= deadline:
            break
        due, _, action, args = live.timers[0]
        if due > now:
            wait(due - now if deadline is None else min(due - now, deadline - now))
            continue
        heapq.heappop(live.timers)
        action(now, *args)
        sender.check()
    live.wind_down(clock())
    sender.flush()

    def moment(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)

    return GroundTruth(
        seed=seed,
        run_id=run_id,
        station_ids=[s.station_id for s in live.fleet],
        by_session=live.by_session,
        valid_events=sender.sent,
        messages=sender.sent,
        window=iso_window(moment(live.first_ms or 0), moment(live.last_ms)),
    )
