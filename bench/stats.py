"""Pure arithmetic of the benchmark: rates, percentiles, ratios, the memory-flatness verdict.

No clock, no I/O: every function takes numbers and returns numbers, so the figures in
BENCHMARKS.md follow from the raw measurements by rules a unit test can check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Flatness", "flatness", "median", "median_index", "per_thousand", "percentile", "rate", "ratio", "slowest"]


def rate(count: float, seconds: float) -> float:
    """Things per second; 0 when no time passed (a run that did nothing has no rate)."""
    return count / seconds if seconds > 0 else 0.0


def per_thousand(amount: float, events: int) -> float:
    """`amount` per 1,000 events (e.g. CPU seconds per 1,000 events); 0 for no events."""
    return amount * 1000 / events if events > 0 else 0.0


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default).

    None for no values.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def median_index(values: Sequence[float]) -> int:
    """The index of a median element (the lower middle one for an even count): the run to report
    of several, so that its other figures belong to the same run."""
    if not values:
        raise ValueError("no values")
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(values) - 1) // 2]


def slowest(stages: dict[str, float | None]) -> tuple[str, float] | None:
    """The stage with the lowest throughput among those measured: (name, rate)."""
    measured = [(name, value) for name, value in stages.items() if value]
    return min(measured, key=lambda item: item[1]) if measured else None


class Flatness:
    """The verdict on a memory series: growth from the early steady state to the end."""

    def __init__(self, early_bytes: float, late_bytes: float, growth_bytes: float, flat: bool) -> None:
        self.early_bytes, self.late_bytes, self.growth_bytes, self.flat = early_bytes, late_bytes, growth_bytes, flat

    def as_dict(self) -> dict[str, float | bool]:
        return {"early_mb": round(self.early_bytes / 2**20, 1), "late_mb": round(self.late_bytes / 2**20, 1),
                "growth_mb": round(self.growth_bytes / 2**20, 1), "flat": self.flat}  # fmt: skip


def flatness(
    samples: Sequence[tuple[float, float]],
    *,
    warmup_fraction: float = 0.25,
    tolerance_fraction: float = 0.05,
    tolerance_bytes: float = 8 * 2**20,
) -> Flatness | None:
    """Does memory stay flat? Compare the median of the second quarter of the run (after warm-up)
    with the median of the last quarter; flat if it grew by less than the larger of
    `tolerance_fraction` of the early level and `tolerance_bytes`.

    `samples` are (seconds, bytes) in time order. None with fewer than 8 samples: too short a run
    to say.
    """
    if len(samples) < 8:
        return None
    n = len(samples)
    start = int(n * warmup_fraction)
    early = [b for _, b in samples[start : start + max(1, n // 4)]]
    late = [b for _, b in samples[n - max(1, n // 4) :]]
    e, l = median(early) or 0.0, median(late) or 0.0
    growth = l - e
    return Flatness(e, l, growth, growth <= max(tolerance_fraction * e, tolerance_bytes))
