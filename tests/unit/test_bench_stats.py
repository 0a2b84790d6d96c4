"""The benchmark's arithmetic: percentiles, rates, ratios and the memory-flatness verdict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.stats import flatness, median, median_index, per_thousand, percentile, rate, ratio, slowest


def test_percentile_interpolates_between_closest_ranks():
    """p50 of an even count is the mean of the middle two; p0 and p100 are the extremes."""
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(list(range(101)), 99) == 99.0
    assert percentile([10.0, 20.0], 25) == 12.5


def test_percentile_of_nothing_is_none_and_bad_q_is_refused():
    """No samples give no percentile; a percentile outside 0..100 is a caller's bug."""
    assert percentile([], 50) is None
    assert median([]) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1), st.floats(0, 100))
def test_percentile_lies_within_the_samples_and_ignores_order(values, q):
    """Any percentile is between min and max and does not depend on the order of samples."""
    p = percentile(values, q)
    assert min(values) <= p <= max(values)
    assert percentile(list(reversed(values)), q) == p


def test_rates_and_ratios_refuse_to_divide_by_nothing():
    """Zero seconds give rate 0; a missing or zero denominator gives no ratio."""
    assert rate(100, 4) == 25
    assert rate(100, 0) == 0
    assert per_thousand(0.5, 10_000) == 0.05
    assert per_thousand(1.0, 0) == 0
    assert ratio(30, 60) == 0.5
    assert ratio(None, 60) is None and ratio(30, None) is None and ratio(30, 0) is None


def test_slowest_stage_is_the_lowest_measured_rate():
    """Unmeasured (None) stages are not the bottleneck."""
    assert slowest({"kafka": 80_000, "postgres": 6_000, "celery": None}) == ("postgres", 6_000)
    assert slowest({"kafka": None}) is None


def test_flat_memory_is_flat_and_growing_memory_is_not():
    """A steady series with noise is flat; one that climbs steadily is not; a short one is undecided."""
    mb = 2**20
    steady = [(t, 100 * mb + (t % 3) * mb) for t in range(40)]
    growing = [(t, 100 * mb + t * 2 * mb) for t in range(40)]
    assert flatness(steady).flat is True
    verdict = flatness(growing)
    assert verdict.flat is False and verdict.growth_bytes > 30 * mb
    assert flatness(steady[:5]) is None


def test_flatness_ignores_the_warm_up():
    """Memory that grows only while warming up (first quarter) and then holds is flat."""
    mb = 2**20
    series = [(t, (50 + 10 * t) * mb if t < 10 else 150 * mb) for t in range(40)]
    assert flatness(series).flat is True


def test_median_index_points_at_the_middle_run():
    """Of several runs the middle one by rate is reported (the lower middle of an even count)."""
    assert median_index([300.0, 100.0, 200.0]) == 2
    assert median_index([5.0]) == 0
    assert median_index([4.0, 1.0, 3.0, 2.0]) == 3  # the run of rate 2.0
    with pytest.raises(ValueError):
        median_index([])
