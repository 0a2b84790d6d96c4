"""Flapping: a fault that toggles within EVMON_ALERT_DEBOUNCE_S is one alert episode, not many."""

from __future__ import annotations

from datetime import timedelta

import pytest

from beat.alerts import StatusChange, fault_episodes, fault_spans
from tests.factories import NOW

S = timedelta(seconds=1)
DEBOUNCE = 120 * S


def history(*steps: tuple[int, str]) -> list[StatusChange]:
    return [StatusChange("ST-1", 1, NOW + t * S, status, "GroundFailure" if status == "Faulted" else "NoError",
                         f"e{i:03d}") for i, (t, status) in enumerate(steps)]  # fmt: skip


F, A = "Faulted", "Available"


@pytest.mark.parametrize(
    ("steps", "now_s", "episodes"),
    [
        # one fault, healthy long enough since: one closed episode, its real end
        ([(0, F), (60, A)], 600, [(0, 60)]),
        # cleared, but not for the debounce yet: still open
        ([(0, F), (60, A)], 150, [(0, None)]),
        # toggling every 30 s for 3 minutes: one episode from the first fault to the last clear
        ([(0, F), (30, A), (60, F), (90, A), (120, F), (150, A), (180, F), (210, A)], 600, [(0, 210)]),
        # toggling and still faulted: one open episode
        ([(0, F), (30, A), (60, F), (90, A), (120, F)], 600, [(0, None)]),
        # two faults further apart than the debounce: two episodes
        ([(0, F), (60, A), (60 + 121, F), (300, A)], 1000, [(0, 60), (181, 300)]),
        # exactly the debounce apart: two episodes (a gap must be shorter to merge)
        ([(0, F), (60, A), (180, F), (240, A)], 1000, [(0, 60), (180, 240)]),
        # a status other than Available clears too (Unavailable is the outage ledger's business)
        ([(0, F), (10, "Unavailable"), (20, F), (30, "Preparing")], 1000, [(0, 30)]),
    ],
)
def test_a_flapping_fault_is_one_episode(steps, now_s, episodes):
    got = fault_episodes(history(*steps), debounce=DEBOUNCE, now=NOW + now_s * S)
    assert [((e.since - NOW) // S, None if e.until is None else (e.until - NOW) // S) for e in got] == episodes
    assert len({e.id for e in got}) == len(got)


def test_a_merged_episode_keeps_the_time_really_faulted():
    [episode] = fault_episodes(history((0, F), (30, A), (60, F), (90, A)), debounce=DEBOUNCE, now=NOW + 1000 * S)
    assert [((a - NOW) // S, (b - NOW) // S) for a, b in fault_spans(episode)] == [(0, 30), (60, 90)]


def test_debounce_zero_is_the_raw_history():
    steps = history((0, F), (30, A), (60, F), (90, A))
    assert [(e.since, e.until) for e in fault_episodes(steps, debounce=0 * S, now=NOW + 100 * S)] == [
        (NOW, NOW + 30 * S), (NOW + 60 * S, NOW + 90 * S)]
    assert fault_episodes(steps) == fault_episodes(steps, debounce=0 * S, now=NOW + 100 * S)
