"""Where and when each drain-mode session happens: outages first, then sessions around them.

Two passes. First every arrival goes to a connector that is free at that moment at a station
drivers like (or, when the fleet is full, to the least loaded connector), with the session's
natural length from the charging physics. Then each connector lays out its own sessions in
order inside its free intervals (window minus its faults, minus its station's maintenance
windows, minus the time after its station went silent), shortening them where needed. The layout always reserves room for the sessions still
to come, so a short window shortens sessions instead of dropping them: the count is exact.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

from evmonitor.simulator.fleet import FAULTS, Station
from evmonitor.simulator.physics import ChargeCurve, Visit, new_driver, sample_visit

__all__ = ["Fault", "Maintenance", "Outages", "Slot", "plan_maintenance", "plan_outages", "schedule_sessions"]

_MIN = 60_000
_MAX_RESERVED_SLOT_MS = 2 * _MIN  # the floor a session may be squeezed to when the window is full


@dataclass(frozen=True, slots=True)
class Fault:
    station_index: int
    connector_id: int
    start_ms: int
    end_ms: int
    error_code: str
    info: str


@dataclass(frozen=True, slots=True)
class Maintenance:
    """A scheduled maintenance window: the whole station (connector 0) Unavailable."""

    station_index: int
    start_ms: int
    end_ms: int


@dataclass(slots=True)
class Outages:
    margin_ms: int  # keeps sessions clear of the window's edges, of faults, maintenance and silence
    silent_at: dict[int, int] = field(default_factory=dict)  # station index -> ms
    faults: dict[tuple[int, int], list[Fault]] = field(default_factory=dict)  # (station, connector)
    maintenance: dict[int, list[Maintenance]] = field(default_factory=dict)  # station index, in order

    def free_intervals(self, station: Station, connector_id: int, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """When a session may occupy this connector: [(from_ms, to_ms)], in order."""
        low = start_ms + self.margin_ms
        high = min(end_ms, self.silent_at.get(station.index, end_ms)) - self.margin_ms
        blocked = sorted([(f.start_ms, f.end_ms) for f in self.faults.get((station.index, connector_id), ())]
                         + [(m.start_ms, m.end_ms) for m in self.maintenance.get(station.index, ())])  # fmt: skip
        out = []
        for block_start, block_end in blocked:  # a fault may overlap a maintenance window
            out.append((low, min(high, block_start - self.margin_ms)))
            low = max(low, block_end + self.margin_ms)
        out.append((low, high))
        return [(a, b) for a, b in out if b > a]


@dataclass(slots=True)
class Slot:
    """One session's place in the plan: [start_ms, end_ms] covers Preparing to Available."""

    station: Station
    connector_id: int
    start_ms: int
    end_ms: int
    visit: Visit
    curve: ChargeCurve
    charge_s: float  # natural charging time, before any shortening
    natural_ms: int  # natural length of the whole slot

    @property
    def shrink(self) -> float:
        return (self.end_ms - self.start_ms) / self.natural_ms if self.natural_ms else 0.0


def plan_outages(rng: random.Random, fleet: list[Station], start_ms: int, end_ms: int) -> Outages:
    """Which stations go silent (~2-5 %) and when; which connectors fault, for 10-120 min."""
    span = end_ms - start_ms
    outages = Outages(margin_ms=max(1, min(30_000, span // 200)))
    silent_count = round(len(fleet) * rng.uniform(0.02, 0.05))
    for station in rng.sample(fleet, silent_count):
        outages.silent_at[station.index] = start_ms + int(span * rng.uniform(0.3, 0.95))
    span_days = span / 86_400_000
    longest_min = min(120.0, span / _MIN * 0.25)
    if longest_min < 10:
        return outages  # a window this short has no room for a realistic fault
    trials = math.ceil(span_days)
    chance = min(0.5, 0.12 * max(span_days, 0.25)) / trials
    for station in fleet:
        end = min(end_ms, outages.silent_at.get(station.index, end_ms)) - outages.margin_ms
        for connector_id in range(1, station.connector_count + 1):
            faults: list[Fault] = []
            for _ in range(trials):
                if rng.random() >= chance:
                    continue
                length = int(rng.uniform(10, longest_min) * _MIN)
                earliest = start_ms + 2 * outages.margin_ms
                if end - length - outages.margin_ms <= earliest:
                    continue
                begin = rng.randint(earliest, end - length - outages.margin_ms)
                code, info = rng.choice(FAULTS)
                fault = Fault(station.index, connector_id, begin, begin + length, code, info)
                if all(fault.start_ms > f.end_ms + 2 * outages.margin_ms or
                       fault.end_ms < f.start_ms - 2 * outages.margin_ms for f in faults):
                    faults.append(fault)
            if faults:
                outages.faults[(station.index, connector_id)] = sorted(faults, key=lambda f: f.start_ms)
    return outages


def plan_maintenance(rng: random.Random, fleet: list[Station], outages: Outages, start_ms: int, end_ms: int) -> None:
    """Give ~4 % of the stations (at least one) a maintenance window of 20-90 min, before any silence.

    Drawn after (and independently of) the faults, which it may overlap: a port is then out for
    the union of both. Windows this short have none.
    """
    span = end_ms - start_ms
    longest_min = min(90.0, span / _MIN * 0.25)
    if longest_min < 20:
        return
    for station in rng.sample(fleet, max(1, round(len(fleet) * 0.04))):
        length = int(rng.uniform(20, longest_min) * _MIN)
        earliest = start_ms + 2 * outages.margin_ms
        latest = min(end_ms, outages.silent_at.get(station.index, end_ms)) - 2 * outages.margin_ms - length
        if latest > earliest:
            begin = rng.randint(earliest, latest)
            outages.maintenance[station.index] = [Maintenance(station.index, begin, begin + length)]


@dataclass(slots=True)
class _Connector:
    station: Station
    connector_id: int
    intervals: list[tuple[int, int]]
    capacity_ms: int
    cursor_ms: int = 0
    used_ms: int = 0
    pending: list[tuple[int, Visit, ChargeCurve, float, int]] = field(default_factory=list)

    @property
    def load(self) -> float:
        return self.used_ms / self.capacity_ms

    def free_at(self, t_ms: int) -> bool:
        return self.cursor_ms <= t_ms and any(a <= t_ms < b for a, b in self.intervals)


def _natural(visit: Visit, curve: ChargeCurve) -> tuple[float, int]:
    charge_s = min(curve.full_s, max(60.0, visit.dwell_s - visit.plug_in_s - visit.leave_s))
    return charge_s, int((visit.plug_in_s + charge_s + visit.leave_s) * 1000)


def schedule_sessions(
    rng: random.Random,
    fleet: list[Station],
    arrivals_ms: list[int],
    outages: Outages,
    start_ms: int,
    end_ms: int,
) -> list[Slot]:
    """One `Slot` per arrival, none overlapping another on its connector nor a fault."""
    connectors = []
    by_station: list[list[_Connector]] = []
    for station in fleet:
        own = []
        for connector_id in range(1, station.connector_count + 1):
            intervals = outages.free_intervals(station, connector_id, start_ms, end_ms)
            capacity = sum(b - a for a, b in intervals)
            if capacity > 0:
                own.append(_Connector(station, connector_id, intervals, capacity))
        by_station.append(own)
        connectors.extend(own)
    if not connectors:
        raise ValueError("the window is too short to hold any session")
    drivers = [new_driver(rng) for _ in range(max(20, len(arrivals_ms) // 4))]
    cum_popularity = []
    total = 0.0
    for station in fleet:
        total += station.popularity if by_station[station.index] else 0.0
        cum_popularity.append(total)
    least_loaded = [(0.0, i) for i in range(len(connectors))]
    index_of = {id(c): i for i, c in enumerate(connectors)}

    for arrival in arrivals_ms:
        chosen = None
        for _ in range(4):  # a driver tries a few stations before queueing
            station = rng.choices(fleet, cum_weights=cum_popularity)[0]
            chosen = next((c for c in by_station[station.index] if c.free_at(arrival)), None)
            if chosen:
                break
        if chosen is None:
            while True:  # lazy heap: skip entries whose load has changed since they were pushed
                load, i = least_loaded[0]
                if load == connectors[i].load:
                    chosen = connectors[i]
                    break
                heapq.heappop(least_loaded)
        visit = sample_visit(rng, rng.choice(drivers), chosen.station)
        curve = ChargeCurve(visit.vehicle, chosen.station, visit.soc_start, visit.soc_target)
        charge_s, natural_ms = _natural(visit, curve)
        chosen.cursor_ms = max(arrival, chosen.cursor_ms) + natural_ms
        chosen.used_ms += natural_ms
        heapq.heappush(least_loaded, (chosen.load, index_of[id(chosen)]))
        chosen.pending.append((arrival, visit, curve, charge_s, natural_ms))

    slots = []
    for connector in connectors:
        slots.extend(_layout(connector))
    return slots


def _layout(connector: _Connector) -> list[Slot]:
    """Place this connector's sessions in order, each fully inside one free interval."""
    pending = connector.pending
    if not pending:
        return []
    intervals = connector.intervals
    k, n = len(pending), len(intervals)
    unit = min(_MAX_RESERVED_SLOT_MS, connector.capacity_ms // (k + n))  # room reserved per session
    if unit < 100:
        raise ValueError(
            f"{k} sessions do not fit on {connector.station.station_id} connector {connector.connector_id}: "
            "widen the window or add stations"
        )
    gap = max(1, unit // 10)
    # Each interval holds `(to - from) // unit` reserved slots; sum >= k by the choice of unit.
    suffix = [0] * (n + 1)
    for j in range(n - 1, -1, -1):
        suffix[j] = suffix[j + 1] + (intervals[j][1] - intervals[j][0]) // unit
    cursor = intervals[0][0]
    out = []
    for i, (arrival, visit, curve, charge_s, natural_ms) in enumerate(pending):
        remaining = k - i
        # the latest start that still leaves a reserved slot for each remaining session
        j = max(j for j in range(n) if suffix[j] >= remaining)
        latest = intervals[j][1] - (remaining - suffix[j + 1]) * unit
        begin = max(cursor, min(arrival, latest))
        j = next(j for j, (a, b) in enumerate(intervals) if b - max(begin, a) >= unit)
        begin = max(begin, intervals[j][0])
        owed = max(0, remaining - 1 - suffix[j + 1])  # slots the rest still need in this interval
        # A busy connector hands over when the next driver arrives, but never for less than an
        # even share of the time left, so a queue cannot grow without bound.
        free_ms = intervals[j][1] - begin + sum(b - a for a, b in intervals[j + 1:])
        handover_ms = pending[i + 1][0] - gap - begin if i + 1 < k else natural_ms
        length = min(natural_ms, max(handover_ms, free_ms // remaining - gap))
        length = min(length, intervals[j][1] - owed * unit - gap - begin)
        out.append(Slot(connector.station, connector.connector_id, begin, begin + length,
                        visit, curve, charge_s, natural_ms))
        cursor = begin + length + gap
    return out
