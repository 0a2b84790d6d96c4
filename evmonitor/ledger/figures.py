"""Uptime the regulator's way (23 CFR 680.116(b)), as arithmetic on one port's outages. Pure.

    uptime % = (T_total - (T_outage - T_excluded)) / T_total * 100

with T_total the port's time in the period (from when it was first seen, if later), T_outage
its outage time in the period and T_excluded the part of that whose cause is excluded. Time is
counted in integer microseconds; minutes and percentages are exact `Decimal`s, rounded once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

__all__ = ["Uptime", "uptime"]

_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Uptime:
    """One port's (or a sum of ports') time in a period, in microseconds."""

    total_us: int
    outage_us: int
    excluded_us: int

    def __add__(self, other: "Uptime") -> "Uptime":
        return Uptime(self.total_us + other.total_us, self.outage_us + other.outage_us,
                      self.excluded_us + other.excluded_us)  # fmt: skip

    @staticmethod
    def minutes(us: int) -> Decimal:
        return (Decimal(us) / 60_000_000).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)

    @property
    def total_min(self) -> Decimal:
        return self.minutes(self.total_us)

    @property
    def outage_min(self) -> Decimal:
        return self.minutes(self.outage_us)

    @property
    def excluded_min(self) -> Decimal:
        return self.minutes(self.excluded_us)

    @property
    def uptime_pct(self) -> Decimal | None:
        """(T_total - (T_outage - T_excluded)) / T_total * 100, to 0.001 %; None when T_total is 0."""
        if not self.total_us:
            return None
        up = Decimal(self.total_us - (self.outage_us - self.excluded_us)) * 100 / Decimal(self.total_us)
        return up.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def _clipped_union_us(intervals: Iterable[tuple[datetime, datetime | None]], start: datetime, end: datetime) -> int:
    clipped = sorted((max(a, start), min(b or end, end)) for a, b in intervals)
    total, reach = 0, start
    for a, b in clipped:
        a = max(a, reach)
        if b > a:
            total += (b - a) // _US
            reach = b
    return total


def uptime(
    *,
    start: datetime,
    end: datetime,
    first_seen_at: datetime | None,
    outages: Sequence[tuple[datetime, datetime | None, bool]],
) -> Uptime:
    """One port's uptime in [start, end): `outages` are (started_at, ended_at or None, excluded).

    T_total runs from the later of `start` and `first_seen_at`; an open outage runs to `end`.
    Overlapping outages count once (the ledger has none on one port, but the sum is safe anyway).
    """
    begin = max(start, first_seen_at) if first_seen_at is not None else start
    if end <= begin:
        return Uptime(0, 0, 0)
    outage_us = _clipped_union_us([(a, b) for a, b, _ in outages], begin, end)
    excluded_us = _clipped_union_us([(a, b) for a, b, excluded in outages if excluded], begin, end)
    return Uptime((end - begin) // _US, outage_us, excluded_us)

