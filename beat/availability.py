"""Availability: the share of connector time that was neither Faulted nor offline. Pure.

Intervals are (since, until) with until None for an episode still open; a fault on connector 0
(the whole station) takes every connector down; time that is both faulted and offline counts
once, as faulted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

__all__ = ["Availability", "Interval", "availability"]

_US = Decimal(1_000_000)

Interval = tuple[datetime, datetime | None]


@dataclass(frozen=True, slots=True)
class Availability:
    connectors: int
    measured_connector_min: Decimal
    faulted_connector_min: Decimal
    offline_connector_min: Decimal

    @property
    def availability_pct(self) -> Decimal | None:
        if not self.measured_connector_min:
            return None
        up = self.measured_connector_min - self.faulted_connector_min - self.offline_connector_min
        return (up * 100 / self.measured_connector_min).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _merge(intervals: Iterable[Interval], start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Clip to [start, end) (an open interval runs to `end`) and merge overlaps."""
    clipped = sorted((max(a, start), min(b or end, end)) for a, b in intervals)
    out: list[tuple[datetime, datetime]] = []
    for a, b in clipped:
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _length_us(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    return sum((b - a) // timedelta(microseconds=1) for a, b in intervals)


def _min(us: int) -> Decimal:
    return (Decimal(us) / _US / 60).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def availability(
    *,
    start: datetime,
    end: datetime,
    connectors: int,
    faults: Mapping[int, Sequence[Interval]],
    offline: Sequence[Interval],
) -> Availability:
    """Connector time in [start, end) neither Faulted nor offline; connector 0 faults all."""
    connectors = max([connectors, 1, *(c for c in faults if c > 0)])
    if end <= start:
        zero = Decimal("0.000")
        return Availability(connectors, zero, zero, zero)
    whole = list(faults.get(0, ()))
    faulted_us = offline_us = 0
    for connector_id in range(1, connectors + 1):
        down = _merge([*faults.get(connector_id, ()), *whole], start, end)
        either = _merge([*down, *offline], start, end)
        faulted_us += _length_us(down)
        offline_us += _length_us(either) - _length_us(down)
    measured_us = connectors * ((end - start) // timedelta(microseconds=1))
    return Availability(connectors, _min(measured_us), _min(faulted_us), _min(offline_us))
