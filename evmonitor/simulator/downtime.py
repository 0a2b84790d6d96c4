"""Ground truth of each charging port's outages, from what the plan scheduled. Pure.

A port (station, connector >= 1) is out while any of these holds:

    a fault          its connector Faulted, [fault start, recovery)
    maintenance      its station's maintenance window (connector 0 Unavailable: every port)
    offline          its station fell silent and, at `judged_at`, had sent nothing for more than
                     `offline_after` (EVMON_HEARTBEAT_INTERVAL_S x EVMON_OFFLINE_AFTER_HEARTBEATS):
                     out from its last message on, still open at `judged_at`

The offline rule is the monitor's (a station_offline episode opens once a station is silent for
longer than `offline_after`, since its last message, and closes when it speaks again), written
here again from its description on purpose: the truth is derived from the plan, never from the
pipeline's code, so that comparing the two proves something. Overlapping or touching spans are
one outage. Time is integer microseconds since the epoch; minutes and percentages are exact
`Decimal`s rounded once, to 0.001, half up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from evmonitor.simulator.fleet import Station
from evmonitor.simulator.schedule import Outages

__all__ = ["Downtime", "PortTruth", "from_us", "plan_downtime", "to_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_MILLI = Decimal("0.001")

Span = tuple[int, int | None]  # [start_us, end_us), end None while it lasts


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    return (moment - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _iso(us: int | None) -> str | None:
    return None if us is None else from_us(us).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse(text: str | None) -> int | None:
    return None if text is None else to_us(datetime.fromisoformat(text.replace("Z", "+00:00")))


def minutes(us: int) -> Decimal:
    """Microseconds as minutes, to 0.001, half up."""
    return (Decimal(us) / 60_000_000).quantize(_MILLI, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class PortTruth:
    """One port from when it was first seen until `end_us` (the moment the truth is judged at)."""

    station_id: str
    connector_id: int
    first_seen_us: int
    end_us: int
    outages: tuple[Span, ...]  # merged, in order

    @property
    def key(self) -> str:
        return f"{self.station_id}/{self.connector_id}"

    @property
    def total_us(self) -> int:
        return max(0, self.end_us - self.first_seen_us)

    @property
    def outage_us(self) -> int:
        low, high = self.first_seen_us, self.end_us
        return sum(max(0, min(high, b if b is not None else high) - max(low, a)) for a, b in self.outages)

    @property
    def outage_min(self) -> Decimal:
        return minutes(self.outage_us)

    @property
    def uptime_pct(self) -> Decimal | None:
        """(T_total - T_outage) / T_total * 100 (nothing is excluded in a simulation); None if T_total is 0."""
        if not self.total_us:
            return None
        up = Decimal(self.total_us - self.outage_us) * 100 / Decimal(self.total_us)
        return up.quantize(_MILLI, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Downtime:
    """Every port of a plan, judged at `judged_at_us` with the offline threshold `offline_after_s`."""

    judged_at_us: int
    offline_after_s: float
    ports: tuple[PortTruth, ...]

    @property
    def outages(self) -> int:
        return sum(len(p.outages) for p in self.ports)

    @property
    def outage_us(self) -> int:
        return sum(p.outage_us for p in self.ports)

    @property
    def total_us(self) -> int:
        return sum(p.total_us for p in self.ports)

    @property
    def outage_min(self) -> Decimal:
        return minutes(self.outage_us)

    def to_json(self) -> dict[str, Any]:
        return {
            "judged_at": _iso(self.judged_at_us),
            "offline_after_s": self.offline_after_s,
            "outage_min": str(self.outage_min),
            "ports": {
                p.key: {"first_seen_at": _iso(p.first_seen_us), "outage_min": str(p.outage_min),
                        "uptime_pct": None if p.uptime_pct is None else str(p.uptime_pct),
                        "outages": [[_iso(a), _iso(b)] for a, b in p.outages]}
                for p in self.ports
            },
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Downtime":
        """The inverse of `to_json` (the minutes and percentages written there are derived, not read)."""
        end_us = _parse(data["judged_at"])
        ports = []
        for key, port in data["ports"].items():
            station_id, _, connector = key.rpartition("/")
            ports.append(PortTruth(station_id, int(connector), _parse(port["first_seen_at"]), end_us,
                                   tuple((_parse(a), _parse(b)) for a, b in port["outages"])))  # fmt: skip
        return cls(end_us, float(data["offline_after_s"]), tuple(ports))


def _union(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Overlapping or touching spans become one; an open span swallows everything after it."""
    out: list[list[int | None]] = []
    for a, b in sorted(spans, key=lambda s: (s[0], s[1] is None, s[1] or 0)):
        if b is not None and b <= a:
            continue
        if out and (out[-1][1] is None or a <= out[-1][1]):
            last_end = out[-1][1]
            out[-1][1] = None if last_end is None or b is None else max(last_end, b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def plan_downtime(
    fleet: list[Station],
    outages: Outages,
    *,
    first_event_ms: Mapping[int, int],
    last_event_ms: Mapping[int, int],
    judged_at: datetime,
    offline_after_s: float,
) -> Downtime:
    """Each port's outages as the plan made them, judged at `judged_at`.

    `first_event_ms` / `last_event_ms`: per station index, the time of its first and last valid
    event (first seen, last seen). A station with no event has no port in the answer.
    """
    judged_us = to_us(judged_at)
    offline_after_us = round(offline_after_s * 1_000_000)
    ports = []
    for station in fleet:
        if station.index not in first_event_ms:
            continue
        whole: list[Span] = [(w.start_ms * 1000, w.end_ms * 1000) for w in outages.maintenance.get(station.index, ())]
        last_us = last_event_ms[station.index] * 1000
        if judged_us - last_us > offline_after_us:
            whole.append((last_us, None))
        for connector_id in range(1, station.connector_count + 1):
            own = [(f.start_ms * 1000, f.end_ms * 1000) for f in outages.faults.get((station.index, connector_id), ())]
            ports.append(PortTruth(station.station_id, connector_id, first_event_ms[station.index] * 1000, judged_us,
                                   _union([*own, *whole])))  # fmt: skip
    return Downtime(judged_us, offline_after_s, tuple(ports))
