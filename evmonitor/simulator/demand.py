"""When drivers arrive: a daily profile with a morning and a stronger evening peak.

Hours are European local time, approximated as UTC+1: the fleet spans a few time zones and
the shape matters more than the exact hour.
"""

from __future__ import annotations

import math
import random

__all__ = ["PEAK_WEIGHT", "arrival_times", "time_of_day_weight"]

_LOCAL_OFFSET_H = 1.0
_DAY_MS = 86_400_000


def time_of_day_weight(epoch_ms: float) -> float:
    """Relative arrival rate at this moment; 1.0 is the daily mean, give or take."""
    hour = ((epoch_ms / 3_600_000) + _LOCAL_OFFSET_H) % 24
    return (
        0.15
        + 1.0 * math.exp(-(((hour - 8.5) / 1.5) ** 2) / 2)
        + 0.6 * math.exp(-(((hour - 13.0) / 2.5) ** 2) / 2)
        + 1.3 * math.exp(-(((hour - 18.0) / 2.0) ** 2) / 2)
    )


PEAK_WEIGHT = max(time_of_day_weight(m * 60_000) for m in range(24 * 60))


def arrival_times(rng: random.Random, count: int, start_ms: int, end_ms: int) -> list[int]:
    """`count` sorted arrival times in [start_ms, end_ms), shaped by the daily profile."""
    if end_ms <= start_ms:
        raise ValueError("empty window")
    span = end_ms - start_ms
    out: list[int] = []
    while len(out) < count:  # thinning: accept a uniform draw with probability weight / peak
        t = start_ms + int(rng.random() * span)
        if rng.random() * PEAK_WEIGHT <= time_of_day_weight(t):
            out.append(t)
    out.sort()
    return out
